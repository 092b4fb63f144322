// Walks the guest kernel's task list (init_task.tasks, a circular doubly-linked list of thread
// group leaders) while the guest keeps running. Every step is checked: a bounded number of
// entries, no revisits (cycle), each entry's prev pointing back to where we came from (a torn
// list, e.g. a task being unlinked), each task's fields plausible. The walk stops at the first
// broken link and reports itself inconsistent instead of guessing.
import type { AddressSpace, TableEntry } from './page-table.ts';
import type { KernelProfile } from './kernel-profile.ts';
import { argsColumn, stateLetter, type GuestProcess } from './process-info.ts';

export interface WalkResult {
  processes: GuestProcess[];
  /** Where each listed process's task_struct and mm_struct are (kernel virtual addresses), by pid. */
  addresses: Map<number, { task: bigint; mm: bigint }>;
  consistent: boolean;
  problems: string[];
}

export interface WalkOptions {
  /** Upper bound on tasks visited (PID_MAX_LIMIT is 4M; real guests have far fewer). */
  maxTasks: number;
  /** Bytes of command line read per process. */
  maxCmdline: number;
  /** Address space of a process's user memory, given the physical address of its page table. */
  userSpace: (pageTablePhysical: bigint) => AddressSpace;
  /** Command lines of the previous walk, to skip what did not change (pass one across snapshots). */
  cmdlineMemo?: CmdlineMemo;
}

interface RememberedCmdline {
  pgd: bigint;
  start: bigint;
  end: bigint;
  /** The page-directory and page-table entries that mapped the argument page. */
  leafEntries: TableEntry[];
  physical: bigint;
  raw: Buffer;
  args: string[];
}

/**
 * What one walk learnt about each process's command line (by mm_struct address): where its
 * argument page is and what it decoded to. The next walk re-reads the two lowest page-table entries
 * instead of walking all levels, and the argument bytes, and decodes them again only if they changed.
 * Nothing read is trusted from before: only where to read, checked by reading.
 */
export class CmdlineMemo {
  previous = new Map<bigint, RememberedCmdline>();
  next = new Map<bigint, RememberedCmdline>();

  /** After a walk: what it read is what the next one starts from. */
  rotate(): void {
    this.previous = this.next;
    this.next = new Map();
  }
}

const PF_WQ_WORKER = 0x00000020;
const PF_KTHREAD = 0x00200000;
/** /proc formats names into a 64-byte buffer (proc_task_name). */
const PROC_COMM_MAX = 63;
const PID_MAX_LIMIT = 4 * 1024 * 1024;
const hexs = (v: bigint) => `0x${v.toString(16)}`;

/** The byte range [start, end) of a struct that covers the given members: read that, not the whole struct. */
function span(members: ReadonlyArray<{ offset: number; size: number }>): { start: number; length: number } {
  const start = Math.min(...members.map((m) => m.offset));
  return { start, length: Math.max(...members.map((m) => m.offset + m.size)) - start };
}

/** Per-walk reading state: scratch buffers (one task at a time) and what is the same for every task. */
interface WalkContext {
  kernel: AddressSpace;
  profile: KernelProfile;
  options: WalkOptions;
  problems: string[];
  /** A scratch buffer the size of task_struct; only `taskSpan` of it is read. */
  task: Buffer;
  taskSpan: { start: number; length: number };
  mm: Buffer;
  mmSpan: { start: number; length: number };
  cred: Buffer;
  credSpan: { start: number; length: number };
  /** tgid by task address: parents are shared (most are init or a shell). */
  parentTgid: Map<bigint, number>;
}

export function walkTasks(kernel: AddressSpace, profile: KernelProfile, initTask: bigint, options: WalkOptions): WalkResult {
  const ts = profile.structs.task_struct;
  const t = ts.members;
  const tasksOff = BigInt(t.tasks.offset);
  const head = initTask + tasksOff;
  const processes: GuestProcess[] = [];
  const addresses = new Map<number, { task: bigint; mm: bigint }>();
  const problems: string[] = [];
  const visited = new Set<bigint>();
  const pointer = (offset: number) => ({ offset, size: 8 });
  const taskMembers = [...Object.values(t), ...(profile.workqueueWorkers ? [pointer(profile.workqueueWorkers.taskKthreadOffset)] : []), ...(profile.kthreadFullName ? [pointer(profile.kthreadFullName.taskKthreadOffset)] : [])];
  const ctx: WalkContext = {
    kernel, profile, options, problems,
    task: Buffer.alloc(ts.size),
    taskSpan: span(taskMembers),
    mm: Buffer.alloc(profile.structs.mm_struct.size),
    mmSpan: span(Object.values(profile.structs.mm_struct.members)),
    cred: Buffer.alloc(profile.structs.cred.size),
    credSpan: span(Object.values(profile.structs.cred.members)),
    parentTgid: new Map(),
  };

  let prev = head;
  let cur = kernel.readU64(head);
  while (cur !== head) {
    if (cur === undefined) {
      problems.push(`task list: next pointer after ${hexs(prev)} unreadable`);
      break;
    }
    if (visited.has(cur)) {
      problems.push(`task list: cycle at ${hexs(cur)} not through init_task`);
      break;
    }
    if (visited.size >= options.maxTasks) {
      problems.push(`task list: more than ${options.maxTasks} entries, stopped`);
      break;
    }
    visited.add(cur);
    const task = cur - tasksOff;
    const bytes = ctx.task;
    if (!kernel.readInto(task + BigInt(ctx.taskSpan.start), bytes, ctx.taskSpan.start, ctx.taskSpan.length)) {
      problems.push(`task ${hexs(task)}: unreadable`);
      break;
    }
    const backLink = bytes.readBigUInt64LE(t.tasks.offset + 8);
    if (backLink !== prev) {
      problems.push(`task ${hexs(task)}: prev ${hexs(backLink)} does not point back to ${hexs(prev)} (list changed during the walk)`);
      break;
    }
    const process = readTask(ctx, bytes, task);
    if (process) {
      processes.push(process);
      addresses.set(process.pid, { task, mm: bytes.readBigUInt64LE(t.mm.offset) });
    }
    prev = cur;
    cur = bytes.readBigUInt64LE(t.tasks.offset);
  }
  if (cur === head && kernel.readU64(head + 8n) !== prev) {
    problems.push('task list: init_task.tasks.prev is not the last task visited (list changed during the walk)');
  }
  return { processes, addresses, consistent: problems.length === 0, problems };
}

function readTask(ctx: WalkContext, b: Buffer, task: bigint): GuestProcess | undefined {
  const { kernel, profile, problems } = ctx;
  const t = profile.structs.task_struct.members;
  const pid = b.readInt32LE(t.pid.offset);
  const tgid = b.readInt32LE(t.tgid.offset);
  const comm = cString(b.subarray(t.comm.offset, t.comm.offset + t.comm.size));
  const bad = (why: string) => {
    problems.push(`task ${hexs(task)} (pid ${pid}): ${why}`);
    return undefined;
  };
  if (pid <= 0 || pid > PID_MAX_LIMIT) return bad('pid out of range');
  if (tgid !== pid) return bad(`tgid ${tgid} differs from pid on the group-leader list`);
  if (!/^[\x20-\x7e]*$/.test(comm)) return bad('comm is not printable');

  const parent = b.readBigUInt64LE(t.real_parent.offset);
  let parentTgid = ctx.parentTgid.get(parent);
  if (parentTgid === undefined) {
    if (!kernel.readInto(parent + BigInt(t.tgid.offset), ctx.cred, 0, 4)) return bad(`real_parent ${hexs(parent)} unreadable`);
    parentTgid = ctx.cred.readInt32LE(0);
    ctx.parentTgid.set(parent, parentTgid);
  }

  const cred = ctx.cred;
  if (!kernel.readInto(b.readBigUInt64LE(t.cred.offset) + BigInt(ctx.credSpan.start), cred, ctx.credSpan.start, ctx.credSpan.length)) return bad('cred unreadable');
  const c = profile.structs.cred.members;

  const flags = b.readUInt32LE(t.flags.offset);
  const kernelThread = (flags & PF_KTHREAD) !== 0;
  // proc_task_name(): work-queue workers, then kernel threads by full name, else task->comm.
  let name = comm;
  let commTruncated = false;
  if (flags & PF_WQ_WORKER && !profile.workqueueWorkers?.fullName) {
    // wq_worker_comm() on task->comm (6.1: a rescuer shows "quota_events_un").
    name = workqueueWorkerName(kernel, profile, b, comm);
  } else if (kernelThread) {
    // get_kthread_comm(): the full name where the kernel keeps one; newer kernels (6.12) build a
    // worker's name on it too ("kworker/R-kvfree_rcu_reclaim").
    const full = kthreadFullName(kernel, profile, b);
    if (full !== undefined) name = full;
    else commTruncated = comm.length === t.comm.size - 1;
    if (flags & PF_WQ_WORKER) name = workqueueWorkerName(kernel, profile, b, name);
  }
  const mm = b.readBigUInt64LE(t.mm.offset);
  const { args: cmdline, truncated: cmdlineTruncated } = !kernelThread && mm !== 0n ? readCmdline(ctx, mm) : { args: [], truncated: false };
  return {
    pid,
    ppid: parentTgid,
    comm: name,
    commTruncated,
    uid: cred.readUInt32LE(c.uid.offset),
    euid: cred.readUInt32LE(c.euid.offset),
    gid: cred.readUInt32LE(c.gid.offset),
    state: stateLetter(b.readUInt32LE(t.state.offset), b.readInt32LE(t.exit_state.offset)),
    startTimeNs: Number(b.readBigUInt64LE(t.start_time.offset)),
    kernelThread,
    cmdline,
    cmdlineTruncated,
    args: argsColumn(name, cmdline),
  };
}

/**
 * A kernel thread's name as /proc shows it (get_kthread_comm(): kthread->full_name when set, 5.17+).
 * Undefined when the profile does not say where it is; task->comm when the thread has none.
 */
function kthreadFullName(kernel: AddressSpace, profile: KernelProfile, task: Buffer): string | undefined {
  const k = profile.kthreadFullName;
  if (!k) return undefined;
  const kthread = task.readBigUInt64LE(k.taskKthreadOffset);
  if (kthread === 0n) return undefined;
  const fullName = kernel.readU64(kthread + BigInt(k.fullNameOffset));
  if (fullName === undefined) return undefined;
  const comm = profile.structs.task_struct.members.comm;
  if (fullName === 0n) return cString(task.subarray(comm.offset, comm.offset + comm.size));
  const bytes = kernel.read(fullName, PROC_COMM_MAX);
  if (!bytes) return undefined;
  const name = cString(bytes);
  return /^[\x20-\x7e]+$/.test(name) ? name : undefined;
}

/** argv from [mm->arg_start, mm->arg_end) in the process's own address space, and whether it was cut at maxCmdline. */
function readCmdline(ctx: WalkContext, mm: bigint): { args: string[]; truncated: boolean } {
  const { kernel, profile, options } = ctx;
  const none = { args: [], truncated: false };
  const m = profile.structs.mm_struct.members;
  const mmBytes = ctx.mm;
  if (!kernel.readInto(mm + BigInt(ctx.mmSpan.start), mmBytes, ctx.mmSpan.start, ctx.mmSpan.length)) return none;
  const pgdVirtual = mmBytes.readBigUInt64LE(m.pgd.offset);
  const start = mmBytes.readBigUInt64LE(m.arg_start.offset);
  const end = mmBytes.readBigUInt64LE(m.arg_end.offset);
  if (end <= start) return none;
  const pgd = kernel.physicalOf(pgdVirtual);
  if (pgd === undefined) return none;
  const truncated = end - start > BigInt(options.maxCmdline);
  const length = truncated ? options.maxCmdline : Number(end - start);
  const space = options.userSpace(pgd);
  const remembered = options.cmdlineMemo && rememberedCmdline(options.cmdlineMemo, space, { mm, pgd, start, end, length });
  if (remembered) return { args: remembered, truncated };
  const raw = space.read(start, length);
  if (!raw) return none; // not resident (swapped out, or not yet faulted in)
  return { args: splitArgs(raw), truncated };
}

function splitArgs(raw: Buffer): string[] {
  const args = raw.toString('utf8').split('\0');
  if (args.at(-1) === '') args.pop();
  return args;
}

/**
 * The command line through the memo: the argument page the last walk found, if its two lowest
 * page-table entries still hold the same values (else a full translation), and the previous args
 * if the bytes are the same. Undefined when the arguments cross a page or are not resident: the
 * caller's plain read decides.
 */
function rememberedCmdline(memo: CmdlineMemo, space: AddressSpace, at: { mm: bigint; pgd: bigint; start: bigint; end: bigint; length: number }): string[] | undefined {
  const { mm, pgd, start, end, length } = at;
  const prev = memo.previous.get(mm);
  let leafEntries: TableEntry[];
  let physical: bigint;
  if (prev && prev.pgd === pgd && prev.start === start && prev.end === end && prev.raw.length === length && space.entriesUnchanged(prev.leafEntries)) {
    ({ leafEntries, physical } = prev);
  } else {
    const found = space.translateRecorded(start);
    if (!found) return undefined;
    const { pageSize } = found.translation;
    if (Number(start & BigInt(pageSize - 1)) + length > pageSize) return undefined;
    ({ leafEntries } = found);
    physical = found.translation.physical;
  }
  const raw = space.readPhysical(physical, length);
  if (!raw) return undefined;
  const args = prev && prev.raw.equals(raw) ? prev.args : splitArgs(raw);
  memo.next.set(mm, { pgd, start, end, leafEntries, physical, raw, args });
  return args;
}

/**
 * The name /proc gives a work-queue worker: task->comm, then "+desc" while it runs a work item or
 * "-desc" for the last one, if attached to a pool (wq_worker_comm() in kernel/workqueue.c). Plain
 * comm when unreadable.
 */
function workqueueWorkerName(kernel: AddressSpace, profile: KernelProfile, task: Buffer, comm: string): string {
  const wq = profile.workqueueWorkers;
  if (!wq) return comm;
  const kthread = task.readBigUInt64LE(wq.taskKthreadOffset);
  const worker = kernel.readU64(kthread + BigInt(wq.kthreadDataOffset));
  if (worker === undefined || worker === 0n) return comm;
  // A worker not attached to a pool (an idle rescuer) is shown with its plain comm.
  const pool = kernel.readU64(worker + BigInt(wq.workerPoolOffset));
  if (pool === undefined || pool === 0n) return comm;
  const desc = kernel.read(worker + BigInt(wq.workerDesc.offset), wq.workerDesc.size);
  const currentWork = kernel.readU64(worker + BigInt(wq.workerCurrentWorkOffset));
  if (!desc || currentWork === undefined) return comm;
  const d = cString(desc);
  if (d === '' || !/^[\x20-\x7e]*$/.test(d)) return comm;
  return `${comm}${currentWork !== 0n ? '+' : '-'}${d}`.slice(0, PROC_COMM_MAX);
}

function cString(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.toString('latin1', 0, nul < 0 ? b.length : nul);
}
