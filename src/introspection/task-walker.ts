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
  /** Where each listed process's task_struct and mm_struct are (kernel virtual addresses), by pid; empty unless `recordAddresses`. */
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
  /** Fill WalkResult.addresses (for reading processes in detail; a listing does without). */
  recordAddresses?: boolean;
  /** Command lines of the previous walk, to skip what did not change (pass one across snapshots). */
  cmdlineMemo?: CmdlineMemo;
}

/** A process's arguments, whether they were cut at maxCmdline, and (when not empty) the ps ARGS line made of them. */
interface Cmdline {
  args: string[];
  truncated: boolean;
  line?: string;
}

interface RememberedCmdline extends Cmdline {
  mm: bigint;
  /** mm->pgd as read (a direct-map address). */
  pgdVirtual: bigint;
  start: bigint;
  end: bigint;
  /** The page-directory and page-table entries that mapped the argument page. */
  leafEntries: TableEntry[];
  physical: bigint;
  raw: Buffer;
}

/**
 * What one walk learnt about each process's command line (by pid, checked against its mm_struct): where its
 * argument page is and what it decoded to. The next walk re-reads the two lowest page-table entries
 * instead of walking all levels, and the argument bytes, and decodes them again only if they changed.
 * Nothing read is trusted from before: only where to read, checked by reading.
 */
export class CmdlineMemo {
  /** By pid (a number: cheaper to look up than an address); the record's mm must match too. */
  previous = new Map<number, RememberedCmdline>();
  next = new Map<number, RememberedCmdline>();

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

/** The byte range of a struct that covers the members the walk reads: read that, not the whole struct. */
interface Span {
  start: number;
  startBig: bigint;
  length: number;
}

function span(members: ReadonlyArray<{ offset: number; size: number }>): Span {
  const start = Math.min(...members.map((m) => m.offset));
  return { start, startBig: BigInt(start), length: Math.max(...members.map((m) => m.offset + m.size)) - start };
}

/** One struct's bytes as read: member offset o is at `buf[base + o]`. */
interface StructView {
  buf: Buffer;
  /** The same bytes, for 64-bit members (getBigUint64 is about 3× faster than readBigUInt64LE). */
  dv: DataView;
  base: number;
}

function scratchView(buf: Buffer): StructView {
  return { buf, dv: new DataView(buf.buffer, buf.byteOffset, buf.length), base: 0 };
}

/** The view of a span the batch holds at offset `at` of its buffer. */
function viewHeld(kernel: AddressSpace, at: number, span: Span, view: StructView): true {
  view.buf = kernel.heldBytes!;
  view.dv = kernel.heldView!;
  view.base = at - span.start;
  return true;
}

/**
 * Reads a struct's span into the view: in place where the snapshot's batch already holds it (no
 * copy), else copied into the scratch buffer. False when unreadable.
 */
function viewStruct(kernel: AddressSpace, address: bigint, span: Span, scratch: StructView, view: StructView): boolean {
  const at = kernel.locateMember(address, span.start, span.length);
  if (at >= 0) return viewHeld(kernel, at, span, view);
  view.buf = scratch.buf;
  view.dv = scratch.dv;
  view.base = 0;
  return kernel.readInto(address + span.startBig, scratch.buf, span.start, span.length);
}

/** Per-walk reading state: scratch buffers (one task at a time) and what is the same for every task. */
interface WalkContext {
  kernel: AddressSpace;
  profile: KernelProfile;
  options: WalkOptions;
  problems: string[];
  /** A scratch buffer the size of task_struct; only `taskSpan` of it is read (when the batch does not hold it). */
  task: StructView;
  taskSpan: Span;
  taskView: StructView;
  mm: StructView;
  mmSpan: Span;
  mmView: StructView;
  cred: StructView;
  credSpan: Span;
  credView: StructView;
  u32: Buffer;
  /** Offset of task_struct.tasks: list entries are that far into their task. */
  tasksOffset: bigint;
  /** Where the task span starts relative to a list entry. */
  taskSpanFromEntry: number;
  /** A user address space used only for guest-physical reads (page-table entries, argument pages); made on first use. */
  physicalPages?: AddressSpace;
  tgidOffset: bigint;
  tgidOffsetNumber: number;
  maxCmdline: bigint;
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
  const task = Buffer.alloc(ts.size);
  const mm = Buffer.alloc(profile.structs.mm_struct.size);
  const cred = Buffer.alloc(profile.structs.cred.size);
  const taskSpan = span(taskMembers);
  const ctx: WalkContext = {
    kernel, profile, options, problems,
    task: scratchView(task),
    taskSpan,
    taskView: scratchView(task),
    mm: scratchView(mm),
    mmSpan: span(Object.values(profile.structs.mm_struct.members)),
    mmView: scratchView(mm),
    cred: scratchView(cred),
    credSpan: span(Object.values(profile.structs.cred.members)),
    credView: scratchView(cred),
    u32: Buffer.alloc(4),
    tasksOffset: tasksOff,
    taskSpanFromEntry: taskSpan.start - t.tasks.offset,
    tgidOffset: BigInt(t.tgid.offset),
    tgidOffsetNumber: t.tgid.offset,
    maxCmdline: BigInt(options.maxCmdline),
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
    const view = ctx.taskView;
    if (!viewTask(ctx, cur, view)) {
      problems.push(`task ${hexs(cur - tasksOff)}: unreadable`);
      break;
    }
    const { dv, base } = view;
    const backLink = dv.getBigUint64(base + t.tasks.offset + 8, true);
    if (backLink !== prev) {
      problems.push(`task ${hexs(cur - tasksOff)}: prev ${hexs(backLink)} does not point back to ${hexs(prev)} (list changed during the walk)`);
      break;
    }
    const process = readTask(ctx, view, cur);
    if (process) {
      processes.push(process);
      if (options.recordAddresses) addresses.set(process.pid, { task: cur - tasksOff, mm: dv.getBigUint64(base + t.mm.offset, true) });
    }
    prev = cur;
    cur = dv.getBigUint64(base + t.tasks.offset, true);
  }
  if (cur === head && kernel.readU64(head + 8n) !== prev) {
    problems.push('task list: init_task.tasks.prev is not the last task visited (list changed during the walk)');
  }
  return { processes, addresses, consistent: problems.length === 0, problems };
}

/** Records why a task was not listed (`listEntry`: the address of its task_struct.tasks). */
function bad(ctx: WalkContext, listEntry: bigint, pid: number, why: string): undefined {
  ctx.problems.push(`task ${hexs(listEntry - ctx.tasksOffset)} (pid ${pid}): ${why}`);
  return undefined;
}

/**
 * A task's span, from the address of its task_struct.tasks as the list gives it (no BigInt
 * subtraction where the batch holds it).
 */
function viewTask(ctx: WalkContext, listEntry: bigint, view: StructView): boolean {
  const { kernel, taskSpan, tasksOffset } = ctx;
  const at = kernel.locateMember(listEntry, ctx.taskSpanFromEntry, taskSpan.length);
  if (at >= 0) return viewHeld(kernel, at, taskSpan, view);
  return viewStruct(kernel, listEntry - tasksOffset, taskSpan, ctx.task, view);
}

/** A task's fields, from its struct's bytes (member offset o at b[base + o]). */
function readTask(ctx: WalkContext, view: StructView, task: bigint /* its task_struct.tasks */): GuestProcess | undefined {
  const { kernel, profile } = ctx;
  const { buf: b, dv, base } = view;
  const t = profile.structs.task_struct.members;
  const pid = b.readInt32LE(base + t.pid.offset);
  const tgid = b.readInt32LE(base + t.tgid.offset);
  if (pid <= 0 || pid > PID_MAX_LIMIT) return bad(ctx, task, pid, 'pid out of range');
  if (tgid !== pid) return bad(ctx, task, pid, `tgid ${tgid} differs from pid on the group-leader list`);
  const comm = printableCString(b, base + t.comm.offset, t.comm.size);
  if (comm === undefined) return bad(ctx, task, pid, 'comm is not printable');

  const parent = dv.getBigUint64(base + t.real_parent.offset, true);
  let parentTgid = ctx.parentTgid.get(parent);
  if (parentTgid === undefined) {
    const at = kernel.locateMember(parent, ctx.tgidOffsetNumber, 4);
    if (at >= 0) parentTgid = kernel.heldBytes!.readInt32LE(at);
    else if (kernel.readInto(parent + ctx.tgidOffset, ctx.u32, 0, 4)) parentTgid = ctx.u32.readInt32LE(0);
    else return bad(ctx, task, pid, `real_parent ${hexs(parent)} unreadable`);
    ctx.parentTgid.set(parent, parentTgid);
  }

  if (!viewStruct(kernel, dv.getBigUint64(base + t.cred.offset, true), ctx.credSpan, ctx.cred, ctx.credView)) return bad(ctx, task, pid, 'cred unreadable');
  const { buf: cred, base: credBase } = ctx.credView;
  const c = profile.structs.cred.members;

  const flags = b.readUInt32LE(base + t.flags.offset);
  const kernelThread = (flags & PF_KTHREAD) !== 0;
  // proc_task_name(): work-queue workers, then kernel threads by full name, else task->comm.
  let name = comm;
  let commTruncated = false;
  if (flags & PF_WQ_WORKER && !profile.workqueueWorkers?.fullName) {
    // wq_worker_comm() on task->comm (6.1: a rescuer shows "quota_events_un").
    name = workqueueWorkerName(kernel, profile, b, base, comm);
  } else if (kernelThread) {
    // get_kthread_comm(): the full name where the kernel keeps one; newer kernels (6.12) build a
    // worker's name on it too ("kworker/R-kvfree_rcu_reclaim").
    const full = kthreadFullName(kernel, profile, b, base);
    if (full !== undefined) name = full;
    else commTruncated = comm.length === t.comm.size - 1;
    if (flags & PF_WQ_WORKER) name = workqueueWorkerName(kernel, profile, b, base, name);
  }
  const mm = dv.getBigUint64(base + t.mm.offset, true);
  const argv = !kernelThread && mm !== 0n ? readCmdline(ctx, pid, mm) : { args: [], truncated: false };
  return {
    pid,
    ppid: parentTgid,
    comm: name,
    commTruncated,
    uid: cred.readUInt32LE(credBase + c.uid.offset),
    euid: cred.readUInt32LE(credBase + c.euid.offset),
    gid: cred.readUInt32LE(credBase + c.gid.offset),
    state: stateLetter(b.readUInt32LE(base + t.state.offset), b.readInt32LE(base + t.exit_state.offset)),
    startTimeNs: Number(dv.getBigUint64(base + t.start_time.offset, true)),
    kernelThread,
    cmdline: argv.args,
    cmdlineTruncated: argv.truncated,
    args: argv.line ?? argsColumn(name, argv.args),
  };
}

/**
 * A kernel thread's name as /proc shows it (get_kthread_comm(): kthread->full_name when set, 5.17+).
 * Undefined when the profile does not say where it is; task->comm when the thread has none.
 */
function kthreadFullName(kernel: AddressSpace, profile: KernelProfile, task: Buffer, base: number): string | undefined {
  const k = profile.kthreadFullName;
  if (!k) return undefined;
  const kthread = task.readBigUInt64LE(base + k.taskKthreadOffset);
  if (kthread === 0n) return undefined;
  const fullName = kernel.readU64(kthread + BigInt(k.fullNameOffset));
  if (fullName === undefined) return undefined;
  const comm = profile.structs.task_struct.members.comm;
  if (fullName === 0n) return cString(task, base + comm.offset, comm.size);
  const bytes = kernel.read(fullName, PROC_COMM_MAX);
  if (!bytes) return undefined;
  const name = cString(bytes, 0, bytes.length);
  return /^[\x20-\x7e]+$/.test(name) ? name : undefined;
}

/** argv from [mm->arg_start, mm->arg_end) in the process's own address space, and whether it was cut at maxCmdline. */
function readCmdline(ctx: WalkContext, pid: number, mm: bigint): Cmdline {
  const { kernel, profile, options } = ctx;
  const none = { args: [], truncated: false };
  const m = profile.structs.mm_struct.members;
  if (!viewStruct(kernel, mm, ctx.mmSpan, ctx.mm, ctx.mmView)) return none;
  const { dv, base } = ctx.mmView;
  const pgdVirtual = dv.getBigUint64(base + m.pgd.offset, true);
  const start = dv.getBigUint64(base + m.arg_start.offset, true);
  const end = dv.getBigUint64(base + m.arg_end.offset, true);
  if (end <= start) return none;
  const memo = options.cmdlineMemo;
  const last = memo?.previous.get(pid);
  // The same process (mm, page table) with the same argument range as last time: its page, if still mapped there.
  const prev = last && last.mm === mm && last.pgdVirtual === pgdVirtual && last.start === start && last.end === end ? last : undefined;
  const known = prev && cmdlineOnRememberedPage(ctx, memo!, pid, prev);
  if (known) return known;
  const pgd = kernel.physicalOf(pgdVirtual);
  if (pgd === undefined) return none;
  const truncated = end - start > ctx.maxCmdline;
  const length = truncated ? options.maxCmdline : Number(end - start);
  const space = options.userSpace(pgd);
  const found = memo && cmdlineOnNewPage(memo, space, pid, { mm, pgdVirtual, start, end, truncated }, length, prev);
  if (found) return found;
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
 * The command line from the page the last walk found it on, if the two lowest page-table entries
 * that mapped it still hold the same values; the previous record itself when the bytes are the same
 * (compared in place in the snapshot's batch: no copy, no decoding), else decoded anew. Undefined
 * when the page moved or cannot be read: the caller translates again.
 */
function cmdlineOnRememberedPage(ctx: WalkContext, memo: CmdlineMemo, pid: number, prev: RememberedCmdline): Cmdline | undefined {
  // Page-table entries and the argument page are guest-physical: any user space of this walk reads them.
  const pages = (ctx.physicalPages ??= ctx.options.userSpace(0n));
  if (!pages.entriesUnchanged(prev.leafEntries)) return undefined;
  const length = prev.raw.length;
  const at = pages.locatePhysical(prev.physical, length);
  if (at >= 0 && sameBytes(pages.heldBytes!, at, prev.raw)) {
    memo.next.set(pid, prev);
    return prev;
  }
  const raw = at >= 0 ? Buffer.from(pages.heldBytes!.subarray(at, at + length)) : pages.readPhysical(prev.physical, length);
  if (!raw) return undefined;
  return remember(memo, pid, prev, prev.leafEntries, prev.physical, raw, prev);
}

/** Whether held[at, at + expected.length) equals expected (a loop for short ones: cheaper than a native call). */
function sameBytes(held: Buffer, at: number, expected: Buffer): boolean {
  const n = expected.length;
  if (n > 64) return held.compare(expected, 0, n, at, at + n) === 0;
  for (let k = 0; k < n; k++) if (held[at + k] !== expected[k]) return false;
  return true;
}

/**
 * The command line through a full translation of its first address, remembered for the next walk
 * with the page-directory and page-table entries that mapped it. Undefined when the arguments
 * cross a page or are not resident: the caller's plain read decides.
 */
function cmdlineOnNewPage(memo: CmdlineMemo, space: AddressSpace, pid: number, where: Omit<RememberedCmdline, 'leafEntries' | 'physical' | 'raw' | 'args' | 'line'>, length: number, prev?: RememberedCmdline): Cmdline | undefined {
  const found = space.translateRecorded(where.start);
  if (!found) return undefined;
  const { pageSize, physical } = found.translation;
  if (Number(where.start & BigInt(pageSize - 1)) + length > pageSize) return undefined;
  const raw = space.readPhysical(physical, length);
  if (!raw) return undefined;
  return remember(memo, pid, where, found.leafEntries, physical, raw, prev);
}

function remember(memo: CmdlineMemo, pid: number, where: Omit<RememberedCmdline, 'leafEntries' | 'physical' | 'raw' | 'args' | 'line'>, leafEntries: TableEntry[], physical: bigint, raw: Buffer, prev?: RememberedCmdline): RememberedCmdline {
  const same = prev !== undefined && prev.raw.equals(raw);
  const args = same ? prev.args : splitArgs(raw);
  const line = args.length === 0 ? undefined : same ? prev.line : args.join(' ');
  const record: RememberedCmdline = { mm: where.mm, pgdVirtual: where.pgdVirtual, start: where.start, end: where.end, truncated: where.truncated, leafEntries, physical, raw, args, ...(line !== undefined ? { line } : {}) };
  memo.next.set(pid, record);
  return record;
}

/**
 * The name /proc gives a work-queue worker: task->comm, then "+desc" while it runs a work item or
 * "-desc" for the last one, if attached to a pool (wq_worker_comm() in kernel/workqueue.c). Plain
 * comm when unreadable.
 */
function workqueueWorkerName(kernel: AddressSpace, profile: KernelProfile, task: Buffer, base: number, comm: string): string {
  const wq = profile.workqueueWorkers;
  if (!wq) return comm;
  const kthread = task.readBigUInt64LE(base + wq.taskKthreadOffset);
  const worker = kernel.readU64(kthread + BigInt(wq.kthreadDataOffset));
  if (worker === undefined || worker === 0n) return comm;
  // A worker not attached to a pool (an idle rescuer) is shown with its plain comm.
  const pool = kernel.readU64(worker + BigInt(wq.workerPoolOffset));
  if (pool === undefined || pool === 0n) return comm;
  const desc = kernel.read(worker + BigInt(wq.workerDesc.offset), wq.workerDesc.size);
  const currentWork = kernel.readU64(worker + BigInt(wq.workerCurrentWorkOffset));
  if (!desc || currentWork === undefined) return comm;
  const d = cString(desc, 0, desc.length);
  if (d === '' || !/^[\x20-\x7e]*$/.test(d)) return comm;
  return `${comm}${currentWork !== 0n ? '+' : '-'}${d}`.slice(0, PROC_COMM_MAX);
}

/** The NUL-terminated string in b[start, start + size) if every byte before the NUL is printable ASCII. */
function printableCString(b: Buffer, start: number, size: number): string | undefined {
  let end = start;
  const limit = start + size;
  for (; end < limit; end++) {
    const c = b[end]!;
    if (c === 0) break;
    if (c < 0x20 || c > 0x7e) return undefined;
  }
  return b.toString('latin1', start, end);
}

/** The NUL-terminated string in b[start, start + size). */
function cString(b: Buffer, start: number, size: number): string {
  let end = start;
  const limit = start + size;
  while (end < limit && b[end] !== 0) end++;
  return b.toString('latin1', start, end);
}
