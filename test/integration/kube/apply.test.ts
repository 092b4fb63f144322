// Server-side apply and the no-op skip against a real kube-apiserver: a second reconcile of an
// unchanged object sends no write, even for a Pod the API server defaulted and admission mutated.
import assert from 'node:assert/strict';
import { FIELD_MANAGER, applyIfChanged, applyStatus, applyStatusIfChanged, needsApply } from '../../../src/kube/client/apply.ts';
import { createKubeApi, type KubeApi } from '../../../src/kube/client/rest.ts';
import { CONFIG_MAP, POD, objectPath, type ResourceType } from '../../../src/kube/client/resources.ts';
import type { LocalCluster } from '../../../testenv/cluster/local-cluster.ts';
import { waitFor } from '../../../testenv/wait.ts';
import { startRuntimeTestCluster } from './kube-cluster.ts';
import type { TestObject } from '../../../src/kube/testing/test-object.ts';

const NS = 'apply-test';
// A throwaway kind with a status subresource, so the status tests do not depend on the shape of
// the project's own CRD.
const WIDGET: ResourceType = { apiVersion: 'runtime-test.hyperspector.io/v1', kind: 'Widget', plural: 'widgets', namespaced: true };
const WIDGET_CRD = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'widgets.runtime-test.hyperspector.io' },
  spec: {
    group: 'runtime-test.hyperspector.io',
    scope: 'Namespaced',
    names: { plural: 'widgets', singular: 'widget', kind: 'Widget', listKind: 'WidgetList' },
    versions: [
      {
        name: 'v1',
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: {
              spec: { type: 'object', properties: { size: { type: 'integer' } } },
              status: {
                type: 'object',
                properties: {
                  observedGeneration: { type: 'integer' },
                  conditions: {
                    type: 'array',
                    'x-kubernetes-list-type': 'map',
                    'x-kubernetes-list-map-keys': ['type'],
                    items: {
                      type: 'object',
                      required: ['type', 'status', 'reason', 'message', 'lastTransitionTime'],
                      properties: {
                        type: { type: 'string' },
                        status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
                        reason: { type: 'string' },
                        message: { type: 'string' },
                        observedGeneration: { type: 'integer' },
                        lastTransitionTime: { type: 'string', format: 'date-time' },
                      },
                    },
                  },
                },
              },
            },
          },
        },
      },
    ],
  },
};

describe('server-side apply (real kube-apiserver)', function () {
  let cluster: LocalCluster;
  let api: KubeApi;

  before(async function () {
    cluster = await startRuntimeTestCluster();
    api = createKubeApi(cluster.kubeConfig);
    await api.request({ method: 'POST', path: '/api/v1/namespaces', body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } } });
    await api.request({ method: 'POST', path: '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', body: WIDGET_CRD });
    await waitFor(() => api.request({ method: 'GET', path: `/apis/runtime-test.hyperspector.io/v1/namespaces/${NS}/widgets` }).then(() => true), { description: 'Widget CRD served' });
  });

  after(async () => cluster?.stop());

  const get = <T extends TestObject>(type: ResourceType, name: string) => api.request<T>({ method: 'GET', path: objectPath(type, NS, name) });

  it('creates, then skips the write while nothing changed, then applies a change', async () => {
    const desired: TestObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm', namespace: NS, labels: { app: 'a' } }, data: { k: 'v' } };
    const created = await applyIfChanged(api, CONFIG_MAP, desired, undefined);
    assert.equal(created.applied, true);
    const live = await get(CONFIG_MAP, 'cm');
    assert.equal(live.metadata.managedFields?.[0]?.manager, FIELD_MANAGER);
    const again = await applyIfChanged(api, CONFIG_MAP, desired, live);
    assert.equal(again.applied, false);
    assert.equal((await get(CONFIG_MAP, 'cm')).metadata.resourceVersion, live.metadata.resourceVersion);
    const changed = await applyIfChanged(api, CONFIG_MAP, { ...desired, data: { k: 'v2' } } as TestObject, live);
    assert.equal(changed.applied, true);
    assert.deepEqual((await get(CONFIG_MAP, 'cm')).data, { k: 'v2' });
  });

  it('applies when a field we own is no longer desired, and the apply removes it', async () => {
    const withLabel: TestObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm2', namespace: NS, labels: { app: 'a', stale: 'yes' } }, data: { k: 'v' } };
    await applyIfChanged(api, CONFIG_MAP, withLabel, undefined);
    const live = await get(CONFIG_MAP, 'cm2');
    const withoutLabel: TestObject = { ...withLabel, metadata: { ...withLabel.metadata, labels: { app: 'a' } } };
    const result = await applyIfChanged(api, CONFIG_MAP, withoutLabel, live);
    assert.equal(result.applied, true);
    assert.deepEqual((await get(CONFIG_MAP, 'cm2')).metadata.labels, { app: 'a' });
  });

  it('skips the write for a Pod that the API server defaulted and admission mutated', async () => {
    const desired: TestObject = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'sidecar', namespace: NS, labels: { app: 'process-mapper' } },
      spec: {
        containers: [{ name: 'mapper', image: 'registry.example/hyperspector:dev', ports: [{ containerPort: 9000, name: 'procs' }], volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }] }],
        volumes: [{ name: 'scratch', emptyDir: {} }],
        tolerations: [{ key: 'hyperspector.io/ids', operator: 'Exists', effect: 'NoSchedule' }],
      },
    };
    await applyIfChanged(api, POD, desired, undefined);
    const live = await get<TestObject>(POD, 'sidecar');
    const spec = live.spec as { tolerations: unknown[]; containers: Array<{ imagePullPolicy?: string; ports: Array<{ protocol?: string }> }> };
    assert.equal(spec.tolerations.length, 3, 'DefaultTolerationSeconds admission added two tolerations');
    assert.equal(spec.containers[0]!.imagePullPolicy, 'IfNotPresent', 'the API server filled in defaults');
    assert.equal(spec.containers[0]!.ports[0]!.protocol, 'TCP');
    assert.equal(needsApply(desired, live), false);
    const again = await applyIfChanged(api, POD, desired, live);
    assert.equal(again.applied, false);
  });

  it('rejects an unknown field (strict validation) with a message naming the object', async () => {
    const bad: TestObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'bad', namespace: NS }, data: { k: 'v' }, bogus: 1 };
    await assert.rejects(applyIfChanged(api, CONFIG_MAP, bad, undefined), /Server-side apply of ConfigMap apply-test\/bad failed: .*bogus/);
  });

  it('applies status to the status subresource under the operator field manager, skipping unchanged status', async () => {
    const widget: TestObject = { apiVersion: WIDGET.apiVersion, kind: WIDGET.kind, metadata: { name: 'w', namespace: NS }, spec: { size: 1 } };
    await applyIfChanged(api, WIDGET, widget, undefined);
    const conditions = [{ type: 'Ready', status: 'False', reason: 'WaitingForServerPlacement', message: 'Server VMI has no node yet', lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: 1 }];
    await applyStatus(api, WIDGET, widget, { observedGeneration: 1, conditions });
    const live = await get<TestObject & { status?: { conditions?: Array<{ status: string }> } }>(WIDGET, 'w');
    assert.deepEqual(live.status?.conditions, conditions);
    assert.deepEqual(live.spec, { size: 1 }, 'the status apply left spec alone');
    assert.equal(live.metadata.managedFields?.find((e) => e.subresource === 'status')?.manager, FIELD_MANAGER);
    const unchanged = await applyStatusIfChanged(api, WIDGET, live, { observedGeneration: 1, conditions });
    assert.equal(unchanged.applied, false);
    const changed = await applyStatusIfChanged(api, WIDGET, live, { observedGeneration: 1, conditions: [{ ...conditions[0]!, status: 'True', reason: 'Monitoring' }] });
    assert.equal(changed.applied, true);
    const after = await get<TestObject & { status?: { conditions?: Array<{ status: string }> } }>(WIDGET, 'w');
    assert.equal(after.status?.conditions?.[0]?.status, 'True');
  });
});
