// Builds the MonitoredServer CustomResourceDefinition from the TypeBox schemas.
import { MAX_NAME_LENGTH, GROUP, KIND, PLURAL, VERSION, MonitoredServerSpecSchema, MonitoredServerStatusSchema } from './monitoredserver-types.ts';

/**
 * Drops TypeBox's symbol keys, and `additionalProperties: false`: structural schemas forbid it, since
 * the API server already prunes unknown fields (and rejects them under strict field validation).
 */
function plain<T>(schema: T): T {
  return JSON.parse(JSON.stringify(schema), (key, value: unknown) =>
    key === 'additionalProperties' && value === false ? undefined : value,
  ) as T;
}

const readyColumn = '.status.conditions[?(@.type=="Ready")]';

export function buildMonitoredServerCrd(): Record<string, unknown> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${PLURAL}.${GROUP}`,
      labels: { 'app.kubernetes.io/name': 'hyperspector', 'app.kubernetes.io/part-of': 'hyperspector' },
    },
    spec: {
      group: GROUP,
      scope: 'Namespaced',
      names: {
        kind: KIND,
        listKind: `${KIND}List`,
        plural: PLURAL,
        singular: 'monitoredserver',
        shortNames: ['msrv'],
        categories: ['hyperspector', 'kubevirt'],
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'Ready', type: 'string', jsonPath: `${readyColumn}.status` },
            { name: 'Reason', type: 'string', jsonPath: `${readyColumn}.reason` },
            { name: 'Node', type: 'string', jsonPath: '.status.nodeName' },
            { name: 'Server', type: 'string', jsonPath: '.status.serverVM.name' },
            { name: 'IDS', type: 'string', jsonPath: '.status.idsVM.name' },
            { name: 'Alerts', type: 'integer', jsonPath: '.status.alerts.count' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: 'A server VM watched by an isolated IDS VM on the same node (HyperSpector).',
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec: plain(MonitoredServerSpecSchema),
                status: plain(MonitoredServerStatusSchema),
              },
              'x-kubernetes-validations': [
                {
                  rule: `size(self.metadata.name) <= ${MAX_NAME_LENGTH}`,
                  message: `metadata.name must be at most ${MAX_NAME_LENGTH} characters so that the child VM names <name>-server and <name>-ids fit in 63`,
                },
              ],
            },
          },
        },
      ],
    },
  };
}
