// `kubectl-hyperspector status`: MonitoredServers with their conditions, readable.
import type { Command } from 'commander';
import type { MonitoredServer } from '../../api/v1alpha1/monitoredserver-types.ts';
import { MONITORED_SERVER } from '../../api/v1alpha1/resource.ts';
import { loadKubeConfig } from '../../kube/client/client.ts';
import { collectionPath } from '../../kube/client/resources.ts';
import { createKubeApi } from '../../kube/client/rest.ts';

function age(timestamp: string | undefined, now: Date): string {
  if (!timestamp) return '';
  const s = Math.max(0, Math.round((now.getTime() - new Date(timestamp).getTime()) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : s < 172800 ? `${Math.round(s / 3600)}h` : `${Math.round(s / 86400)}d`;
}

export function formatStatus(items: MonitoredServer[], now = new Date()): string {
  if (items.length === 0) return 'No MonitoredServers found.\n';
  const lines: string[] = [];
  for (const ms of items) {
    const conditions = ms.status?.conditions ?? [];
    const ready = conditions.find((c) => c.type === 'Ready');
    const mark = ready?.status === 'True' ? '✔' : '✘';
    lines.push(
      `${mark} ${ms.metadata.namespace}/${ms.metadata.name}  ${ready?.reason ?? 'Pending'}` +
        `  node=${ms.status?.nodeName ?? '-'}  server=${ms.status?.serverVM?.name ?? '-'}(${ms.status?.serverVM?.phase ?? '-'})` +
        `  ids=${ms.status?.idsVM?.name ?? '-'}(${ms.status?.idsVM?.phase ?? '-'})`,
    );
    if (ms.status?.observedGeneration !== undefined && ms.status.observedGeneration !== ms.metadata.generation) {
      lines.push(`    (status is for generation ${ms.status.observedGeneration}; the spec is at ${ms.metadata.generation})`);
    }
    for (const c of conditions.filter((x) => x.type !== 'Ready')) {
      lines.push(`    ${c.status === 'True' ? '✔' : '✘'} ${c.type.padEnd(14)} ${c.reason.padEnd(26)} ${age(c.lastTransitionTime, now).padStart(4)}  ${c.message}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description('Summarize MonitoredServers and their conditions')
    .option('-n, --namespace <ns>', 'only this namespace (default: all)')
    .option('--kubeconfig <path>', 'kubeconfig file (default: $KUBECONFIG, else in-cluster)')
    .option('-o, --output <format>', 'text or json', 'text')
    .action(async (opts: { namespace?: string; kubeconfig?: string; output: string }) => {
      try {
        const api = createKubeApi(loadKubeConfig(opts.kubeconfig ? { kubeconfigPath: opts.kubeconfig } : {}));
        const list = await api.request<{ items: MonitoredServer[] }>({ method: 'GET', path: collectionPath(MONITORED_SERVER, opts.namespace) });
        const items = list.items.sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));
        process.stdout.write(opts.output === 'json' ? `${JSON.stringify(items.map((i) => ({ name: i.metadata.name, namespace: i.metadata.namespace, status: i.status })), null, 2)}\n` : formatStatus(items));
      } catch (err) {
        program.error(`error: ${(err as Error).message}`, { exitCode: 1 });
      }
    });
}
