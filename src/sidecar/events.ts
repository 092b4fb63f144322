// Events the process mapper publishes on /events (server-sent events), as JSON.
import type { GuestProcess } from '../introspection/process-info.ts';

export type AlertRule = 'ProcessOutsideBaseline' | 'RootShellFromNetworkService';

export type MapperEvent =
  | { type: 'process-start'; time: string; process: GuestProcess }
  | { type: 'process-exit'; time: string; process: GuestProcess }
  | { type: 'alert'; time: string; rule: AlertRule; message: string; process: GuestProcess; parent?: GuestProcess }
  | { type: 'guest-attached'; time: string; qemuPid: number; kernelRelease: string; processCount: number }
  | { type: 'guest-detached'; time: string; qemuPid: number; reason: string };

/** A process is identified by pid and start time, so a reused pid is a new process. */
export function processKey(p: GuestProcess): string {
  return `${p.pid}@${p.startTimeNs}`;
}

/** Start and exit events between two consistent snapshots. */
export function diffProcesses(before: GuestProcess[], after: GuestProcess[], time: string): MapperEvent[] {
  const old = new Map(before.map((p) => [processKey(p), p]));
  const now = new Map(after.map((p) => [processKey(p), p]));
  const events: MapperEvent[] = [];
  for (const [key, p] of old) if (!now.has(key)) events.push({ type: 'process-exit', time, process: p });
  for (const [key, p] of now) if (!old.has(key)) events.push({ type: 'process-start', time, process: p });
  return events;
}
