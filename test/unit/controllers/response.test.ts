import assert from 'node:assert/strict';
import type { MonitoredServer } from '../../../src/api/v1alpha1/monitoredserver-types.ts';
import type { ObservedState, VirtualMachineInstance } from '../../../src/controllers/monitoredserver/observed-state.ts';
import { ANNOTATION_RELEASE_RESPONSE, decideResponse, planResponse, responseStatus } from '../../../src/controllers/monitoredserver/planners/response.ts';
import { monitoredServer } from '../../../testenv/fixtures/monitoredservers.ts';

const T = (s: number) => new Date(Date.UTC(2026, 11, 1, 21, 0, s)).toISOString().replace('.000', '');
const NOW = new Date(Date.UTC(2026, 11, 1, 21, 1, 0));

function ms(opts: { onAlert?: 'None' | 'Pause' | 'Isolate'; lastAlert?: string; response?: MonitoredServer['status'] extends infer S ? (S extends { response?: infer R } ? R : never) : never; release?: string } = {}): MonitoredServer {
  const m = monitoredServer('web-1', 'shop', { response: { onAlert: opts.onAlert ?? 'Pause' } });
  if (opts.release) m.metadata.annotations = { [ANNOTATION_RELEASE_RESPONSE]: opts.release };
  m.status = {
    ...(opts.lastAlert ? { alerts: { count: 1, lastAlertTime: opts.lastAlert, recent: [{ time: opts.lastAlert, rule: 'ProcessOutsideBaseline', pid: 84, comm: 'reverse-shell', message: 'process reverse-shell is outside the baseline' }] } } : {}),
    ...(opts.response ? { response: opts.response } : {}),
  };
  return m;
}

function observed(paused: boolean, phase = 'Running'): ObservedState {
  const vmi: VirtualMachineInstance = { metadata: { name: 'web-1-server', namespace: 'shop' }, spec: { domain: { devices: {} } }, status: { phase, nodeName: 'node-a', conditions: paused ? [{ type: 'Paused', status: 'True' }] : [] } };
  return { serverVmi: vmi };
}

const verbs = (m: MonitoredServer, o: ObservedState) => planResponse(m, o).map((a) => (a.type === 'subresource' ? a.path.split('/').pop() : a.type));

describe('alert response planner (spec.response.onAlert: Pause)', () => {
  const cases: Array<[string, MonitoredServer, ObservedState, string[]]> = [
    ['does nothing without an alert', ms(), observed(false), []],
    ['does nothing with onAlert None', ms({ onAlert: 'None', lastAlert: T(1) }), observed(false), []],
    ['pauses the running server on a new alert', ms({ lastAlert: T(1) }), observed(false), ['pause']],
    ['waits while the server is not running', ms({ lastAlert: T(1) }), observed(false, 'Scheduling'), []],
    ['does not pause again for the alert it responded to (user unpaused by hand)', ms({ lastAlert: T(1), response: { action: 'Pause', alertTime: T(1), pausedAt: T(2) } }), observed(false), []],
    ['pauses again on a newer alert burst', ms({ lastAlert: T(9), response: { action: 'Pause', alertTime: T(1), pausedAt: T(2), releasedAt: T(5) }, release: T(5) }), observed(false), ['pause']],
    ['unpauses once released at or after the pause', ms({ lastAlert: T(1), response: { action: 'Pause', alertTime: T(1), pausedAt: T(2) }, release: T(3) }), observed(true), ['unpause']],
    ['keeps a pause whose alert is newer than a release dated after the pause', ms({ lastAlert: T(9), response: { action: 'Pause', alertTime: T(9), pausedAt: T(8) }, release: T(8) }), observed(true), []],
    ['ignores a release older than the pause', ms({ lastAlert: T(1), response: { action: 'Pause', alertTime: T(1), pausedAt: T(4) }, release: T(3) }), observed(true), []],
    ['an alert older than the release is covered by it', ms({ lastAlert: T(1), release: T(3) }), observed(false), []],
    ['never acts twice: released and running', ms({ lastAlert: T(1), response: { action: 'Pause', alertTime: T(1), pausedAt: T(2), releasedAt: T(3) }, release: T(3) }), observed(false), []],
  ];
  for (const [name, m, o, expected] of cases) it(name, () => assert.deepEqual(verbs(m, o), expected));

  it('the pause is a Warning Event naming the alert and the release command, tolerating an already paused VMI', () => {
    const [action] = planResponse(ms({ lastAlert: T(1) }), observed(false));
    assert.equal(action?.type, 'subresource');
    assert.equal(action?.type === 'subresource' && action.path, '/apis/subresources.kubevirt.io/v1/namespaces/shop/virtualmachineinstances/web-1-server/pause');
    assert.deepEqual(action?.tolerate, [409]);
    assert.equal(action?.event?.type, 'Warning');
    assert.match(action?.event?.message ?? '', /ProcessOutsideBaseline.*kubectl annotate monitoredserver -n shop web-1 hyperspector\.io\/release-response=/);
  });

  it('records what was responded to, and the release', () => {
    const paused = responseStatus(ms({ lastAlert: T(1) }), observed(false), true, NOW);
    assert.deepEqual(paused, { action: 'Pause', alertTime: T(1), pausedAt: NOW.toISOString() });
    assert.equal(responseStatus(ms({ lastAlert: T(1) }), observed(false), false, NOW), undefined, 'a failed pause records nothing');
    const released = responseStatus(ms({ lastAlert: T(1), response: paused!, release: NOW.toISOString() }), observed(true), true, NOW);
    assert.equal(released?.releasedAt, NOW.toISOString());
    assert.deepEqual(decideResponse(ms({ lastAlert: T(1), response: released!, release: NOW.toISOString() }), observed(false)), { kind: 'none' });
  });
});
