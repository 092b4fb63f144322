// The controller's reading of what KubeVirt reports (issue: what the simulator hid): restart only a VMI
// running an older template, a pending restart of the user's server, a starting VM is not stopped,
// and a deletion in progress is never Ready.
import assert from 'node:assert/strict';
import { computeStatus, deletingStatus } from '../../../src/controllers/monitoredserver/status.ts';
import { isRefusedTemplate } from '../../../src/controllers/monitoredserver/controller.ts';
import { KubeApiError } from '../../../src/kube/client/rest.ts';
import { vmiNeedsRestart, type ObservedState, type VirtualMachineInstance } from '../../../src/controllers/monitoredserver/observed-state.ts';
import type { VirtualMachine } from '../../../src/kube/client/objects.ts';
import { Outcomes } from '../../../src/controllers/monitoredserver/actions.ts';
import { monitoredServer } from '../../../testenv/fixtures/monitoredservers.ts';

const NO_OUTCOMES = new Outcomes();

const T0 = new Date('2026-11-29T10:00:00Z');

function vm(name: string, generation: number, status: Record<string, unknown> = { printableStatus: 'Running' }, runStrategy = 'Always'): VirtualMachine {
  return { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name, namespace: 'shop', generation }, spec: { runStrategy, template: { spec: { domain: { devices: {} } } } }, status };
}

function vmi(name: string, vmGeneration: number | undefined, node = 'node-a'): VirtualMachineInstance {
  return {
    spec: { domain: { devices: {} } },
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
    const s = computeStatus(ms, o, NO_OUTCOMES, T0);
    const c = cond(s, 'ServerRestartRequired');
    assert.equal(c?.status, 'True');
    assert.equal(c?.reason, 'RestartRequired');
    assert.match(c!.message, /virtctl restart web-1-server -n shop/);
    assert.match(c!.message, /non-live-updatable/);
    assert.equal(cond(computeStatus(ms, { serverVm: vm('web-1-server', 3), serverVmi: vmi('web-1-server', 3) }, NO_OUTCOMES, T0), 'ServerRestartRequired')?.status, 'False');
  });

  it('says a new VM meant to run is starting, not stopped, until its VMI exists', () => {
    const ms = monitoredServer('web-1', 'shop');
    const starting = computeStatus(ms, { serverVm: vm('web-1-server', 1, { printableStatus: 'Stopped' }) }, NO_OUTCOMES, T0);
    assert.equal(cond(starting, 'ServerRunning')?.reason, 'ServerVMStarting');
    const halted = computeStatus(ms, { serverVm: vm('web-1-server', 1, { printableStatus: 'Stopped' }, 'Halted') }, NO_OUTCOMES, T0);
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

describe('a truthful Ready: capabilities the spec enables that do not run', () => {
  const running = (): ObservedState => ({
    serverVm: vm('web-1-server', 1),
    serverVmi: vmi('web-1-server', 1),
    idsVm: vm('web-1-ids', 1),
    idsVmi: vmi('web-1-ids', 1),
    processMapperPod: { metadata: { name: 'web-1-process-mapper' }, spec: { nodeName: 'node-a', containers: [] }, status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } },
  });

  it('is Ready with a Pause response, armed, naming the release step', () => {
    const s = computeStatus(monitoredServer('web-1', 'shop', { response: { onAlert: 'Pause' } }), running(), NO_OUTCOMES, T0);
    assert.equal(cond(s, 'ResponseReady')?.reason, 'Armed');
    assert.match(cond(s, 'ResponseReady')!.message, /hyperspector\.io\/release-response/);
    assert.equal(cond(s, 'Ready')?.status, 'True');
  });

  it('is Ready with an Isolate response for a server on the pod network only, armed, naming the policy and the release step', () => {
    const s = computeStatus(monitoredServer('web-1', 'shop', { response: { onAlert: 'Isolate' } }), running(), NO_OUTCOMES, T0);
    assert.equal(cond(s, 'ResponseReady')?.reason, 'Armed');
    assert.match(cond(s, 'ResponseReady')!.message, /NetworkPolicy web-1-isolate.*hyperspector\.io\/release-response/);
    assert.equal(cond(s, 'Ready')?.status, 'True');
  });

  it('is Ready when nothing unavailable is asked for', () => {
    const s = computeStatus(monitoredServer('web-1', 'shop'), running(), NO_OUTCOMES, T0);
    assert.equal(cond(s, 'Ready')?.status, 'True');
    assert.equal(cond(s, 'MirrorAttached'), undefined);
  });

  const cases: Array<[string, Parameters<typeof monitoredServer>[2], string, string]> = [
    ['mirroring left at its default (enabled)', { mirroring: {} }, 'MirrorAttached', 'MirroringUnavailable'],
    [
      'an Isolate response for a server VM with a network besides the pod network',
      {
        server: {
          template: (() => {
            const t = monitoredServer('x', 'shop').spec.server.template!;
            const spec = t.spec as { template: { spec: { networks: unknown[] } } };
            spec.template.spec.networks = [...spec.template.spec.networks, { name: 'storage', multus: { networkName: 'storage-net' } }];
            return t;
          })(),
        },
        response: { onAlert: 'Isolate' },
      },
      'ResponseReady',
      'ResponseUnavailable',
    ],
  ];
  for (const [name, overrides, type, reason] of cases) {
    it(`is not Ready with ${name}, and says how to monitor without it`, () => {
      const s = computeStatus(monitoredServer('web-1', 'shop', overrides), running(), NO_OUTCOMES, T0);
      assert.equal(cond(s, type)?.status, 'False');
      assert.equal(cond(s, type)?.reason, reason);
      assert.equal(cond(s, 'Ready')?.status, 'False');
      assert.equal(cond(s, 'Ready')?.reason, reason);
      assert.match(cond(s, type)!.message, /not available in this release/);
    });
  }
});

describe('isRefusedTemplate: which API answers mean the user must change the template', () => {
  const err = (code: number, message: string) => new KubeApiError(message, code, undefined, undefined);
  const cases: Array<[string, Error, boolean]> = [
    ['422 from a webhook', err(422, 'admission webhook "virtualmachine-validator.kubevirt.io" denied the request'), true],
    ['400 bad request', err(400, 'bad request'), true],
    ['500 from server-side apply for an undeclared field', err(500, 'failed to create typed patch object (kv/x; kubevirt.io/v1, Kind=VirtualMachine): .spec.template.spec.domain.bogus: field not declared in schema'), true],
    ['500 for a wrongly typed value', err(500, 'failed to create typed patch object: .spec.template.spec.domain.cpu.cores: expected numeric (int or float), got string'), true],
    ['500 of any other kind is retried', err(500, 'etcdserver: request timed out'), false],
    ['403 is not about the template', err(403, 'forbidden'), false],
    ['409 conflict is retried', err(409, 'conflict'), false],
  ];
  for (const [name, e, want] of cases) it(name, () => assert.equal(isRefusedTemplate(e), want));
});
