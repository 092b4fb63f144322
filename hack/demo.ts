// The demo: a real local control plane with 3 kwok nodes, KubeVirt's own virt-controller and
// virt-api with the virt-handler stand-in (a test double: the nodes are kwok nodes),
// the operator, and the examples/ applied; then a live table until Ctrl-C, which cleans up.
//   --until-ready   exit 0 once every MonitoredServer is Ready (exit 1 after --timeout seconds)
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { startCluster } from '../testenv/cluster/local-cluster.ts';
import { controlPlaneBinaries } from '../testenv/cluster/binaries.ts';
import { REPO_ROOT } from '../testenv/repo-root.ts';
import { startOperatorProcess } from '../testenv/operator/operator-process.ts';
import { renderDemoTable, readDemoState, allReady } from './demo-table.ts';

const { values } = parseArgs({
  options: {
    'until-ready': { type: 'boolean', default: false },
    timeout: { type: 'string', default: '180' },
    nodes: { type: 'string', default: '3' },
  },
});

const log = (line: string) => console.log(`[demo] ${line}`);
const cluster = await startCluster({ nodes: Number(values.nodes), log, kubevirt: true });
log(`KubeVirt ${cluster.kubevirt?.version ?? ''} started: its own virt-controller and virt-api, a stand-in for virt-handler`);
const operator = await startOperatorProcess(cluster, { logFile: cluster.logOf('operator') });
log(`operator started (pid ${operator.pid}; log: ${cluster.logOf('operator')})`);

let stopping = false;
async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    log('cleaning up');
    await operator.stop();
    await cluster.stop();
  }
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

log('applying examples/ with kubectl apply --server-side');
execFileSync(controlPlaneBinaries().kubectl, ['--kubeconfig', cluster.kubeconfigPath, 'apply', '--server-side', '-f', `${REPO_ROOT}examples/`], {
  stdio: 'inherit',
});
log(`try: KUBECONFIG=${cluster.kubeconfigPath} ${controlPlaneBinaries().kubectl} get msrv -A`);

const deadline = Date.now() + Number(values.timeout) * 1000;
const interactive = process.stdout.isTTY && !values['until-ready'];
for (;;) {
  const state = await readDemoState(cluster.kubeConfig).catch((err: Error) => err);
  if (state instanceof Error) {
    console.log(`[demo] reading the cluster failed: ${state.message}`);
  } else {
    const table = renderDemoTable(state);
    if (interactive) process.stdout.write(`\x1b[2J\x1b[H${table}\n(Ctrl-C stops the demo and cleans up)\n`);
    if (values['until-ready'] && allReady(state)) {
      console.log(table);
      log('every MonitoredServer is Ready');
      await shutdown(0);
    }
  }
  if (values['until-ready'] && Date.now() > deadline) {
    log(`not every MonitoredServer was Ready after ${values.timeout}s`);
    if (!(state instanceof Error)) console.log(renderDemoTable(state));
    await shutdown(1);
  }
  await new Promise((resolve) => setTimeout(resolve, 1000));
}
