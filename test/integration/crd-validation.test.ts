// The API server itself refuses malformed MonitoredServers (schema, enums, bounds, CEL rules,
// immutability, strict field validation), each with a message naming the field.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';
import { parse } from 'yaml';
import { startCluster, type LocalCluster } from '../../testenv/cluster/local-cluster.ts';
import { monitoredServer } from '../../testenv/fixtures/monitoredservers.ts';
import { REPO_ROOT } from '../../testenv/repo-root.ts';

const NS = 'validation';
const target = { group: 'hyperspector.io', version: 'v1alpha1', plural: 'monitoredservers', namespace: NS };

type Mutation = (ms: Record<string, any>) => void; // eslint-disable-line @typescript-eslint/no-explicit-any

function apiMessage(err: unknown): string {
  const body = (err as { body?: unknown }).body;
  try {
    return (JSON.parse(String(body)) as { message: string }).message;
  } catch {
    return String(body ?? err);
  }
}

describe('MonitoredServer CRD validation (real kube-apiserver)', function () {
  let cluster: LocalCluster;
  let api: k8s.CustomObjectsApi;

  before(async function () {
    cluster = await startCluster({ nodes: 1 });
    api = cluster.api(k8s.CustomObjectsApi);
    await cluster.api(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: NS } } });
  });

  after(async () => cluster?.stop());

  async function create(body: object): Promise<Record<string, any>> { // eslint-disable-line @typescript-eslint/no-explicit-any
    return api.createNamespacedCustomObject({ ...target, body, fieldValidation: 'Strict' });
  }

  async function refused(body: object): Promise<string> {
    try {
      await create(body);
    } catch (err) {
      // 422 for schema and CEL violations; 400 for unknown fields under strict field validation.
      assert.ok([400, 422].includes((err as { code?: number }).code ?? 0), `expected 400 or 422, got ${String(err)}`);
      return apiMessage(err);
    }
    assert.fail(`the API server accepted ${JSON.stringify(body)}`);
  }

  const cases: Array<[string, Mutation, RegExp]> = [
    ['both virtualMachineName and template', (ms) => (ms.spec.server.virtualMachineName = 'web'), /spec\.server: Invalid value.*exactly one of spec\.server\.virtualMachineName .* or spec\.server\.template/],
    ['neither virtualMachineName nor template', (ms) => delete ms.spec.server.template, /spec\.server: Invalid value.*exactly one of spec\.server\.virtualMachineName/],
    ['an unknown mirroring direction', (ms) => (ms.spec.mirroring = { direction: 'Sideways' }), /spec\.mirroring\.direction: Unsupported value: "Sideways"/],
    ['an unknown disk inspection mode', (ms) => (ms.spec.diskInspection = { mode: 'Copy' }), /spec\.diskInspection\.mode: Unsupported value: "Copy"/],
    ['a relative mount path', (ms) => (ms.spec.diskInspection = { mountPath: 'serverfs' }), /spec\.diskInspection\.mountPath: Invalid value: "serverfs"/],
    ['a mount path with ..', (ms) => (ms.spec.diskInspection = { mountPath: '/mnt/../etc' }), /spec\.diskInspection\.mountPath: Invalid value.*must not contain \. or \.\. segments/],
    ['a poll interval of 0', (ms) => (ms.spec.processMapping = { pollIntervalSeconds: 0 }), /spec\.processMapping\.pollIntervalSeconds: Invalid value: 0: .*greater than or equal to 1/],
    ['a baseline window over a day', (ms) => (ms.spec.processMapping = { baselineWindowSeconds: 90000 }), /spec\.processMapping\.baselineWindowSeconds: Invalid value: 90000: .*less than or equal to 86400/],
    ['an unknown alert response', (ms) => (ms.spec.response = { onAlert: 'Kill' }), /spec\.response\.onAlert: Unsupported value: "Kill"/],
    [
      'deletionPolicy Delete on an adopted VM',
      (ms) => {
        delete ms.spec.server.template;
        ms.spec.server.virtualMachineName = 'db-1';
        ms.spec.server.deletionPolicy = 'Delete';
      },
      /spec\.server\.deletionPolicy: Forbidden: .*must be Retain when adopting/,
    ],
    [
      'a VM name that is not a DNS label',
      (ms) => {
        delete ms.spec.server.template;
        ms.spec.server.virtualMachineName = 'Web_1';
      },
      /spec\.server\.virtualMachineName: Invalid value: "Web_1"/,
    ],
    ['no IDS VM', (ms) => delete ms.spec.ids, /spec\.ids: Required value/],
    ['an IDS template without spec', (ms) => (ms.spec.ids.template = { metadata: {} }), /spec\.ids\.template\.spec: Required value/],
    ['a name too long for its children', (ms) => (ms.metadata.name = 'a'.repeat(57)), /metadata\.name must be at most 56 characters/],
    ['a duplicated disk', (ms) => (ms.spec.server.disks = ['rootdisk', 'rootdisk']), /spec\.server\.disks\[1\]: Duplicate value: "rootdisk"/],
    ['too many disks', (ms) => (ms.spec.server.disks = Array.from({ length: 17 }, (_, i) => `d${i}`)), /spec\.server\.disks: Too many: 17: must have at most 16 items/],
    ['a field outside the schema', (ms) => (ms.spec.server.nodeName = 'node-a'), /unknown field "spec\.server\.nodeName"/],
  ];

  for (const [what, mutate, expected] of cases) {
    it(`refuses ${what}`, async function () {
      const ms = monitoredServer('bad', NS) as unknown as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
      mutate(ms);
      const message = await refused(ms);
      assert.match(message, expected);
    });
  }

  it('accepts the examples and fills in defaults', async function () {
    const example = parse(readFileSync(`${REPO_ROOT}examples/10-web-monitored-server.yaml`, 'utf8')) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    example.metadata.namespace = NS;
    const created = await create(example);
    assert.equal(created.spec.mirroring.direction, 'Both');
    const minimal = monitoredServer('minimal', NS) as unknown as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    delete minimal.spec.mirroring;
    const stored = await create(minimal);
    assert.deepEqual(stored.spec.mirroring, { enabled: true, direction: 'Both' });
    assert.deepEqual(stored.spec.diskInspection, { mode: 'Live', mountPath: '/.serverfs' });
    assert.deepEqual(stored.spec.processMapping, { enabled: true, pollIntervalSeconds: 1, baselineWindowSeconds: 300 });
    assert.deepEqual(stored.spec.response, { onAlert: 'None' });
    assert.equal(stored.spec.server.deletionPolicy, 'Retain');
  });

  it('refuses changing the adopted VM name, and switching between adopt and create', async function () {
    const ms = monitoredServer('adopter', NS) as unknown as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    delete ms.spec.server.template;
    ms.spec.server.virtualMachineName = 'db-1';
    await create(ms);
    const patch = async (server: object) => {
      try {
        await api.patchNamespacedCustomObject(
          { ...target, name: 'adopter', body: { spec: { server } }, fieldValidation: 'Strict' },
          k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
        );
      } catch (err) {
        return apiMessage(err);
      }
      assert.fail('the API server accepted the change');
    };
    assert.match(await patch({ virtualMachineName: 'db-2' }), /spec\.server\.virtualMachineName: Invalid value.*is immutable/);
    assert.match(
      await patch({ virtualMachineName: null, template: monitoredServer('x', NS).spec.server.template }),
      /spec\.server: Invalid value.*cannot switch between virtualMachineName and template/,
    );
  });

  it('serves printer columns and the short name', async function () {
    const ext = cluster.api(k8s.ApiextensionsV1Api);
    const crd = await ext.readCustomResourceDefinition({ name: 'monitoredservers.hyperspector.io' });
    assert.deepEqual(crd.spec.names.shortNames, ['msrv']);
    const columns = crd.spec.versions[0]?.additionalPrinterColumns?.map((c) => c.name);
    assert.deepEqual(columns, ['Ready', 'Reason', 'Node', 'Server', 'IDS', 'Age']);
    assert.deepEqual(crd.spec.versions[0]?.subresources?.status, {});
  });
});
