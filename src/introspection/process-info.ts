// The process table as the introspector reports it (and the sidecar serves it as JSON).
import type { HiddenProcess } from './hidden-processes.ts';
import type { GuestModule } from './kernel-modules.ts';

export interface GuestProcess {
  pid: number;
  ppid: number;
  /**
   * As /proc/<pid>/comm shows it: task->comm, for kernel threads their full name (kthread->full_name),
   * for work-queue workers their current work queue.
   */
  comm: string;
  /**
   * True when comm may be shorter than what the guest's /proc shows: a kernel thread's 15-character
   * task->comm whose full name the profile cannot locate.
   */
  commTruncated: boolean;
  /** Real and effective user id and real group id, from task->cred. */
  uid: number;
  euid: number;
  gid: number;
  /** ps-style state letter: R, S, D, T, t, Z, X, I. */
  state: string;
  /** Nanoseconds since guest boot (CLOCK_MONOTONIC), as task->start_time. */
  startTimeNs: number;
  kernelThread: boolean;
  /** argv as in /proc/<pid>/cmdline; empty for kernel threads or when the pages are not resident. */
  cmdline: string[];
  /** True when the command line was longer than the reader's limit (maxCmdline) and is cut. */
  cmdlineTruncated: boolean;
  /** ps's "args" column: the command line, or [comm] when there is none. */
  args: string;
}

export interface ProcessSnapshot {
  takenAt: string;
  durationMs: number;
  /** False when the task list changed under us or a task failed validation: some entries may be missing. */
  consistent: boolean;
  problems: string[];
  attempts: number;
  kernel: {
    release: string;
    /** guest-memory: built from the running kernel's own BTF and kallsyms; configmap: a given profile. */
    profileSource: 'guest-memory' | 'configmap';
    pagingLevels: number;
    virtualSlide: string;
    physicalSlide: string;
    kernelVirtualBase: string;
    directMapBase: string;
  };
  processes: GuestProcess[];
  /**
   * Processes the kernel's PID map knows but the task list does not (a rootkit unlinked them), in
   * consistent snapshots whose profile allows the check (profiles from guest memory). A process
   * forked during the walk can show up here once: the sidecar alerts when one stays hidden.
   */
  hiddenProcesses?: HiddenProcess[];
  /** Loaded kernel modules (/proc/modules), when the profile knows `modules` (profiles from guest memory). */
  modules?: GuestModule[];
  /** Modules with a /sys/module kobject but unlinked from the module list (a hiding rootkit). */
  hiddenModules?: GuestModule[];
}

// include/linux/sched.h
const TASK_INTERRUPTIBLE = 0x1;
const TASK_UNINTERRUPTIBLE = 0x2;
const TASK_STOPPED = 0x4;
const TASK_TRACED = 0x8;
const EXIT_DEAD = 0x10;
const EXIT_ZOMBIE = 0x20;
const TASK_NOLOAD = 0x400;

export function stateLetter(state: number, exitState: number): string {
  if (exitState & EXIT_ZOMBIE) return 'Z';
  if (exitState & EXIT_DEAD) return 'X';
  if ((state & (TASK_UNINTERRUPTIBLE | TASK_NOLOAD)) === (TASK_UNINTERRUPTIBLE | TASK_NOLOAD)) return 'I';
  if (state & TASK_UNINTERRUPTIBLE) return 'D';
  if (state & TASK_INTERRUPTIBLE) return 'S';
  if (state & TASK_TRACED) return 't';
  if (state & TASK_STOPPED) return 'T';
  return 'R';
}

export function argsColumn(comm: string, cmdline: string[]): string {
  return cmdline.length > 0 ? cmdline.join(' ') : `[${comm}]`;
}
