// The process view as a tree (view-tree.ts) laid out like /proc, so that unmodified ps and top
// read it when it is mounted (or bind-mounted) on /proc:
//   /<pid>/{stat,status,cmdline,comm}      one directory per process, owned by its effective uid
//   /<pid>/task/<tid>/{stat,status,comm,cmdline}   the leader; all threads once the directory is read
//   /uptime /stat /loadavg /meminfo /version /cpuinfo /sys/kernel/{pid_max,osrelease}
//   /self -> 1    what procps-ng needs to start (see SELF_TARGET)
// Built from the mapper's latest consistent snapshot at each lookup: a process that exited is gone
// at the next snapshot. Pure apart from the injected source.
import type { GuestThread } from '../introspection/process-details.ts';
import type { GuestProcess, ProcessSnapshot } from '../introspection/process-info.ts';
import {
  renderCmdline, renderComm, renderLoadavg, renderMeminfo, renderStat, renderStatus, renderSystemStat, renderUptime, renderVersion, taskOfProcess,
  type TaskView,
} from './proc-renderers.ts';
import { staticDir, textFile, type ViewDir, type ViewNode } from './view-tree.ts';

export interface ProcViewSource {
  /** The latest consistent snapshot; undefined while not attached. */
  snapshot(): ProcessSnapshot | undefined;
  /** Threads of one process read now (a fresh task walk: only when a task/ directory is read). */
  threads(pid: number): GuestThread[] | undefined;
  /** Wall clock, ms since the epoch. */
  now(): number;
  /** The guest's RAM size (QEMU's -m), when known. */
  ramBytes(): number | undefined;
}

/**
 * /self: the reading tool is no process of the server, yet procps-ng's ps and top stop without a
 * parseable /proc/self/stat, and ps then looks itself up as /proc/<getpid()>. The view's self is
 * the server's init; the readers' wrappers run the tool as pid 1 of a new pid namespace, so
 * getpid() names that same directory (docs/process-mapping.md).
 */
export const SELF_TARGET = '1';

/** 4194304: the kernel's PID_MAX_LIMIT on 64-bit; the guest's own pid_max is not read. */
export const SYNTHESIZED_PID_MAX = 4_194_304;

/**
 * Seconds since the guest booted, at least: the newest task start in the snapshot (kernel workers
 * start often) plus the time since the snapshot. The snapshot holds no clock of its own.
 */
export function estimatedUptimeSeconds(snapshot: ProcessSnapshot, nowMs: number): number {
  const newestStartNs = snapshot.processes.reduce((m, p) => Math.max(m, p.startTimeNs), 0);
  return newestStartNs / 1e9 + Math.max(0, nowMs - Date.parse(snapshot.takenAt)) / 1000;
}

const FILE = { perm: 0o444 };
const DIR = { perm: 0o555 };

export function buildProcView(source: ProcViewSource): () => ViewDir {
  // Thread lists read for task/ directories, kept for the snapshot they were read in.
  let threadCache: { takenAt: string; byPid: Map<number, GuestThread[]> } = { takenAt: '', byPid: new Map() };
  const threadsOf = (snapshot: ProcessSnapshot, pid: number, read: boolean): GuestThread[] | undefined => {
    if (threadCache.takenAt !== snapshot.takenAt) threadCache = { takenAt: snapshot.takenAt, byPid: new Map() };
    let threads = threadCache.byPid.get(pid);
    if (!threads && read) {
      try {
        threads = source.threads(pid);
      } catch {
        threads = undefined;
      }
      if (threads && threads.length > 0) {
        if (threadCache.byPid.size >= 4096) threadCache.byPid.clear();
        threadCache.byPid.set(pid, threads);
      }
    }
    return threads;
  };

  return () => {
    const snapshot = source.snapshot();
    const now = source.now();
    const processes = snapshot?.processes ?? [];
    const uptime = snapshot ? estimatedUptimeSeconds(snapshot, now) : 0;
    const bootEpoch = now / 1000 - uptime;
    const mtime = Math.floor(now / 1000);
    const release = snapshot?.kernel.release ?? 'unknown';
    const root = { uid: 0, gid: 0, mtimeSec: mtime };

    const taskFiles = (t: TaskView, owner: { uid: number; gid: number; mtimeSec: number }): ViewNode[] => [
      textFile('stat', { ...FILE, ...owner }, () => renderStat(t)),
      textFile('status', { ...FILE, ...owner }, () => renderStatus(t)),
      textFile('cmdline', { ...FILE, ...owner }, () => renderCmdline(t)),
      textFile('comm', { ...FILE, ...owner }, () => renderComm(t)),
    ];

    const processDir = (p: GuestProcess): ViewDir => {
      const owner = { uid: p.euid >= 0 ? p.euid : 0, gid: p.gid >= 0 ? p.gid : 0, mtimeSec: Math.floor(bootEpoch + p.startTimeNs / 1e9) };
      const known = snapshot ? threadsOf(snapshot, p.pid, false) : undefined;
      const task = taskOfProcess(p, known?.length ?? 1);
      const taskDir = staticDir('task', { ...DIR, ...owner }, () => {
        const threads = (snapshot ? threadsOf(snapshot, p.pid, true) : undefined) ?? [{ tid: p.pid, comm: p.comm, state: p.state }];
        const count = threads.length;
        return threads.map((th) => {
          const t: TaskView = { ...taskOfProcess(p, count), pid: th.tid, comm: th.comm, state: th.state };
          return staticDir(String(th.tid), { ...DIR, ...owner }, () => taskFiles(t, owner));
        });
      });
      return staticDir(String(p.pid), { ...DIR, ...owner }, () => [...taskFiles(task, owner), taskDir]);
    };

    const byPid = new Map(processes.map((p) => [String(p.pid), p]));
    const globals = (): ViewNode[] => [
      textFile('uptime', { ...FILE, ...root }, () => renderUptime(uptime)),
      textFile('stat', { ...FILE, ...root }, () => renderSystemStat(processes, bootEpoch)),
      textFile('loadavg', { ...FILE, ...root }, () => renderLoadavg(processes)),
      textFile('meminfo', { ...FILE, ...root }, () => renderMeminfo(source.ramBytes())),
      textFile('version', { ...FILE, ...root }, () => renderVersion(release)),
      // Empty: the guest's CPUs are not read. procps-ng's top needs the file to exist (its core scan).
      textFile('cpuinfo', { ...FILE, ...root }, () => ''),
      staticDir('sys', { ...DIR, ...root }, () => [
        staticDir('kernel', { ...DIR, ...root }, () => [
          textFile('pid_max', { ...FILE, ...root }, () => `${SYNTHESIZED_PID_MAX}\n`),
          textFile('osrelease', { ...FILE, ...root }, () => `${release}\n`),
        ]),
      ]),
      ...(byPid.has(SELF_TARGET) ? [{ kind: 'symlink' as const, name: 'self', perm: 0o777, ...root, target: SELF_TARGET }] : []),
    ];
    return {
      kind: 'dir', name: '', ...DIR, ...root,
      list: () => [...processes.map(processDir), ...globals()],
      lookup: (name) => {
        const p = byPid.get(name);
        if (p) return processDir(p);
        return globals().find((g) => g.name === name);
      },
    };
  };
}
