// The executor and the error policy: every failure of an action, whatever its HTTP status, becomes
// an outcome (never a crash); status shows it (Synced=False with the failing action as the reason,
// or the capability's condition for a refusal) and the status change brings the Events.
import assert from 'node:assert/strict';
import { MONITORED_SERVER } from '../../../src/api/v1alpha1/resource.ts';
import { Outcomes, type Action } from '../../../src/controllers/monitoredserver/actions.ts';
import { execute } from '../../../src/controllers/monitoredserver/execute.ts';
import { isRefusedTemplate } from '../../../src/controllers/monitoredserver/planners/owned-vm.ts';
import { isRefusedPod } from '../../../src/controllers/monitoredserver/planners/process-mapper.ts';
import { isUrgentStatusChange, statusEvents } from '../../../src/controllers/monitoredserver/status-events.ts';
import { computeStatus } from '../../../src/controllers/monitoredserver/status.ts';
import { silentLogger } from '../../../src/kube/util/logger.ts';
import { POD, VIRTUAL_MACHINE } from '../../../src/kube/client/resources.ts';
import { KubeApiError, type ApiRequest, type KubeApi } from '../../../src/kube/client/rest.ts';
import { monitoredServer } from '../../../testenv/fixtures/monitoredservers.ts';

const T0 = new Date('2026-12-01T10:00:00Z');

/** A KubeApi that answers each `METHOD path` containing a key with the given error (or echoes the body) and records requests. */
function fakeApi(errors: Record<string, KubeApiError> = {}): KubeApi & { requests: ApiRequest[] } {
  const requests: ApiRequest[] = [];
  return {
    requests,
    request: async <T>(req: ApiRequest): Promise<T> => {
      requests.push(req);
      const match = Object.entries(errors).find(([fragment]) => `${req.method} ${req.path}`.includes(fragment));
      if (match) throw match[1];
      return (typeof req.body === 'string' ? JSON.parse(req.body) : req.body) as T;
    },
  };
}

const vm = (name: string) => ({ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name, namespace: 'shop' }, spec: { template: {} } });
const actions: Action[] = [
  { type: 'patch', capability: 'finalizer', failureReason: 'AddFinalizerFailed', log: 'Add finalizer', resource: MONITORED_SERVER, namespace: 'shop', name: 'web-1', patchType: 'merge', body: {} },
  { type: 'apply', capability: 'serverVM', failureReason: 'CreateServerVMFailed', log: 'Create server VM', resource: VIRTUAL_MACHINE, object: vm('web-1-server'), refusedWhen: isRefusedTemplate, event: { type: 'Normal', reason: 'ServerVMUpdated', message: 'Created' } },
  { type: 'apply', capability: 'idsVM', failureReason: 'CreateIDSVMFailed', log: 'Create IDS VM', resource: VIRTUAL_MACHINE, object: vm('web-1-ids'), refusedWhen: isRefusedTemplate, event: { type: 'Normal', reason: 'IDSVMUpdated', message: 'Created' } },
  { type: 'delete', capability: 'idsVM', failureReason: 'RestartIDSVMFailed', log: 'Restart IDS VM', resource: VIRTUAL_MACHINE, namespace: 'shop', name: 'web-1-ids', tolerate: [404, 409] },
  { type: 'apply', capability: 'processMapper', failureReason: 'CreateProcessMapperFailed', log: 'Create process mapper', resource: POD, object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-1-process-mapper', namespace: 'shop' } }, refusedWhen: isRefusedPod },
];

async function run(errors: Record<string, KubeApiError>) {
  const api = fakeApi(errors);
  const events: string[] = [];
  const outcomes = new Outcomes(await execute(actions, { api, log: silentLogger(), onEvent: (a) => events.push(a.event?.reason ?? '') }));
  return { api, events, outcomes };
}

describe('executor and error policy', () => {
  it('runs every action in order and publishes their Events', async () => {
    const { api, events, outcomes } = await run({});
    assert.deepEqual(outcomes.all.map((o) => o.kind), ['done', 'done', 'done', 'done', 'done']);
    assert.deepEqual(api.requests.map((r) => r.method), ['PATCH', 'PATCH', 'PATCH', 'DELETE', 'PATCH']);
    assert.deepEqual(events, ['ServerVMUpdated', 'IDSVMUpdated']);
  });

  it('a create that lost a race (lostRaceWhen) is neither a failure nor a refusal: no Event, its capability stops, the rest runs', async () => {
    const claim: Action = {
      type: 'create',
      capability: 'network',
      failureReason: 'ClaimIDSAddressFailed',
      log: 'Claim 10.99.0.1',
      resource: { ...POD, kind: 'ConfigMap', plural: 'configmaps' },
      object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'hyperspector-ids-addr-10-99-0-1', namespace: 'hyperspector-system' } },
      lostRaceWhen: (err) => (err as KubeApiError).statusCode === 409,
      event: { type: 'Normal', reason: 'Claimed', message: 'claimed' },
    };
    const after: Action = { ...claim, log: 'after the claim', object: { ...claim.object, metadata: { name: 'next' } } };
    const api = fakeApi({ 'POST /api/v1/namespaces/hyperspector-system/configmaps': new KubeApiError('configmaps "hyperspector-ids-addr-10-99-0-1" already exists', 409, 'AlreadyExists') });
    const events: string[] = [];
    const outcomes = new Outcomes(await execute([claim, after, actions[1]!], { api, log: silentLogger(), onEvent: (a) => events.push(a.event?.reason ?? '') }));
    assert.deepEqual(outcomes.all.map((o) => o.kind), ['lostRace', 'skipped', 'done']);
    assert.equal(outcomes.lostRace(), true);
    assert.equal(outcomes.firstFailure(), undefined, 'not retried with backoff, not Synced=False');
    assert.equal(outcomes.refused('network'), undefined);
    assert.deepEqual(events, ['ServerVMUpdated']);
  });

  it('a failed finalizer stops everything: no child without a way to clean it up', async () => {
    const { api, outcomes } = await run({ '/monitoredservers/web-1': new KubeApiError('conflict', 409, 'Conflict') });
    assert.deepEqual(outcomes.all.map((o) => o.kind), ['failed', 'skipped', 'skipped', 'skipped', 'skipped']);
    assert.equal(api.requests.length, 1);
  });

  it('a tolerated status (404 on a delete) is success', async () => {
    const { api, outcomes } = await run({ 'DELETE /apis/kubevirt.io/v1/namespaces/shop/virtualmachines/web-1-ids': new KubeApiError('gone', 404, 'NotFound') });
    assert.ok(api.requests.some((r) => r.method === 'DELETE'));
    assert.ok(outcomes.all.every((o) => o.kind === 'done'));
  });

  for (const [child, path, capability] of [
    ['server VM', '/virtualmachines/web-1-server', 'serverVM'],
    ['IDS VM', '/virtualmachines/web-1-ids', 'idsVM'],
    ['process-mapper pod', '/pods/web-1-process-mapper', 'processMapper'],
  ] as const) {
    for (const code of [500, 403]) {
      it(`an unexpected ${code} on the ${child}: the other children go on, Synced=False names the action, a Warning follows`, async () => {
        const message = code === 500 ? 'etcdserver: leader changed' : `${child} is forbidden: User "system:serviceaccount:hyperspector:operator" cannot create resource`;
        const { outcomes } = await run({ [path]: new KubeApiError(message, code) });
        const mine = outcomes.of(capability);
        const refusedPod = capability === 'processMapper' && code === 403;
        assert.equal(mine[0]?.kind, refusedPod ? 'refused' : 'failed');
        assert.ok(mine.slice(1).every((o) => o.kind === 'skipped'), 'later steps of the same capability wait');
        assert.ok(outcomes.all.filter((o) => o.action.capability !== capability).every((o) => o.kind === 'done'), 'other capabilities go on');
        const ms = monitoredServer('web-1', 'shop');
        ms.metadata.generation = 1;
        // The server is placed, so the refused pod has a node to run on and its condition says why it does not.
        const placed = {
          serverVm: { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: 'web-1-server', namespace: 'shop' }, spec: { runStrategy: 'Always', template: { spec: { domain: { devices: {} } } } }, status: { printableStatus: 'Running' } },
          serverVmi: { metadata: { name: 'web-1-server', namespace: 'shop', uid: 'vmi-1' }, spec: { domain: { devices: {} } }, status: { phase: 'Running', nodeName: 'node-a' } },
        };
        const status = computeStatus(ms, placed, outcomes, T0);
        const synced = status.conditions?.find((c) => c.type === 'Synced');
        if (refusedPod) {
          // Pod Security or RBAC refusing the privileged pod: the user must act; no retry loop.
          assert.equal(synced, undefined);
        } else {
          assert.equal(synced?.status, 'False');
          assert.equal(synced?.reason, mine[0]?.action.failureReason);
          assert.match(synced?.message ?? '', new RegExp(`HTTP ${code}.*${message.slice(0, 20)}`));
        }
        assert.equal(isUrgentStatusChange(ms.status, status), true, 'written at once');
      });
    }
  }

  it('a refused template shows in the capability condition with the API server message, and is a Warning Event', async () => {
    const { outcomes } = await run({ '/virtualmachines/web-1-ids': new KubeApiError('failed to create typed patch object: .spec.template.spec.domain.bogus: field not declared in schema', 500) });
    const ms = monitoredServer('web-1', 'shop');
    const before = computeStatus(ms, {}, new Outcomes(), T0);
    const server = { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: 'web-1-server', namespace: 'shop' }, spec: { template: {} } };
    const vmi = { metadata: { name: 'web-1-server', namespace: 'shop', uid: 'u' }, spec: { domain: { devices: {} } }, status: { phase: 'Running', nodeName: 'node-a' } };
    const after = computeStatus({ ...ms, status: before }, { serverVm: server, serverVmi: vmi }, outcomes, T0);
    const ids = after.conditions?.find((c) => c.type === 'IDSRunning');
    assert.equal(ids?.reason, 'IDSVMInvalid');
    assert.match(ids?.message ?? '', /field not declared in schema/);
    assert.equal(after.conditions?.find((c) => c.type === 'Synced'), undefined, 'a refusal is not retried');
    assert.deepEqual(statusEvents(before, after).filter((e) => e.type === 'Warning').map((e) => e.reason), ['IDSVMInvalid']);
  });

  it('nothing is sent once the reconcile is aborted (leadership lost)', async () => {
    const controller = new AbortController();
    controller.abort();
    const api = fakeApi();
    const outcomes = await execute(actions, { api, log: silentLogger(), signal: controller.signal });
    assert.equal(api.requests.length, 0);
    assert.ok(outcomes.every((o) => o.kind === 'skipped'));
  });

  it('status shows a VM only once it exists (no IDS name for a MonitoredServer without an IDS VM)', () => {
    const status = computeStatus(monitoredServer('web-1', 'shop'), {}, new Outcomes(), T0);
    assert.equal(status.idsVM, undefined);
    assert.equal(status.serverVM, undefined);
  });
});
