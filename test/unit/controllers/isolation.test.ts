import assert from 'node:assert/strict';
import type { MonitoredServer, ResponseStatus } from '../../../src/api/v1alpha1/monitoredserver-types.ts';
import { buildIsolationPolicy, launcherPodSelector } from '../../../src/builders/isolation-policy.ts';
import { Outcomes } from '../../../src/controllers/monitoredserver/actions.ts';
import type { ObservedState, VirtualMachineInstance } from '../../../src/controllers/monitoredserver/observed-state.ts';
import { decideIsolation, isolationReadiness, isolationResponded, planIsolation } from '../../../src/controllers/monitoredserver/planners/isolation.ts';
import { ANNOTATION_RELEASE_RESPONSE, planResponse, responseStatus } from '../../../src/controllers/monitoredserver/planners/response.ts';
import { planTeardown } from '../../../src/controllers/monitoredserver/planners/teardown.ts';
import { isUrgentStatusChange } from '../../../src/controllers/monitoredserver/status-events.ts';
import { computeStatus } from '../../../src/controllers/monitoredserver/status.ts';
import { FINALIZER } from '../../../src/builders/names.ts';
import { monitoredServer } from '../../../testenv/fixtures/monitoredservers.ts';

const T = (s: number) => new Date(Date.UTC(2026, 11, 1, 21, 0, s)).toISOString().replace('.000', '');
const NOW = new Date(Date.UTC(2026, 11, 1, 21, 1, 0));

function ms(opts: { onAlert?: 'None' | 'Pause' | 'Isolate'; lastAlert?: string; response?: ResponseStatus; release?: string } = {}): MonitoredServer {
  const m = monitoredServer('web-1', 'shop', { response: { onAlert: opts.onAlert ?? 'Isolate' } });
  m.metadata.uid = 'ms-uid';
  if (opts.release) m.metadata.annotations = { [ANNOTATION_RELEASE_RESPONSE]: opts.release };
  m.status = {
    ...(opts.lastAlert ? { alerts: { count: 1, lastAlertTime: opts.lastAlert, recent: [{ time: opts.lastAlert, rule: 'ProcessOutsideBaseline', pid: 84, comm: 'reverse-shell', message: 'process reverse-shell is outside the baseline' }] } } : {}),
    ...(opts.response ? { response: opts.response } : {}),
  };
  return m;
}

/** The running server VMI (uid) and, when `policyFor` is given, our policy selecting that VMI's launcher pods. */
function observed(opts: { vmiUid?: string | null; policyFor?: string } = {}): ObservedState {
  const o: ObservedState = {};
  if (opts.vmiUid !== null) {
    const vmi: VirtualMachineInstance = { metadata: { name: 'web-1-server', namespace: 'shop', uid: opts.vmiUid ?? 'vmi-1' }, spec: { domain: { devices: {} } }, status: { phase: 'Running', nodeName: 'node-a' } };
    o.serverVmi = vmi;
  }
  if (opts.policyFor) o.isolationPolicy = { ...buildIsolationPolicy(ms(), opts.policyFor), metadata: { ...buildIsolationPolicy(ms(), opts.policyFor).metadata, uid: 'policy-uid' } };
  return o;
}

const isolated = (alertTime: string, isolatedAt: string, releasedAt?: string): ResponseStatus => ({ action: 'Isolate', alertTime, isolatedAt, ...(releasedAt ? { releasedAt } : {}) });
const verbs = (m: MonitoredServer, o: ObservedState) => planIsolation(m, o).map((a) => `${a.type}${a.type === 'apply' ? `:${(a.object as ReturnType<typeof buildIsolationPolicy>).spec?.podSelector?.matchLabels?.['kubevirt.io/created-by']}` : ''}`);

describe('alert response planner (spec.response.onAlert: Isolate)', () => {
  const cases: Array<[string, MonitoredServer, ObservedState, string[]]> = [
    ['does nothing without an alert', ms(), observed(), []],
    ['does nothing with onAlert None', ms({ onAlert: 'None', lastAlert: T(1) }), observed(), []],
    ['does nothing with onAlert Pause (the pause planner acts)', ms({ onAlert: 'Pause', lastAlert: T(1) }), observed(), []],
    ['isolates the server VMI on a new alert', ms({ lastAlert: T(1) }), observed(), ['apply:vmi-1']],
    ['waits for a server VMI to select', ms({ lastAlert: T(1) }), observed({ vmiUid: null }), []],
    ['does not isolate twice for the same burst (policy in place, status not yet written)', ms({ lastAlert: T(1) }), observed({ policyFor: 'vmi-1' }), []],
    ['does not isolate again for the alert it responded to', ms({ lastAlert: T(1), response: isolated(T(1), T(2)) }), observed({ policyFor: 'vmi-1' }), []],
    ['re-creates the policy while the isolation holds (deleted by hand)', ms({ lastAlert: T(1), response: isolated(T(1), T(2)) }), observed(), ['apply:vmi-1']],
    ['follows a new VMI of the server while the isolation holds', ms({ lastAlert: T(1), response: isolated(T(1), T(2)) }), observed({ vmiUid: 'vmi-2', policyFor: 'vmi-1' }), ['apply:vmi-2']],
    ['keeps the policy while the server has no VMI', ms({ lastAlert: T(1), response: isolated(T(1), T(2)) }), observed({ vmiUid: null, policyFor: 'vmi-1' }), []],
    ['deletes the policy once released at or after the isolation', ms({ lastAlert: T(1), response: isolated(T(1), T(2)), release: T(3) }), observed({ policyFor: 'vmi-1' }), ['delete']],
    ['keeps a new isolation whose alert is newer than a release dated after the isolation (a future-dated release does not cover later alerts)', ms({ lastAlert: T(9), response: isolated(T(9), T(8)), release: T(8) }), observed({ policyFor: 'vmi-1' }), []],
    ['ignores a release older than the isolation', ms({ lastAlert: T(1), response: isolated(T(1), T(4)), release: T(3) }), observed({ policyFor: 'vmi-1' }), []],
    ['an alert older than the release is covered by it', ms({ lastAlert: T(1), release: T(3) }), observed(), []],
    ['never acts twice: released and gone', ms({ lastAlert: T(1), response: isolated(T(1), T(2), T(3)), release: T(3) }), observed(), []],
    ['isolates again on a new burst after the release', ms({ lastAlert: T(9), response: isolated(T(1), T(2), T(5)), release: T(5) }), observed(), ['apply:vmi-1']],
    ['removes a policy of ours no isolation holds for', ms({ onAlert: 'None' }), observed({ policyFor: 'vmi-1' }), ['delete']],
    ['keeps an isolation that holds when the spec turns to None (only the release ends it)', ms({ onAlert: 'None', lastAlert: T(1), response: isolated(T(1), T(2)) }), observed({ policyFor: 'vmi-1' }), []],
  ];
  for (const [name, m, o, expected] of cases) it(name, () => assert.deepEqual(verbs(m, o), expected));

  it('builds a deny-all policy for the launcher pods of exactly this VMI, owned and labelled', () => {
    const policy = buildIsolationPolicy(ms(), 'vmi-1');
    assert.equal(policy.metadata?.name, 'web-1-isolate');
    assert.equal(policy.metadata?.namespace, 'shop');
    assert.deepEqual(policy.spec, { podSelector: { matchLabels: { 'kubevirt.io': 'virt-launcher', 'kubevirt.io/created-by': 'vmi-1' } }, policyTypes: ['Ingress', 'Egress'] });
    assert.deepEqual(launcherPodSelector('vmi-1'), policy.spec?.podSelector?.matchLabels);
    assert.equal(policy.metadata?.labels?.['hyperspector.io/role'], 'response');
    assert.equal(policy.metadata?.labels?.['hyperspector.io/monitored-server'], 'web-1');
    assert.deepEqual(policy.metadata?.ownerReferences?.map((r) => [r.kind, r.uid, r.controller]), [['MonitoredServer', 'ms-uid', true]]);
  });

  it('the isolation is a Warning Event naming the alert and the release command; the release a Normal Event', () => {
    const [isolate] = planResponse(ms({ lastAlert: T(1) }), observed());
    assert.equal(isolate?.type, 'apply');
    assert.equal(isolate?.event?.type, 'Warning');
    assert.equal(isolate?.event?.reason, 'ServerIsolated');
    assert.match(isolate?.event?.message ?? '', /NetworkPolicy shop\/web-1-isolate.*ProcessOutsideBaseline.*kubectl annotate monitoredserver -n shop web-1 hyperspector\.io\/release-response=/);
    const [release] = planResponse(ms({ lastAlert: T(1), response: isolated(T(1), T(2)), release: T(3) }), observed({ policyFor: 'vmi-1' }));
    assert.equal(release?.type, 'delete');
    assert.equal(release?.type === 'delete' && release.preconditionUid, 'policy-uid', 'deletes only the policy it saw');
    assert.deepEqual(release?.tolerate, [404, 409]);
    assert.equal(release?.event?.reason, 'ResponseReleased');
  });

  it('records what was responded to, and the release', () => {
    assert.deepEqual(responseStatus(ms({ lastAlert: T(1) }), observed(), true, NOW), isolated(T(1), NOW.toISOString()));
    assert.equal(responseStatus(ms({ lastAlert: T(1) }), observed(), false, NOW), undefined, 'a failed isolation records nothing');
    // A later alert of the same burst, while isolated: recorded, the isolation keeps its start.
    assert.deepEqual(responseStatus(ms({ lastAlert: T(7), response: isolated(T(1), T(2)) }), observed({ policyFor: 'vmi-1' }), false, NOW), isolated(T(7), T(2)));
    const released = responseStatus(ms({ lastAlert: T(1), response: isolated(T(1), T(2)), release: T(3) }), observed({ policyFor: 'vmi-1' }), true, NOW);
    assert.deepEqual(released, isolated(T(1), T(2), T(3)));
    assert.deepEqual(decideIsolation(ms({ lastAlert: T(1), response: released!, release: T(3) }), observed()), { kind: 'none' });
    // Released, and a new alert came before the policy was deleted: a new isolation, not the released one.
    assert.deepEqual(responseStatus(ms({ lastAlert: T(9), response: isolated(T(1), T(2)), release: T(5) }), observed({ policyFor: 'vmi-1' }), false, NOW), isolated(T(9), NOW.toISOString()));
  });

  it('Responded says Isolated with the alert and the release step, then Released', () => {
    const m = ms({ lastAlert: T(1) });
    const outcomes = new Outcomes(planIsolation(m, observed()).map((action) => ({ action, kind: 'done' as const })));
    const s = computeStatus(m, observed(), outcomes, NOW);
    const responded = s.conditions?.find((c) => c.type === 'Responded');
    assert.equal(responded?.status, 'True');
    assert.equal(responded?.reason, 'Isolated');
    assert.match(responded?.message ?? '', /NetworkPolicy web-1-isolate.*ProcessOutsideBaseline.*release-response/);
    assert.deepEqual(s.response, isolated(T(1), NOW.toISOString()));
    const r = ms({ lastAlert: T(1), response: s.response!, release: NOW.toISOString() });
    r.status!.conditions = s.conditions;
    const afterRelease = computeStatus(r, observed({ policyFor: 'vmi-1' }), new Outcomes(planIsolation(r, observed({ policyFor: 'vmi-1' })).map((action) => ({ action, kind: 'done' as const }))), NOW);
    const c = afterRelease.conditions?.find((x) => x.type === 'Responded');
    assert.equal(c?.status, 'False');
    assert.equal(c?.reason, 'Released');
  });

  it('ResponseReady: with the node agent (tc) every tapped network is covered; a binding without a tap is refused', () => {
    const withStorage = ms();
    const template = withStorage.spec.server.template!.spec as { template: { spec: { networks: unknown[]; domain: { devices: { interfaces: unknown[] } } } } };
    template.template.spec.networks.push({ name: 'storage', multus: { networkName: 'storage-net' } });
    template.template.spec.domain.devices.interfaces.push({ name: 'storage', bridge: {} });
    assert.equal(isolationReadiness(withStorage, {}).reason, 'ResponseUnavailable', 'without the agent: the NetworkPolicy cannot cut storage');
    assert.equal(isolationReadiness(withStorage, {}, true).reason, 'Armed');
    assert.match(isolationReadiness(withStorage, {}, true).message, /node agent's filter/);
    template.template.spec.domain.devices.interfaces[1] = { name: 'storage', sriov: {} };
    const refused = isolationReadiness(withStorage, {}, true);
    assert.equal(refused.reason, 'ResponseUnavailable');
    assert.match(refused.message, /storage/);
  });

  it('Responded says whether the node agent’s layer is in place', () => {
    const m = ms({ lastAlert: T(1), response: isolated(T(1), T(2)) });
    assert.match(isolationResponded(m, m.status!.response!, true)!.message, /not in place yet \(NetworkIsolated: not reported yet\)/);
    m.status!.conditions = [{ type: 'NetworkIsolated', status: 'True', reason: 'Isolated', message: 'the node agent drops every frame to and from tap0', lastTransitionTime: T(3) }];
    assert.match(isolationResponded(m, m.status!.response!, true)!.message, /NetworkPolicy web-1-isolate.*and the node agent drops every frame to and from tap0 \(NetworkIsolated\)/);
    assert.doesNotMatch(isolationResponded(m, m.status!.response!, false)!.message, /node agent/);
  });

  it('a change of status.response is written at once (not coalesced with progress)', () => {
    const before = { response: isolated(T(1), T(2)) };
    assert.equal(isUrgentStatusChange(before, { response: isolated(T(7), T(2)) }), true, 'a later alert of the burst recorded');
    assert.equal(isUrgentStatusChange(before, { response: isolated(T(1), T(2)) }), false);
  });

  it('the teardown deletes the policy first', () => {
    const m = ms();
    m.metadata.finalizers = [FINALIZER];
    m.metadata.deletionTimestamp = T(10);
    const plan = planTeardown(m, observed({ policyFor: 'vmi-1' }), NOW);
    const deletion = plan.actions.find((a) => a.type === 'delete' && a.resource.kind === 'NetworkPolicy');
    assert.equal(deletion?.type === 'delete' && deletion.name, 'web-1-isolate');
    assert.equal(deletion?.capability, 'teardown');
  });
});
