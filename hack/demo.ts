// The demo: HyperSpector doing its job on an embedded local cluster (a real control plane,
// KubeVirt's own virt-controller and virt-api, a virt-handler stand-in) whose one node runs every
// VMI as a real QEMU guest and the operator's process-mapper pod as a real process. It applies
// hack/demo/web-1.yaml, shows the server's process table read from its memory
// (`kubectl hyperspector ps`), starts a program in the server as an intruder would, and shows the
// alert's Warning Event and the MonitoredServer's Alerts column; then a live table until Ctrl-C,
// which stops everything and removes every process, namespace, cgroup and tap it made.
//   --once          exit after the alert was shown (0), or with 1 after --timeout seconds
//   --kwok          the earlier demo: examples/ on 3 kwok nodes, objects only (no root needed)
//   --until-ready   with --kwok: exit 0 once every MonitoredServer is Ready
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { processMapperPodName } from '../src/builders/names.ts';
import { PROCESS_MAPPER_PORT } from '../src/builders/process-mapper-pod.ts';
import type { MonitoredServer } from '../src/api/v1alpha1/monitoredserver-types.ts';
import { createKubeApi } from '../src/kube/client/rest.ts';
import { startCluster, type LocalCluster } from '../testenv/cluster/local-cluster.ts';
import { controlPlaneBinaries } from '../testenv/cluster/binaries.ts';
import { INTRUDER_COMM, START_INTRUDER } from '../testenv/guest/scenario.ts';
import { REPO_ROOT } from '../testenv/repo-root.ts';
import { startOperatorProcess, type OperatorProcess } from '../testenv/operator/operator-process.ts';
import { waitFor } from '../testenv/wait.ts';
import { renderDemoTable, readDemoState, allReady } from './demo-table.ts';

const { values } = parseArgs({
  options: {
    once: { type: 'boolean', default: false },
    kwok: { type: 'boolean', default: false },
    'until-ready': { type: 'boolean', default: false },
    timeout: { type: 'string', default: '600' },
    nodes: { type: 'string', default: '3' },
  },
});

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
const log = (line: string) => console.log(`[demo ${elapsed()}] ${line}`);
const deadline = started + Number(values.timeout) * 1000;
const kubectl = controlPlaneBinaries().kubectl;
const NS = 'shop';
const MAPPER_NS = 'hyperspector-system';

let cluster: LocalCluster | undefined;
/** The cluster being started: Ctrl-C while it starts waits for it, then stops it. */
let starting: Promise<LocalCluster> | undefined;
let operator: OperatorProcess | undefined;
let stopping = false;
async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    log('cleaning up: the operator, the control plane, every guest, pod process, namespace and cgroup');
    cluster ??= await starting?.catch(() => undefined);
    await operator?.stop();
    await cluster?.stop();
    log('cleaned up');
  }
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

function run(args: string[]): string {
  return execFileSync(kubectl, ['--kubeconfig', cluster!.kubeconfigPath, ...args], { encoding: 'utf8' });
}

function remaining(): number {
  return Math.max(1000, deadline - Date.now());
}

try {
  if (values.kwok) await kwokDemo();
  else await realGuestDemo();
  await liveTable();
} catch (err) {
  log(`failed: ${(err as Error).message}`);
  await shutdown(1);
}

async function realGuestDemo(): Promise<void> {
  log('starting a 1-node cluster whose node runs real guests (QEMU, TCG) and real pod processes');
  cluster = await (starting = startCluster({ nodes: 1, log: (l) => log(l), realGuests: { log: (l) => log(l) } }));
  log(`KubeVirt ${cluster.kubevirt?.version ?? ''} started: its own virt-controller and virt-api, a stand-in for virt-handler`);
  operator = await startOperatorProcess(cluster, { logFile: cluster.logOf('operator') });
  log(`operator started (pid ${operator.pid}; log: ${cluster.logOf('operator')})`);
  const nodes = cluster.realGuests!;
  // The mapper's API wants a token allowed to get monitoredservers/processes: the demo's admin.
  const auth = () => ({ headers: { authorization: `Bearer ${cluster!.users.admin.token}` } });

  log('kubectl apply --server-side -f hack/demo/web-1.yaml');
  const applied = Date.now();
  process.stdout.write(run(['apply', '--server-side', '-f', join(REPO_ROOT, 'hack', 'demo', 'web-1.yaml')]));
  log(`try: KUBECONFIG=${cluster.kubeconfigPath} ${kubectl} get msrv -A`);

  const mapperName = processMapperPodName({ metadata: { namespace: NS, name: 'web-1' } } as MonitoredServer);
  log(`waiting for the server guest to boot and for process-mapper pod ${MAPPER_NS}/${mapperName} to read its memory`);
  const url = await waitFor(
    async () => {
      const address = nodes.pods.get(MAPPER_NS, mapperName)?.process?.running ? nodes.pods.address(MAPPER_NS, mapperName, PROCESS_MAPPER_PORT) : undefined;
      if (!address) return undefined;
      const res = await fetch(`http://${address}/processes`, auth()).catch(() => undefined);
      const body = res?.ok ? ((await res.json()) as { processes: unknown[] }) : undefined;
      return body && body.processes.length > 0 ? `http://${address}` : undefined;
    },
    { timeoutMs: remaining(), intervalMs: 500, description: 'the process mapper to list the server guest’s processes' },
  );
  const firstList = (Date.now() - applied) / 1000;
  log(`KUBECONFIG=${cluster.kubeconfigPath} kubectl hyperspector ps --url ${url}   (your own token; the server's processes, read from its memory, ${firstList.toFixed(1)} s after kubectl apply)`);
  process.stdout.write(execFileSync(process.execPath, [join(REPO_ROOT, 'bin', 'kubectl-hyperspector.js'), 'ps', '--url', url], { encoding: 'utf8', env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath } }));

  const guest = nodes.backend.guest(NS, 'web-1-server');
  if (!guest) throw new Error('the server VMI is not a real guest');
  await guest.waitForBoot(remaining());
  log('waiting for the end of the baseline learning window (spec.processMapping.baselineWindowSeconds: 20)');
  await waitFor(
    async () => {
      const body = (await (await fetch(`${url}/processes`, auth())).json()) as { baselineLearning: boolean };
      return body.baselineLearning === false || undefined;
    },
    { timeoutMs: remaining(), intervalMs: 500, description: 'the baseline learning window to end' },
  );
  log(`in the server guest, as an intruder would: ${START_INTRUDER}`);
  const intruded = Date.now();
  await guest.console.run(START_INTRUDER);
  const api = createKubeApi(cluster.kubeConfig);
  await waitFor(
    async () => {
      const list = (await api.request({ method: 'GET', path: `/apis/events.k8s.io/v1/namespaces/${NS}/events` })) as { items: Array<{ reason?: string; note?: string; regarding?: { name?: string } }> };
      return list.items.some((e) => e.regarding?.name === 'web-1' && e.reason === 'ProcessOutsideBaseline' && e.note?.includes(INTRUDER_COMM)) || undefined;
    },
    { timeoutMs: remaining(), intervalMs: 250, description: 'the alert’s Warning Event' },
  );
  log(`the alert reached the MonitoredServer ${((Date.now() - intruded) / 1000).toFixed(1)} s after the program started: kubectl get events -n ${NS} --field-selector type=Warning,involvedObject.kind=MonitoredServer`);
  process.stdout.write(run(['get', 'events', '-n', NS, '--field-selector', 'type=Warning,involvedObject.kind=MonitoredServer', '-o', 'custom-columns=REASON:.reason,FROM:.reportingComponent,OBJECT:.involvedObject.name,MESSAGE:.message']));
  log(`kubectl get msrv -n ${NS}`);
  process.stdout.write(run(['get', 'msrv', '-n', NS]));
  log(`summary: first process list ${firstList.toFixed(1)} s after apply; the alert's Event ${((Date.now() - intruded) / 1000).toFixed(1)} s after the intruder started`);
  if (values.once) await shutdown(0);
}

async function kwokDemo(): Promise<void> {
  cluster = await (starting = startCluster({ nodes: Number(values.nodes), log: (l) => log(l), kubevirt: true }));
  log(`KubeVirt ${cluster.kubevirt?.version ?? ''} started: its own virt-controller and virt-api, a stand-in for virt-handler`);
  operator = await startOperatorProcess(cluster, { logFile: cluster.logOf('operator') });
  log(`operator started (pid ${operator.pid}; log: ${cluster.logOf('operator')})`);
  log('applying examples/ with kubectl apply --server-side');
  execFileSync(kubectl, ['--kubeconfig', cluster.kubeconfigPath, 'apply', '--server-side', '-f', `${REPO_ROOT}examples/`], { stdio: 'inherit' });
  log(`try: KUBECONFIG=${cluster.kubeconfigPath} ${kubectl} get msrv -A`);
}

async function liveTable(): Promise<never> {
  const interactive = process.stdout.isTTY && !values['until-ready'] && !values.once;
  if (!interactive && !values['until-ready']) log('Ctrl-C stops the demo and cleans up');
  for (;;) {
    const state = await readDemoState(cluster!.kubeConfig).catch((err: Error) => err);
    if (state instanceof Error) {
      log(`reading the cluster failed: ${state.message}`);
    } else {
      const table = renderDemoTable(state);
      if (interactive) process.stdout.write(`\x1b[2J\x1b[H${table}\n(Ctrl-C stops the demo and cleans up)\n`);
      if (values['until-ready'] && allReady(state)) {
        console.log(table);
        log('every MonitoredServer is Ready');
        await shutdown(0);
      }
    }
    if ((values['until-ready'] || values.once) && Date.now() > deadline) {
      log(`not done after ${values.timeout}s`);
      if (!(state instanceof Error)) console.log(renderDemoTable(state));
      await shutdown(1);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}
