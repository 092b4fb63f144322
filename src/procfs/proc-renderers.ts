// The text of /proc files as Linux formats them (fs/proc/array.c, fs/proc/base.c, fs/proc/*.c),
// rendered from what the mapper read from guest memory. Fields the snapshot does not hold are the
// value Linux shows for "nothing" (0, or -1 where Linux uses it), never invented figures; the
// per-file notes in docs/process-mapping.md list them. Pure functions: table-tested.
import type { GuestProcess } from '../introspection/process-info.ts';

/** USER_HZ: the unit of clock-tick fields in /proc on x86-64. */
export const CLOCK_TICKS_PER_SECOND = 100;
/** PF_KTHREAD, the only task flag the snapshot knows. */
export const PF_KTHREAD = 0x00200000;

/** One task as the renderers need it: a process (its group leader) or one of its threads. */
export interface TaskView {
  pid: number;
  /** Thread-group id: the process's pid. */
  tgid: number;
  ppid: number;
  comm: string;
  state: string;
  uid: number;
  euid: number;
  gid: number;
  startTimeNs: number;
  kernelThread: boolean;
  cmdline: string[];
  /** Threads of the process, when known; 1 otherwise (the task itself). */
  threads: number;
}

export function taskOfProcess(p: GuestProcess, threads = 1): TaskView {
  return { pid: p.pid, tgid: p.pid, ppid: p.ppid, comm: p.comm, state: p.state, uid: p.uid, euid: p.euid, gid: p.gid, startTimeNs: p.startTimeNs, kernelThread: p.kernelThread, cmdline: p.cmdline, threads };
}

/** Clock ticks since boot, as /proc/<pid>/stat's starttime (nsec_to_clock_t). */
export function startTimeTicks(startTimeNs: number): number {
  return Math.floor(startTimeNs / (1e9 / CLOCK_TICKS_PER_SECOND));
}

/** /proc/<pid>/stat: 52 fields; comm in parentheses (it may hold spaces and parentheses). */
export function renderStat(t: TaskView): string {
  const fields: Array<string | number> = [
    t.pid, `(${t.comm})`, t.state, t.ppid,
    0, 0, // pgrp, session
    0, -1, // tty_nr, tpgid
    t.kernelThread ? PF_KTHREAD : 0, // flags
    0, 0, 0, 0, // minflt cminflt majflt cmajflt
    0, 0, 0, 0, // utime stime cutime cstime
    20, 0, // priority, nice (the defaults: the snapshot holds no scheduling policy)
    t.threads, 0, // num_threads, itrealvalue
    startTimeTicks(t.startTimeNs),
    0, 0, 0, // vsize rss rsslim
    0, 0, 0, 0, 0, // startcode endcode startstack kstkesp kstkeip
    0, 0, 0, 0, // signal blocked sigignore sigcatch
    0, 0, 0, // wchan nswap cnswap
    t.kernelThread ? 0 : 17, // exit_signal: SIGCHLD for processes, as fork() sets it
    0, 0, 0, 0, 0, 0, // processor rt_priority policy delayacct_blkio_ticks guest_time cguest_time
    0, 0, 0, 0, 0, 0, 0, // start_data end_data start_brk arg_start arg_end env_start env_end
    0, // exit_code
  ];
  return `${fields.join(' ')}\n`;
}

const STATE_NAMES: Record<string, string> = {
  R: 'R (running)', S: 'S (sleeping)', D: 'D (disk sleep)', T: 'T (stopped)', t: 't (tracing stop)', X: 'X (dead)', Z: 'Z (zombie)', P: 'P (parked)', I: 'I (idle)',
};

/** status's Name: escaped as proc_task_name(…, escape=true) does (\n and \\). */
function escapeName(comm: string): string {
  return comm.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/**
 * /proc/<pid>/status, the lines procps and busybox read (Name … Threads), tab-separated as Linux
 * prints them. Saved and file-system uids are the effective uid; all four gids the real gid (the
 * snapshot reads uid, euid and gid).
 */
export function renderStatus(t: TaskView): string {
  return [
    `Name:\t${escapeName(t.comm)}`,
    `State:\t${STATE_NAMES[t.state] ?? `${t.state} (unknown)`}`,
    `Tgid:\t${t.tgid}`,
    `Ngid:\t0`,
    `Pid:\t${t.pid}`,
    `PPid:\t${t.ppid}`,
    `TracerPid:\t0`,
    `Uid:\t${t.uid}\t${t.euid}\t${t.euid}\t${t.euid}`,
    `Gid:\t${t.gid}\t${t.gid}\t${t.gid}\t${t.gid}`,
    `Threads:\t${t.threads}`,
    '',
  ].join('\n');
}

/** /proc/<pid>/cmdline: each argument NUL-terminated; empty for kernel threads. */
export function renderCmdline(t: TaskView): Buffer {
  return Buffer.from(t.cmdline.map((a) => `${a}\0`).join(''), 'utf8');
}

export function renderComm(t: TaskView): string {
  return `${t.comm}\n`;
}

/** /proc/uptime: seconds since boot and idle seconds (unknown: 0), two decimals. */
export function renderUptime(uptimeSeconds: number): string {
  return `${uptimeSeconds.toFixed(2)} 0.00\n`;
}

/** /proc/loadavg: load averages are unknown (0.00); runnable/total tasks and the last pid are the snapshot's. */
export function renderLoadavg(processes: readonly GuestProcess[]): string {
  const running = processes.filter((p) => p.state === 'R').length;
  const last = processes.reduce((m, p) => Math.max(m, p.pid), 0);
  return `0.00 0.00 0.00 ${running}/${processes.length} ${last}\n`;
}

/** /proc/stat: CPU times unknown (0); btime from the boot time, process counts from the snapshot. */
export function renderSystemStat(processes: readonly GuestProcess[], bootEpochSeconds: number): string {
  const zeros = ' 0 0 0 0 0 0 0 0 0 0';
  return [
    `cpu ${zeros}`,
    `cpu0${zeros}`,
    'intr 0',
    'ctxt 0',
    `btime ${Math.floor(bootEpochSeconds)}`,
    `processes ${processes.length}`,
    `procs_running ${processes.filter((p) => p.state === 'R').length}`,
    `procs_blocked ${processes.filter((p) => p.state === 'D').length}`,
    '',
  ].join('\n');
}

/**
 * /proc/meminfo: MemTotal is the guest's RAM as QEMU was given it (-m; the kernel's own MemTotal
 * is somewhat less, after its reservations); the other figures are not read and are 0 kB. top
 * divides by MemTotal, so it is never 0 (1 kB when the RAM size is unknown).
 */
export function renderMeminfo(ramBytes: number | undefined): string {
  const total = Math.max(1, Math.floor((ramBytes ?? 0) / 1024));
  return ['MemTotal', 'MemFree', 'MemAvailable', 'Buffers', 'Cached', 'SwapCached', 'Active', 'Inactive', 'Shmem', 'Slab', 'SwapTotal', 'SwapFree']
    .map((k) => `${`${k}:`.padEnd(16)}${String(k === 'MemTotal' ? total : 0).padStart(8)} kB`).join('\n') + '\n';
}

export function renderVersion(release: string): string {
  return `Linux version ${release}\n`;
}
