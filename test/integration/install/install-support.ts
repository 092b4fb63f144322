// Helpers of the install tests: helm and the Argo CD health runner (both built and cached by hack/),
// a kubeconfig holding a ServiceAccount's token, and the operator started exactly as the chart's
// Deployment says (its args and env), as a local process.
import { execFile, execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { freePort } from '../../../testenv/free-port.ts';
import { type LocalCluster } from '../../../testenv/cluster/local-cluster.ts';
import { REPO_ROOT } from '../../../testenv/repo-root.ts';
import { ManagedProcess } from '../../../testenv/managed-process.ts';
import { waitFor } from '../../../testenv/wait.ts';
import { HEALTH_LUA, helmBinary } from '../../../hack/packaging.ts';

export { HEALTH_LUA };

const run = promisify(execFile);


export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string>; labels?: Record<string, string> };
  [key: string]: unknown;
}

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs helm with the cluster's admin kubeconfig (when given); never throws on a non-zero exit. */
export class Helm {
  readonly binary = helmBinary();
  constructor(private readonly kubeconfig?: string) {}

  async run(args: string[], options: { timeoutMs?: number } = {}): Promise<HelmResult> {
    const env = { ...process.env, HELM_CACHE_HOME: '/tmp/hyperspector-helm/cache', HELM_CONFIG_HOME: '/tmp/hyperspector-helm/config', HELM_DATA_HOME: '/tmp/hyperspector-helm/data' };
    try {
      const { stdout, stderr } = await run(this.binary, [...args, ...(this.kubeconfig ? ['--kubeconfig', this.kubeconfig] : [])], {
        env,
        timeout: options.timeoutMs ?? 300_000,
        maxBuffer: 64 * 1024 * 1024,
      });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(err) };
    }
  }

  async ok(args: string[], options: { timeoutMs?: number } = {}): Promise<string> {
    const res = await this.run(args, options);
    if (res.code !== 0) throw new Error(`helm ${args.join(' ')} failed (${res.code}): ${res.stderr}`);
    return res.stdout;
  }

  /** `helm template` parsed into objects. */
  async template(release: string, namespace: string, extra: string[] = []): Promise<KubeObject[]> {
    return parseObjects(await this.ok(['template', release, join(REPO_ROOT, 'helm', 'hyperspector'), '--namespace', namespace, ...extra]));
  }
}

export function parseObjects(yaml: string): KubeObject[] {
  return parseAllDocuments(yaml)
    .map((d) => d.toJS() as KubeObject | null)
    .filter((o): o is KubeObject => Boolean(o?.kind));
}

let luaHealth: string | undefined;

/** hack/argocd/lua-health, built once and cached by hack/build-lua-runner.sh. */
export function luaHealthBinary(): string {
  luaHealth ??= join(execFileSync('bash', [join(REPO_ROOT, 'hack', 'build-lua-runner.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').pop() ?? '', 'lua-health');
  return luaHealth;
}

/** Argo CD's evaluation of health.lua (hack/argocd/lua-health on gopher-lua) for each object. */
export function argoHealth(objects: object[]): Array<{ status: string; message?: string }> {
  const out = execFileSync(luaHealthBinary(), [HEALTH_LUA], { input: JSON.stringify(objects), encoding: 'utf8' });
  return JSON.parse(out) as Array<{ status: string; message?: string }>;
}

/** A kubeconfig authenticating with a fresh token of the ServiceAccount (TokenRequest API). */
export async function serviceAccountKubeconfig(cluster: LocalCluster, namespace: string, name: string): Promise<string> {
  const core = cluster.api(k8s.CoreV1Api);
  const token = await core.createNamespacedServiceAccountToken({ namespace, name, body: { spec: { expirationSeconds: 3600, audiences: [] } } });
  const current = cluster.kubeConfig.getCurrentCluster();
  if (!current || !token.status?.token) throw new Error(`no token for ServiceAccount ${namespace}/${name}`);
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'local', server: current.server, caData: current.caData }],
    users: [{ name: `${namespace}-${name}`, token: token.status.token }],
    contexts: [{ name: 'sa@local', cluster: 'local', user: `${namespace}-${name}` }],
    currentContext: 'sa@local',
  });
  const path = join(cluster.dir, `kubeconfig-sa-${namespace}-${name}`);
  writeFileSync(path, kc.exportConfig(), { mode: 0o600 });
  return path;
}

export interface ChartOperator {
  process: ManagedProcess;
  httpPort: number;
  args: string[];
  env: Record<string, string>;
  stop(): Promise<void>;
}

/**
 * Starts the operator with the command, args and env of the installed Deployment's container (the
 * image's `node dist/src/main.js` becomes `node --import tsx src/main.ts` of this checkout), with
 * the given kubeconfig instead of the in-cluster one, and /metrics on a free loopback port.
 */
export async function startOperatorAsDeployed(cluster: LocalCluster, deployment: k8s.V1Deployment, kubeconfig: string): Promise<ChartOperator> {
  const container = deployment.spec?.template.spec?.containers.find((c) => c.name === 'operator');
  if (!container) throw new Error('the Deployment has no operator container');
  if (JSON.stringify(container.command) !== JSON.stringify(['node', 'dist/src/main.js'])) throw new Error(`unexpected command ${JSON.stringify(container.command)}`);
  const namespace = deployment.metadata?.namespace ?? '';
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') env[e.name] = namespace;
    else throw new Error(`env ${e.name}: unsupported source ${JSON.stringify(e.valueFrom)}`);
  }
  const httpPort = await freePort();
  const args = (container.args ?? []).filter((a) => !a.startsWith('--http-port='));
  const logFile = cluster.logOf('chart-operator');
  const proc = new ManagedProcess(
    'chart-operator',
    join(REPO_ROOT, 'node_modules', '.bin', 'node'),
    ['--import', 'tsx', join(REPO_ROOT, 'src', 'main.ts'), ...args, `--http-port=${httpPort}`, '--http-host=127.0.0.1', `--kubeconfig=${kubeconfig}`],
    logFile,
    { PATH: process.env.PATH ?? '', HOME: cluster.dir, ...env },
    REPO_ROOT,
  );
  await waitFor(
    async () => {
      if (!proc.running) throw new Error(`the operator exited early; see ${logFile}`);
      return (await fetch(`http://127.0.0.1:${httpPort}/readyz`).catch(() => undefined))?.status === 200 || undefined;
    },
    { timeoutMs: 60_000, description: 'the operator /readyz' },
  );
  return { process: proc, httpPort, args, env, stop: () => proc.stop(15_000) };
}
