// End to end on a node that runs real guests: from a MonitoredServer applied to the cluster, the
// operator's process-mapper pod runs as a real process, finds the server VMI's real QEMU guest
// and serves its process table, read from guest memory, equal to the guest's own `ps`. Deleting
// the MonitoredServer stops every process and removes every namespace and cgroup it made. A program
// started in the guest after the baseline window raises an alert that reaches the MonitoredServer
// as a Warning Event and in status.alerts, posted by the mapper under its own service account.
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import type { GuestProcess } from '../../src/introspection/process-info.ts';
import { createKubeApi } from '../../src/kube/client/rest.ts';
import { PROCESS_MAPPER_PORT } from '../../src/builders/process-mapper-pod.ts';
import { processBaselineName, processMapperPodName } from '../../src/builders/names.ts';
import { asPsRow, guestPs, INTRUDER_COMM, KNOWN_COMMS, START_INTRUDER, START_KNOWN_PROCESSES, waitForGuestPs, type PsRow } from '../../testenv/guest/scenario.ts';
import { testGuestAssets } from '../../testenv/guest/test-guest.ts';
import { monitoredServer, vmTemplate } from '../../testenv/fixtures/monitoredservers.ts';
import { OperatorTestEnv, MS, VM, VMI } from '../../testenv/operator/operator-env.ts';
import { startOperatorProcess, type OperatorProcess } from '../../testenv/operator/operator-process.ts';
import { RealGuestNodes } from '../../testenv/real-guests/real-guest-nodes.ts';
import { waitFor } from '../../testenv/wait.ts';
import { ourNamespaces, podCgroups } from '../../testenv/real-guests/host-leftovers.ts';
import { isAlive } from '../../testenv/process-alive.ts';

const NS = 'shop';
const OPERATOR_NS = 'hyperspector-system';
const MAPPER = processMapperPodName(monitoredServer('web-1', NS));
const BASELINE = processBaselineName(monitoredServer('web-1', NS));
const log = (line: string) => process.stderr.write(`[e2e] ${line}\n`);

interface ProcessesResponse {
  takenAt: string;
  consistent: boolean;
  qemuPid: number;
  processes: GuestProcess[];
}

interface AlertEventObject {
  type?: string;
  reason?: string;
  note?: string;
  reportingController?: string;
  regarding?: { kind?: string; name?: string };
}

const byPid = (rows: PsRow[]) => [...rows].sort((a, b) => a.pid - b.pid);
/** A row without the work a work-queue worker last ran ("kworker/0:2-events" → "kworker/0:2"). */
const withoutWork = (r: PsRow): PsRow => {
  if (r.ppid !== 2 || !r.comm.startsWith('kworker/')) return r;
  const worker = r.comm.replace(/[-+].*$/, '');
  return { ...r, comm: worker, args: `[${worker}]` };
};


describe('end to end on a real-guest node: process mapping from a MonitoredServer', function () {
  this.timeout(900_000);
  const nodes = new RealGuestNodes({ log });
  const backend = nodes.backend;
  let env: OperatorTestEnv;
  let operator: OperatorProcess;
  // The mapper's API wants a token allowed to get monitoredservers/processes: the cluster admin's.
  const auth = () => ({ headers: { authorization: `Bearer ${env.cluster.users.admin.token}` } });
  const seenPodUids = new Set<string>();

  before(async function () {
    const assets = testGuestAssets();
    env = await OperatorTestEnv.start(1, undefined, { guestBackend: backend, log });
    nodes.attach(env.cluster.kubeConfig, env.cluster.dir);
    await env.namespace(NS);
    // The cluster's default kernel profiles, as `kubectl-hyperspector profile build` makes them.
    await env.core.createNamespacedConfigMap({
      namespace: OPERATOR_NS,
      body: { metadata: { name: 'hyperspector-kernel-profiles' }, data: { [`debian-${assets.profile.kernel.release}.json`]: JSON.stringify(assets.profile) } },
    });
    operator = await startOperatorProcess(env.cluster, { user: 'operator' });
  });

  after(async function () {
    await operator?.stop();
    await env?.stop();
    await nodes.stop();
  });

  it('lists the server guest’s processes from its memory, equal to the guest’s own ps; deleting the MonitoredServer leaves nothing behind', async function () {
    const server = vmTemplate({ app: 'web-1' }, '1Gi');
    // KubeVirt's bridge binding on the pod network (the launcher namespace is built that way).
    server.spec.template!.spec!.domain.devices!.interfaces = [{ name: 'default', bridge: {} }];
    const applied = Date.now();
    await env.createMonitoredServer(monitoredServer('web-1', NS, { server: { template: server, deletionPolicy: 'Delete' }, processMapping: { baselineWindowSeconds: 30 } }));

    // The mapper pod runs for real, beside the server's real guest.
    const mapper = await waitFor(() => nodes.pods.get(OPERATOR_NS, MAPPER)?.process?.running && nodes.pods.get(OPERATOR_NS, MAPPER), {
      timeoutMs: 300_000,
      intervalMs: 500,
      description: 'the process-mapper pod to run as a process',
    });
    const url = `http://${nodes.pods.address(OPERATOR_NS, MAPPER, PROCESS_MAPPER_PORT)}`;
    // The operator creates the mapper once the server VMI has a node, before it runs: the mapper
    // waits for the guest (and retries attaching until its kernel is up).
    const guest = await waitFor(() => backend.guest(NS, 'web-1-server'), { timeoutMs: 300_000, intervalMs: 500, description: 'the server VMI to be a real guest' });
    const first = await waitFor(
      async () => {
        const res = await fetch(`${url}/processes`, auth()).catch(() => undefined);
        const body = res?.ok ? ((await res.json()) as ProcessesResponse) : undefined;
        return body && body.processes.length > 0 ? body : undefined;
      },
      { timeoutMs: 300_000, intervalMs: 500, description: `the process mapper at ${url} to list the guest's processes` },
    );
    const firstListMs = Date.now() - applied;
    log(`first process list ${(firstListMs / 1000).toFixed(1)} s after apply (${first.processes.length} processes, QEMU pid ${first.qemuPid})`);
    assert.equal(first.qemuPid, guest.pid, 'the mapper reads the server guest, not the IDS guest');
    await env.waitForCondition(NS, 'web-1', 'ProcessMapping', 'True', 'Mapping', 120_000);
    const pod = await env.core.readNamespacedPod({ namespace: OPERATOR_NS, name: MAPPER });
    assert.equal(pod.status?.containerStatuses?.[0]?.ready, true, 'kubelet-style readiness from the real /healthz');
    seenPodUids.add(pod.metadata!.uid!);
    seenPodUids.add(guest.podUid);

    // Known processes in the guest; the mapper's table must equal the guest's own ps.
    await guest.waitForBoot();
    for (const line of START_KNOWN_PROCESSES) await guest.console.run(line);
    await waitForGuestPs(guest.console, (rows) => KNOWN_COMMS.every((c) => rows.some((r) => r.comm === c)), 120_000);
    const snapshotAfter = async (since: number): Promise<ProcessesResponse> =>
      waitFor(
        async () => {
          const body = (await (await fetch(`${url}/processes`, auth())).json()) as ProcessesResponse;
          return Date.parse(body.takenAt) > since && body.consistent ? body : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 200, description: 'a fresh consistent snapshot from the mapper' },
      );
    // A work-queue worker's name carries the work it last ran ("kworker/0:2-events" then
    // "kworker/0:2-mm_percpu_wq" a second later, wq_worker_comm()), so on a busy guest the two views
    // may never agree on it in the same instant: every other column must be equal in one quiet
    // attempt, and each name must match the guest's ps against one of the two bracketing snapshots
    // in one of the attempts (as test/host/introspection/guest-process-table.test.ts does).
    let last: { outside: PsRow[]; inside: PsRow[] } | undefined;
    const matchedOnce = new Set<number>();
    for (let attempt = 0; attempt < 8; attempt++) {
      const before = await snapshotAfter(Date.now());
      // The serial console can garble a line now and then (a doubled character while the guest
      // echoes); such a read is not a view of the guest and counts as one of the bounded attempts.
      const seen = await guestPs(guest.console).catch((err: Error) => err);
      if (seen instanceof Error) {
        log(`guest ps unreadable on attempt ${attempt + 1}: ${seen.message}`);
        continue;
      }
      const inside = byPid(seen.filter((r) => !(r.comm === 'ps' && r.ppid === 1)));
      const after = await snapshotAfter(Date.now());
      const outside = byPid(after.processes.map(asPsRow));
      const earlier = byPid(before.processes.map(asPsRow));
      const guestNames = new Map(inside.map((r) => [r.pid, r.comm]));
      for (const r of [...earlier, ...outside]) if (guestNames.get(r.pid) === r.comm) matchedOnce.add(r.pid);
      const quiet = isDeepStrictEqual(earlier.map(withoutWork), outside.map(withoutWork));
      if (quiet || !last) last = { outside, inside };
      if (quiet && isDeepStrictEqual(outside, inside)) break;
    }
    assert.ok(last, 'the guest’s own ps was readable in at least one attempt');
    assert.deepEqual(last.outside.map(withoutWork), last.inside.map(withoutWork));
    const guestNames = new Map(last.inside.map((r) => [r.pid, r.comm]));
    const neverMatched = last.outside.filter((r) => !matchedOnce.has(r.pid)).map((r) => `${r.pid}: ours ${JSON.stringify(r.comm)}, the guest's ${JSON.stringify(guestNames.get(r.pid))}`);
    assert.deepEqual(neverMatched, [], 'each name matched the guest’s ps in one of the attempts');
    assert.ok(last.outside.some((r) => r.comm === 'batch-worker' && r.uid === 1000 && r.args === '/bin/sh /usr/bin/batch-worker --queue reports --nice 5'));

    // An alert: a program the baseline never saw, started once the learning window is over.
    await waitFor(async () => {
      const body = (await (await fetch(`${url}/processes`, auth())).json()) as ProcessesResponse & { baselineLearning: boolean };
      return body.baselineLearning === false || undefined;
    }, { timeoutMs: 120_000, intervalMs: 500, description: 'the baseline learning window to end' });
    const started = Date.now();
    await guest.console.run(START_INTRUDER);
    const event = await waitFor(async () => {
      const list = (await createKubeApi(env.cluster.kubeConfig).request({ method: 'GET', path: `/apis/events.k8s.io/v1/namespaces/${NS}/events` })) as { items: AlertEventObject[] };
      return list.items.find((e) => e.regarding?.kind === 'MonitoredServer' && e.regarding.name === 'web-1' && e.reason === 'ProcessOutsideBaseline' && e.note?.includes(INTRUDER_COMM));
    }, { timeoutMs: 60_000, intervalMs: 250, description: `a ProcessOutsideBaseline Warning Event on MonitoredServer ${NS}/web-1 naming ${INTRUDER_COMM}` });
    log(`alert Event ${((Date.now() - started) / 1000).toFixed(1)} s after the program started in the guest: ${event.note}`);
    assert.equal(event.type, 'Warning');
    assert.equal(event.reportingController, 'hyperspector-process-mapper');
    assert.match(event.note ?? '', /uid 0, parents \d+ \S+/, 'the note names the user and the parent chain');
    const alerts = await waitFor(async () => {
      const ms = await env.get(MS, NS, 'web-1');
      return (ms?.status?.alerts?.recent ?? []).some((a: { comm?: string }) => a.comm === INTRUDER_COMM) ? ms!.status.alerts : undefined;
    }, { timeoutMs: 30_000, intervalMs: 250, description: 'status.alerts to list the alert' });
    assert.ok(alerts.count >= 1 && alerts.lastAlertTime, JSON.stringify(alerts));

    // Pause through KubeVirt's API (virt-api → the virt-handler stand-in → QMP stop): the guest
    // stops, and its process table can still be read from its memory; unpause resumes it.
    const subresource = (verb: string) => createKubeApi(env.cluster.kubeConfig).request({ method: 'PUT', path: `/apis/subresources.kubevirt.io/v1/namespaces/${NS}/virtualmachineinstances/web-1-server/${verb}`, body: {} });
    await subresource('pause');
    await waitFor(async () => (await guest.status()) === 'paused' || undefined, { timeoutMs: 60_000, description: 'the server guest paused (QMP query-status)' });
    const whilePaused = await snapshotAfter(Date.now());
    assert.ok(whilePaused.processes.some((p) => p.comm === 'batch-worker'), 'the table of a paused guest is read from its memory');
    await subresource('unpause');
    await waitFor(async () => (await guest.status()) === 'running' || undefined, { timeoutMs: 60_000, description: 'the server guest running again' });

    // A reboot does not reopen the learning window: the baseline was stored per MonitoredServer;
    // the guest restarts (a new VMI: a new mapper pod), a program is started at boot, before the
    // new mapper attaches, and it alerts at once.
    const stored = await waitFor(async () => (await env.core.readNamespacedConfigMap({ namespace: OPERATOR_NS, name: BASELINE }).catch(() => undefined))?.data, {
      timeoutMs: 30_000, intervalMs: 500, description: `the stored baseline ConfigMap ${OPERATOR_NS}/${BASELINE}`,
    });
    const identities = JSON.parse(stored['identities.json'] ?? '[]') as string[];
    assert.ok(identities.some((i) => i.includes('batch-worker')) && !identities.some((i) => i.includes(INTRUDER_COMM)), `the stored baseline knows the server's programs, not the intruder: ${identities.join(' ')}`);
    const oldVmiUid = guest.vmiUid;
    const rebootedAt = new Date();
    await env.delete(VMI, NS, 'web-1-server');
    const rebooted = await waitFor(() => { const g = backend.guest(NS, 'web-1-server'); return g && g.vmiUid !== oldVmiUid ? g : undefined; }, { timeoutMs: 300_000, intervalMs: 500, description: 'the server guest to boot again (a new VMI)' });
    await rebooted.waitForBoot();
    await rebooted.console.run(START_INTRUDER);
    const atBoot = await waitFor(async () => {
      const list = (await createKubeApi(env.cluster.kubeConfig).request({ method: 'GET', path: `/apis/events.k8s.io/v1/namespaces/${NS}/events` })) as { items: Array<AlertEventObject & { eventTime?: string; metadata?: { creationTimestamp?: string } }> };
      return list.items.find((e) => e.reason === 'ProcessOutsideBaseline' && e.note?.includes(INTRUDER_COMM) && new Date(e.metadata?.creationTimestamp ?? 0) >= new Date(Math.floor(rebootedAt.getTime() / 1000) * 1000) && e.regarding?.name === 'web-1');
    }, { timeoutMs: 180_000, intervalMs: 500, description: `a ProcessOutsideBaseline Event for ${INTRUDER_COMM} started at boot after the reboot` });
    log(`after the reboot: ${INTRUDER_COMM} started at boot alerted ${((Date.now() - rebootedAt.getTime()) / 1000).toFixed(1)} s after the VMI was deleted: ${atBoot.note}`);
    const newMapper = await waitFor(() => nodes.pods.list().find((r) => r.process?.running && r.key === `${OPERATOR_NS}/${MAPPER}` && r.process.pid !== mapper.process!.pid), { timeoutMs: 60_000, description: 'the new process-mapper pod' });
    const learning = (await (await fetch(`http://${nodes.pods.address(OPERATOR_NS, MAPPER, PROCESS_MAPPER_PORT)}/processes`, auth())).json()) as { baselineLearning: boolean };
    assert.equal(learning.baselineLearning, false, 'the new mapper does not learn anew');

    // Deleting the MonitoredServer: every process, namespace and cgroup goes (the stored baseline too).
    const pids = [mapper.process!.pid, newMapper.process!.pid, ...backend.list().map((g) => g.pid)];
    const launcherNamespaces = backend.list().map((g) => g.launcher.ns.name);
    for (const g of backend.list()) seenPodUids.add(g.podUid);
    assert.equal(backend.list().length, 2, 'the server and the IDS VMI are real guests');
    await env.delete(MS, NS, 'web-1');
    await env.waitGone(MS, NS, 'web-1', 180_000);
    await env.waitGone(VM, NS, 'web-1-server', 180_000);
    await waitFor(() => (backend.list().length === 0 && nodes.pods.list().length === 0 && pids.every((p) => !isAlive(p))) || undefined, {
      timeoutMs: 180_000,
      intervalMs: 500,
      description: `every process of web-1 to stop (left: guests ${backend.list().map((g) => g.name).join(',')}, pods ${nodes.pods.list().map((r) => r.key).join(',')})`,
    });
    for (const name of launcherNamespaces) assert.ok(!ourNamespaces(backend.network.prefix).includes(name), `${name} is gone`);
    assert.deepEqual(podCgroups([...seenPodUids]), [], 'no pod cgroup left');
    await waitFor(async () => (await env.core.readNamespacedConfigMap({ namespace: OPERATOR_NS, name: BASELINE }).then(() => undefined, () => true)), { timeoutMs: 60_000, description: 'the stored baseline deleted with the MonitoredServer' });
  });

  it('leaves no namespace or cgroup of the nodes once the world is stopped', async function () {
    const nodeNamespaces = backend.network.namespaceNames();
    assert.ok(nodeNamespaces.length >= 2, 'the node and the underlay had namespaces');
    await operator.stop();
    await env.stop();
    await nodes.stop();
    assert.deepEqual(ourNamespaces(backend.network.prefix), []);
    assert.deepEqual(podCgroups([...seenPodUids]), []);
  });
});
