// Detection of processes hidden from the task list (DKOM: a rootkit unlinks its task from
// init_task.tasks, so ps, /proc readers that walk the list, and our task walk no longer see it)
// while the kernel still knows them by pid: every live process has a struct pid in the PID
// namespace's IDR (an XArray indexed by pid number), whose tasks[PIDTYPE_PID] list leads back to
// its task_struct. A thread-group leader found there but not on the task list is hidden.
import type { KernelProfile } from './kernel-profile.ts';
import type { AddressSpace } from './page-table.ts';

export interface HiddenProcess {
  pid: number;
  comm: string;
  startTimeNs: number;
  /** Kernel virtual address of its task_struct, for the record. */
  task: string;
}

const XA_CHUNK_SHIFT = 6;
const XA_SLOTS = 1 << XA_CHUNK_SHIFT;
const MAX_ENTRIES = 4 * 1024 * 1024; // PID_MAX_LIMIT
const isInternal = (entry: bigint) => (entry & 3n) === 2n;
/** xa_is_node(): an internal entry above 4096 (smaller internal values are sibling/retry markers). */
const isNode = (entry: bigint) => isInternal(entry) && entry > 4096n;

/** Every struct pid in the IDR of a PID namespace, by pid number. */
export function pidMap(kernel: AddressSpace, profile: KernelProfile, pidNamespace: bigint): Map<number, bigint> | undefined {
  const d = profile.details;
  if (!d) return undefined;
  const head = kernel.readU64(pidNamespace + BigInt(d.pid_namespace__idr) + BigInt(d.xarray__xa_head));
  if (head === undefined) return undefined;
  const out = new Map<number, bigint>();
  const slots = Buffer.alloc(XA_SLOTS * 8);
  const visit = (entry: bigint, index: number, depth: number): boolean => {
    if (entry === 0n) return true;
    if (!isNode(entry)) {
      if (isInternal(entry)) return true; // sibling or retry marker
      if (out.size >= MAX_ENTRIES) return false;
      out.set(index, entry);
      return true;
    }
    if (depth > 8) return false;
    const node = entry - 2n;
    const shift = kernel.read(node + BigInt(d.xa_node__shift), 1)?.[0];
    if (shift === undefined || shift % XA_CHUNK_SHIFT !== 0 || shift > 30) return false;
    if (!kernel.readInto(node + BigInt(d.xa_node__slots), slots, 0, slots.length)) return false;
    const children = Array.from({ length: XA_SLOTS }, (_, i) => slots.readBigUInt64LE(i * 8));
    return children.every((child, i) => visit(child, index + i * 2 ** shift, depth + 1));
  };
  return visit(head, 0, 0) ? out : undefined;
}

/**
 * Thread-group leaders the PID map knows but the task walk did not list. Undefined when the profile
 * lacks what it takes (a profile built from an image: no init_pid_ns) or the map is unreadable.
 */
export function findHiddenProcesses(kernel: AddressSpace, profile: KernelProfile, pidNamespace: bigint, listed: ReadonlySet<number>): HiddenProcess[] | undefined {
  const d = profile.details;
  if (!d) return undefined;
  const pids = pidMap(kernel, profile, pidNamespace);
  if (!pids) return undefined;
  const t = profile.structs.task_struct.members;
  const hidden: HiddenProcess[] = [];
  for (const [nr, pid] of pids) {
    if (nr === 0 || listed.has(nr)) continue;
    // tasks[PIDTYPE_PID].first: the task (hlist_node pid_links[PIDTYPE_PID]) using this pid.
    const first = kernel.readU64(pid + BigInt(d.pid__tasks));
    if (!first) continue; // a pid only used as a process-group or session id
    const task = first - BigInt(d.task_struct__pid_links);
    const ids = kernel.read(task + BigInt(t.pid.offset), 8);
    if (!ids || ids.readInt32LE(0) !== nr || ids.readInt32LE(4) !== nr) continue; // a thread, or torn
    const comm = kernel.read(task + BigInt(t.comm.offset), t.comm.size);
    const start = kernel.read(task + BigInt(t.start_time.offset), 8);
    const exitState = kernel.read(task + BigInt(t.exit_state.offset), 4)?.readInt32LE(0);
    if (!comm || !start || exitState === undefined || exitState !== 0) continue;
    const nul = comm.indexOf(0);
    hidden.push({ pid: nr, comm: comm.toString('latin1', 0, nul < 0 ? comm.length : nul), startTimeNs: Number(start.readBigUInt64LE(0)), task: `0x${task.toString(16)}` });
  }
  return hidden;
}
