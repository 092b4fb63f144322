import assert from 'node:assert/strict';
import type { MonitoredServerStatus } from '../../../src/api/v1alpha1/monitoredserver-types.ts';
import { isUrgentStatusChange, statusEvents } from '../../../src/controllers/monitoredserver/status-events.ts';

const T = '2026-12-01T10:00:00Z';
function status(ready: [string, string], extra: Array<{ type: string; status: string; reason: string; message?: string }> = [], generation = 1): MonitoredServerStatus {
  return {
    observedGeneration: generation,
    conditions: [{ type: 'Ready', status: ready[0], reason: ready[1], message: ready[1], lastTransitionTime: T }, ...extra.map((c) => ({ message: c.reason, ...c, lastTransitionTime: T }))],
  } as MonitoredServerStatus;
}

describe('which status changes are written at once (the rest is coalesced progress)', () => {
  const table: Array<[string, MonitoredServerStatus | undefined, MonitoredServerStatus, boolean]> = [
    ['the first status, still creating: progress', undefined, status(['False', 'ServerVMCreating']), false],
    ['creating → starting: progress', status(['False', 'ServerVMCreating']), status(['False', 'ServerVMStarting']), false],
    ['the first status already Ready', undefined, status(['True', 'Monitoring']), true],
    ['Ready turning True', status(['False', 'IDSVMStarting']), status(['True', 'Monitoring']), true],
    ['Ready leaving True', status(['True', 'Monitoring']), status(['False', 'IDSVMRestarting']), true],
    ['a new generation', status(['False', 'ServerVMStarting']), status(['False', 'ServerVMStarting'], [], 2), true],
    ['a retried failure (Synced=False appears)', status(['False', 'ServerVMStarting']), status(['False', 'ServerVMStarting'], [{ type: 'Synced', status: 'False', reason: 'CreateIDSVMFailed' }]), true],
    ['the first status with Synced=False', undefined, status(['False', 'ServerVMCreating'], [{ type: 'Synced', status: 'False', reason: 'AddFinalizerFailed' }]), true],
    ['a problem the user must fix (a Warning reason)', undefined, status(['False', 'ServerVMNotFound'], [{ type: 'ServerRunning', status: 'False', reason: 'ServerVMNotFound' }]), true],
    ['a stopped server waits on the user', undefined, status(['False', 'ServerVMStopped'], [{ type: 'ServerRunning', status: 'False', reason: 'ServerVMStopped' }]), true],
    ['still stopped, another message: progress', status(['False', 'ServerVMStopped']), status(['False', 'ServerVMStopped'], [{ type: 'ServerRunning', status: 'False', reason: 'ServerVMStopped' }]), false],
  ];
  for (const [what, before, after, urgent] of table) {
    it(`${what}: ${urgent ? 'at once' : 'coalesced'}`, () => assert.equal(isUrgentStatusChange(before, after), urgent));
  }
});

describe('the Events a status change deserves', () => {
  it('Ready turning True is the one milestone of a start: MonitoringStarted with the VMs, the node and the IDS-network address', () => {
    const after = status(['True', 'Monitoring']);
    after.conditions![0]!.message = 'IDS VM web-1-ids monitors server VM web-1-server on node node-2';
    after.idsNetwork = { address: '10.99.0.3/16', provider: 'vxlan', networkAttachmentDefinition: 'hyperspector-ids-shop' };
    assert.deepEqual(statusEvents(status(['False', 'IDSVMStarting']), after), [
      { type: 'Normal', reason: 'MonitoringStarted', message: 'IDS VM web-1-ids monitors server VM web-1-server on node node-2; IDS-network address 10.99.0.3/16' },
    ]);
  });

  it('progress (Creating → Starting) raises no Event; Ready leaving True is a Warning', () => {
    assert.deepEqual(statusEvents(status(['False', 'ServerVMCreating']), status(['False', 'IDSVMStarting'])), []);
    assert.deepEqual(statusEvents(status(['True', 'Monitoring']), status(['False', 'IDSVMRestarting'])).map((e) => [e.type, e.reason]), [['Warning', 'MonitoringDegraded']]);
  });
});
