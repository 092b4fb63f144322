// Benchmark: N MonitoredServers applied at once → all Ready, on the local control plane with
// KubeVirt's own virt-controller and virt-api (and the virt-handler stand-in); beside it, in the same run, the floor: a bare client creating the same child
// objects directly, done at the same end state (convergence-floor.ts). Optionally the cluster first gets VirtualMachines (and their VMIs) no
// MonitoredServer refers to, which the operator's caches must not pay for. Prints convergence vs
// the floor, API writes per MonitoredServer by kind and the operator's peak RSS side by side, and
// one JSON line.
//   npm run bench:convergence -- [--count 200] [--unmonitored 2000] [--steady-seconds 60] [--nodes 3 (or as many as the VMIs need)] [--vm-controller-threads 3] [--operator compiled|tsx]
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { OperatorTestEnv, MS } from '../testenv/operator/operator-env.ts';
import { startOperatorProcess } from '../testenv/operator/operator-process.ts';
import { REPO_ROOT } from '../testenv/repo-root.ts';
import { monitoredServer } from '../testenv/fixtures/monitoredservers.ts';
import { auditRequests, WRITE_VERBS, type AuditEvent } from '../testenv/cluster/audit-log.ts';
import { waitFor } from '../testenv/wait.ts';
import { createKubeApi } from '../src/kube/client/rest.ts';
import { createUnmonitoredVms, vmAndVmiPhases } from './unmonitored-vms.ts';
import { runFloor } from './convergence-floor.ts';
import { inBatches, keepWatching } from './client-helpers.ts';
import { formatPairSteps, pairStepLatencies } from './pair-steps.ts';
import { NODE_VMI_CAPACITY } from '../testenv/kubevirt/kubevirt-world.ts';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '200' },
    unmonitored: { type: 'string', default: '0' },
    // compiled: dist/src/main.js as the image runs it (built first); tsx: the sources, as the tests run them
    operator: { type: 'string', default: 'compiled' },
    'steady-seconds': { type: 'string', default: '60' },
    // Default: 3, or as many as the VMIs need (NODE_VMI_CAPACITY per node): the noise, and a pair
    // per MonitoredServer for the operator and again for the floor.
    nodes: { type: 'string' },
    concurrency: { type: 'string', default: '8' },
    // The operator's --not-ready-recheck: the chart's 60 s by default (not the tests' 5 s).
    'not-ready-recheck': { type: 'string', default: '60s' },
    // ... and the longest it backs off to while a status does not change: the operator's 5 min by default.
    'not-ready-recheck-max': { type: 'string', default: '300s' },
    // virt-controller's VM workers (KubeVirt's default 3): more start the unmonitored VMs sooner;
    // the operator and the floor run in the same world, so both see the same KubeVirt.
    'vm-controller-threads': { type: 'string' },
  },
});
const N = Number(values.count);
const unmonitored = Number(values.unmonitored);
const compiled = values.operator === 'compiled';
if (!compiled && values.operator !== 'tsx') throw new Error(`--operator must be compiled or tsx, not ${values.operator}`);
const steadySeconds = Number(values['steady-seconds']);
const vmis = unmonitored + 4 * N;
// Half again to spare: an IDS VMI must run on its server's node, and a node its server filled
// leaves it Pending (a run with exactly enough, 6 nodes for 6000 VMIs, left 110 floor IDS VMIs so;
// one with a quarter more, 8 nodes, left 12).
const nodes = values.nodes ? Number(values.nodes) : Math.max(3, Math.ceil((vmis * 1.5) / NODE_VMI_CAPACITY));
if (nodes * NODE_VMI_CAPACITY < vmis) throw new Error(`--nodes ${nodes} cannot run ${vmis} VMIs (${NODE_VMI_CAPACITY} per node, as KubeVirt's device plugins offer): give at least ${Math.ceil(vmis / NODE_VMI_CAPACITY)}`);
const log = (line: string) => console.error(`[bench] ${line}`);

/** Writes by what they wrote: `MonitoredServer`, `MonitoredServer/status`, `VirtualMachine`, ... */
const KINDS: Record<string, string> = {
  monitoredservers: 'MonitoredServer',
  virtualmachines: 'VirtualMachine',
  virtualmachineinstances: 'VirtualMachineInstance',
  pods: 'Pod',
  events: 'Event',
  leases: 'Lease',
};

function writesPerServerByKind(writes: AuditEvent[], servers: number): Record<string, number> {
  const counts = new Map<string, number>();
  for (const e of writes) {
    const resource = e.objectRef?.resource ?? '?';
    const kind = `${KINDS[resource] ?? resource}${e.objectRef?.subresource ? `/${e.objectRef.subresource}` : ''}`;
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  return Object.fromEntries([...counts].sort((a, b) => b[1] - a[1]).map(([kind, n]) => [kind, Number((n / servers).toFixed(2))]));
}

/** Writes by verb and what they wrote (`patch MonitoredServer/status`, `create Pod`, ...), per MonitoredServer: where the writes go. */
function writesPerServerByVerb(writes: AuditEvent[], servers: number): Record<string, number> {
  const counts = new Map<string, number>();
  for (const e of writes) {
    const resource = e.objectRef?.resource ?? '?';
    const key = `${e.verb} ${KINDS[resource] ?? resource}${e.objectRef?.subresource ? `/${e.objectRef.subresource}` : ''}${e.responseStatus?.code && e.responseStatus.code >= 300 ? ` (${e.responseStatus.code})` : ''}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return Object.fromEntries([...counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => [k, Number((n / servers).toFixed(2))]));
}

/** The status one MonitoredServer was written with, in order: each write's Ready reason and the two VM phases (from the audit log's request bodies). */
function statusWritesOf(writes: AuditEvent[], name: string, since: Date): string[] {
  return writes
    .filter((e) => e.objectRef?.resource === 'monitoredservers' && e.objectRef.subresource === 'status' && e.objectRef.name === name)
    .map((e) => {
      const status = (e.requestObject as { status?: { conditions?: Array<{ type: string; status: string; reason: string }>; serverVM?: { phase?: string }; idsVM?: { phase?: string } } } | undefined)?.status;
      const ready = status?.conditions?.find((c) => c.type === 'Ready');
      const at = ((Date.parse(e.requestReceivedTimestamp) - since.getTime()) / 1000).toFixed(0);
      return `+${at}s ${ready?.status}/${ready?.reason} server=${status?.serverVM?.phase ?? '-'} ids=${status?.idsVM?.phase ?? '-'}`;
    });
}

/** How many MonitoredServers got 1, 2, 3 ... status writes: `{ "2": 310, "3": 640, ... }`. */
function statusWritesHistogram(writes: AuditEvent[]): Record<string, number> {
  const perServer = new Map<string, number>();
  for (const e of writes) {
    if (e.objectRef?.resource !== 'monitoredservers' || e.objectRef.subresource !== 'status') continue;
    const name = e.objectRef.name ?? '';
    perServer.set(name, (perServer.get(name) ?? 0) + 1);
  }
  const histogram = new Map<number, number>();
  for (const n of perServer.values()) histogram.set(n, (histogram.get(n) ?? 0) + 1);
  return Object.fromEntries([...histogram].sort((a, b) => a[0] - b[0]).map(([n, servers]) => [String(n), servers]));
}

/** Seconds from each MonitoredServer's creation to its Ready=True: the 10th, 50th, 90th percentile and the longest. */
function timeToReady(items: Array<{ metadata: { creationTimestamp?: string | Date }; status?: { conditions?: Array<{ type: string; status: string; lastTransitionTime?: string }> } }>): Record<string, number> {
  const seconds = items
    .map((m) => {
      const ready = m.status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'True');
      return ready?.lastTransitionTime && m.metadata.creationTimestamp ? (Date.parse(ready.lastTransitionTime) - new Date(m.metadata.creationTimestamp).getTime()) / 1000 : undefined;
    })
    .filter((x): x is number => x !== undefined)
    .sort((a, b) => a - b);
  const at = (q: number) => seconds[Math.min(seconds.length - 1, Math.floor(q * seconds.length))] ?? 0;
  return { p10: at(0.1), p50: at(0.5), p90: at(0.9), max: seconds.at(-1) ?? 0 };
}

/** The Events about the namespace's MonitoredServers, per MonitoredServer by type and reason. */
async function eventsPerServerByReason(env: OperatorTestEnv, ns: string, servers: number): Promise<Record<string, number>> {
  const api = createKubeApi(env.cluster.kubeConfigFor('admin').kubeConfig);
  const counts = new Map<string, number>();
  let continueToken: string | undefined;
  do {
    const page = await api.request<{ items: Array<{ type?: string; reason?: string; regarding?: { kind?: string } }>; metadata?: { continue?: string } }>({
      method: 'GET',
      path: `/apis/events.k8s.io/v1/namespaces/${ns}/events`,
      query: { limit: 500, continue: continueToken },
    });
    for (const e of page.items.filter((x) => x.regarding?.kind === 'MonitoredServer')) counts.set(`${e.type} ${e.reason}`, (counts.get(`${e.type} ${e.reason}`) ?? 0) + 1);
    continueToken = page.metadata?.continue || undefined;
  } while (continueToken);
  return Object.fromEntries([...counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => [k, Number((n / servers).toFixed(2))]));
}

function formatByKind(byKind: Record<string, number>): string {
  return Object.entries(byKind)
    .map(([kind, n]) => `${kind} ${n}`)
    .join(', ');
}

/** A memory figure of /proc/<pid>/status (kB there), in MiB: VmHWM is the peak RSS, VmRSS the current one. */
function procStatusMiB(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

/** The operator's memory at one moment: resident, and what V8 and Node.js say of it (its /metrics), in MiB. */
interface MemorySample {
  atSeconds: number;
  rssMiB: number;
  heapUsedMiB: number;
  heapTotalMiB: number;
  oldSpaceUsedMiB: number;
  externalMiB: number;
}

const MIB = 1024 * 1024;

async function sampleMemory(operator: { pid: number; metrics: () => Promise<string> }, since: number): Promise<MemorySample> {
  const text = await operator.metrics();
  // A name with its label set (`x{space="old"}`) is one sample of metricSum.
  const mib = (name: string) => Number((metricSum(text, name) / MIB).toFixed(1));
  return {
    atSeconds: Math.round((Date.now() - since) / 1000),
    rssMiB: procStatusMiB(operator.pid, 'VmRSS'),
    heapUsedMiB: mib('nodejs_heap_size_used_bytes'),
    heapTotalMiB: mib('nodejs_heap_size_total_bytes'),
    oldSpaceUsedMiB: mib('nodejs_heap_space_size_used_bytes{space="old"}'),
    externalMiB: mib('nodejs_external_memory_bytes'),
  };
}

function formatMemory(m: MemorySample): string {
  return `RSS ${m.rssMiB} MiB (V8 heap ${m.heapUsedMiB} used of ${m.heapTotalMiB}, old space ${m.oldSpaceUsedMiB} used; external ${m.externalMiB})`;
}

/** The sum of a Prometheus metric's samples (every label set) in a /metrics text. */
function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.slice(line.lastIndexOf(' ') + 1)) || 0;
  }
  return sum;
}

/** Converged: Ready, and the status shows both VMs Running (the last status write of a pair). */
function isConverged(env: OperatorTestEnv, m: k8s.KubernetesObject & { status?: { serverVM?: { phase?: string }; idsVM?: { phase?: string } } }): boolean {
  return env.condition(m as Parameters<OperatorTestEnv['condition']>[0], 'Ready')?.status === 'True' && m.status?.serverVM?.phase === 'Running' && m.status?.idsVM?.phase === 'Running';
}

/**
 * The converged MonitoredServers of `ns`, kept from a watch, as the floor follows its children:
 * listing them every second would load the API server and this process, which runs the
 * virt-handler stand-in, during the operator's run only.
 */
async function watchConverged(env: OperatorTestEnv, ns: string): Promise<{ converged: Set<string>; stop: () => void }> {
  const converged = new Set<string>();
  const watch = await keepWatching(env.cluster.kubeConfigFor('admin').kubeConfig, `/apis/hyperspector.io/v1alpha1/namespaces/${ns}/monitoredservers`, (type, m: k8s.KubernetesObject) => {
    const name = m.metadata?.name ?? '';
    if (type !== 'DELETED' && isConverged(env, m)) converged.add(name);
    else converged.delete(name);
  });
  return { converged, stop: watch.stop };
}

if (compiled) {
  log('building the operator (npm run build)');
  execFileSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
}

// Fake nodes big enough for every pair (a server VM requests 1Gi, an IDS VM 2Gi): the benchmark
// measures the control loop, not bin packing.
const vmControllerThreads = values['vm-controller-threads'] ? Number(values['vm-controller-threads']) : undefined;
const env = await OperatorTestEnv.start(nodes, { cpu: '2000', memory: '16Ti', pods: '10000' }, vmControllerThreads ? { vmControllerThreads } : {});
try {
  // --- the noise: unmonitored VMs, all running before the operator starts
  if (unmonitored > 0) {
    const tenantNs = 'tenant';
    await env.namespace(tenantNs);
    const admin = createKubeApi(env.cluster.kubeConfigFor('admin').kubeConfig);
    log(`creating ${unmonitored} unmonitored VirtualMachines in namespace ${tenantNs}`);
    const n0 = Date.now();
    await createUnmonitoredVms(admin, tenantNs, unmonitored);
    log(`created ${unmonitored} VMs in ${((Date.now() - n0) / 1000).toFixed(0)} s; waiting for them to run`);
    let lastProgress = 0;
    // Running means what `kubectl get vm` says, as for the MonitoredServers' VMs: virt-controller
    // writes a VM's status after its VMI runs, and the operator must not start while KubeVirt is
    // still catching up with the noise (a backlog of VM status updates the floor would not meet).
    await waitFor(
      async () => {
        const { vmis, vms } = await vmAndVmiPhases(admin, tenantNs);
        if (Date.now() - lastProgress >= 30_000) {
          lastProgress = Date.now();
          log(`  after ${((Date.now() - n0) / 1000).toFixed(0)} s: VMIs by phase ${JSON.stringify(vmis)}, VMs by status ${JSON.stringify(vms)}; load average ${loadavg()[0]?.toFixed(1)}`);
        }
        return vmis.Running === unmonitored && vms.Running === unmonitored ? true : undefined;
      },
      { timeoutMs: 3_600_000, intervalMs: 5_000, description: `${unmonitored} unmonitored VMs Running` },
    );
    log(`${unmonitored} unmonitored VMs running after ${((Date.now() - n0) / 1000).toFixed(0)} s`);
  }

  // --- the operator
  const ns = 'bench';
  await env.namespace(ns);
  // The operator's own not-Ready recheck (60 s backing off to 5 min, as the chart runs it, unless --not-ready-recheck[-max]),
  // not the tests' fixed 5 s: at 1000 MonitoredServers starting for minutes, 5 s made 70 reconciles of each in 14 minutes.
  const recheckArgs = [`--not-ready-recheck=${values['not-ready-recheck']}`, `--not-ready-recheck-max=${values['not-ready-recheck-max']}`];
  const operator = await startOperatorProcess(env.cluster, { user: 'operator', compiled, extraArgs: [`--concurrency=${values.concurrency}`, ...recheckArgs] });
  await waitFor(() => operator.ready(), { timeoutMs: 60_000, description: 'the operator to be ready' });
  const opUser = env.cluster.users.operator.name;
  log(`applying ${N} MonitoredServers`);
  const convergedWatch = await watchConverged(env, ns);
  const t0 = new Date();
  // Every 10 s, the operator's memory as V8 sees it beside its RSS: whether a peak is live data or garbage.
  const memory: MemorySample[] = [];
  const sampling = setInterval(() => {
    sampleMemory(operator, t0.getTime()).then((m) => memory.push(m), () => undefined);
  }, 10_000);
  await inBatches([...Array(N).keys()], 25, (i) => env.createMonitoredServer(monitoredServer(`s-${i}`, ns)));
  let lastProgress = Date.now();
  await waitFor(
    () => {
      const converged = convergedWatch.converged.size;
      if (Date.now() - lastProgress >= 30_000) {
        lastProgress = Date.now();
        const now = memory.at(-1);
        log(`  after ${((Date.now() - t0.getTime()) / 1000).toFixed(0)} s: ${converged} of ${N} converged; operator peak RSS ${procStatusMiB(operator.pid, 'VmHWM')} MiB${now ? `, at ${now.atSeconds} s ${formatMemory(now)}` : ''}; load average ${loadavg()[0]?.toFixed(1)}`);
      }
      return converged === N ? true : undefined;
    },
    { timeoutMs: 3_600_000, intervalMs: 1000, description: `${N} Ready` },
  );
  const t1 = new Date();
  clearInterval(sampling);
  convergedWatch.stop();
  // The sample of the highest RSS, and the largest V8 heap seen (10 s apart: the true peak may fall between).
  const highestRss = memory.reduce<MemorySample | undefined>((a, m) => (!a || m.rssMiB > a.rssMiB ? m : a), undefined);
  const largestHeap = memory.reduce<MemorySample | undefined>((a, m) => (!a || m.heapUsedMiB > a.heapUsedMiB ? m : a), undefined);
  // What the operator spent to get there: its reconciles and its CPU time (from its own metrics).
  const metricsAtConvergence = await operator.metrics();
  const reconciles = metricSum(metricsAtConvergence, 'controller_runtime_reconcile_total');
  const operatorCpuSeconds = metricSum(metricsAtConvergence, 'process_cpu_seconds_total');
  const loadAtConvergence = loadavg().map((l) => Number(l.toFixed(1)));
  const eventsByReason = await eventsPerServerByReason(env, ns, N);
  const readyAfter = timeToReady(await env.list(MS, ns));
  const convergeSeconds = (t1.getTime() - t0.getTime()) / 1000;
  const opRequests = auditRequests(env.cluster.auditLogPath, { username: opUser, since: t0, until: t1 });
  const opWrites = opRequests.filter((e) => WRITE_VERBS.has(e.verb));
  log(`converged in ${convergeSeconds.toFixed(1)} s; measuring ${steadySeconds} s of steady state`);
  const s0 = new Date();
  await waitFor(() => Date.now() - s0.getTime() >= steadySeconds * 1000 || undefined, { timeoutMs: steadySeconds * 1000 + 5000, intervalMs: 500 });
  const steady = auditRequests(env.cluster.auditLogPath, { username: opUser, since: s0, writesOnly: true });
  const steadyWrites = steady.filter((e) => e.objectRef?.resource !== 'leases').length;
  if (steadyWrites > 0) {
    const kinds = new Map<string, number>();
    for (const e of steady.filter((x) => x.objectRef?.resource !== 'leases')) {
      const k = `${e.verb} ${e.objectRef?.resource}${e.objectRef?.subresource ? `/${e.objectRef.subresource}` : ''}`;
      kinds.set(k, (kinds.get(k) ?? 0) + 1);
    }
    log(`steady-state writes by kind: ${JSON.stringify(Object.fromEntries(kinds))}`);
  }
  const leaseWrites = steady.length - steadyWrites;
  const rss = procStatusMiB(operator.pid, 'VmHWM');
  await operator.stop();
  // Said before the floor runs, so a floor that fails does not lose the operator's figures.
  log(`operator: ${(opWrites.length / N).toFixed(2)} writes per MonitoredServer (${JSON.stringify(writesPerServerByKind(opWrites, N))}), peak RSS ${rss} MiB`);

  // --- the floor: a bare client creating the same children (convergence-floor.ts)
  const floorNs = 'floor';
  await env.namespace(floorNs);
  const floorUser = env.cluster.users.operatorB.name;
  // The bare client runs under the operator's RBAC role (bound to this user too).
  const floor = await runFloor(env.cluster.kubeConfigFor('operatorB').kubeConfig, floorNs, N, 'hyperspector-system', log);
  const floorRequests = auditRequests(env.cluster.auditLogPath, { username: floorUser, since: floor.started, until: floor.finished });
  // Where each pair's start spent its time, the operator's and KubeVirt's steps apart (pair-steps.ts).
  const operatorSteps = pairStepLatencies(auditRequests(env.cluster.auditLogPath, { namespace: ns, since: t0, until: t1, writesOnly: true }), ns, opUser);
  const floorSteps = pairStepLatencies(auditRequests(env.cluster.auditLogPath, { namespace: floorNs, since: floor.started, until: floor.finished, writesOnly: true }), floorNs, floorUser);
  const writesByKind = writesPerServerByKind(opWrites, N);
  const writesByVerb = writesPerServerByVerb(opWrites, N);

  const result = {
    benchmark: 'convergence',
    count: N,
    unmonitoredVirtualMachines: unmonitored,
    nodes,
    operatorConcurrency: Number(values.concurrency),
    operatorNotReadyRecheck: values['not-ready-recheck'],
    operatorNotReadyRecheckMax: values['not-ready-recheck-max'],
    virtControllerVmThreads: vmControllerThreads ?? 3,
    operatorRunAs: compiled ? 'node dist/src/main.js' : 'node --import tsx src/main.ts',
    convergeSeconds: Number(convergeSeconds.toFixed(1)),
    apiRequestsPerMonitoredServer: Number((opRequests.length / N).toFixed(2)),
    apiWritesPerMonitoredServer: Number((opWrites.length / N).toFixed(2)),
    // The leader renews its Lease every 2 s whatever N is: its share per MonitoredServer grows with the run's length, not with the work.
    apiWritesPerMonitoredServerBesidesLease: Number((opWrites.filter((e) => e.objectRef?.resource !== 'leases').length / N).toFixed(2)),
    apiWritesPerMonitoredServerByKind: writesByKind,
    apiWritesPerMonitoredServerByVerb: writesByVerb,
    eventsPerMonitoredServerByReason: eventsByReason,
    statusWritesOfOneMonitoredServer: statusWritesOf(opWrites, 's-0', t0),
    // MonitoredServers by their number of status writes, and seconds from creation to Ready (p10, p50, p90, max).
    statusWritesHistogram: statusWritesHistogram(opWrites),
    secondsToReady: readyAfter,
    convergenceToFloorRatio: Number((convergeSeconds / floor.seconds).toFixed(2)),
    steadyStateWritesPerMinute: Number(((steadyWrites * 60) / steadySeconds).toFixed(2)),
    steadyStateLeaseRenewalsPerMinute: Number(((leaseWrites * 60) / steadySeconds).toFixed(1)),
    operatorPeakRssMiB: rss,
    operatorMemory: { highestRssSample: highestRss, largestHeapSample: largestHeap, samples: memory },
    reconcilesPerMonitoredServer: Number((reconciles / N).toFixed(1)),
    operatorCpuSecondsToConverge: Number(operatorCpuSeconds.toFixed(1)),
    // The machine is shared: its 1, 5 and 15 minute load averages when the operator had converged.
    machineLoadAverage: loadAtConvergence,
    floor: {
      seconds: Number(floor.seconds.toFixed(1)),
      // When every IDS VMI ran: the floor's end state in results before 2026-12-03.
      idsVmisRunningSeconds: Number(floor.idsVmisRunningSeconds.toFixed(1)),
      apiRequestsPerServer: Number((floorRequests.length / N).toFixed(2)),
      apiWritesPerServer: Number((floorRequests.filter((e) => WRITE_VERBS.has(e.verb)).length / N).toFixed(2)),
      pairSteps: floorSteps,
    },
    pairSteps: operatorSteps,
  };
  console.log(
    [
      `MonitoredServers: ${N} on ${nodes} nodes, beside ${unmonitored} unmonitored VirtualMachines (running)`,
      `                 operator    floor (bare client, same children)`,
      `converged in    ${`${result.convergeSeconds} s`.padEnd(12)}${result.floor.seconds} s   (ratio ${result.convergenceToFloorRatio}; the floor's IDS VMIs all ran after ${result.floor.idsVmisRunningSeconds} s)`,
      `API requests    ${`${result.apiRequestsPerMonitoredServer}`.padEnd(12)}${result.floor.apiRequestsPerServer}   per MonitoredServer`,
      `API writes      ${`${result.apiWritesPerMonitoredServer}`.padEnd(12)}${result.floor.apiWritesPerServer}   per MonitoredServer (${result.apiWritesPerMonitoredServerBesidesLease} besides the leader's Lease renewals)`,
      `  by kind: ${formatByKind(writesByKind)}`,
      `  by verb: ${formatByKind(writesByVerb)}`,
      `  Events by reason: ${formatByKind(eventsByReason)}`,
      `  status writes of s-0: ${result.statusWritesOfOneMonitoredServer.join(' → ')}`,
      `  MonitoredServers by number of status writes: ${formatByKind(result.statusWritesHistogram)}`,
      `  seconds from creation to Ready: ${formatByKind(readyAfter)}`,
      `a pair's steps, median / p90 (operator, floor):`,
      ...formatPairSteps(operatorSteps, floorSteps),
      `operator memory, sampled every 10 s: highest RSS at ${highestRss?.atSeconds ?? '?'} s, ${highestRss ? formatMemory(highestRss) : 'no sample'}; largest heap at ${largestHeap?.atSeconds ?? '?'} s, ${largestHeap ? formatMemory(largestHeap) : 'no sample'}`,
      `operator peak RSS ${rss} MiB (${result.operatorRunAs}); ${result.reconcilesPerMonitoredServer} reconciles per MonitoredServer and ${result.operatorCpuSecondsToConverge} s of CPU to converge`,
      `machine load average at convergence: ${loadAtConvergence.join(', ')} (${cpus().length} CPUs)`,
      `steady state over ${steadySeconds} s: ${result.steadyStateWritesPerMinute} writes/min (plus ${result.steadyStateLeaseRenewalsPerMinute} lease renewals/min)`,
    ].join('\n'),
  );
  console.log(JSON.stringify(result));
} finally {
  await env.stop();
}
