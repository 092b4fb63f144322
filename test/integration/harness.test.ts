// The local control plane and the KubeVirt simulator behave like a real cluster with KubeVirt
// where the operator can observe it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { startCluster } from '../support/cluster.ts';
import { REPO_ROOT } from '../support/control-plane-binaries.ts';
import { OperatorTestEnv, VM, VMI } from '../support/operator-env.ts';
import { vmTemplate } from '../support/monitoredserver-fixtures.ts';
import { auditRequests } from '../support/audit-log.ts';
import { waitFor } from '../support/wait.ts';

const NS = 'sim';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function vm(name: string, runStrategy: string, podLabels: Record<string, string> = {}, affinity?: object): object {
  const spec = vmTemplate(podLabels).spec as unknown as { runStrategy?: string; template: { spec: Record<string, unknown> } };
  spec.runStrategy = runStrategy;
  if (affinity) spec.template.spec.affinity = affinity;
  return { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name, namespace: NS }, spec };
}

describe('local control plane and KubeVirt simulator', function () {
  let env: OperatorTestEnv;

  before(async function () {
    env = await OperatorTestEnv.start(3);
    await env.namespace(NS);
  });

  after(async () => env?.stop());

  async function launcherPods(vmiUid: string): Promise<k8s.V1Pod[]> {
    return (await env.core.listNamespacedPod({ namespace: NS, labelSelector: `kubevirt.io/created-by=${vmiUid}` })).items;
  }

  it('reports the real Kubernetes version and has 3 Ready kwok nodes', async function () {
    const version = JSON.parse((await env.cluster.rawGet('/version')).body) as { gitVersion: string };
    assert.match(version.gitVersion, /^v1\.35\.\d+$/);
    const nodes = (await env.core.listNode()).items;
    assert.equal(nodes.length, 3);
    for (const n of nodes) assert.equal(n.metadata?.labels?.['kubernetes.io/hostname'], n.metadata?.name);
  });

  it('runs a VM with runStrategy Always: Running VMI, launcher pod bound by kube-scheduler; Halted removes both; delete garbage-collects', async function () {
    await env.create(VM, NS, vm('always', 'Always', { app: 'always' }));
    const vmi = await waitFor(async () => {
      const v = await env.get(VMI, NS, 'always');
      return v?.status?.phase === 'Running' ? v : undefined;
    }, { description: 'VMI always Running' });
    const [pod] = await launcherPods(vmi.metadata.uid!);
    assert.ok(pod, 'a launcher pod exists');
    assert.equal(pod.metadata?.labels?.['kubevirt.io'], 'virt-launcher');
    assert.equal(pod.metadata?.labels?.['vm.kubevirt.io/name'], 'always');
    assert.equal(pod.metadata?.labels?.app, 'always', 'template labels reach the pod');
    assert.equal(pod.metadata?.ownerReferences?.[0]?.uid, vmi.metadata.uid);
    assert.equal(pod.spec?.nodeSelector?.['kubevirt.io/schedulable'], 'true');
    assert.equal(pod.status?.phase, 'Running', 'kwok runs the pod');
    assert.equal(vmi.status.nodeName, pod.spec?.nodeName);
    assert.equal(vmi.metadata.labels?.['kubevirt.io/nodeName'], pod.spec?.nodeName);
    assert.deepEqual(vmi.status.activePods, { [pod.metadata!.uid!]: pod.spec!.nodeName });
    assert.equal(vmi.status.interfaces[0].name, 'default');
    assert.equal(vmi.status.interfaces[0].ipAddress, pod.status?.podIP);
    assert.ok(vmi.status.conditions.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True'));
    // Bound by the scheduler, not by the simulator: the binding subresource was created by kube-scheduler.
    const bindings = auditRequests(env.cluster.auditLogPath, {}).filter((e) => e.objectRef?.subresource === 'binding' && e.objectRef?.name === pod.metadata?.name);
    assert.equal(bindings.length, 1);
    assert.match(bindings[0]!.userAgent ?? '', /kube-scheduler/);
    const vmObj = await waitFor(async () => {
      const v = await env.get(VM, NS, 'always');
      return v?.status?.printableStatus === 'Running' && v.status.ready ? v : undefined;
    }, { description: 'VM status Running and ready' });
    assert.equal(vmObj.status.created, true);

    await env.mergePatch(VM, NS, 'always', { spec: { runStrategy: 'Halted' } });
    await env.waitGone(VMI, NS, 'always');
    // The pod goes through the garbage collector (owner: the VMI), which can take a while under load.
    await waitFor(async () => (await launcherPods(vmi.metadata.uid!)).length === 0 || undefined, { timeoutMs: 120_000, description: 'launcher pod gone' });
    await waitFor(async () => (await env.get(VM, NS, 'always'))?.status?.printableStatus === 'Stopped' || undefined, { description: 'VM Stopped' });

    await env.mergePatch(VM, NS, 'always', { spec: { runStrategy: 'Always' } });
    const again = await waitFor(async () => {
      const v = await env.get(VMI, NS, 'always');
      return v?.status?.phase === 'Running' ? v : undefined;
    }, { description: 'VMI always Running again' });
    await env.delete(VM, NS, 'always');
    await env.waitGone(VMI, NS, 'always', 120_000);
    await waitFor(async () => (await launcherPods(again.metadata.uid!)).length === 0 || undefined, { timeoutMs: 120_000, description: 'launcher pod garbage-collected' });
    const vmiDeletes = auditRequests(env.cluster.auditLogPath, {}).filter((e) => e.verb === 'delete' && e.objectRef?.resource === 'virtualmachineinstances' && e.objectRef?.name === 'always');
    assert.ok(vmiDeletes.some((e) => /kube-controller-manager/.test(e.userAgent ?? '')), 'the garbage collector deleted the VMI');
  });

  it('places two VMs with required pod affinity to each other on one node, and with anti-affinity on different nodes', async function () {
    const affinity = { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: { pair: 'p1' } }, topologyKey: 'kubernetes.io/hostname' }] } };
    const anti = { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: { spread: 's1' } }, topologyKey: 'kubernetes.io/hostname' }] } };
    await env.create(VM, NS, vm('aff-a', 'Always', { pair: 'p1' }, affinity));
    await env.create(VM, NS, vm('aff-b', 'Always', { pair: 'p1' }, affinity));
    await env.create(VM, NS, vm('anti-a', 'Always', { spread: 's1' }, anti));
    await env.create(VM, NS, vm('anti-b', 'Always', { spread: 's1' }, anti));
    const node = async (name: string) =>
      waitFor(async () => {
        const v = await env.get(VMI, NS, name);
        return v?.status?.phase === 'Running' ? (v.status.nodeName as string) : undefined;
      }, { description: `${name} Running` });
    assert.equal(await node('aff-a'), await node('aff-b'));
    assert.notEqual(await node('anti-a'), await node('anti-b'));
  });

  it('stops every control-plane process on stop(), and when the process that started them is killed', async function () {
    const started = Date.now();
    const cluster = await startCluster({ nodes: 1 });
    const warmStartMs = Date.now() - started;
    console.log(`      warm start of a 1-node cluster: ${(warmStartMs / 1000).toFixed(1)} s`);
    const pids = cluster.pids();
    assert.equal(pids.length, 5, 'etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok');
    await cluster.stop();
    assert.deepEqual(pids.filter(alive), [], 'no process left after stop()');

    // node itself (not the tsx wrapper, which would leave its own child behind when killed).
    const child = spawn(join(REPO_ROOT, 'node_modules', '.bin', 'node'), ['--import', 'tsx', join(REPO_ROOT, 'test', 'support', 'start-cluster-child.ts')], {
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
    await waitFor(() => childPids.every((p) => !alive(p)) || undefined, { timeoutMs: 15_000, description: 'the orphaned control plane to die' });
  });
});
