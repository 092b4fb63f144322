// TEST ONLY: makes the hidden state a DKOM rootkit makes, by writing guest memory from the host:
// an entry is unlinked from a kernel list (its neighbours point past it) — a task from
// init_task.tasks, or a module from `modules` — so walkers of the list no longer see it while the
// kernel still runs it. The product never writes guest memory (it opens it O_RDONLY); this file is
// the one place that does, with QEMU stopped (SIGSTOP) so the guest cannot see a half-done unlink.
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import type { GuestIntrospector } from '../../src/introspection/guest-introspector.ts';
import { AddressSpace } from '../../src/introspection/page-table.ts';

/** Unlinks the list_head at kernel virtual address `entry` from its list. */
export function unlinkListEntry(qemuPid: number, introspector: GuestIntrospector, entry: bigint): void {
  const { location, memory } = introspector;
  // The kernel's own page tables map the image, the direct map and module memory alike.
  const kernel = new AddressSpace(memory, location.kernelPageTable, location.pagingLevels);
  const next = kernel.readU64(entry);
  const prev = kernel.readU64(entry + 8n);
  if (next === undefined || prev === undefined) throw new Error(`list entry 0x${entry.toString(16)} unreadable`);
  const host = (virtual: bigint) => {
    const p = kernel.physicalOf(virtual);
    const range = p === undefined ? undefined : (memory.ranges as ReadonlyArray<{ guestPhysical: bigint; size: number; backingOffset: number }>)
      .find((r) => p >= r.guestPhysical && p + 8n <= r.guestPhysical + BigInt(r.size));
    if (p === undefined || !range) throw new Error(`0x${virtual.toString(16)} is not in guest RAM`);
    return range.backingOffset + Number(p - range.guestPhysical);
  };
  const u64 = (v: bigint) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(v);
    return b;
  };
  const prevNext = host(prev);
  const nextPrev = host(next + 8n);
  process.kill(qemuPid, 'SIGSTOP');
  const fd = openSync(`/proc/${qemuPid}/mem`, constants.O_RDWR);
  try {
    writeSync(fd, u64(next), 0, 8, prevNext); // prev->next = next
    writeSync(fd, u64(prev), 0, 8, nextPrev); // next->prev = prev
  } finally {
    closeSync(fd);
    process.kill(qemuPid, 'SIGCONT');
  }
}

/** Hides a process from the task list (init_task.tasks). */
export function hideProcessFromTaskList(qemuPid: number, introspector: GuestIntrospector, pid: number): void {
  const found = introspector.locateTask(pid);
  if (!found) throw new Error(`process ${pid} is not on the task list`);
  unlinkListEntry(qemuPid, introspector, found.task + BigInt(introspector.profile.structs.task_struct.members.tasks.offset));
}

/** Hides a loaded module from the module list (`modules`), leaving its /sys/module kobject. */
export function hideModuleFromList(qemuPid: number, introspector: GuestIntrospector, name: string): void {
  const module = introspector.snapshot().modules?.find((m) => m.name === name);
  if (!module) throw new Error(`module ${name} is not on the module list`);
  unlinkListEntry(qemuPid, introspector, BigInt(module.address) + BigInt(introspector.profile.details!.module__list));
}
