import assert from 'node:assert/strict';
import { FIELD_MANAGER, applyIfChanged, applyObject, applyStatus, applyStatusIfChanged, isSubset, mergePatchStatus, needsApply, ownsFieldsNotIn, statusNeedsApply } from '../../../src/kube/client/apply.ts';
import type { ApiRequest, KubeApi } from '../../../src/kube/client/rest.ts';
import { VIRTUAL_MACHINE } from '../../../src/kube/client/resources.ts';
import type { TestObject } from '../../../src/kube/testing/test-object.ts';

function recordingApi(response: unknown = {}): KubeApi & { requests: ApiRequest[] } {
  const requests: ApiRequest[] = [];
  return {
    requests,
    async request<T>(req: ApiRequest): Promise<T> {
      requests.push(req);
      return response as T;
    },
  };
}

const desiredVm: TestObject = {
  apiVersion: 'kubevirt.io/v1',
  kind: 'VirtualMachine',
  metadata: { name: 'web-1-ids', namespace: 'shop', labels: { 'hyperspector.io/server': 'web-1' } },
  spec: {
    runStrategy: 'Always',
    template: {
      spec: {
        domain: { devices: { interfaces: [{ name: 'default', masquerade: {} }] }, resources: { requests: { memory: '1Gi' } } },
        networks: [{ name: 'default', pod: {} }],
      },
    },
  },
};

function liveOf(desired: TestObject): TestObject {
  const live = structuredClone(desired);
  live.metadata.uid = 'u-1';
  live.metadata.resourceVersion = '42';
  live.metadata.labels = { ...live.metadata.labels, 'other.io/label': 'x' };
  const spec = live.spec as { template: { spec: { domain: { devices: { interfaces: Record<string, unknown>[] }; machine?: unknown } } } };
  spec.template.spec.domain.machine = { type: 'q35' };
  spec.template.spec.domain.devices.interfaces[0]!.macAddress = '02:00:00:00:00:01';
  live.status = { ready: true };
  return live;
}

describe('isSubset', () => {
  it('accepts a live object that adds defaults, status and other labels', () => {
    assert.equal(isSubset(desiredVm, liveOf(desiredVm)), true);
  });

  it('rejects a changed or missing desired field', () => {
    const changed = structuredClone(desiredVm);
    (changed.spec as { runStrategy: string }).runStrategy = 'Halted';
    assert.equal(isSubset(changed, liveOf(desiredVm)), false);
    const added = structuredClone(desiredVm);
    added.metadata.annotations = { a: 'b' };
    assert.equal(isSubset(added, liveOf(desiredVm)), false);
  });

  it('pairs keyed list elements by key and allows extra live elements', () => {
    assert.equal(isSubset({ volumes: [{ name: 'b', x: 1 }] }, { volumes: [{ name: 'a', x: 0 }, { name: 'b', x: 1, y: 2 }] }), true);
    assert.equal(isSubset({ volumes: [{ name: 'b', x: 2 }] }, { volumes: [{ name: 'a' }, { name: 'b', x: 1 }] }), false);
    assert.equal(isSubset({ volumes: [{ name: 'c' }] }, { volumes: [{ name: 'a' }] }), false);
  });

  it('treats scalar lists as atomic and keyless object lists by index', () => {
    assert.equal(isSubset({ args: ['a', 'b'] }, { args: ['a', 'b'] }), true);
    assert.equal(isSubset({ args: ['a'] }, { args: ['a', 'b'] }), false);
    assert.equal(isSubset({ args: ['b', 'a'] }, { args: ['a', 'b'] }), false);
    assert.equal(isSubset({ t: [{ op: 'Exists' }] }, { t: [{ op: 'Exists', s: 1 }] }), true);
    assert.equal(isSubset({ t: [{ op: 'Exists' }] }, { t: [{ op: 'Exists' }, { op: 'Equal' }] }), false);
    assert.equal(isSubset({ a: [] }, { a: [] }), true);
    assert.equal(isSubset({ a: [] }, {}), false);
  });

  it('distinguishes types and null', () => {
    assert.equal(isSubset({ a: 1 }, { a: '1' }), false);
    assert.equal(isSubset({ a: null }, { a: null }), true);
    assert.equal(isSubset({ a: {} }, { a: null }), false);
    assert.equal(isSubset({ a: undefined }, {}), true);
  });
});

describe('needsApply', () => {
  it('is false when live holds every desired field and we own nothing else', () => {
    const live = liveOf(desiredVm);
    live.metadata.managedFields = [
      {
        manager: FIELD_MANAGER,
        operation: 'Apply',
        fieldsType: 'FieldsV1',
        fieldsV1: { 'f:metadata': { 'f:labels': { 'f:hyperspector.io/server': {} } }, 'f:spec': { 'f:runStrategy': {}, 'f:template': { 'f:spec': { 'f:networks': { 'k:{"name":"default"}': { '.': {}, 'f:name': {}, 'f:pod': {} } } } } } },
      },
      { manager: 'kubectl', operation: 'Update', fieldsV1: { 'f:metadata': { 'f:labels': { 'f:other.io/label': {} } } } },
    ];
    assert.equal(needsApply(desiredVm, live), false);
  });

  it('is true when we own a field no longer desired, so the apply removes it', () => {
    const live = liveOf(desiredVm);
    live.metadata.labels = { ...live.metadata.labels, stale: 'yes' };
    live.metadata.managedFields = [{ manager: FIELD_MANAGER, operation: 'Apply', fieldsV1: { 'f:metadata': { 'f:labels': { 'f:stale': {}, 'f:hyperspector.io/server': {} } } } }];
    assert.equal(needsApply(desiredVm, live), true);
  });

  it('ignores the status entry of the manager when checking the main resource', () => {
    const live = liveOf(desiredVm);
    live.metadata.managedFields = [{ manager: FIELD_MANAGER, operation: 'Apply', subresource: 'status', fieldsV1: { 'f:status': { 'f:ready': {} } } }];
    assert.equal(needsApply(desiredVm, live), false);
    assert.equal(needsApply(desiredVm, live, FIELD_MANAGER, 'status'), true);
  });
});

describe('ownsFieldsNotIn', () => {
  it('follows f:, k:, v: and i: paths', () => {
    const desired = { spec: { ports: [{ containerPort: 80, name: 'http' }], finalizers: ['a'], list: [{ x: 1 }] } };
    assert.equal(ownsFieldsNotIn({ 'f:spec': { 'f:ports': { 'k:{"containerPort":80,"protocol":"TCP"}': { '.': {}, 'f:name': {} } } } }, desired), false);
    assert.equal(ownsFieldsNotIn({ 'f:spec': { 'f:ports': { 'k:{"containerPort":81,"protocol":"TCP"}': {} } } }, desired), true);
    assert.equal(ownsFieldsNotIn({ 'f:spec': { 'f:finalizers': { 'v:"a"': {} } } }, desired), false);
    assert.equal(ownsFieldsNotIn({ 'f:spec': { 'f:finalizers': { 'v:"b"': {} } } }, desired), true);
    assert.equal(ownsFieldsNotIn({ 'f:spec': { 'f:list': { 'i:0': { 'f:x': {} } } } }, desired), false);
    assert.equal(ownsFieldsNotIn({ 'f:spec': { 'f:list': { 'i:1': {} } } }, desired), true);
    assert.equal(ownsFieldsNotIn({ 'f:spec': { 'f:ports': { 'k:{"containerPort":80,"protocol":"TCP"}': { 'f:hostPort': {} } } } }, desired), true);
  });
});

describe('applyObject / applyStatus', () => {
  it('sends a forced, strictly validated apply patch under the operator field manager', async () => {
    const api = recordingApi({ ...desiredVm });
    await applyObject(api, VIRTUAL_MACHINE, desiredVm);
    const [req] = api.requests;
    assert.ok(req);
    assert.equal(req.method, 'PATCH');
    assert.equal(req.path, '/apis/kubevirt.io/v1/namespaces/shop/virtualmachines/web-1-ids');
    assert.deepEqual(req.query, { fieldManager: 'hyperspector-operator', force: true, fieldValidation: 'Strict' });
    assert.equal(req.contentType, 'application/apply-patch+yaml');
    assert.deepEqual(JSON.parse(req.body as string), desiredVm);
  });

  it('applies status to the status subresource with only identity and status', async () => {
    const api = recordingApi();
    await applyStatus(api, VIRTUAL_MACHINE, liveOf(desiredVm), { printableStatus: 'Running' });
    const [req] = api.requests;
    assert.equal(req!.path, '/apis/kubevirt.io/v1/namespaces/shop/virtualmachines/web-1-ids/status');
    assert.deepEqual(JSON.parse(req!.body as string), {
      apiVersion: 'kubevirt.io/v1',
      kind: 'VirtualMachine',
      metadata: { name: 'web-1-ids', namespace: 'shop' },
      status: { printableStatus: 'Running' },
    });
  });

  it('passes the caller’s AbortSignal with every write (apply, status apply, status merge patch)', async () => {
    const api = recordingApi({ ...desiredVm });
    const signal = new AbortController().signal;
    await applyObject(api, VIRTUAL_MACHINE, desiredVm, { signal });
    await applyStatus(api, VIRTUAL_MACHINE, liveOf(desiredVm), { printableStatus: 'Running' }, { signal });
    await applyIfChanged(api, VIRTUAL_MACHINE, desiredVm, undefined, { signal });
    await mergePatchStatus(api, VIRTUAL_MACHINE, 'shop', 'web-1-ids', { printableStatus: 'Running' }, { signal });
    assert.equal(api.requests.length, 4);
    for (const req of api.requests) assert.equal(req.signal, signal, `${req.method} ${req.path}`);
  });

  it('names the object when the API call fails', async () => {
    const api: KubeApi = {
      request: async () => {
        throw new Error('PATCH ... failed with 422: spec.bogus: field not declared in schema');
      },
    };
    await assert.rejects(applyObject(api, VIRTUAL_MACHINE, desiredVm), /Server-side apply of VirtualMachine shop\/web-1-ids failed: .*422/);
  });

  it('refuses an object whose kind does not match the resource type', async () => {
    await assert.rejects(applyObject(recordingApi(), VIRTUAL_MACHINE, { ...desiredVm, kind: 'Pod', apiVersion: 'v1' }), /apiVersion\/kind mismatch/);
  });

  it('applyIfChanged skips the request when live already matches and sends it otherwise', async () => {
    const api = recordingApi({ applied: true });
    const live = liveOf(desiredVm);
    const skipped = await applyIfChanged(api, VIRTUAL_MACHINE, desiredVm, live);
    assert.equal(skipped.applied, false);
    assert.equal(skipped.object, live);
    assert.equal(api.requests.length, 0);
    const changed = await applyIfChanged(api, VIRTUAL_MACHINE, { ...desiredVm, metadata: { ...desiredVm.metadata, annotations: { a: 'b' } } }, live);
    assert.equal(changed.applied, true);
    assert.equal(api.requests.length, 1);
    const missing = await applyIfChanged(api, VIRTUAL_MACHINE, desiredVm, undefined);
    assert.equal(missing.applied, true);
  });
});

describe('applyStatusIfChanged', () => {
  const live: TestObject = {
    ...liveOf(desiredVm),
    status: { phase: 'Running', extra: 1 },
  };
  live.metadata.managedFields = [{ manager: FIELD_MANAGER, operation: 'Apply', subresource: 'status', fieldsV1: { 'f:status': { 'f:phase': {} } } }];

  it('sends nothing when live status holds the desired status', async () => {
    const api = recordingApi();
    const result = await applyStatusIfChanged(api, VIRTUAL_MACHINE, live, { phase: 'Running' });
    assert.equal(result.applied, false);
    assert.equal(api.requests.length, 0);
  });

  it('applies a changed status, and one that drops a field we own', async () => {
    const api = recordingApi();
    assert.equal((await applyStatusIfChanged(api, VIRTUAL_MACHINE, live, { phase: 'Stopped' })).applied, true);
    assert.equal((await applyStatusIfChanged(api, VIRTUAL_MACHINE, live, {})).applied, true);
    assert.equal(statusNeedsApply(live, { phase: 'Running' }), false);
    assert.equal(api.requests[0]!.path.endsWith('/status'), true);
  });
});
