// The controller's reading of what KubeVirt reports (issue: what the simulator hid): restart only a VMI
// running an older template, a pending restart of the user's server, a starting VM is not stopped,
// and a deletion in progress is never Ready.
import assert from 'node:assert/strict';
import { computeStatus, deletingStatus } from '../../../src/controllers/monitoredserver/status.ts';
import { vmiNeedsRestart, type ObservedState, type VirtualMachineInstance } from '../../../src/controllers/monitoredserver/observed-state.ts';
import type { VirtualMachine } from '../../../src/builders/virtual-machine.ts';
import { monitoredServer } from '../../support/monitoredserver-fixtures.ts';

const T0 = new Date('2026-11-29T10:00:00Z');

function vm(name: string, generation: number, status: Record<string, unknown> = { printableStatus: 'Running' }, runStrategy = 'Always'): VirtualMachine {
  return { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name, namespace: 'shop', generation }, spec: { runStrategy, template: { spec: { domain: { devices: {} } } } }, status };
}

function vmi(name: string, vmGeneration: number | undefined, node = 'node-a'): VirtualMachineInstance {
  return {
    metadata: { name, namespace: 'shop', uid: `${name}-uid`, annotations: vmGeneration === undefined ? {} : { 'kubevirt.io/vm-generation': String(vmGeneration) } },
    status: { phase: 'Running', nodeName: node, conditions: [{ type: 'Ready', status: 'True' }] },
  };
}

const restartRequired = { printableStatus: 'Running', conditions: [{ type: 'RestartRequired', status: 'True', message: 'a non-live-updatable field was changed in the template spec' }] };
const cond = (s: ReturnType<typeof computeStatus>, type: string) => s.conditions?.find((c) => c.type === type);

describe('KubeVirt semantics in the controller', () => {
  describe('vmiNeedsRestart', () => {
    const cases: Array<[string, VirtualMachine, VirtualMachineInstance, boolean]> = [
      ['RestartRequired and the VMI runs an older generation', vm('ids', 5, restartRequired), vmi('ids', 4), true],
      ['RestartRequired still shown but the VMI was started from the current generation', vm('ids', 5, restartRequired), vmi('ids', 5), false],
      ['a live-updated field: newer generation, no RestartRequired', vm('ids', 6), vmi('ids', 5), false],
      ['RestartRequired False', vm('ids', 6, { conditions: [{ type: 'RestartRequired', status: 'False' }] }), vmi('ids', 5), false],
      ['a VMI without the generation annotation is never restarted on a condition alone', vm('ids', 5, restartRequired), vmi('ids', undefined), false],
    ];
    for (const [name, v, i, want] of cases) {
      it(name, () => assert.equal(vmiNeedsRestart(v, i), want));
    }
  });

  it('reports a server waiting for a restart, outside Ready, with what to do', () => {
    const ms = monitoredServer('web-1', 'shop');
    const o: ObservedState = { serverVm: vm('web-1-server', 3, restartRequired), serverVmi: vmi('web-1-server', 2) };
    const s = computeStatus(ms, o, T0);
    const c = cond(s, 'ServerRestartRequired');
    assert.equal(c?.status, 'True');
    assert.equal(c?.reason, 'RestartRequired');
    assert.match(c!.message, /virtctl restart web-1-server -n shop/);
    assert.match(c!.message, /non-live-updatable/);
    assert.equal(cond(computeStatus(ms, { serverVm: vm('web-1-server', 3), serverVmi: vmi('web-1-server', 3) }, T0), 'ServerRestartRequired')?.status, 'False');
  });

  it('says a new VM meant to run is starting, not stopped, until its VMI exists', () => {
    const ms = monitoredServer('web-1', 'shop');
    const starting = computeStatus(ms, { serverVm: vm('web-1-server', 1, { printableStatus: 'Stopped' }) }, T0);
    assert.equal(cond(starting, 'ServerRunning')?.reason, 'ServerVMStarting');
    const halted = computeStatus(ms, { serverVm: vm('web-1-server', 1, { printableStatus: 'Stopped' }, 'Halted') }, T0);
    assert.equal(cond(halted, 'ServerRunning')?.reason, 'ServerVMStopped');
  });

  it('is never Ready while deleting, and says what the teardown waits on', () => {
    const ms = monitoredServer('web-1', 'shop');
    ms.status = { conditions: [{ type: 'Ready', status: 'True', reason: 'Monitoring', message: 'ok', lastTransitionTime: T0.toISOString(), observedGeneration: 1 }] };
    const s = deletingStatus(ms, 'IDS VMI shop/web-1-ids has not finished deleting: is virt-handler running on node node-a?', T0);
    const ready = s.conditions?.find((c) => c.type === 'Ready');
    assert.equal(ready?.status, 'False');
    assert.equal(ready?.reason, 'Deleting');
    assert.match(ready!.message, /virt-handler running on node node-a/);
  });
});
