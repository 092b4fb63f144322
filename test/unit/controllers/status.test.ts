import assert from 'node:assert/strict';
import { computeStatus, statusEqual } from '../../../src/controllers/monitoredserver/status.ts';
import type { Pod, ObservedState, VirtualMachineInstance } from '../../../src/controllers/monitoredserver/observed-state.ts';
import type { VirtualMachine } from '../../../src/kube/client/objects.ts';
import { Outcomes } from '../../../src/controllers/monitoredserver/actions.ts';
import { POD } from '../../../src/kube/client/resources.ts';
import { monitoredServer } from '../../../testenv/fixtures/monitoredservers.ts';

const NO_OUTCOMES = new Outcomes();

const T0 = new Date('2026-11-29T10:00:00Z');
const T1 = new Date('2026-11-29T10:05:00Z');

function vm(name: string, printableStatus = 'Running'): VirtualMachine {
  return { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name, namespace: 'shop' }, spec: { runStrategy: 'Always', template: { spec: { domain: { devices: {} } } } }, status: { printableStatus } };
}

function vmi(name: string, node: string | undefined, phase = 'Running', ready = true): VirtualMachineInstance {
  return {
    spec: { domain: { devices: {} } },
    metadata: { name, namespace: 'shop', uid: `${name}-uid` },
    status: { phase, nodeName: node, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  };
}

const cond = (s: ReturnType<typeof computeStatus>, type: string) => s.conditions?.find((c) => c.type === type);

function mapperPod(ready = true, waiting?: string): Pod {
  return {
    metadata: { name: 'web-1-process-mapper', uid: 'p1' },
    spec: { nodeName: 'node-a', containers: [] },
    status: {
      phase: ready ? 'Running' : 'Pending',
      conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
      containerStatuses: waiting ? [{ name: 'process-mapper', image: 'hyperspector/operator:test', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: waiting, message: 'back-off pulling image' } } }] : [],
    },
  };
}

describe('MonitoredServer status', () => {
  const ms = monitoredServer('web-1', 'shop');
  ms.metadata.generation = 4;

  it('is Ready when both VMs run on the same node and the process mapper is ready', () => {
    const o: ObservedState = { serverVm: vm('web-1-server'), serverVmi: vmi('web-1-server', 'node-a'), idsVm: vm('web-1-ids'), idsVmi: vmi('web-1-ids', 'node-a'), processMapperPod: mapperPod() };
    const s = computeStatus(ms, o, NO_OUTCOMES, T0);
    assert.equal(cond(s, 'Ready')?.status, 'True');
    assert.equal(cond(s, 'Ready')?.reason, 'Monitoring');
    assert.equal(cond(s, 'Colocated')?.reason, 'SameNode');
    assert.equal(cond(s, 'ProcessMapping')?.reason, 'Mapping');
    assert.equal(s.nodeName, 'node-a');
    assert.equal(s.observedGeneration, 4);
    assert.deepEqual(s.serverVM, { name: 'web-1-server', phase: 'Running', ready: true, nodeName: 'node-a' });
    assert.ok(s.conditions?.every((c) => c.observedGeneration === 4));
  });

  it('counts a VM as running only once KubeVirt says so in the VM too, so Ready turns True with the phases status shows', () => {
    const running = { serverVm: vm('web-1-server'), serverVmi: vmi('web-1-server', 'node-a'), idsVmi: vmi('web-1-ids', 'node-a'), processMapperPod: mapperPod() };
    const idsBehind = computeStatus(ms, { ...running, idsVm: vm('web-1-ids', 'Starting') }, NO_OUTCOMES, T0);
    assert.equal(cond(idsBehind, 'IDSRunning')?.reason, 'IDSVMStarting');
    assert.equal(cond(idsBehind, 'Ready')?.status, 'False');
    const serverBehind = computeStatus(ms, { ...running, serverVm: vm('web-1-server', 'Provisioning'), idsVm: vm('web-1-ids') }, NO_OUTCOMES, T0);
    assert.equal(cond(serverBehind, 'ServerRunning')?.reason, 'ServerVMStarting');
    const paused = computeStatus(ms, { ...running, serverVm: vm('web-1-server', 'Paused'), idsVm: vm('web-1-ids') }, NO_OUTCOMES, T0);
    assert.equal(cond(paused, 'ServerRunning')?.status, 'True', 'a paused server still runs (its VMI does)');
    const both = computeStatus(ms, { ...running, idsVm: vm('web-1-ids') }, NO_OUTCOMES, T0);
    assert.equal(cond(both, 'Ready')?.status, 'True');
    assert.equal(both.idsVM?.phase, 'Running');
  });

  it('waits for the server placement before the IDS VM exists', () => {
    const s = computeStatus(ms, { serverVm: vm('web-1-server', 'Starting'), serverVmi: vmi('web-1-server', undefined, 'Scheduling', false) }, NO_OUTCOMES, T0);
    assert.equal(cond(s, 'Colocated')?.reason, 'WaitingForServerPlacement');
    assert.equal(cond(s, 'IDSRunning')?.reason, 'WaitingForServerPlacement');
    assert.equal(cond(s, 'Ready')?.status, 'False');
    assert.match(cond(s, 'Ready')!.message, /^ServerRunning: VirtualMachine shop\/web-1-server is Starting/);
  });

  it('reports a missing adopted VM with what to do', () => {
    const adopt = monitoredServer('db-1', 'shop');
    adopt.spec.server = { virtualMachineName: 'db-1' };
    const s = computeStatus(adopt, {}, NO_OUTCOMES, T0);
    assert.equal(cond(s, 'ServerRunning')?.reason, 'ServerVMNotFound');
    assert.match(cond(s, 'ServerRunning')!.message, /VirtualMachine shop\/db-1 \(spec\.server\.virtualMachineName\) does not exist/);
    assert.equal(cond(s, 'Ready')?.reason, 'ServerVMNotFound');
  });

  it('reports a VM monitored by another MonitoredServer, and shows nothing of that VM', () => {
    const s = computeStatus(ms, { serverVm: vm('web-1-server'), serverVmi: vmi('web-1-server', 'node-a'), serverClaimedBy: 'other' }, NO_OUTCOMES, T0);
    assert.equal(cond(s, 'ServerRunning')?.reason, 'ServerVMAlreadyMonitored');
    assert.match(cond(s, 'ServerRunning')!.message, /already monitored by MonitoredServer other/);
    assert.equal(s.nodeName, undefined);
  });

  it('reports the IDS VM on another node as NodeMismatch', () => {
    const o: ObservedState = { serverVm: vm('web-1-server'), serverVmi: vmi('web-1-server', 'node-b'), idsVm: vm('web-1-ids'), idsVmi: vmi('web-1-ids', 'node-a') };
    const s = computeStatus(ms, o, NO_OUTCOMES, T0);
    assert.equal(cond(s, 'Colocated')?.reason, 'NodeMismatch');
    assert.equal(cond(s, 'Ready')?.status, 'False');
  });

  it('reports an unschedulable IDS VM with the scheduler message', () => {
    const idsVmi = vmi('web-1-ids', undefined, 'Scheduling', false);
    idsVmi.status!.conditions!.push({ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/3 nodes are available' });
    const s = computeStatus(ms, { serverVm: vm('web-1-server'), serverVmi: vmi('web-1-server', 'node-a'), idsVm: vm('web-1-ids', 'ErrorUnschedulable'), idsVmi }, NO_OUTCOMES, T0);
    assert.equal(cond(s, 'IDSRunning')?.reason, 'IDSVMUnschedulable');
    assert.match(cond(s, 'IDSRunning')!.message, /0\/3 nodes are available/);
  });

  it('reports a process mapper that cannot start, and one the API server refused', () => {
    const base: ObservedState = { serverVm: vm('web-1-server'), serverVmi: vmi('web-1-server', 'node-a'), idsVm: vm('web-1-ids'), idsVmi: vmi('web-1-ids', 'node-a') };
    const failing = computeStatus(ms, { ...base, processMapperPod: mapperPod(false, 'ImagePullBackOff') }, NO_OUTCOMES, T0);
    assert.equal(cond(failing, 'ProcessMapping')?.reason, 'ProcessMapperFailing');
    assert.match(cond(failing, 'ProcessMapping')!.message, /ImagePullBackOff: back-off pulling image/);
    assert.equal(cond(failing, 'Ready')?.status, 'False');
    const forbidden = new Outcomes([{ action: { type: 'apply', capability: 'processMapper', failureReason: 'CreateProcessMapperFailed', log: 'Create process-mapper pod', resource: POD, object: {} }, kind: 'refused', code: 403, message: 'pods "web-1-process-mapper" is forbidden: violates PodSecurity "baseline:latest"' }]);
    const refused = computeStatus(ms, base, forbidden, T0);
    assert.match(cond(refused, 'ProcessMapping')!.message, /must run privileged with hostPID .*violates PodSecurity/);
  });

  it('has no ProcessMapping condition when process mapping is disabled, and is Ready without it', () => {
    const off = monitoredServer('web-1', 'shop', { processMapping: { enabled: false } });
    const o: ObservedState = { serverVm: vm('web-1-server'), serverVmi: vmi('web-1-server', 'node-a'), idsVm: vm('web-1-ids'), idsVmi: vmi('web-1-ids', 'node-a') };
    const before = computeStatus(ms, { ...o, processMapperPod: mapperPod() }, NO_OUTCOMES, T0);
    const s = computeStatus({ ...off, status: before }, o, NO_OUTCOMES, T1);
    assert.equal(cond(s, 'ProcessMapping'), undefined);
    assert.equal(cond(s, 'Ready')?.status, 'True');
  });

  it('keeps lastTransitionTime when the status does not change, and a second computation equals the first', () => {
    const o: ObservedState = { serverVm: vm('web-1-server'), serverVmi: vmi('web-1-server', 'node-a'), idsVm: vm('web-1-ids'), idsVmi: vmi('web-1-ids', 'node-a'), processMapperPod: mapperPod() };
    const first = computeStatus(ms, o, NO_OUTCOMES, T0);
    const again = computeStatus({ ...ms, status: first }, o, NO_OUTCOMES, T1);
    assert.equal(cond(again, 'Ready')?.lastTransitionTime, '2026-11-29T10:00:00Z');
    assert.ok(statusEqual(first, again));
    const degraded = computeStatus({ ...ms, status: first }, { ...o, idsVmi: undefined }, NO_OUTCOMES, T1);
    assert.equal(cond(degraded, 'Ready')?.lastTransitionTime, '2026-11-29T10:05:00Z');
    assert.ok(!statusEqual(first, degraded));
  });

  it('compares the status read back from the API server by value: key order aside, any changed field counts', () => {
    const o: ObservedState = { serverVm: vm('web-1-server'), serverVmi: vmi('web-1-server', 'node-a'), idsVm: vm('web-1-ids'), idsVmi: vmi('web-1-ids', 'node-a'), processMapperPod: mapperPod() };
    const built = computeStatus(ms, o, NO_OUTCOMES, T0);
    const reversedKeys = (value: unknown): unknown =>
      Array.isArray(value) ? value.map(reversedKeys) : value && typeof value === 'object' ? Object.fromEntries(Object.entries(value).reverse().map(([k, v]) => [k, reversedKeys(v)])) : value;
    const readBack = reversedKeys(JSON.parse(JSON.stringify(built))) as typeof built;
    assert.notEqual(JSON.stringify(readBack), JSON.stringify(built));
    assert.ok(statusEqual(readBack, built));
    assert.ok(!statusEqual({ ...readBack, idsVM: { ...readBack.idsVM!, nodeName: 'node-b' } }, built));
    assert.ok(!statusEqual({ ...readBack, observedGeneration: (built.observedGeneration ?? 0) + 1 }, built));
  });
});
