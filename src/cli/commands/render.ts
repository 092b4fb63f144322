// `kubectl-hyperspector render -f ms.yaml`: every child manifest, offline, from the same builders.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parseAllDocuments, stringify } from 'yaml';
import type { MonitoredServer } from '../../api/v1alpha1/monitoredserver-types.ts';
import { renderChildren } from '../../builders/render.ts';

export function renderFile(text: string, nodeName: string): string {
  const docs = parseAllDocuments(text).map((d) => d.toJS() as { kind?: string } | null);
  const servers = docs.filter((d): d is MonitoredServer => d?.kind === 'MonitoredServer');
  if (servers.length === 0) throw new Error('no MonitoredServer found in the input');
  return servers
    .flatMap((ms) => renderChildren(ms, { nodeName }))
    .map(({ note, object }) => `# ${note}\n${stringify(object, { lineWidth: 0 })}`)
    .join('---\n');
}

export function registerRenderCommand(program: Command): void {
  program
    .command('render')
    .description('Print the child objects the operator creates for MonitoredServers, without a cluster')
    .requiredOption('-f, --filename <file>', 'YAML file with MonitoredServers ("-" for stdin)')
    .option('--node <name>', 'node the server VM is assumed to run on (decided at run time)', '<server-node>')
    .action((opts: { filename: string; node: string }) => {
      try {
        const text = readFileSync(opts.filename === '-' ? 0 : opts.filename, 'utf8');
        process.stdout.write(renderFile(text, opts.node));
      } catch (err) {
        program.error(`error: ${(err as Error).message}`, { exitCode: 1 });
      }
    });
}
