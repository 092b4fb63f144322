// The operator survives what production throws at it: SIGKILL at random points, a second replica
// waiting for the lease, and a kube-apiserver restart.
import assert from 'node:assert/strict';
import { OperatorTestEnv, MS, VM, VMI } from '../../testenv/operator/operator-env.ts';
import { reconcilesEndedWell, startOperatorProcess } from '../../testenv/operator/operator-process.ts';
import { monitoredServer, vmTemplate } from '../../testenv/fixtures/monitoredservers.ts';
import { auditRequests, describeRequests } from '../../testenv/cluster/audit-log.ts';
import { waitFor } from '../../testenv/wait.ts';
import * as k8s from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';

const LEASE_NS = 'hyperspector-system';
const LEASE = 'hyperspector-operator';

async function leaseHolder(env: OperatorTestEnv): Promise<string | undefined> {
  const lease = await env.cluster.api(k8s.CoordinationV1Api).readNamespacedLease({ namespace: LEASE_NS, name: LEASE }).catch(() => undefined);
  return lease?.spec?.holderIdentity ?? undefined;
}

/** The lease writes the API server accepted, oldest first: from each, its writer held the lease. */
function leaseTerms(env: OperatorTestEnv): Array<{ at: string; user: string }> {
  return auditRequests(env.cluster.auditLogPath, { writesOnly: true })
    .filter((e) => e.objectRef?.resource === 'leases' && e.objectRef.namespace === LEASE_NS && (e.objectRef.name === LEASE || e.verb === 'create') && (e.responseStatus?.code ?? 0) < 300)
    .map((e) => ({ at: e.requestReceivedTimestamp, user: e.user.username }))
    .sort((x, y) => (x.at < y.at ? -1 : x.at > y.at ? 1 : 0));
}

/** Who held the lease when a request was received: the writer of the last accepted lease write before it. */
function holderAt(terms: Array<{ at: string; user: string }>, at: string): string | undefined {
  let holder: string | undefined;
  for (const t of terms) {
    if (t.at >= at) break;
    holder = t.user;
  }
  return holder;
}

async function allReady(env: OperatorTestEnv, namespace: string, count: number): Promise<boolean> {
  const items = await env.list(MS, namespace);
  const ready = items.filter((m) => env.condition(m, 'Ready')?.status === 'True');
  return items.length === count && ready.length === count;
}

describe('operator resilience (real control plane, KubeVirt’s own controllers)', function () {
  let env: OperatorTestEnv;

  before(async function () {
    env = await OperatorTestEnv.start(3);
  });

  after(async function () {
    await env?.stop();
  });

  it('survives SIGKILL at random points while 50 MonitoredServers converge: one IDS VM each, nothing orphaned', async function () {
    const ns = 'chaos';
    await env.namespace(ns);
    for (let i = 0; i < 50; i++) await env.createMonitoredServer(monitoredServer(`srv-${i}`, ns));
    // Seeded, so a failure can be replayed.
    let seed = Number(process.env.CHAOS_SEED ?? 20261129);
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let round = 0; round < 4; round++) {
      const operator = await startOperatorProcess(env.cluster, { user: 'operator', extraArgs: ['--lease-duration=4s', '--renew-deadline=3s', '--retry-period=500ms'] });
      const lifetimeMs = 500 + Math.floor(random() * 3500);
      const started = Date.now();
      await waitFor(() => Date.now() - started >= lifetimeMs || undefined, { timeoutMs: lifetimeMs + 1000, intervalMs: 50, description: 'the chosen kill point' });
      await operator.kill();
      // Midway, delete a few and change a few, so the restarted operator has catching up to do.
      if (round === 1) for (const i of [3, 4, 5]) await env.delete(MS, ns, `srv-${i}`);
      if (round === 2) for (const i of [6, 7]) await env.mergePatch(MS, ns, `srv-${i}`, { spec: { ids: { template: vmTemplate({ app: 'x', v: '2' }, '3Gi') } } });
    }
    const final = await startOperatorProcess(env.cluster, { user: 'operator', extraArgs: ['--lease-duration=4s', '--renew-deadline=3s', '--retry-period=500ms'] });
    try {
      await waitFor(() => allReady(env, ns, 47), { timeoutMs: 240_000, intervalMs: 1000, description: '47 MonitoredServers Ready' });
      const msNames = new Set((await env.list(MS, ns)).map((m) => m.metadata.name));
      const vms = await env.list(VM, ns);
      const idsByOwner = new Map<string, number>();
      const retained = new Set(['srv-3-server', 'srv-4-server', 'srv-5-server']);
      for (const vm of vms) {
        const owner = vm.metadata.labels?.['hyperspector.io/monitored-server'];
        if (retained.has(vm.metadata.name!)) continue; // kept by deletionPolicy Retain, checked below
        assert.ok(owner, `VM ${vm.metadata.name} is not HyperSpector's`);
        assert.ok(msNames.has(owner), `VM ${vm.metadata.name} belongs to a MonitoredServer that is gone`);
        if (vm.metadata.labels?.['hyperspector.io/role'] === 'ids') {
          idsByOwner.set(owner, (idsByOwner.get(owner) ?? 0) + 1);
          assert.ok(msNames.has(owner), `orphaned IDS VM ${vm.metadata.name}`);
        }
      }
      for (const name of msNames) assert.equal(idsByOwner.get(name!), 1, `MonitoredServer ${name} has ${idsByOwner.get(name!) ?? 0} IDS VMs`);
      assert.equal([...idsByOwner.values()].reduce((a, b) => a + b, 0), 47);
      // The deleted ones left nothing but their retained server VMs, unmarked.
      for (const i of [3, 4, 5]) {
        await env.waitGone(VM, ns, `srv-${i}-ids`);
        assert.equal((await env.get(VM, ns, `srv-${i}-server`))?.metadata.labels?.['hyperspector.io/monitored-server'], undefined);
      }
      for (const i of [6, 7]) {
        const vmi = await env.get(VMI, ns, `srv-${i}-ids`);
        assert.equal(vmi?.spec.domain.memory.guest, '3Gi', `srv-${i}'s IDS VM runs its new template`);
      }
      // Every process-mapper pod belongs to an existing MonitoredServer, one each.
      const mappers = (await env.core.listNamespacedPod({ namespace: 'hyperspector-system', labelSelector: `hyperspector.io/role=process-mapper,hyperspector.io/monitored-server-namespace=${ns}` })).items.filter((p) => !p.metadata?.deletionTimestamp);
      assert.deepEqual(mappers.map((p) => p.metadata?.labels?.['hyperspector.io/monitored-server']).sort(), [...msNames].sort());
      // Every VMI belongs to an existing VM.
      const vmNames = new Set(vms.map((v) => v.metadata.name));
      for (const vmi of await env.list(VMI, ns)) assert.ok(vmNames.has(vmi.metadata.name), `orphaned VMI ${vmi.metadata.name}`);
    } finally {
      await final.stop();
    }
  });

  it('writes nothing when it starts again (a restart, a new leader) and finds the 47 MonitoredServers converged', async function () {
    const ns = 'chaos';
    await waitFor(() => allReady(env, ns, 47) || undefined, { timeoutMs: 60_000, description: 'the 47 MonitoredServers Ready' });
    const since = new Date();
    const operator = await startOperatorProcess(env.cluster, { user: 'operator' });
    try {
      // Its first term reconciles every MonitoredServer once (the caches list every child then,
      // watches only later): each reconcile must find nothing to do.
      const reconciles = () => reconcilesEndedWell(operator);
      await waitFor(async () => ((await reconciles()) >= 47 ? true : undefined), { timeoutMs: 90_000, intervalMs: 250, description: 'every MonitoredServer reconciled by the new process' });
      const writes = () =>
        auditRequests(env.cluster.auditLogPath, { username: env.cluster.users.operator.name, since, writesOnly: true }).filter((e) => e.objectRef?.resource !== 'leases');
      // And the reconciles its own watch events bring (none: nothing was written).
      await waitFor(async () => Date.now() - since.getTime() >= 15_000 || undefined, { timeoutMs: 20_000, intervalMs: 500, description: '15 s after the start' });
      assert.equal(writes().length, 0, `the new process wrote for converged MonitoredServers:\n${describeRequests(writes())}`);
      console.log(`      ${await reconciles()} reconciles, 0 writes`);
    } finally {
      await operator.stop();
    }
  });

  it('runs one leader among two replicas; the standby writes nothing and takes over within the lease duration', async function () {
    const ns = 'leader';
    await env.namespace(ns);
    const a = await startOperatorProcess(env.cluster, { user: 'operator' });
    await waitFor(async () => (await leaseHolder(env)) !== undefined || undefined, { timeoutMs: 30_000, description: 'a leader' });
    const b = await startOperatorProcess(env.cluster, { user: 'operatorB' });
    const processes = [a, b];
    try {
      const since = new Date();
      await env.createMonitoredServer(monitoredServer('ha-1', ns));
      await env.waitForCondition(ns, 'ha-1', 'Ready', 'True');
      const holder = (await leaseHolder(env))!;
      // The leader is the replica whose /metrics says so; the Lease and the audit log agree.
      const leading = async (p: typeof a) => /leader_election_master_status\{name="hyperspector-operator"\} 1\b/.test(await p.metrics());
      const [aLeads, bLeads] = [await leading(a), await leading(b)];
      assert.ok(aLeads !== bLeads, `exactly one replica leads (a: ${aLeads}, b: ${bLeads})`);
      const [leader, standby, leaderUser, standbyUser] = aLeads
        ? [a, b, env.cluster.users.operator.name, env.cluster.users.operatorB.name]
        : [b, a, env.cluster.users.operatorB.name, env.cluster.users.operator.name];
      assert.ok(holder, 'the Lease names the leader');
      const leaseWrites = () => auditRequests(env.cluster.auditLogPath, { since, writesOnly: true }).filter(
          (e) => e.objectRef?.resource === 'leases' && e.objectRef.namespace === LEASE_NS && e.objectRef.name === LEASE,
        );
      await waitFor(() => leaseWrites().length > 0 || undefined, { timeoutMs: 15_000, description: 'a lease renewal' });
      const renewers = new Set(leaseWrites().map((e) => e.user.username));
      assert.deepEqual([...renewers], [leaderUser], 'only the leader renews the Lease');
      const standbyWrites = auditRequests(env.cluster.auditLogPath, { username: standbyUser, since, writesOnly: true });
      assert.equal(standbyWrites.length, 0, `the standby wrote:\n${describeRequests(standbyWrites)}`);

      // Kill the leader: the standby takes over within the lease duration (15 s) plus a retry
      // period, and converges a change made meanwhile.
      const killedAt = Date.now();
      await leader.kill();
      await env.createMonitoredServer(monitoredServer('ha-2', ns));
      await waitFor(async () => ((await leaseHolder(env)) !== holder ? true : undefined), { timeoutMs: 25_000, intervalMs: 200, description: 'the standby to take the lease' });
      const takeoverMs = Date.now() - killedAt;
      // Lease duration 15 s, plus one retry period (2 s) and request latency on a loaded machine.
      assert.ok(takeoverMs <= 15_000 + 2_000 + 3_000, `takeover took ${takeoverMs} ms`);
      await env.waitForCondition(ns, 'ha-2', 'Ready', 'True', undefined, 60_000);
      assert.ok(standby.process.running);
    } finally {
      for (const p of processes) await p.stop();
    }
  });

  it('split brain: a leader frozen (SIGSTOP) past its renew deadline writes nothing after the standby took over, once resumed (SIGCONT)', async function () {
    const ns = 'split-brain';
    await env.namespace(ns);
    // Short terms so the freeze is quick; both replicas run with the same timing, as a Deployment does.
    const timing = ['--lease-duration=8s', '--renew-deadline=5s', '--retry-period=1s'];
    const a = await startOperatorProcess(env.cluster, { user: 'operator', extraArgs: timing });
    await waitFor(async () => (await leaseHolder(env)) !== undefined || undefined, { timeoutMs: 30_000, description: 'a leader' });
    const b = await startOperatorProcess(env.cluster, { user: 'operatorB', extraArgs: timing });
    const started = new Date();
    let frozen: typeof a | undefined;
    try {
      const leading = async (p: typeof a) => /leader_election_master_status\{name="hyperspector-operator"\} 1\b/.test(await p.metrics());
      const aLeads = await leading(a);
      assert.ok(aLeads !== (await leading(b)), 'exactly one replica leads');
      const [leader, standby] = aLeads ? [a, b] : [b, a];
      const [leaderUser, standbyUser] = aLeads
        ? [env.cluster.users.operator.name, env.cluster.users.operatorB.name]
        : [env.cluster.users.operatorB.name, env.cluster.users.operator.name];
      const holder = await leaseHolder(env);
      const leaderWrites = () => auditRequests(env.cluster.auditLogPath, { username: leaderUser, since: started, writesOnly: true }).filter((e) => e.objectRef?.resource !== 'leases');

      // Freeze the leader while it is busy, so it has reconciles in flight, keys queued and requeue
      // timers pending: everything that could write once it runs again.
      const names = Array.from({ length: 6 }, (_, i) => `sb-${i}`);
      for (const name of names) await env.createMonitoredServer(monitoredServer(name, ns));
      await waitFor(() => leaderWrites().length >= 6 || undefined, { timeoutMs: 60_000, intervalMs: 50, description: 'the leader at work' });
      process.kill(leader.pid, 'SIGSTOP');
      frozen = leader;
      const writesBeforeFreeze = leaderWrites().length;

      // The standby takes the lease once it has not seen it renewed for the lease duration, and
      // carries on where the frozen leader stopped, including changes made now: the frozen
      // leader's watches hold them until it resumes.
      await waitFor(async () => ((await leaseHolder(env)) !== holder ? true : undefined), { timeoutMs: 30_000, intervalMs: 200, description: 'the standby to take the lease' });
      await env.createMonitoredServer(monitoredServer('sb-frozen', ns));
      await env.mergePatch(MS, ns, 'sb-1', { metadata: { labels: { touched: 'while-frozen' } } });
      for (const name of [...names, 'sb-frozen']) {
        await waitFor(async () => (await env.get(VM, ns, `${name}-ids`)) !== undefined || undefined, { timeoutMs: 120_000, description: `the IDS VM of ${name}` });
      }

      // Resume the old leader. Its renew-deadline timer is long overdue, but watch events and
      // requeue timers may run first: none of them may turn into a write.
      process.kill(leader.pid, 'SIGCONT');
      frozen = undefined;
      const leaderLog = () =>
        readFileSync(leader.process.logFile, 'utf8')
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as { message: string; identity?: string });
      await waitFor(() => leaderLog().some((l) => l.message === 'Drained the lost term; standing by for the lease') || undefined, {
        timeoutMs: 30_000,
        description: 'the old leader to drain its lost term',
      });
      // One more MonitoredServer after it resumed: its caches see it, only the new leader acts.
      await env.createMonitoredServer(monitoredServer('sb-after', ns));
      await waitFor(async () => (await env.get(VM, ns, 'sb-after-ids')) !== undefined || undefined, { timeoutMs: 120_000, description: 'the IDS VM of sb-after' });

      const standbyWrites = auditRequests(env.cluster.auditLogPath, { username: standbyUser, since: started, writesOnly: true });
      assert.ok(standbyWrites.length > 0, 'the standby took over and wrote');
      const firstStandbyWrite = standbyWrites.map((e) => e.requestReceivedTimestamp).sort()[0]!;
      // No split brain: every write either replica made was received while the lease was its own, by
      // the lease writes the API server accepted (a replica writes the lease only while it holds it
      // or once it expired). On a loaded machine the new leader may in turn miss its renew deadline
      // and the old one take the lease back: its writes after that are its own term's.
      const terms = leaseTerms(env);
      const outOfTerm = auditRequests(env.cluster.auditLogPath, { since: started, writesOnly: true }).filter(
        (e) => (e.user.username === leaderUser || e.user.username === standbyUser) && e.objectRef?.resource !== 'leases' && holderAt(terms, e.requestReceivedTimestamp) !== e.user.username,
      );
      // What the old leader logged around such a write, for the failure message.
      const around = (p: typeof a, at: string) =>
        readFileSync(p.process.logFile, 'utf8')
          .split('\n')
          .filter((l) => {
            const t = /"timestamp":"([^"]+)"/.exec(l)?.[1];
            return t !== undefined && Math.abs(Date.parse(t) - Date.parse(at)) <= 1500;
          })
          .map((l) => l.slice(0, 400));
      assert.equal(
        outOfTerm.length,
        0,
        `${outOfTerm.map((e) => `old leader's log around ${e.requestReceivedTimestamp}:\n${around(leader, e.requestReceivedTimestamp).join('\n')}`).join('\n')}\nwrites received while the other replica held the lease (leader ${leaderUser}, standby ${standbyUser}; the standby's first write ${firstStandbyWrite}):\n${describeRequests(outOfTerm)}\nlease writes since the test began:\n${terms.filter((t) => t.at >= started.toISOString()).map((t) => `${t.at} ${t.user}`).join('\n')}`,
      );
      const reacquired = terms.find((t) => t.user === leaderUser && t.at > firstStandbyWrite)?.at;
      const lateWrites = auditRequests(env.cluster.auditLogPath, { username: leaderUser, since: started, writesOnly: true }).filter(
        (e) => e.objectRef?.resource !== 'leases' && e.requestReceivedTimestamp >= firstStandbyWrite && (reacquired === undefined || e.requestReceivedTimestamp < reacquired),
      );
      assert.equal(lateWrites.length, 0, `the old leader wrote after the standby's first write (${firstStandbyWrite}):\n${describeRequests(lateWrites)}`);
      assert.ok(writesBeforeFreeze >= 6, 'the old leader did write while it led');

      // What the old leader did, in its own words: lost the term, aborted, drained, and only then
      // stood by; no worker pool started in between. It keeps running as the standby.
      const messages = leaderLog().map((l) => l.message);
      const lost = messages.indexOf('Lost leadership; aborted reconciles in flight');
      const drained = messages.indexOf('Drained the lost term; standing by for the lease');
      assert.ok(lost >= 0 && drained > lost, `lost (${lost}) before drained (${drained})`);
      assert.ok(!messages.slice(lost, drained).includes('Starting workers'), 'no new pool while the old one drained');
      assert.ok(leader.process.running, 'the old leader keeps running as a standby');
      // One of them leads now: the standby, unless it lost the lease in turn (reported, see above).
      const [oldLeads, newLeads] = [await leading(leader), await leading(standby)];
      assert.ok(oldLeads !== newLeads, `exactly one replica leads (old leader: ${oldLeads}, standby: ${newLeads})`);
      if (reacquired === undefined) assert.equal(newLeads, true, 'the standby leads');
      const aborted = messages.filter((m) => m === 'Aborted reconcile: the term ended while it ran').length;
      console.log(
        `      old leader: ${writesBeforeFreeze} writes before the freeze, ${aborted} reconciles aborted on resume, 0 writes after the standby's first write` +
          (reacquired ? ` until it took the lease back at ${reacquired} (the standby missed its renew deadline)` : ''),
      );
    } finally {
      if (frozen) process.kill(frozen.pid, 'SIGCONT');
      for (const p of [a, b]) await p.stop();
    }
  });

  it('recovers its watches after a kube-apiserver restart and converges changes made during and after the outage', async function () {
    const ns = 'outage';
    await env.namespace(ns);
    // The operator talks to the first API server only; a second one on the same etcd lets the
    // test change the cluster while the first is down.
    const second = await env.cluster.startSecondApiServer();
    const other = second.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    const operator = await startOperatorProcess(env.cluster, { user: 'operator' });
    try {
      await env.createMonitoredServer(monitoredServer('o-1', ns));
      await env.waitForCondition(ns, 'o-1', 'Ready', 'True');

      await env.cluster.stopApiServer();
      // During the outage: a new MonitoredServer and a template change, through the other server.
      await other.createNamespacedCustomObject({ ...MS, namespace: ns, body: monitoredServer('o-2', ns) });
      await other.patchNamespacedCustomObject(
        { ...MS, namespace: ns, name: 'o-1', body: { spec: { ids: { template: vmTemplate({ app: 'o', v: '2' }, '4Gi') } } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      );
      assert.ok(operator.process.running, 'the operator survives the outage');
      await env.cluster.startApiServerAgain();
      await second.stop();

      await env.waitForCondition(ns, 'o-2', 'Ready', 'True', undefined, 120_000);
      await waitFor(async () => (await env.get(VMI, ns, 'o-1-ids'))?.spec?.domain?.memory?.guest === '4Gi' || undefined, {
        timeoutMs: 120_000,
        description: 'o-1 IDS VM restarted with the template changed during the outage',
      });
      // After the outage.
      await env.delete(MS, ns, 'o-1');
      await env.waitGone(MS, ns, 'o-1', 60_000);
      await env.waitGone(VM, ns, 'o-1-ids', 60_000);
      assert.ok(operator.process.running, 'the operator was never restarted');
    } finally {
      await operator.stop();
    }
  });
});
