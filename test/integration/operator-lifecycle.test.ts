// The operator against the real control plane (with KubeVirt's own controllers): lifecycle, adoption,
// bad references, following the server, and writing nothing when nothing changed.
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { OperatorTestEnv, useOperatorEnv, MS, VM, VMI } from '../../testenv/operator/operator-env.ts';
import { reconcilesEndedWell } from '../../testenv/operator/operator-process.ts';
import { monitoredServer, vmTemplate } from '../../testenv/fixtures/monitoredservers.ts';
import { auditRequests, describeRequests } from '../../testenv/cluster/audit-log.ts';
import { waitFor } from '../../testenv/wait.ts';
import { processMapperPodName } from '../../src/builders/names.ts';
import type { MonitoredServer } from '../../src/api/v1alpha1/monitoredserver-types.ts';

const NS = 'shop';
/** The operator's namespace, where process-mapper pods run. */
const MAPPER_NS = 'hyperspector-system';

describe('MonitoredServer operator (real control plane, KubeVirt’s own controllers)', function () {
  const world = useOperatorEnv(NS);
  let env: OperatorTestEnv;
  before(() => {
    env = world.env();
  });

  it('runs the server and IDS VMs on the same node, follows template changes, and tears down on delete', async function () {
    await env.createMonitoredServer(monitoredServer('web-1', NS));
    const ready = await env.waitForCondition(NS, 'web-1', 'Ready', 'True', 'Monitoring');
    const serverVmi = await env.get(VMI, NS, 'web-1-server');
    const idsVmi = await env.get(VMI, NS, 'web-1-ids');
    assert.ok(serverVmi?.status?.nodeName, 'the server VMI has a node');
    assert.equal(idsVmi?.status?.nodeName, serverVmi?.status?.nodeName, 'both VMs run on the same node');
    assert.equal(ready.status.nodeName, serverVmi?.status?.nodeName);
    assert.ok(env.cluster.nodeNames.length >= 3);
    for (const type of ['ServerRunning', 'Colocated', 'IDSRunning']) assert.equal(env.condition(ready, type)?.status, 'True', type);
    assert.equal(ready.status.observedGeneration, ready.metadata.generation);
    const serverVm = await env.get(VM, NS, 'web-1-server');
    assert.equal(serverVm?.spec.template.spec.evictionStrategy, 'External');
    // The process mapper: hostPID with two capabilities (not privileged), beside the server, in the operator's namespace
    // (tenants keep their Pod Security level) under its own service account, tied by labels.
    assert.equal(env.condition(ready, 'ProcessMapping')?.status, 'True');
    const mapper = await env.core.readNamespacedPod({ namespace: MAPPER_NS, name: processMapperPodName(ready as MonitoredServer) });
    assert.equal(mapper.spec?.nodeName, serverVmi?.status?.nodeName);
    assert.equal(mapper.spec?.hostPID, true);
    assert.equal(mapper.spec?.containers[0]?.securityContext?.privileged, false);
    assert.deepEqual({ ...mapper.spec?.containers[0]?.securityContext?.capabilities }, { drop: ['ALL'], add: ['SYS_PTRACE', 'DAC_READ_SEARCH'] });
    assert.equal(mapper.spec?.containers[0]?.env?.find((e) => e.name === 'VMI_UID')?.value, serverVmi?.metadata.uid);
    assert.equal(mapper.spec?.serviceAccountName, 'hyperspector-process-mapper');
    assert.deepEqual([mapper.metadata?.labels?.['hyperspector.io/monitored-server-namespace'], mapper.metadata?.labels?.['hyperspector.io/monitored-server']], [NS, 'web-1']);
    await env.waitForEvent(NS, 'web-1', 'MonitoringStarted');

    // A new IDS template converges: the IDS VM restarts with it, on the server's node.
    const ms = await env.get(MS, NS, 'web-1');
    const ids = vmTemplate({ app: 'web-1-ids', tier: 'gold' }, '3Gi');
    await env.mergePatch(MS, NS, 'web-1', { spec: { ids: { template: ids } } });
    await waitFor(
      async () => {
        const vmi = await env.get(VMI, NS, 'web-1-ids');
        return vmi?.spec?.domain?.memory?.guest === '3Gi' && vmi.status?.phase === 'Running' && !vmi.metadata.deletionTimestamp ? vmi : undefined;
      },
      { timeoutMs: 60_000, description: 'the IDS VMI to run with the new template' },
    );
    const after = await env.waitForCondition(NS, 'web-1', 'Ready', 'True');
    assert.equal(after.status.observedGeneration, (ms?.metadata.generation ?? 0) + 1);
    assert.equal((await env.get(VMI, NS, 'web-1-ids'))?.status?.nodeName, after.status.nodeName);

    // Delete: the IDS VM goes, the server VM is retained (deletionPolicy Retain) without our marks.
    await env.delete(MS, NS, 'web-1');
    await env.waitGone(MS, NS, 'web-1');
    assert.equal(await env.get(VM, NS, 'web-1-ids'), undefined, 'the IDS VM is deleted');
    const retained = await env.get(VM, NS, 'web-1-server');
    assert.ok(retained, 'the server VM is retained');
    assert.equal(retained.metadata.deletionTimestamp, undefined);
    assert.equal(retained.metadata.labels?.['hyperspector.io/monitored-server'], undefined);
    assert.equal(retained.metadata.ownerReferences, undefined);
    await waitFor(async () => (await env.core.listNamespacedPod({ namespace: MAPPER_NS, labelSelector: `hyperspector.io/monitored-server-namespace=${NS},hyperspector.io/monitored-server=web-1,hyperspector.io/role=process-mapper` })).items.length === 0 || undefined, {
      timeoutMs: 60_000,
      description: 'the process-mapper pod to be gone',
    });
  });

  it('removes the process mapper and its condition when process mapping is disabled', async function () {
    await env.createMonitoredServer(monitoredServer('quiet-1', NS));
    await env.waitForCondition(NS, 'quiet-1', 'ProcessMapping', 'True');
    await env.mergePatch(MS, NS, 'quiet-1', { spec: { processMapping: { enabled: false } } });
    const off = await waitFor(
      async () => {
        const ms = await env.get(MS, NS, 'quiet-1');
        return ms && !env.condition(ms, 'ProcessMapping') && ms.status.observedGeneration === ms.metadata.generation ? ms : undefined;
      },
      { description: 'the ProcessMapping condition to go away' },
    );
    assert.equal(off.status.observedGeneration, off.metadata.generation);
    // Ready without process mapping (the IDS VM may still have been starting when mapping was switched off).
    const ready = await env.waitForCondition(NS, 'quiet-1', 'Ready', 'True', 'Monitoring', 60_000);
    assert.equal(env.condition(ready, 'ProcessMapping'), undefined);
    await waitFor(async () => (await env.core.listNamespacedPod({ namespace: MAPPER_NS, labelSelector: `hyperspector.io/monitored-server-namespace=${NS},hyperspector.io/monitored-server=quiet-1,hyperspector.io/role=process-mapper` })).items.length === 0 || undefined, {
      timeoutMs: 60_000,
      description: 'the process-mapper pod to be deleted',
    });
    await env.waitForEvent(NS, 'quiet-1', 'ProcessMapperDeleted');
    await env.delete(MS, NS, 'quiet-1');
    await env.waitGone(MS, NS, 'quiet-1');
  });

  it('deletes a process-mapper pod whose MonitoredServer does not exist (left by a teardown that never ran)', async function () {
    // No owner reference can cross namespaces: the operator itself removes such a pod.
    const labels = { 'hyperspector.io/role': 'process-mapper', 'app.kubernetes.io/managed-by': 'hyperspector', 'hyperspector.io/monitored-server': 'ghost', 'hyperspector.io/monitored-server-namespace': NS };
    await env.core.createNamespacedPod({ namespace: MAPPER_NS, body: { metadata: { name: 'shop-ghost-process-mapper', labels }, spec: { containers: [{ name: 'process-mapper', image: 'hyperspector/operator:0.1.0' }] } } });
    await waitFor(async () => (await env.core.listNamespacedPod({ namespace: MAPPER_NS, labelSelector: `hyperspector.io/monitored-server-namespace=${NS},hyperspector.io/monitored-server=ghost` })).items.length === 0 || undefined, {
      timeoutMs: 60_000,
      description: 'the orphaned process-mapper pod to be deleted',
    });
  });

  it('deletes an owned server VM with deletionPolicy Delete', async function () {
    const ms = monitoredServer('tmp-1', NS);
    ms.spec.server.deletionPolicy = 'Delete';
    await env.createMonitoredServer(ms);
    await env.waitForCondition(NS, 'tmp-1', 'Ready', 'True');
    await env.delete(MS, NS, 'tmp-1');
    await env.waitGone(MS, NS, 'tmp-1');
    await env.waitGone(VM, NS, 'tmp-1-server');
    await env.waitGone(VM, NS, 'tmp-1-ids');
    await env.waitGone(VMI, NS, 'tmp-1-server');
  });

  it('adopts an existing VM, never changes its spec, and releases it on delete', async function () {
    const db = { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: 'db-1', namespace: NS, labels: { app: 'db', team: 'data' } }, spec: vmTemplate({ app: 'db' }).spec };
    // As stored: KubeVirt's mutating webhook adds its own defaults (e.g. a pci-topology annotation).
    const stored = await env.create(VM, NS, db);
    const ms = monitoredServer('db-1', NS);
    ms.spec.server = { virtualMachineName: 'db-1' };
    await env.createMonitoredServer(ms);
    const ready = await env.waitForCondition(NS, 'db-1', 'Ready', 'True');
    assert.equal(ready.status.serverVM.name, 'db-1');
    const adopted = await env.get(VM, NS, 'db-1');
    assert.equal(adopted?.metadata.labels?.['hyperspector.io/monitored-server'], 'db-1');
    assert.deepEqual(adopted?.spec, stored.spec, "the adopted VM's spec is untouched");
    await env.waitForEvent(NS, 'db-1', 'ServerVMAdopted');

    await env.delete(MS, NS, 'db-1');
    await env.waitGone(MS, NS, 'db-1');
    const released = await env.get(VM, NS, 'db-1');
    assert.ok(released, 'an adopted VM is never deleted');
    assert.deepEqual(released.metadata.labels, { app: 'db', team: 'data' }, "only HyperSpector's labels are removed");
    assert.equal(released.metadata.annotations?.['hyperspector.io/monitored-by'], undefined);
    assert.deepEqual(released.spec, stored.spec);
    assert.equal((await env.get(VMI, NS, 'db-1'))?.status?.phase, 'Running', 'the released server keeps running');
    await env.waitGone(VM, NS, 'db-1-ids');
  });

  it('reports a missing VM clearly, then converges when it appears', async function () {
    const ms = monitoredServer('ghost', NS);
    ms.spec.server = { virtualMachineName: 'ghost-vm' };
    await env.createMonitoredServer(ms);
    const waiting = await env.waitForCondition(NS, 'ghost', 'ServerRunning', 'False', 'ServerVMNotFound');
    assert.match(env.condition(waiting, 'ServerRunning')!.message, /VirtualMachine shop\/ghost-vm \(spec\.server\.virtualMachineName\) does not exist/);
    assert.equal(env.condition(waiting, 'Ready')?.reason, 'ServerVMNotFound');
    await env.create(VM, NS, { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: 'ghost-vm', namespace: NS }, spec: vmTemplate({ app: 'ghost' }).spec });
    await env.waitForCondition(NS, 'ghost', 'Ready', 'True');
  });

  it('refuses a VM that another MonitoredServer already monitors, with a condition and an Event', async function () {
    const rival = monitoredServer('ghost-rival', NS);
    rival.spec.server = { virtualMachineName: 'ghost-vm' };
    await env.createMonitoredServer(rival);
    const refused = await env.waitForCondition(NS, 'ghost-rival', 'ServerRunning', 'False', 'ServerVMAlreadyMonitored');
    assert.match(env.condition(refused, 'ServerRunning')!.message, /already monitored by MonitoredServer ghost/);
    const event = await env.waitForEvent(NS, 'ghost-rival', 'ServerVMAlreadyMonitored');
    assert.equal(event.type, 'Warning');
    assert.equal(await env.get(VM, NS, 'ghost-rival-ids'), undefined, 'no IDS VM for a refused MonitoredServer');
    // The first one keeps its VM.
    assert.equal(env.condition(await env.get(MS, NS, 'ghost'), 'Ready')?.status, 'True');
    // Once the first one is gone, the rival takes over.
    await env.delete(MS, NS, 'ghost');
    await env.waitForCondition(NS, 'ghost-rival', 'Ready', 'True', undefined, 90_000);
  });

  it('wakes both MonitoredServers when an adopted VM is relabelled from one to the other', async function () {
    const legacy = { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: 'legacy-1', namespace: NS }, spec: vmTemplate({ app: 'legacy' }).spec };
    await env.create(VM, NS, legacy);
    const first = monitoredServer('first-1', NS);
    first.spec.server = { virtualMachineName: 'legacy-1' };
    await env.createMonitoredServer(first);
    await env.waitForCondition(NS, 'first-1', 'ServerRunning', 'True', 'Running');
    const second = monitoredServer('second-1', NS);
    second.spec.server = { virtualMachineName: 'legacy-1' };
    await env.createMonitoredServer(second);
    await env.waitForCondition(NS, 'second-1', 'ServerRunning', 'False', 'ServerVMAlreadyMonitored');
    // Both are settled (the first is not rechecked on a timer while it runs); the label moves by hand.
    await env.mergePatch(VM, NS, 'legacy-1', { metadata: { labels: { 'hyperspector.io/monitored-server': 'second-1' } } });
    // The old key (first-1) learns it lost the VM and the new key (second-1) takes it, within seconds.
    await env.waitForCondition(NS, 'first-1', 'ServerRunning', 'False', 'ServerVMAlreadyMonitored', 15_000);
    await env.waitForCondition(NS, 'second-1', 'ServerRunning', 'True', 'Running', 15_000);
    for (const name of ['second-1', 'first-1']) {
      await env.delete(MS, NS, name);
      await env.waitGone(MS, NS, name);
    }
    const released = await env.get(VM, NS, 'legacy-1');
    assert.equal(released?.metadata.labels?.['hyperspector.io/monitored-server'], undefined, 'released without our label');
    await env.delete(VM, NS, 'legacy-1');
  });

  it('moves the IDS VM when the server VM comes back on another node', async function () {
    await env.createMonitoredServer(monitoredServer('mover', NS));
    const before = await env.waitForCondition(NS, 'mover', 'Ready', 'True');
    const oldNode: string = before.status.nodeName;
    // Cordon the node and restart the server VMI: the scheduler must put it elsewhere.
    await env.core.patchNode({ name: oldNode, body: { spec: { unschedulable: true } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    try {
      await env.custom.deleteNamespacedCustomObject({ ...VMI, namespace: NS, name: 'mover-server' });
      const moved = await waitFor(
        async () => {
          const ms = await env.get(MS, NS, 'mover');
          return env.condition(ms, 'Ready')?.status === 'True' && ms?.status.nodeName !== oldNode ? ms : undefined;
        },
        { timeoutMs: 90_000, description: 'the pair to be Ready again on another node' },
      );
      const idsVmi = await env.get(VMI, NS, 'mover-ids');
      assert.equal(idsVmi?.status?.nodeName, moved.status.nodeName, 'the IDS VM followed the server');
      const idsVm = await env.get(VM, NS, 'mover-ids');
      assert.equal(idsVm?.spec.template.spec.nodeSelector['kubernetes.io/hostname'], moved.status.nodeName);
      const mapper = await env.core.readNamespacedPod({ namespace: MAPPER_NS, name: processMapperPodName(moved as MonitoredServer) });
      assert.equal(mapper.spec?.nodeName, moved.status.nodeName, 'the process mapper followed the server');
      await env.waitForEvent(NS, 'mover', 'IDSVMRestarted');
    } finally {
      await env.core.patchNode({ name: oldNode, body: { spec: { unschedulable: false } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    }
  });

  it('writes nothing in a no-op reconcile, nor at steady state', async function () {
    const ms = await env.waitForCondition(NS, 'mover', 'Ready', 'True');
    const transition = env.condition(ms, 'Ready')?.lastTransitionTime;
    // Wait until everything the operator started has settled (no write for 5 s).
    const username = env.cluster.users.operator.name;
    const quiet = (seconds: number) => {
      const since = new Date(Date.now() - seconds * 1000);
      return auditRequests(env.cluster.auditLogPath, { username, since, writesOnly: true, excludeResources: ['leases'] }).length === 0;
    };
    await waitFor(() => quiet(5) || undefined, { timeoutMs: 60_000, intervalMs: 500, description: 'the operator to go quiet' });

    // A change that wakes the reconciler but asks for nothing (an annotation) is a no-op.
    const start = new Date();
    await env.mergePatch(MS, NS, 'mover', { metadata: { annotations: { 'example.com/touched': 'yes' } } });
    // Let the operator see it: its metric of reconciles grows.
    // Reconciles that ended well: a Ready MonitoredServer comes back at the next intake token rotation (requeue_after).
    const reconciles = () => reconcilesEndedWell(world.operator());
    const before = await reconciles();
    await env.mergePatch(MS, NS, 'mover', { metadata: { annotations: { 'example.com/touched': 'again' } } });
    await waitFor(async () => (await reconciles()) > before || undefined, { timeoutMs: 30_000, description: 'a reconcile of the touched object' });
    const writes = auditRequests(env.cluster.auditLogPath, { username, since: start, writesOnly: true, excludeResources: ['leases'] });
    assert.equal(writes.length, 0, `a no-op reconcile wrote:\n${describeRequests(writes)}`);
    const after = await env.get(MS, NS, 'mover');
    assert.equal(env.condition(after, 'Ready')?.lastTransitionTime, transition);

    // Steady state: 60 s without a single write (lease renewals of leader election excepted).
    const steadyStart = new Date();
    await waitFor(() => Date.now() - steadyStart.getTime() >= 60_000 || undefined, { timeoutMs: 70_000, intervalMs: 1000, description: '60 s of steady state' });
    const steadyWrites = auditRequests(env.cluster.auditLogPath, { username, since: steadyStart, writesOnly: true, excludeResources: ['leases'] });
    assert.equal(steadyWrites.length, 0, `writes at steady state:\n${describeRequests(steadyWrites)}`);
  });
});
