// The node agent as a real process for a real-guest node: `src/agent/main.ts` with the node's host
// network namespace (--node-netns, as hostNetwork gives it the node's) and the host's /proc (as
// hostPID does: it finds the launcher pods' processes by the pod UID in their cgroup). Killable
// with SIGKILL and restartable, like a DaemonSet pod.
import { join } from 'node:path';
import { freePort } from '../free-port.ts';
import { ManagedProcess } from '../managed-process.ts';
import { REPO_ROOT } from '../repo-root.ts';
import { waitFor } from '../wait.ts';
import type { NodeHost } from './node-network.ts';

export interface AgentProcess {
  readonly node: string;
  readonly process: ManagedProcess;
  metrics(): Promise<string>;
  stop(): Promise<void>;
  kill(): Promise<void>;
}

export interface AgentProcessOptions {
  kubeconfigPath: string;
  logFile: string;
  /** Extra flags (e.g. --ids-network none). */
  extraArgs?: string[];
}

export async function startAgentProcess(node: NodeHost, options: AgentProcessOptions): Promise<AgentProcess> {
  const httpPort = await freePort();
  const proc = new ManagedProcess(
    `agent ${node.nodeName}`,
    join(REPO_ROOT, 'node_modules', '.bin', 'node'),
    [
      '--import',
      'tsx',
      join(REPO_ROOT, 'src', 'agent', 'main.ts'),
      `--node-name=${node.nodeName}`,
      `--kubeconfig=${options.kubeconfigPath}`,
      `--node-netns=/run/netns/${node.ns.name}`,
      '--proc-root=/proc',
      `--http-port=${httpPort}`,
      '--http-host=127.0.0.1',
      '--resync-period=5s',
      ...(options.extraArgs ?? []),
    ],
    options.logFile,
    { ...process.env, PATH: `${join(REPO_ROOT, 'node_modules', '.bin')}:${process.env.PATH ?? ''}` },
    REPO_ROOT,
  );
  const base = `http://127.0.0.1:${httpPort}`;
  await waitFor(
    async () => {
      if (!proc.running) throw new Error(`the agent of ${node.nodeName} exited early; see ${options.logFile}`);
      return (await fetch(`${base}/healthz`).catch(() => undefined))?.status === 200 || undefined;
    },
    { timeoutMs: 60_000, description: `the agent of ${node.nodeName} /healthz` },
  );
  return {
    node: node.nodeName,
    process: proc,
    metrics: async () => (await fetch(`${base}/metrics`)).text(),
    stop: () => proc.stop(10_000),
    kill: async () => {
      proc.killNow();
      await proc.exited;
    },
  };
}
