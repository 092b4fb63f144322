// Events the process mapper publishes on /events (server-sent events), as JSON.
import type { GuestModule } from '../introspection/kernel-modules.ts';
import type { GuestProcess } from '../introspection/process-info.ts';
import type { ProcessSocket } from '../introspection/guest-introspector.ts';

export type ProcessAlertRule = 'ProcessOutsideBaseline' | 'RootShellFromNetworkService' | 'HiddenProcess' | 'NewListeningSocket';
/** Alerts raised in the IDS VM and posted to the intake (intake-parser.ts): the rule is the Event reason of the tool. */
export type IntakeAlertRule = 'SuricataAlert' | 'FileIntegrityChanged' | 'IDSToolAlert';
export type AlertRule = ProcessAlertRule | 'HiddenModule' | 'AmbiguousQemu' | IntakeAlertRule;

export type MapperEvent =
  | { type: 'process-start'; time: string; process: GuestProcess }
  | { type: 'process-exit'; time: string; process: GuestProcess }
  /** Same process (pid and start time), new program: it called execve() since the last poll. */
  | { type: 'process-exec'; time: string; process: GuestProcess; previous: { comm: string; cmdline: string[] } }
  /** socket: with NewListeningSocket, the socket a program listens on where the baseline never saw it listen. */
  | { type: 'alert'; time: string; rule: ProcessAlertRule; message: string; process: GuestProcess; parent?: GuestProcess; socket?: ProcessSocket }
  /** HiddenModule: a kernel module unlinked from the module list (no process involved). */
  | { type: 'alert'; time: string; rule: 'HiddenModule'; message: string; module: GuestModule }
  /** AmbiguousQemu: several processes in the launcher pod claim to be the VMI's QEMU (one imitates it); none is read. */
  | { type: 'alert'; time: string; rule: 'AmbiguousQemu'; message: string; pids: number[] }
  /** An alert a tool in the IDS VM posted to the intake; `source` names the tool (suricata, aide, ...). */
  | { type: 'alert'; time: string; rule: IntakeAlertRule; message: string; source: string }
  /** profileSource: guest-memory (built from the running kernel's BTF and kallsyms) or configmap. */
  | { type: 'guest-attached'; time: string; qemuPid: number; kernelRelease: string; profileSource: 'guest-memory' | 'configmap'; processCount: number }
  | { type: 'guest-detached'; time: string; qemuPid: number; reason: string };

/** A process is identified by pid and start time, so a reused pid is a new process. */
export function processKey(p: GuestProcess): string {
  return `${p.pid}@${p.startTimeNs}`;
}

/** Start, exec and exit events between two consistent snapshots. */
export function diffProcesses(before: GuestProcess[], after: GuestProcess[], time: string): MapperEvent[] {
  const old = new Map(before.map((p) => [processKey(p), p]));
  const now = new Map(after.map((p) => [processKey(p), p]));
  const events: MapperEvent[] = [];
  for (const [key, p] of old) if (!now.has(key)) events.push({ type: 'process-exit', time, process: p });
  for (const [key, p] of now) {
    const was = old.get(key);
    if (!was) events.push({ type: 'process-start', time, process: p });
    // An exiting process loses its mm (and so its command line) before it is reaped: that is not an exec.
    else if (!p.kernelThread && p.cmdline.length > 0 && (was.comm !== p.comm || was.args !== p.args)) {
      events.push({ type: 'process-exec', time, process: p, previous: { comm: was.comm, cmdline: was.cmdline } });
    }
  }
  return events;
}
