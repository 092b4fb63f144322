// `kubectl-hyperspector ps`: the guest's process table, seen from outside the guest, either by
// reading a local QEMU process's memory (development) or from a process-mapper sidecar.
import type { Command } from 'commander';
import { GuestIntrospector } from '../../introspection/guest-introspector.ts';
import { loadKernelProfiles } from '../../introspection/profile-store.ts';
import { loadKubeConfig } from '../../kube/client/client.ts';
import type { GuestProcess, ProcessSnapshot } from '../../introspection/process-info.ts';

interface PsOptions {
  qemuPid?: string;
  pid?: string;
  profile: string[];
  url?: string;
  token?: string;
  output: 'table' | 'json';
}

export function registerPsCommand(program: Command): void {
  program
    .command('ps')
    .description("List a guest's processes from outside the guest (from a QEMU pid or a process-mapper sidecar)")
    .option('--qemu-pid <pid>', 'local QEMU process to read (needs root)')
    .option('--profile <file-or-dir>', 'kernel profile(s) for --qemu-pid overriding the guest kernel\'s own BTF and kallsyms (repeatable; none needed for BTF kernels)', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--url <url>', 'base URL of a process-mapper sidecar, e.g. http://10.0.0.7:9443')
    .option('--token <token>', 'bearer token for --url (default: the token of your kubeconfig user, $KUBECONFIG or ~/.kube/config); the user must be allowed to get monitoredservers/processes')
    .option('--pid <pid>', 'one guest process in detail: threads, executable, open files (as JSON)')
    .option('-o, --output <format>', 'table or json', 'table')
    .action(async (opts: PsOptions) => {
      try {
        if (opts.pid !== undefined) {
          process.stdout.write(`${JSON.stringify(await processDetails(opts), null, 2)}\n`);
          return;
        }
        const snapshot = await takeSnapshot(opts);
        process.stdout.write(opts.output === 'json' ? `${JSON.stringify(snapshot, null, 2)}\n` : formatPsTable(snapshot));
      } catch (err) {
        program.error(`error: ${(err as Error).message}`, { exitCode: 1 });
      }
    });
}

/** The user's own credentials: --token, else the bearer token of the current kubeconfig user (none: the mapper answers 401). */
function authHeaders(opts: PsOptions): Record<string, string> {
  let token = opts.token;
  if (!token) {
    try {
      token = loadKubeConfig().getCurrentUser()?.token;
    } catch {
      token = undefined;
    }
  }
  return token ? { authorization: `Bearer ${token}` } : {};
}

async function takeSnapshot(opts: PsOptions): Promise<ProcessSnapshot> {
  if ((opts.qemuPid === undefined) === (opts.url === undefined)) throw new Error('give exactly one of --qemu-pid or --url');
  if (opts.url !== undefined) {
    const res = await fetch(new URL('/processes', opts.url), { headers: authHeaders(opts) });
    if (!res.ok) throw new Error(`${opts.url}/processes answered ${res.status}: ${await res.text()}`);
    return (await res.json()) as ProcessSnapshot;
  }
  const introspector = GuestIntrospector.attachToQemu(Number(opts.qemuPid), loadKernelProfiles(opts.profile));
  try {
    return introspector.snapshot();
  } finally {
    introspector.close();
  }
}

async function processDetails(opts: PsOptions): Promise<unknown> {
  if ((opts.qemuPid === undefined) === (opts.url === undefined)) throw new Error('give exactly one of --qemu-pid or --url');
  if (opts.url !== undefined) {
    const res = await fetch(new URL(`/processes/${Number(opts.pid)}`, opts.url), { headers: authHeaders(opts) });
    if (!res.ok) throw new Error(`${opts.url}/processes/${opts.pid} answered ${res.status}: ${await res.text()}`);
    return res.json();
  }
  const introspector = GuestIntrospector.attachToQemu(Number(opts.qemuPid), loadKernelProfiles(opts.profile));
  try {
    const details = introspector.processDetails(Number(opts.pid));
    if (!details) throw new Error(`no process ${opts.pid} in the guest (or the kernel profile has no detail offsets)`);
    return details;
  } finally {
    introspector.close();
  }
}

export function formatPsTable(snapshot: ProcessSnapshot): string {
  const rows: string[][] = [['PID', 'PPID', 'UID', 'STAT', 'START', 'COMMAND', 'ARGS']];
  for (const p of snapshot.processes) rows.push(row(p));
  const widths = rows[0]!.slice(0, -1).map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((cell, i) => (i < widths.length ? cell.padEnd(widths[i]!) : cell)).join('  ').trimEnd());
  if (snapshot.processes.some((p) => p.commTruncated || p.cmdlineTruncated)) lines.push(`# ${CUT_MARK} marks a name or command line cut by the reader (see commTruncated and cmdlineTruncated in -o json)`);
  if (!snapshot.consistent) lines.push(`# warning: the task list changed while it was read; some processes may be missing (${snapshot.problems.join('; ')})`);
  return `${lines.join('\n')}\n`;
}

/** Appended where the reader cut a value (never silently). */
export const CUT_MARK = '…';

function row(p: GuestProcess): string[] {
  const start = `${(p.startTimeNs / 1e9).toFixed(1)}s`;
  const comm = p.commTruncated ? `${p.comm}${CUT_MARK}` : p.comm;
  const args = p.cmdlineTruncated ? `${p.args}${CUT_MARK}` : p.args;
  return [String(p.pid), String(p.ppid), String(p.euid), p.state, start, comm, args];
}
