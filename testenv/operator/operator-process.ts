// Runs the operator (src/main.ts) as a separate process against a LocalCluster, as it runs in a
// Deployment: killable with SIGKILL, restartable, several replicas at once.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { freePort } from '../free-port.ts';
import { type LocalCluster } from '../cluster/local-cluster.ts';
import { ensureNamespace } from '../cluster/namespaces.ts';
import { ensureProcessMapperIdentity } from './operator-rbac.ts';
import { REPO_ROOT } from '../repo-root.ts';
import { ManagedProcess } from '../managed-process.ts';
import { waitFor } from '../wait.ts';


export interface OperatorProcessOptions {
  logFile?: string;
  extraArgs?: string[];
  /** Which cluster user the operator authenticates as (default admin). */
  user?: 'admin' | 'operator' | 'operatorB';
  leaderElect?: boolean;
  leaseNamespace?: string;
  /**
   * Run the compiled operator (`dist/src/main.js`, from `npm run build`) as the image does, instead
   * of the TypeScript sources through tsx, whose transpiler adds tens of MiB to the process.
   */
  compiled?: boolean;
}

export interface OperatorProcess {
  pid: number;
  httpPort: number;
  process: ManagedProcess;
  stop(): Promise<void>;
  kill(): Promise<void>;
  metrics(): Promise<string>;
  ready(): Promise<boolean>;
}


let counter = 0;

/** Reconciles of MonitoredServers the operator process finished well (success or requeue_after), by its metrics. */
export async function reconcilesEndedWell(operator: Pick<OperatorProcess, 'metrics'>): Promise<number> {
  const text = await operator.metrics();
  return ['success', 'requeue_after'].reduce((n, result) => n + Number(new RegExp(`controller_runtime_reconcile_total\\{controller="monitoredserver",result="${result}"\\} (\\d+)`).exec(text)?.[1] ?? 0), 0);
}

/** The Node.js options the chart gives the operator (values.yaml `nodeOptions`): measured as it runs. */
function chartValues(): { nodeOptions?: string; mallocArenaMax?: number | null; mallocMmapThreshold?: number | null } {
  return parse(readFileSync(join(REPO_ROOT, 'helm', 'hyperspector', 'values.yaml'), 'utf8')) as { nodeOptions?: string; mallocArenaMax?: number | null; mallocMmapThreshold?: number | null };
}

export function chartNodeOptions(): string[] {
  return (chartValues().nodeOptions ?? '').split(/\s+/).filter((o) => o !== '');
}

/** The memory settings the chart's Deployment gives the operator as environment (NODE_OPTIONS, MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_). */
export function chartOperatorEnv(): Record<string, string> {
  const values = chartValues();
  return {
    ...(values.nodeOptions ? { NODE_OPTIONS: values.nodeOptions } : {}),
    ...(values.mallocArenaMax ? { MALLOC_ARENA_MAX: String(values.mallocArenaMax) } : {}),
    ...(values.mallocMmapThreshold ? { MALLOC_MMAP_THRESHOLD_: String(values.mallocMmapThreshold) } : {}),
  };
}

export async function startOperatorProcess(cluster: LocalCluster, options: OperatorProcessOptions = {}): Promise<OperatorProcess> {
  const leaseNamespace = options.leaseNamespace ?? 'hyperspector-system';
  await ensureNamespace(cluster, leaseNamespace);
  await ensureProcessMapperIdentity(cluster);
  const httpPort = await freePort();
  const kubeconfig = cluster.kubeConfigFor(options.user ?? 'admin').path;
  const logFile = options.logFile ?? cluster.logOf(`operator-${++counter}`);
  // The chart's glibc settings (its NODE_OPTIONS go on the command line).
  const { NODE_OPTIONS: _onTheCommandLine, ...glibc } = chartOperatorEnv();
  const proc = new ManagedProcess(
    'operator',
    // node itself (Node 24 from node_modules), not the tsx wrapper: one process, so SIGKILL and
    // the peak RSS concern the operator and nothing else.
    join(REPO_ROOT, 'node_modules', '.bin', 'node'),
    [
      ...chartNodeOptions(),
      ...(options.compiled ? [join(REPO_ROOT, 'dist', 'src', 'main.js')] : ['--import', 'tsx', join(REPO_ROOT, 'src', 'main.ts')]),
      `--kubeconfig=${kubeconfig}`,
      `--leader-elect=${options.leaderElect ?? true}`,
      `--leader-election-namespace=${leaseNamespace}`,
      `--http-port=${httpPort}`,
      '--http-host=127.0.0.1',
      // A fast, fixed safety-net recheck (no back-off): a test waiting on it waits 5 s at most.
      '--not-ready-recheck=5s',
      '--not-ready-recheck-max=5s',
      ...(options.extraArgs ?? []),
    ],
    logFile,
    { ...process.env, ...glibc, PATH: `${join(REPO_ROOT, 'node_modules', '.bin')}:${process.env.PATH ?? ''}` },
    REPO_ROOT, // `--import tsx` resolves from here
  );
  const base = `http://127.0.0.1:${httpPort}`;
  const op: OperatorProcess = {
    pid: proc.pid,
    httpPort,
    process: proc,
    stop: () => proc.stop(15_000),
    kill: async () => {
      proc.killNow();
      await proc.exited;
    },
    metrics: async () => (await fetch(`${base}/metrics`)).text(),
    ready: async () => (await fetch(`${base}/readyz`).catch(() => undefined))?.status === 200,
  };
  await waitFor(
    async () => {
      if (!proc.running) throw new Error(`operator exited early; see ${logFile}`);
      return (await fetch(`${base}/healthz`).catch(() => undefined))?.status === 200 || undefined;
    },
    { timeoutMs: 60_000, description: 'the operator /healthz' },
  );
  return op;
}
