// The kubelet for selected pods, against the real control plane (kwok nodes, no KubeVirt): the
// operator's own process-mapper pod, as its builder makes it, runs as a real process, finds a real
// guest of the real-guest backend by the VMI name and UID in its env, reads the profiles from its
// ConfigMap volume, and serves the guest's process table, equal to the guest's own ps. Its status is
// the kubelet's (readiness from the real /healthz, a restart counted), not kwok's; deleting the pod
// stops the process and removes its cgroup.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';
import { buildIntakeKeySecret } from '../../../src/builders/ids-intake.ts';
import { buildProcessMapperPod, PROCESS_MAPPER_PORT } from '../../../src/builders/process-mapper-pod.ts';
import type { GuestProcess } from '../../../src/introspection/process-info.ts';
import { startCluster, type LocalCluster } from '../../../testenv/cluster/local-cluster.ts';
import { asPsRow, guestPs, KNOWN_COMMS, START_KNOWN_PROCESSES, waitForGuestPs, type PsRow } from '../../../testenv/guest/scenario.ts';
import { testGuestAssets } from '../../../testenv/guest/test-guest.ts';
import { RealGuestBackend, type RealGuest } from '../../../testenv/real-guests/real-guest-backend.ts';
import { monitoredServer } from '../../../testenv/fixtures/monitoredservers.ts';
import { ensureNamespace } from '../../../testenv/cluster/namespaces.ts';
import { RealPodRunner } from '../../../testenv/real-guests/pod-runner.ts';
import { waitFor } from '../../../testenv/wait.ts';
import { processMapperPodName } from '../../../src/builders/names.ts';
import { ensureProcessMapperIdentity } from '../../../testenv/operator/operator-rbac.ts';
import { isAlive } from '../../../testenv/process-alive.ts';

const NS = 'shop';
/** Where the operator runs process-mapper pods, under their own ServiceAccount. */
const MAPPER_NS = 'hyperspector-system';
const log = (line: string) => process.stderr.write(`[real-pods] ${line}\n`);
const byPid = (rows: PsRow[]) => [...rows].sort((a, b) => a.pid - b.pid);

interface ProcessesResponse {
  takenAt: string;
  consistent: boolean;
  qemuPid: number;
  processes: GuestProcess[];
}


describe('real pods: the process-mapper pod as a real process on a real-guest node', function () {
  this.timeout(600_000);
  const backend = new RealGuestBackend({ log });
  const vmiUid = randomUUID();
  const launcherUid = randomUUID();
  const MAPPER = processMapperPodName(monitoredServer('web-1', NS));
  let cluster: LocalCluster;
  let runner: RealPodRunner;
  let core: k8s.CoreV1Api;
  let guest: RealGuest;

  before(async () => {
    const assets = testGuestAssets();
    await backend.start(
      { metadata: { namespace: NS, name: 'web-1-server', uid: vmiUid }, spec: { domain: { memory: { guest: '1Gi' } } } },
      { metadata: { namespace: NS, name: 'virt-launcher-web-1-server-q2w3e', uid: launcherUid }, spec: { nodeName: 'node-a', containers: [] }, status: { podIP: '10.128.0.9' } },
    );
    guest = backend.guest(NS, 'web-1-server')!;
    cluster = await startCluster({ nodes: 1, log });
    core = cluster.api(k8s.CoreV1Api);
    runner = RealPodRunner.start(cluster.kubeConfig, { logDir: cluster.dir, log });
    await ensureNamespace(cluster, NS);
    await ensureProcessMapperIdentity(cluster);
    await core.createNamespacedConfigMap({
      namespace: MAPPER_NS,
      body: { metadata: { name: 'hyperspector-kernel-profiles' }, data: { [`debian-${assets.profile.kernel.release}.json`]: JSON.stringify(assets.profile) } },
    });
  });

  after(async () => {
    await runner?.stop();
    await cluster?.stop();
    await backend.close();
  });

  const url = () => `http://${runner.address(MAPPER_NS, MAPPER, PROCESS_MAPPER_PORT)}`;
  const readPod = () => core.readNamespacedPod({ namespace: MAPPER_NS, name: MAPPER });

  it('runs the pod the operator builds; ready when the mapper is attached; its table equals the guest’s ps', async () => {
    const built = buildProcessMapperPod(monitoredServer('web-1', NS), { nodeName: 'node-a', name: 'web-1-server', uid: vmiUid, launcherPodUid: launcherUid, nodeUid: randomUUID() }, { image: 'hyperspector/operator:0.1.0', defaultKernelProfilesConfigMap: 'hyperspector-kernel-profiles', namespace: MAPPER_NS, serviceAccountName: 'hyperspector-process-mapper', serviceName: 'hyperspector-process-mappers' });
    // No MonitoredServer here: without its owner the garbage collector would delete the pod.
    const body = { ...built, metadata: { ...built.metadata, ownerReferences: [] } } as unknown as k8s.V1Pod;
    // The IDS alert intake's signing key the pod's env refers to (secretKeyRef), as the operator makes it.
    await core.createNamespacedSecret({ namespace: MAPPER_NS, body: buildIntakeKeySecret(monitoredServer('web-1', NS), MAPPER_NS, randomBytes(32)) as unknown as k8s.V1Secret });
    const created = Date.now();
    await core.createNamespacedPod({ namespace: MAPPER_NS, body });
    const ready = await waitFor(
      async () => {
        const pod = await readPod();
        return pod.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' && pod.status.containerStatuses?.[0]?.containerID?.startsWith('containerd://') ? pod : undefined;
      },
      { timeoutMs: 240_000, intervalMs: 500, description: 'the process-mapper pod Ready (by the kubelet double)' },
    );
    log(`process-mapper pod Ready ${((Date.now() - created) / 1000).toFixed(1)} s after it was created`);
    assert.equal(ready.status?.phase, 'Running');
    assert.equal(ready.status?.podIP, '127.0.0.1');
    const record = runner.get(MAPPER_NS, MAPPER)!;
    assert.ok(record.process?.running);
    assert.equal(readFileCgroup(record.process.pid), record.cgroup.procPath);
    assert.match(record.cgroup.procPath, new RegExp(`pod${ready.metadata!.uid!.replace(/-/g, '_')}\\.slice/cri-containerd-`));
    const healthz = await fetch(`${url()}/healthz`);
    assert.equal(healthz.status, 200, 'Ready follows the real /healthz');

    await guest.waitForBoot();
    for (const line of START_KNOWN_PROCESSES) await guest.console.run(line);
    await waitForGuestPs(guest.console, (rows) => KNOWN_COMMS.every((c) => rows.some((r) => r.comm === c)), 120_000);
    const snapshotAfter = (since: number): Promise<ProcessesResponse> =>
      waitFor(
        async () => {
          const res = (await (await fetch(`${url()}/processes`, { headers: { authorization: `Bearer ${cluster.users.admin.token}` } })).json()) as ProcessesResponse;
          return Date.parse(res.takenAt) > since && res.consistent ? res : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 200, description: 'a fresh consistent snapshot from the mapper' },
      );
    let last: { outside: PsRow[]; inside: PsRow[]; qemuPid: number } | undefined;
    const unreadable: string[] = [];
    for (let attempt = 0; attempt < 8; attempt++) {
      const before = await snapshotAfter(Date.now());
      // The serial console can garble a line now and then (a doubled character while the guest
      // echoes, e.g. "rooot"); such a read is not a view of the guest and counts as one of the attempts.
      const seen = await guestPs(guest.console).catch((err: Error) => err);
      if (seen instanceof Error) {
        unreadable.push(seen.message);
        continue;
      }
      const inside = byPid(seen.filter((r) => !(r.comm === 'ps' && r.ppid === 1)));
      const after = await snapshotAfter(Date.now());
      last = { outside: byPid(after.processes.map(asPsRow)), inside, qemuPid: after.qemuPid };
      if (JSON.stringify(byPid(before.processes.map(asPsRow))) === JSON.stringify(last.outside) && JSON.stringify(last.outside) === JSON.stringify(inside)) break;
    }
    assert.ok(last, `the guest's own ps was readable in at least one attempt: ${unreadable.join('; ')}`);
    assert.equal(last.qemuPid, guest.pid);
    assert.deepEqual(last.outside, last.inside);
    assert.ok(last.outside.some((r) => r.comm === 'log-shipper' && r.uid === 1001));
  });

  it('restarts the container when its process dies, and counts it in the pod status', async () => {
    const record = runner.get(MAPPER_NS, MAPPER)!;
    const pid = record.process!.pid;
    process.kill(pid, 'SIGKILL');
    const pod = await waitFor(
      async () => {
        const p = await readPod();
        const c = p.status?.containerStatuses?.[0];
        return c?.restartCount === 1 && c.ready && runner.get(MAPPER_NS, MAPPER)?.process?.pid !== pid ? p : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500, description: 'the container restarted and Ready again' },
    );
    assert.equal(pod.status?.containerStatuses?.[0]?.lastState?.terminated?.exitCode, 137);
    assert.equal(isAlive(pid), false);
  });

  it('stops the process and removes its cgroup and files when the pod is deleted', async () => {
    const record = runner.get(MAPPER_NS, MAPPER)!;
    const pid = record.process!.pid;
    await core.deleteNamespacedPod({ namespace: MAPPER_NS, name: MAPPER });
    await waitFor(() => (!runner.get(MAPPER_NS, MAPPER) && !isAlive(pid)) || undefined, { timeoutMs: 60_000, description: 'the pod process to stop' });
    assert.equal(existsSync(record.cgroup.path), false);
    assert.equal(existsSync(record.dir), false);
    await waitFor(async () => (await core.listNamespacedPod({ namespace: MAPPER_NS })).items.length === 0 || undefined, { timeoutMs: 60_000, description: 'the pod to be gone' });
    assert.deepEqual(runner.pids(), []);
  });
});

function readFileCgroup(pid: number): string {
  return (
    readFileSync(`/proc/${pid}/cgroup`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'))
      ?.slice(3) ?? ''
  );
}
