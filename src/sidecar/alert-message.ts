// What an alert says to people (pure): the Event note and the status summary of one alert, with the
// process's parent chain and its command line with secret-looking values redacted.
import type { AlertSummary } from '../api/v1alpha1/monitoredserver-types.ts';
import type { GuestProcess } from '../introspection/process-info.ts';
import type { MapperEvent } from './events.ts';

export type AlertEvent = Extract<MapperEvent, { type: 'alert' }>;

export const REDACTED = '<redacted>';
/** Argument or variable names whose value is a secret: --password=x, --api-token x, DB_PASSWORD=x. */
const SECRET_NAME = /(pass(word|wd|phrase)?|secret|token|api[-_]?key|private[-_]?key|credentials?|auth)$/i;
const MAX_CHAIN = 8;
const MAX_ARGS_CHARS = 400;

/**
 * argv with the values of secret-looking options redacted: `--password=x` and `--password x`,
 * `NAME=value` assignments whose name looks secret, and the password of `scheme://user:pass@host`.
 */
export function redactCommandLine(argv: readonly string[]): string[] {
  const out: string[] = [];
  let redactNext = false;
  for (const arg of argv) {
    if (redactNext) {
      out.push(REDACTED);
      redactNext = false;
      continue;
    }
    const assignment = /^(-{0,2}[A-Za-z0-9_.-]+)=(.*)$/s.exec(arg);
    if (assignment && SECRET_NAME.test(assignment[1]!.replace(/^-+/, ''))) {
      out.push(`${assignment[1]}=${REDACTED}`);
      continue;
    }
    if (/^-{1,2}[A-Za-z0-9_.-]+$/.test(arg) && SECRET_NAME.test(arg.replace(/^-+/, ''))) {
      out.push(arg);
      redactNext = true;
      continue;
    }
    out.push(redactWithin(arg));
  }
  return out;
}

const SECRET_WORD = '[A-Za-z0-9_.-]*(?:pass(?:word|wd|phrase)?|secret|token|api[-_]?key|private[-_]?key|credentials?|auth)';

/** Secrets inside one argument (a script given to `sh -c`): `name=value`, `--name value`, URL passwords. */
function redactWithin(arg: string): string {
  return arg
    .replace(new RegExp(`(^|\\s)(-{0,2}${SECRET_WORD})=(\\S+)`, 'gi'), `$1$2=${REDACTED}`)
    .replace(new RegExp(`(^|\\s)(-{1,2}${SECRET_WORD})\\s+(?!-)(\\S+)`, 'gi'), `$1$2 ${REDACTED}`)
    .replace(/([a-z][a-z0-9+.-]*:\/\/[^/\s:@]+:)[^@\s/]+@/gi, `$1${REDACTED}@`);
}

/** The process's ancestors in `table`, nearest first (at most 8), e.g. "1200 sshd ← 1 init". */
export function parentChain(process: GuestProcess, table: readonly GuestProcess[] | undefined, parent?: GuestProcess): string {
  const byPid = new Map((table ?? []).map((p) => [p.pid, p]));
  if (parent) byPid.set(parent.pid, parent);
  const chain: string[] = [];
  const seen = new Set<number>([process.pid]);
  let next = byPid.get(process.ppid);
  while (next && chain.length < MAX_CHAIN && !seen.has(next.pid)) {
    chain.push(`${next.pid} ${next.comm}`);
    seen.add(next.pid);
    next = byPid.get(next.ppid);
  }
  if (chain.length === 0 && process.ppid > 0) chain.push(`${process.ppid} (not in the process table)`);
  return chain.join(' ← ');
}

function commandLine(p: GuestProcess): string {
  const args = p.cmdline.length > 0 ? redactCommandLine(p.cmdline).join(' ') : `[${p.comm}]`;
  return args.length > MAX_ARGS_CHARS ? `${args.slice(0, MAX_ARGS_CHARS)}… (cut)` : args;
}

/** The Warning Event's note: the rule's message, the process, its user, its parents and its command line. */
export function alertNote(alert: AlertEvent, table?: readonly GuestProcess[]): string {
  if ('module' in alert) return `${alert.message} (module ${alert.module.name} at ${alert.module.address})`;
  if (!('process' in alert)) return alert.message;
  const p = alert.process;
  const chain = parentChain(p, table, alert.parent);
  return `${alert.message}: pid ${p.pid} (${p.comm}) uid ${p.uid}${p.euid !== p.uid ? ` euid ${p.euid}` : ''}${chain ? `, parents ${chain}` : ''}, command line: ${commandLine(p)}`;
}

/** The alert as status.alerts.recent lists it. */
export function alertSummary(alert: AlertEvent, table?: readonly GuestProcess[]): AlertSummary {
  const note = alertNote(alert, table);
  return {
    time: alert.time,
    rule: alert.rule,
    ...('process' in alert ? { pid: alert.process.pid, comm: alert.process.comm.slice(0, 64) } : {}),
    message: note.length > 1024 ? `${note.slice(0, 1021)}...` : note,
  };
}
