// The operator against KubeVirt's own controllers: behaviours a simulator hid (restart semantics,
// live updates, a pending restart of the user's server, a teardown KubeVirt cannot finish, releasing
// a VM's template labels).
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { OperatorTestEnv, useOperatorEnv, MS, VM, VMI } from '../../testenv/operator/operator-env.ts';
import { monitoredServer, vmTemplate } from '../../testenv/fixtures/monitoredservers.ts';
import { auditRequests, describeRequests, type AuditEvent } from '../../testenv/cluster/audit-log.ts';
import { waitFor } from '../../testenv/wait.ts';

const NS = 'kv';
/** The operator's --not-ready-recheck in the tests (testenv/operator/operator-process.ts). */
const NOT_READY_RECHECK_MS = 5_000;

describe('MonitoredServer operator on KubeVirt’s own controllers', function () {
  const world = useOperatorEnv(NS);
  let env: OperatorTestEnv;
  before(() => {
    env = world.env();
  });

  const operatorVmiDeletes = (name: string, since: Date) =>
    auditRequests(env.cluster.auditLogPath, { username: env.cluster.users.operator.name, since }).filter(
      (e) => e.verb === 'delete' && e.objectRef?.resource === 'virtualmachineinstances' && e.objectRef?.name === name,
    );

  it('reaches Ready in a namespace that enforces the restricted Pod Security level (the process mapper runs in the operator’s namespace)', async function () {
    const RESTRICTED = 'kv-restricted';
    await env.namespace(RESTRICTED);
    const core = env.cluster.api(k8s.CoreV1Api);
    await core.patchNamespace({ name: RESTRICTED, body: { metadata: { labels: { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest' } } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    // The API server enforces it: a privileged pod is refused there.
    await assert.rejects(
      core.createNamespacedPod({ namespace: RESTRICTED, body: { metadata: { name: 'root-probe' }, spec: { containers: [{ name: 'c', image: 'busybox', securityContext: { privileged: true } }] } } }),
      (err: { code?: number; body?: unknown }) => err.code === 403 && /violates PodSecurity \\?"restricted:latest/.test(String(err.body)),
    );
    await env.createMonitoredServer(monitoredServer('sec-1', RESTRICTED));
    try {
      await env.waitForCondition(RESTRICTED, 'sec-1', 'Ready', 'True', 'Monitoring', 120_000);
    } catch (err) {
      const ms = await env.get(MS, RESTRICTED, 'sec-1');
      const events = (await core.listNamespacedEvent({ namespace: RESTRICTED })).items.map((e) => `${e.reason}: ${e.message}`);
      throw new Error(`${(err as Error).message}\nconditions: ${JSON.stringify(ms?.status?.conditions)}\nevents:\n${events.join('\n')}`);
    }
    const ns = await core.readNamespace({ name: RESTRICTED });
    assert.equal(ns.metadata?.labels?.['pod-security.kubernetes.io/enforce'], 'restricted', 'the tenant namespace keeps restricted');
    const pods = (await core.listNamespacedPod({ namespace: RESTRICTED })).items.map((p) => p.metadata?.labels?.['kubevirt.io']);
    assert.ok(pods.filter((l) => l === 'virt-launcher').length >= 2, 'the server and IDS launcher pods run there');
    const mappers = (await core.listNamespacedPod({ namespace: 'hyperspector-system', labelSelector: 'hyperspector.io/monitored-server=sec-1' })).items;
    assert.equal(mappers.length, 1, 'the process mapper runs in the operator’s namespace');
    await env.delete(MS, RESTRICTED, 'sec-1');
    await env.waitGone(MS, RESTRICTED, 'sec-1', 90_000);
  });

  it('restarts the IDS VM exactly once for a restart-requiring change, and not at all for live-updatable ones', async function () {
    await env.createMonitoredServer(monitoredServer('r-1', NS));
    await env.waitForCondition(NS, 'r-1', 'Ready', 'True', 'Monitoring', 90_000);
    const first = await env.get(VMI, NS, 'r-1-ids');

    // cores: not live-updatable → RestartRequired → one restart.
    const since = new Date();
    const cores = vmTemplate({ app: 'r-1-ids' }, '2Gi');
    (cores.spec.template!.spec!.domain as { cpu?: object }).cpu = { cores: 2 };
    await env.mergePatch(MS, NS, 'r-1', { spec: { ids: { template: cores } } });
    const restarted = await waitFor(async () => {
      const vmi = await env.get(VMI, NS, 'r-1-ids');
      return vmi && vmi.metadata.uid !== first?.metadata.uid && vmi.status?.phase === 'Running' && vmi.spec?.domain?.cpu?.cores === 2 ? vmi : undefined;
    }, { timeoutMs: 90_000, description: 'the IDS VMI restarted with 2 cores' });
    const ready = await env.waitForCondition(NS, 'r-1', 'Ready', 'True', 'Monitoring', 30_000);
    const readyAfterMs = new Date(env.condition(ready, 'Ready')!.lastTransitionTime).getTime() - since.getTime();
    console.log(`      Ready again ${(readyAfterMs / 1000).toFixed(1)} s after the restart-requiring change`);
    assert.ok(readyAfterMs < 15_000, `Ready again within a few seconds (took ${readyAfterMs} ms)`);
    // Give a second, wrong restart every chance to happen before counting.
    await waitFor(async () => (await env.get(VM, NS, 'r-1-ids'))?.status?.conditions?.every((c: { type: string; status: string }) => c.type !== 'RestartRequired' || c.status !== 'True') || undefined, {
      timeoutMs: 30_000,
      description: 'RestartRequired cleared on the IDS VM',
    });
    assert.equal(operatorVmiDeletes('r-1-ids', since).length, 1, 'exactly one IDS VMI deletion by the operator');
    assert.equal((await env.get(VMI, NS, 'r-1-ids'))?.metadata.uid, restarted.metadata.uid);
    assert.notEqual((await env.get(VM, NS, 'r-1-ids'))?.status?.printableStatus, 'CrashLoopBackOff');

    // memory (hot-plugged) and affinity: live-updated by KubeVirt, no restart.
    const live = new Date();
    const memory = structuredClone(cores);
    memory.spec.template!.spec!.domain!.memory = { guest: '3Gi' };
    (memory.spec.template!.spec as { affinity?: object }).affinity = {
      nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1, preference: { matchExpressions: [{ key: 'kubernetes.io/os', operator: 'In', values: ['linux'] }] } }] },
    };
    await env.mergePatch(MS, NS, 'r-1', { spec: { ids: { template: memory } } });
    await waitFor(async () => {
      const vm = await env.get(VM, NS, 'r-1-ids');
      return vm?.metadata.generation === vm?.status?.desiredGeneration && vm?.spec?.template?.spec?.domain?.memory?.guest === '3Gi' ? vm : undefined;
    }, { timeoutMs: 30_000, description: 'KubeVirt to see the live-updatable change' });
    await env.waitForCondition(NS, 'r-1', 'Ready', 'True', 'Monitoring', 30_000);
    assert.equal(operatorVmiDeletes('r-1-ids', live).length, 0, 'no restart for live-updatable fields');
    assert.equal((await env.get(VMI, NS, 'r-1-ids'))?.metadata.uid, restarted.metadata.uid);
  });

  it('shows a server change that waits for a restart, with an Event, and never restarts the user’s server', async function () {
    await env.createMonitoredServer(monitoredServer('s-1', NS));
    await env.waitForCondition(NS, 's-1', 'Ready', 'True', 'Monitoring', 90_000);
    const server = await env.get(VMI, NS, 's-1-server');
    const since = new Date();
    const template = vmTemplate({ app: 's-1' });
    (template.spec.template!.spec!.domain as { cpu?: object }).cpu = { cores: 2 };
    await env.mergePatch(MS, NS, 's-1', { spec: { server: { template } } });
    const ms = await env.waitForCondition(NS, 's-1', 'ServerRestartRequired', 'True', 'RestartRequired', 60_000);
    assert.match(env.condition(ms, 'ServerRestartRequired')!.message, /virtctl restart s-1-server/);
    assert.equal(env.condition(ms, 'Ready')?.status, 'True', 'a pending restart of the server is not a monitoring failure');
    const event = await env.waitForEvent(NS, 's-1', 'RestartRequired');
    assert.equal(event.type, 'Warning');
    assert.equal((await env.get(VMI, NS, 's-1-server'))?.metadata.uid, server?.metadata.uid, 'the server was not restarted');
    assert.equal(operatorVmiDeletes('s-1-server', since).length, 0);
  });

  it('is not Ready while a teardown waits on KubeVirt, and says on what', async function () {
    await env.createMonitoredServer(monitoredServer('t-1', NS));
    const ready = await env.waitForCondition(NS, 't-1', 'Ready', 'True', 'Monitoring', 90_000);
    const node = ready.status.nodeName as string;
    env.kubevirt.handler.setNodeResponsive(node, false);
    try {
      await env.delete(MS, NS, 't-1');
      const stuck = await waitFor(async () => {
        const ms = await env.get(MS, NS, 't-1');
        const c = env.condition(ms, 'Ready');
        return c?.reason === 'Deleting' && /has not finished deleting/.test(c.message) ? ms : undefined;
      }, { timeoutMs: 90_000, description: 'the teardown to say it is stuck' });
      const c = env.condition(stuck, 'Ready')!;
      assert.equal(c.status, 'False');
      assert.match(c.message, new RegExp(`is virt-handler running on node ${node}\\?`));
      assert.match(c.message, /t-1-ids/);
      await env.waitForEvent(NS, 't-1', 'TeardownStalled');
    } finally {
      env.kubevirt.handler.setNodeResponsive(node, true);
    }
    await env.waitGone(MS, NS, 't-1', 90_000);
    await env.waitGone(VM, NS, 't-1-ids', 60_000);
  });

  it('releases a retained server VM without our labels in its template, restarting nothing', async function () {
    await env.createMonitoredServer(monitoredServer('l-1', NS));
    await env.waitForCondition(NS, 'l-1', 'Ready', 'True', 'Monitoring', 90_000);
    const vmi = await env.get(VMI, NS, 'l-1-server');
    await env.delete(MS, NS, 'l-1');
    await env.waitGone(MS, NS, 'l-1', 90_000);
    const vm = await env.get(VM, NS, 'l-1-server');
    assert.ok(vm, 'retained');
    const labelKeys = [...Object.keys(vm.metadata.labels ?? {}), ...Object.keys(vm.spec.template.metadata?.labels ?? {})];
    assert.deepEqual(labelKeys.filter((k) => k.startsWith('hyperspector.io/')), [], 'no hyperspector.io/ label on the VM or its template');
    assert.equal(vm.metadata.annotations?.['hyperspector.io/monitored-by'], undefined);
    assert.equal((await env.get(VMI, NS, 'l-1-server'))?.metadata.uid, vmi?.metadata.uid, 'the server kept running');
    assert.ok(!vm.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'RestartRequired' && c.status === 'True'), 'releasing needs no restart');
  });

  it('puts back a field added by hand to the IDS VM and does not restart it for the edit', async function () {
    await env.createMonitoredServer(monitoredServer('d-1', NS));
    await env.waitForCondition(NS, 'd-1', 'Ready', 'True', 'Monitoring', 90_000);
    const running = await env.get(VMI, NS, 'd-1-ids');
    const since = new Date();
    // A user edits the IDS VM directly (cores is not live-updatable: KubeVirt would want a restart).
    await env.mergePatch(VM, NS, 'd-1-ids', { spec: { template: { spec: { domain: { cpu: { cores: 8 } } } } } });
    const reverted = await waitFor(
      async () => {
        const vm = await env.get(VM, NS, 'd-1-ids');
        return vm && vm.spec?.template?.spec?.domain?.cpu?.cores === undefined ? vm : undefined;
      },
      { timeoutMs: 20_000, description: 'the hand-added cpu.cores to be removed from the IDS VM' },
    );
    assert.ok((reverted.metadata.generation ?? 0) > 1);
    const event = await env.waitForEvent(NS, 'd-1', 'IDSVMReverted');
    assert.equal(event.type, 'Warning');
    // KubeVirt settles on the reverted spec; the running IDS VMI was never restarted for the edit.
    await waitFor(async () => {
      const vm = await env.get(VM, NS, 'd-1-ids');
      return vm?.status?.desiredGeneration === vm?.metadata.generation && !vm?.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'RestartRequired' && c.status === 'True') ? vm : undefined;
    }, { timeoutMs: 30_000, description: 'KubeVirt to observe the reverted IDS VM without RestartRequired' });
    await env.waitForCondition(NS, 'd-1', 'Ready', 'True', 'Monitoring', 30_000);
    assert.equal(operatorVmiDeletes('d-1-ids', since).length, 0, 'no restart of the IDS VM');
    assert.equal((await env.get(VMI, NS, 'd-1-ids'))?.metadata.uid, running?.metadata.uid);
    await env.delete(MS, NS, 'd-1');
    await env.waitGone(MS, NS, 'd-1');
  });

  it('reports a template KubeVirt’s webhook refuses as ServerVMInvalid / IDSVMInvalid with KubeVirt’s message', async function () {
    const bad = vmTemplate({ app: 'bad' });
    bad.spec.template!.spec!.domain!.devices!.disks!.push({ name: 'nowhere', disk: { bus: 'virtio' } });
    await env.createMonitoredServer(monitoredServer('bad-server', NS, { server: { template: bad } }));
    const server = await env.waitForCondition(NS, 'bad-server', 'ServerRunning', 'False', 'ServerVMInvalid', 30_000);
    assert.match(env.condition(server, 'ServerRunning')!.message, /nowhere/);
    assert.match(env.condition(server, 'ServerRunning')!.message, /webhook/i, 'the message is KubeVirt’s admission answer');
    await env.waitForEvent(NS, 'bad-server', 'ServerVMInvalid');

    await env.createMonitoredServer(monitoredServer('bad-ids', NS, { ids: { template: bad } }));
    const ids = await env.waitForCondition(NS, 'bad-ids', 'IDSRunning', 'False', 'IDSVMInvalid', 90_000);
    assert.match(env.condition(ids, 'IDSRunning')!.message, /nowhere/);
    await env.waitForCondition(NS, 'bad-ids', 'ServerRunning', 'True', 'Running', 60_000);
    const still = await env.waitForCondition(NS, 'bad-ids', 'IDSRunning', 'False', 'IDSVMInvalid', 10_000);
    assert.equal(env.condition(still, 'Ready')?.status, 'False', 'the server runs; only the IDS VM is refused, so it is not Ready');
  });

  // KubeVirt's CRD schema, not its webhook, refuses these: server-side apply answers 500 ("failed to
  // create typed patch object ... field not declared in schema" / "expected numeric"), not 422.
  it('reports an unknown or ill-typed template field as ServerVMInvalid / IDSVMInvalid within seconds, with the API server’s message, and retries no faster than its recheck', async function () {
    const cases = [
      { name: 'unknown-server', vm: 'server', field: /domain\.bogus/, edit: (d: Record<string, unknown>) => (d.bogus = 1) },
      { name: 'typed-server', vm: 'server', field: /domain\.cpu\.cores/, edit: (d: Record<string, unknown>) => (d.cpu = { cores: 'many' }) },
      { name: 'unknown-ids', vm: 'ids', field: /domain\.bogus/, edit: (d: Record<string, unknown>) => (d.bogus = 1) },
      { name: 'typed-ids', vm: 'ids', field: /domain\.cpu\.cores/, edit: (d: Record<string, unknown>) => (d.cpu = { cores: 'many' }) },
    ] as const;
    const condition = { server: ['ServerRunning', 'ServerVMInvalid'], ids: ['IDSRunning', 'IDSVMInvalid'] } as const;
    const created = new Date();
    for (const c of cases) {
      const template = vmTemplate({ app: c.name });
      c.edit(template.spec.template!.spec!.domain as unknown as Record<string, unknown>);
      await env.createMonitoredServer(monitoredServer(c.name, NS, { [c.vm]: { template } }));
    }
    // Side by side, so each clock starts on time.
    await Promise.all(cases.map(async (c) => {
      const [type, reason] = condition[c.vm];
      // The IDS VM is built once the server VMI has a node: its clock starts there.
      const start = c.vm === 'server' ? created : await waitFor(async () => ((await env.get(VMI, NS, `${c.name}-server`))?.status?.nodeName ? new Date() : undefined), {
        timeoutMs: 90_000,
        description: `${c.name}-server to have a node`,
      });
      const ms = await env.waitForCondition(NS, c.name, type, 'False', reason, 30_000);
      const seconds = (Date.now() - start.getTime()) / 1000;
      console.log(`      ${c.name}: ${reason} after ${seconds.toFixed(1)} s`);
      const message = env.condition(ms, type)!.message;
      assert.match(message, c.field, `${c.name}: the message names the field`);
      assert.match(message, /field not declared in schema|expected numeric/, `${c.name}: the message is the API server’s`);
      assert.equal(env.condition(ms, 'Ready')?.status, 'False');
      const event = await env.waitForEvent(NS, c.name, reason);
      assert.equal(event.type, 'Warning');
      assert.match(event.note, c.field);
      // Only the IDS VM is refused: the status says the server runs (not a stale "Starting"), and
      // the rest settles (so the window below sees only the refused template).
      if (c.vm === 'ids') {
        await env.waitForCondition(NS, c.name, 'ServerRunning', 'True', 'Running', 60_000);
        await waitFor(async () => {
          const settled = await env.get(MS, NS, c.name);
          return (settled?.status?.serverVM?.ready === true && env.condition(settled, 'ProcessMapping')?.status === 'True') || undefined;
        }, { timeoutMs: 60_000, description: `${c.name}: the server VM ready and its processes mapped` });
      }
    }));

    // No hot loop: over a window of four rechecks, each MonitoredServer's condition holds and the
    // operator's writes for it (failed applies included) stay near one apply attempt per recheck;
    // a hot loop would make hundreds.
    const windowStart = new Date();
    const windowMs = 4 * NOT_READY_RECHECK_MS;
    const flaps: string[] = [];
    await waitFor(
      async () => {
        for (const c of cases) {
          const [type, reason] = condition[c.vm];
          const now = env.condition(await env.get(MS, NS, c.name), type);
          if (now?.reason !== reason) flaps.push(`${c.name}: ${type} ${now?.status} ${now?.reason} ${now?.message}`);
        }
        return Date.now() - windowStart.getTime() >= windowMs || undefined;
      },
      { timeoutMs: windowMs + 30_000, intervalMs: 1000, description: `${windowMs / 1000} s of a refused template` },
    );
    assert.deepEqual(flaps, [], 'each condition holds through the window');
    const writes = auditRequests(env.cluster.auditLogPath, { username: env.cluster.users.operator.name, since: windowStart, writesOnly: true, excludeResources: ['leases'] });
    const limit = 2 * (windowMs / NOT_READY_RECHECK_MS) + 2;
    for (const c of cases) {
      const own = writes.filter((e) => concerns(e, c.name));
      console.log(`      ${c.name}: ${own.length} operator writes in ${windowMs / 1000} s (${own.map((e) => `${e.verb} ${e.objectRef?.resource} ${e.responseStatus?.code}`).join(', ') || 'none'})`);
      assert.ok(own.length <= limit, `${c.name}: at most ${limit} writes in ${windowMs / 1000} s, got ${own.length}:\n${describeRequests(own)}`);
    }
  });
});

/** Whether an audited request is about the MonitoredServer `name` or one of its children, Events included. */
function concerns(e: AuditEvent, name: string): boolean {
  const objectName = e.objectRef?.name ?? '';
  if (objectName === name || objectName.startsWith(`${name}-`) || objectName.startsWith(`${name}.`)) return true;
  const regarding = (e.requestObject as { regarding?: { name?: string }; involvedObject?: { name?: string } } | undefined);
  return regarding?.regarding?.name === name || regarding?.involvedObject?.name === name;
}
