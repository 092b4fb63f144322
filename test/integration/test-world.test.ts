// The test world behaves like a real cluster with KubeVirt: KubeVirt's own virt-controller and
// virt-api (with their webhooks and the subresources.kubevirt.io API) on a real control plane; only
// virt-handler is a stand-in on kwok nodes.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { startCluster } from '../../testenv/cluster/local-cluster.ts';
import { REPO_ROOT } from '../../testenv/repo-root.ts';
import { OperatorTestEnv, VM, VMI } from '../../testenv/operator/operator-env.ts';
import { vmTemplate } from '../../testenv/fixtures/monitoredservers.ts';
import { auditRequests } from '../../testenv/cluster/audit-log.ts';
import { waitFor } from '../../testenv/wait.ts';
import { createKubeApi, statusCodeOf } from '../../src/kube/client/rest.ts';
import { isAlive } from '../../testenv/process-alive.ts';

const NS = 'world';
const VMIM = { group: 'kubevirt.io', version: 'v1', plural: 'virtualmachineinstancemigrations' };


function vm(name: string, runStrategy: string, podLabels: Record<string, string> = {}, affinity?: object): Record<string, unknown> {
  const spec = vmTemplate(podLabels).spec as unknown as { runStrategy?: string; template: { spec: Record<string, unknown> } };
  spec.runStrategy = runStrategy;
  if (affinity) spec.template.spec.affinity = affinity;
  return { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name, namespace: NS }, spec };
}

describe('test world: KubeVirt’s own controllers on the local control plane', function () {
  let env: OperatorTestEnv;
  const started = Date.now();

  before(async function () {
    env = await OperatorTestEnv.start(3);
    console.log(`      test world (control plane + KubeVirt, 3 nodes) started in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    await env.namespace(NS);
  });

  after(async () => env?.stop());

  async function launcherPods(vmiUid: string): Promise<k8s.V1Pod[]> {
    return (await env.core.listNamespacedPod({ namespace: NS, labelSelector: `kubevirt.io/created-by=${vmiUid}` })).items;
  }

  async function running(name: string, timeoutMs = 60_000) {
    return waitFor(async () => {
      const v = await env.get(VMI, NS, name);
      return v?.status?.phase === 'Running' && v.status.conditions?.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True') ? v : undefined;
    }, { timeoutMs, description: `VMI ${name} Running and Ready` });
  }

  function subresource(name: string, verb: string, body: object = {}): Promise<unknown> {
    return createKubeApi(env.cluster.kubeConfig).request({ method: 'PUT', path: `/apis/subresources.kubevirt.io/v1/namespaces/${NS}/virtualmachineinstances/${name}/${verb}`, body });
  }

  /** Creates a VirtualMachineInstanceMigration and waits until it ends (Succeeded or Failed). */
  async function migrate(vmiName: string, name: string): Promise<{ status?: { phase?: string } }> {
    await env.custom.createNamespacedCustomObject({ ...VMIM, namespace: NS, body: { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstanceMigration', metadata: { name }, spec: { vmiName } } });
    return waitFor(async () => {
      const m = (await env.custom.getNamespacedCustomObject({ ...VMIM, namespace: NS, name })) as { status?: { phase?: string } };
      return m.status?.phase === 'Succeeded' || m.status?.phase === 'Failed' ? m : undefined;
    }, { timeoutMs: 90_000, description: `migration ${name} to finish` });
  }

  it('reports the real Kubernetes and KubeVirt versions and has 3 Ready kwok nodes', async function () {
    const version = JSON.parse((await env.cluster.rawGet('/version')).body) as { gitVersion: string };
    assert.match(version.gitVersion, /^v1\.35\.\d+$/);
    const kubevirtVersion = JSON.parse((await env.cluster.rawGet('/apis/subresources.kubevirt.io/v1/version')).body) as { gitVersion: string };
    assert.equal(kubevirtVersion.gitVersion, env.kubevirt.version, 'virt-api answers through the aggregation layer with its stamped version');
    const nodes = (await env.core.listNode()).items;
    assert.equal(nodes.length, 3);
    for (const n of nodes) assert.equal(n.metadata?.labels?.['kubernetes.io/hostname'], n.metadata?.name);
  });

  it('runs a VM through virt-controller: Running VMI, launcher pod by virt-controller bound by kube-scheduler; Halted stops it cleanly; delete removes it', async function () {
    await env.create(VM, NS, vm('always', 'Always', { app: 'always' }));
    const vmi = await running('always');
    const [pod] = await launcherPods(vmi.metadata.uid!);
    assert.ok(pod, 'a launcher pod exists');
    assert.equal(pod.metadata?.labels?.['kubevirt.io'], 'virt-launcher');
    assert.equal(pod.metadata?.labels?.['vm.kubevirt.io/name'], 'always');
    assert.equal(pod.metadata?.labels?.app, 'always', 'template labels reach the pod');
    assert.equal(pod.metadata?.ownerReferences?.[0]?.uid, vmi.metadata.uid);
    assert.equal(pod.spec?.nodeSelector?.['kubevirt.io/schedulable'], 'true');
    assert.equal(pod.spec?.nodeSelector?.['machine-type.node.kubevirt.io/q35'], 'true', 'KubeVirt defaulted the machine type and selects nodes by it');
    assert.equal(vmi.status.nodeName, pod.spec?.nodeName);
    assert.equal(vmi.metadata.labels?.['kubevirt.io/nodeName'], pod.spec?.nodeName);
    assert.deepEqual(vmi.status.activePods, { [pod.metadata!.uid!]: pod.spec!.nodeName });
    assert.equal(vmi.status.interfaces[0].name, 'default');
    assert.equal(vmi.status.interfaces[0].ipAddress, pod.status?.podIP);
    assert.ok(vmi.status.phaseTransitionTimestamps.some((t: { phase: string }) => t.phase === 'Running'));
    assert.ok(vmi.metadata.finalizers?.includes('kubevirt.io/foregroundDeleteVirtualMachine'), 'KubeVirt’s mutating webhook added its finalizer');
    const audit = auditRequests(env.cluster.auditLogPath, {});
    const podCreate = audit.find((e) => e.verb === 'create' && e.objectRef?.resource === 'pods' && e.responseStatus?.code === 201 && e.requestURI.startsWith(`/api/v1/namespaces/${NS}/pods`));
    assert.equal(podCreate?.user.username, env.cluster.users.virtController.name, 'virt-controller created the launcher pod');
    const bindings = audit.filter((e) => e.objectRef?.subresource === 'binding' && e.objectRef?.name === pod.metadata?.name);
    assert.equal(bindings.length, 1);
    assert.match(bindings[0]!.userAgent ?? '', /kube-scheduler/);
    await waitFor(async () => {
      const v = await env.get(VM, NS, 'always');
      return v?.status?.printableStatus === 'Running' && v.status.ready ? v : undefined;
    }, { description: 'VM status Running and ready' });

    await env.mergePatch(VM, NS, 'always', { spec: { runStrategy: 'Halted' } });
    await env.waitGone(VMI, NS, 'always', 60_000);
    await waitFor(async () => (await launcherPods(vmi.metadata.uid!)).length === 0 || undefined, { timeoutMs: 60_000, description: 'launcher pod gone' });
    const stopped = await waitFor(async () => {
      const v = await env.get(VM, NS, 'always');
      return v?.status?.printableStatus === 'Stopped' ? v : undefined;
    }, { description: 'VM Stopped' });
    assert.notEqual(stopped.status.printableStatus, 'CrashLoopBackOff');

    await env.mergePatch(VM, NS, 'always', { spec: { runStrategy: 'Always' } });
    const again = await running('always');
    await env.delete(VM, NS, 'always');
    await env.waitGone(VMI, NS, 'always', 60_000);
    await env.waitGone(VM, NS, 'always', 60_000);
    await waitFor(async () => (await launcherPods(again.metadata.uid!)).length === 0 || undefined, { timeoutMs: 60_000, description: 'launcher pod gone' });
  });

  it('runs a VM whose launcher pod the handler sees only after its VMI is Scheduled (a pod watch lagging under load): Running, never Failed', async function () {
    env.kubevirt.handler.setPodWatchLag(4000);
    try {
      await env.create(VM, NS, vm('lagging', 'Always', { app: 'lagging' }));
      const vmi = await running('lagging');
      const phases = (vmi.status.phaseTransitionTimestamps as Array<{ phase: string }>).map((t) => t.phase);
      assert.ok(phases.includes('Scheduled'), `virt-controller scheduled it while the handler could not see the pod yet: ${phases.join(' → ')}`);
      assert.ok(!phases.includes('Failed'), `never Failed: ${phases.join(' → ')}`);
      assert.equal(vmi.status.reason, undefined);
    } finally {
      env.kubevirt.handler.setPodWatchLag(0);
    }
    await env.delete(VM, NS, 'lagging');
  });

  it('refuses an invalid VirtualMachine with KubeVirt’s own webhook message', async function () {
    const bad = vm('bad-disk', 'Always');
    (bad.spec as { template: { spec: { domain: { devices: { disks: object[] } } } } }).template.spec.domain.devices.disks.push({ name: 'nowhere', disk: { bus: 'virtio' } });
    const err = await env.create(VM, NS, bad).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err, 'the API server refused the VM');
    assert.equal(statusCodeOf(err), 422);
    assert.match(String((err as Error).message ?? err), /nowhere/, 'the message names the disk');
    assert.match(String((err as Error).message ?? err), /validating webhook|virtualmachine-validator|admission webhook/i);
  });

  it('places two VMs with required pod affinity on one node, and with anti-affinity on different nodes', async function () {
    const affinity = { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: { pair: 'p1' } }, topologyKey: 'kubernetes.io/hostname' }] } };
    const anti = { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: { spread: 's1' } }, topologyKey: 'kubernetes.io/hostname' }] } };
    await env.create(VM, NS, vm('aff-a', 'Always', { pair: 'p1' }, affinity));
    await env.create(VM, NS, vm('aff-b', 'Always', { pair: 'p1' }, affinity));
    await env.create(VM, NS, vm('anti-a', 'Always', { spread: 's1' }, anti));
    await env.create(VM, NS, vm('anti-b', 'Always', { spread: 's1' }, anti));
    const node = async (name: string) => (await running(name)).status.nodeName as string;
    assert.equal(await node('aff-a'), await node('aff-b'));
    assert.notEqual(await node('anti-a'), await node('anti-b'));
  });

  it('pauses and unpauses through subresources.kubevirt.io: virt-api reaches the handler over mutual TLS', async function () {
    await env.create(VM, NS, vm('pausable', 'Always'));
    await running('pausable');
    await subresource('pausable', 'pause');
    const paused = await waitFor(async () => {
      const v = await env.get(VMI, NS, 'pausable');
      return v?.status?.conditions?.find((c: { type: string }) => c.type === 'Paused') ? v : undefined;
    }, { description: 'Paused condition' });
    const condition = paused.status.conditions.find((c: { type: string }) => c.type === 'Paused');
    assert.equal(condition.reason, 'PausedByUser');
    assert.ok(env.kubevirt.handler.calls.some((c) => c === `PUT /v1/namespaces/${NS}/virtualmachineinstances/pausable/pause`));
    // virt-api refuses to pause twice, with its own message.
    await assert.rejects(subresource('pausable', 'pause'), /already paused/i);
    await subresource('pausable', 'unpause');
    await waitFor(async () => {
      const v = await env.get(VMI, NS, 'pausable');
      return v && !v.status?.conditions?.some((c: { type: string }) => c.type === 'Paused') ? v : undefined;
    }, { description: 'Paused condition removed' });
  });

  it('live-migrates a VMI to another node through a VirtualMachineInstanceMigration, and reports a failed one', async function () {
    const body = vm('mover', 'Always');
    (body.spec as { template: { spec: { domain: { devices: { interfaces: object[] } } } } }).template.spec.domain.devices.interfaces = [{ name: 'default', masquerade: {} }];
    await env.create(VM, NS, body);
    const before = await running('mover');
    await waitFor(async () => {
      const v = await env.get(VMI, NS, 'mover');
      return v?.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'LiveMigratable' && c.status === 'True') || undefined;
    }, { description: 'LiveMigratable' });
    const from = before.status.nodeName as string;
    const done = await migrate('mover', 'move-1');
    assert.equal(done.status?.phase, 'Succeeded');
    const after = await running('mover');
    assert.notEqual(after.status.nodeName, from, 'the VMI runs on another node');
    assert.equal(after.metadata.labels?.['kubevirt.io/nodeName'], after.status.nodeName);

    env.kubevirt.handler.failNextMigration(NS, 'mover', 'test: the target refused the domain');
    const failed = await migrate('mover', 'move-2');
    assert.equal(failed.status?.phase, 'Failed');
    const stayed = await running('mover');
    assert.equal(stayed.status.nodeName, after.status.nodeName, 'a failed migration leaves the VMI where it ran');
    assert.equal(stayed.status.migrationState.failed, true);
  });

  it('hot-plugs a PVC through the addvolume subresource: virt-controller’s attachment pod, volume phases to Ready; removevolume unplugs', async function () {
    await env.core.createPersistentVolume({
      body: {
        metadata: { name: 'world-pv-1' },
        spec: { capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], hostPath: { path: '/var/tmp/world-pv-1' }, persistentVolumeReclaimPolicy: 'Retain', storageClassName: 'manual' },
      },
    });
    await env.core.createNamespacedPersistentVolumeClaim({
      namespace: NS,
      body: { metadata: { name: 'data-1' }, spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'manual', resources: { requests: { storage: '1Gi' } }, volumeName: 'world-pv-1' } },
    });
    await waitFor(async () => (await env.core.readNamespacedPersistentVolumeClaim({ namespace: NS, name: 'data-1' })).status?.phase === 'Bound' || undefined, { description: 'PVC data-1 Bound' });
    await env.create(VM, NS, vm('plugged', 'Always'));
    await running('plugged');
    await createKubeApi(env.cluster.kubeConfig).request({
      method: 'PUT',
      path: `/apis/subresources.kubevirt.io/v1/namespaces/${NS}/virtualmachines/plugged/addvolume`,
      body: { name: 'data-1', disk: { name: 'data-1', disk: { bus: 'scsi' }, serial: 'data1' }, volumeSource: { persistentVolumeClaim: { claimName: 'data-1', hotpluggable: true } } },
    });
    const ready = await waitFor(async () => {
      const v = await env.get(VMI, NS, 'plugged');
      const entry = v?.status?.volumeStatus?.find((x: { name: string }) => x.name === 'data-1');
      return entry?.phase === 'Ready' ? entry : undefined;
    }, { timeoutMs: 90_000, description: 'hotplugged volume data-1 Ready' });
    assert.equal(ready.target, 'sda', 'a scsi disk');
    const attachment = (await env.core.listNamespacedPod({ namespace: NS, labelSelector: 'kubevirt.io=hotplug-disk' })).items.find((p) => p.metadata?.name === ready.hotplugVolume.attachPodName);
    assert.ok(attachment, 'virt-controller made the attachment pod');
    const vmi = await env.get(VMI, NS, 'plugged');
    assert.equal(attachment.spec?.nodeName, vmi?.status?.nodeName, 'on the VMI’s node');

    await createKubeApi(env.cluster.kubeConfig).request({
      method: 'PUT',
      path: `/apis/subresources.kubevirt.io/v1/namespaces/${NS}/virtualmachines/plugged/removevolume`,
      body: { name: 'data-1' },
    });
    await waitFor(async () => {
      const v = await env.get(VMI, NS, 'plugged');
      return v && !v.status?.volumeStatus?.some((x: { name: string }) => x.name === 'data-1') && !v.spec.volumes.some((x: { name: string }) => x.name === 'data-1') ? v : undefined;
    }, { timeoutMs: 90_000, description: 'data-1 unplugged' });
  });

  it('stops a VM through the stop subresource', async function () {
    await env.create(VM, NS, vm('stoppable', 'Always'));
    await running('stoppable');
    await createKubeApi(env.cluster.kubeConfig).request({ method: 'PUT', path: `/apis/subresources.kubevirt.io/v1/namespaces/${NS}/virtualmachines/stoppable/stop`, body: {} });
    await env.waitGone(VMI, NS, 'stoppable', 60_000);
    const stopped = await waitFor(async () => {
      const v = await env.get(VM, NS, 'stoppable');
      return v?.status?.printableStatus === 'Stopped' ? v : undefined;
    }, { description: 'VM stoppable Stopped' });
    assert.equal(stopped.spec.runStrategy, 'Halted', 'virt-api set the run strategy');
  });

  it('stops every process on stop(), and when the process that started them is killed', async function () {
    const t0 = Date.now();
    const cluster = await startCluster({ nodes: 1 });
    console.log(`      warm start of a 1-node cluster without KubeVirt: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const pids = cluster.pids();
    assert.equal(pids.length, 5, 'etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok');
    await cluster.stop();
    assert.deepEqual(pids.filter(isAlive), [], 'no process left after stop()');

    const kubevirtPids = [...env.kubevirt.processes.values()].map((p) => p.pid);
    assert.equal(kubevirtPids.filter(isAlive).length, 2, 'virt-api and virt-controller run');

    // node itself (not the tsx wrapper, which would leave its own child behind when killed).
    const child = spawn(join(REPO_ROOT, 'node_modules', '.bin', 'node'), ['--import', 'tsx', join(REPO_ROOT, 'testenv', 'cluster', 'start-cluster-child.ts')], {
      stdio: ['ignore', 'pipe', 'inherit'],
      cwd: REPO_ROOT,
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const childPids = await waitFor(() => {
      const line = out.split('\n').find((l) => l.startsWith('{'));
      return line ? (JSON.parse(line) as { pids: number[] }).pids : undefined;
    }, { timeoutMs: 90_000, description: 'the child to start its cluster' });
    assert.equal(childPids.length, 5);
    child.kill('SIGKILL');
    await waitFor(() => childPids.every((p) => !isAlive(p)) || undefined, { timeoutMs: 15_000, description: 'the orphaned control plane to die' });
  });
});
