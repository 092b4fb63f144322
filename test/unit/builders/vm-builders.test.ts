import assert from 'node:assert/strict';
import { buildServerVirtualMachine, buildAdoptionMarks } from '../../../src/builders/server-vm.ts';
import { buildIdsVirtualMachine, serverPodLabels } from '../../../src/builders/ids-vm.ts';
import { LABEL_MONITORED_SERVER, LABEL_ROLE, ANNOTATION_PAIRED_WITH } from '../../../src/builders/names.ts';
import { monitoredServer } from '../../../testenv/fixtures/monitoredservers.ts';

function ms(deletionPolicy?: 'Retain' | 'Delete') {
  const m = monitoredServer('web-1', 'shop');
  m.metadata.uid = 'ms-uid';
  if (deletionPolicy) m.spec.server.deletionPolicy = deletionPolicy;
  return m;
}

describe('server VM builder', () => {
  it('names the VM <name>-server, labels VM and VMI template, and sets eviction strategy External', () => {
    const vm = buildServerVirtualMachine(ms());
    assert.equal(vm.metadata.name, 'web-1-server');
    assert.equal(vm.metadata.namespace, 'shop');
    assert.equal(vm.metadata.labels?.[LABEL_MONITORED_SERVER], 'web-1');
    assert.equal(vm.metadata.labels?.[LABEL_ROLE], 'server');
    assert.equal(vm.metadata.labels?.app, 'web-1', 'template labels are kept');
    assert.equal(vm.spec.template.metadata?.labels?.[LABEL_ROLE], 'server');
    assert.equal(vm.spec.template.spec?.evictionStrategy, 'External');
    assert.equal(vm.spec.runStrategy, 'Always');
  });

  it('owns the server VM only with deletionPolicy Delete, so a retained server can never be garbage-collected', () => {
    assert.equal(buildServerVirtualMachine(ms()).metadata.ownerReferences, undefined);
    assert.equal(buildServerVirtualMachine(ms('Retain')).metadata.ownerReferences, undefined);
    const owned = buildServerVirtualMachine(ms('Delete'));
    assert.deepEqual(owned.metadata.ownerReferences, [
      { apiVersion: 'hyperspector.io/v1alpha1', kind: 'MonitoredServer', name: 'web-1', uid: 'ms-uid', controller: true, blockOwnerDeletion: true },
    ]);
  });

  it('does not modify the MonitoredServer it reads', () => {
    const m = ms();
    const before = JSON.stringify(m);
    buildServerVirtualMachine(m);
    buildIdsVirtualMachine(m, { nodeName: 'node-a', serverVmiUid: 'vmi-uid', serverPodLabels: { x: 'y' } });
    assert.equal(JSON.stringify(m), before);
  });

  it('marks an adopted VM with a label and an annotation only', () => {
    const m = ms();
    m.spec.server = { virtualMachineName: 'db-1' };
    const marks = buildAdoptionMarks(m);
    assert.deepEqual(Object.keys(marks), ['apiVersion', 'kind', 'metadata']);
    assert.equal(marks.metadata.name, 'db-1');
    assert.equal(marks.metadata.labels?.[LABEL_MONITORED_SERVER], 'web-1');
  });
});

describe('IDS VM builder', () => {
  it('pins the IDS VM to the server node with a nodeSelector and required affinity to the server launcher pod', () => {
    const vm = buildIdsVirtualMachine(ms(), { nodeName: 'node-b', serverVmiUid: 'vmi-uid', serverPodLabels: { 'hyperspector.io/monitored-server': 'web-1', 'hyperspector.io/role': 'server' } });
    assert.equal(vm.metadata.name, 'web-1-ids');
    assert.equal(vm.metadata.ownerReferences?.[0]?.uid, 'ms-uid');
    assert.equal(vm.metadata.annotations?.[ANNOTATION_PAIRED_WITH], 'vmi-uid');
    const spec = vm.spec.template.spec!;
    assert.deepEqual(spec.nodeSelector, { 'kubernetes.io/hostname': 'node-b' });
    assert.deepEqual(spec.affinity?.podAffinity?.requiredDuringSchedulingIgnoredDuringExecution, [
      { labelSelector: { matchLabels: { 'hyperspector.io/monitored-server': 'web-1', 'hyperspector.io/role': 'server' } }, topologyKey: 'kubernetes.io/hostname' },
    ]);
    assert.equal(vm.spec.template.metadata?.labels?.[LABEL_ROLE], 'ids');
  });

  it("keeps the user's own scheduling constraints beside ours", () => {
    const m = ms();
    const vmiSpec = m.spec.ids.template.spec.template!.spec!;
    vmiSpec.nodeSelector = { disk: 'ssd' };
    vmiSpec.affinity = { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: { a: 'b' } }, topologyKey: 'zone' }] } };
    const spec = buildIdsVirtualMachine(m, { nodeName: 'node-a', serverVmiUid: 'u', serverPodLabels: { x: 'y' } }).spec.template.spec!;
    assert.deepEqual(spec.nodeSelector, { disk: 'ssd', 'kubernetes.io/hostname': 'node-a' });
    assert.equal(spec.affinity?.podAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.length, 2);
  });

  it('selects the server launcher pod by labels that survive a server restart', () => {
    assert.deepEqual(serverPodLabels(false, { 'hyperspector.io/monitored-server': 'web-1' }, 'web-1-server'), {
      'hyperspector.io/monitored-server': 'web-1',
      'hyperspector.io/role': 'server',
    });
    assert.deepEqual(serverPodLabels(true, {}, 'db-1'), { 'vm.kubevirt.io/name': 'db-1' });
  });

  it('follows the server: a new placement changes node and affinity', () => {
    const a = buildIdsVirtualMachine(ms(), { nodeName: 'node-a', serverVmiUid: 'u1', serverPodLabels: { x: 'y' } });
    const b = buildIdsVirtualMachine(ms(), { nodeName: 'node-c', serverVmiUid: 'u2', serverPodLabels: { x: 'y' } });
    assert.notDeepEqual(a.spec.template.spec, b.spec.template.spec);
    assert.equal(b.spec.template.spec?.nodeSelector?.['kubernetes.io/hostname'], 'node-c');
  });
});
