// TEST ONLY: makes the hidden state a DKOM rootkit makes, by writing guest memory from the host:
// the process's task is unlinked from init_task.tasks (its neighbours point past it), so walkers of
// the task list no longer see it while the kernel still schedules it and knows its pid. The
// product never writes guest memory (it opens it O_RDONLY); this file is the one place that does,
// with QEMU stopped (SIGSTOP) so the guest cannot see a half-done unlink.
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import type { GuestIntrospector } from '../../../src/introspection/guest-introspector.ts';
import { imagePhysical } from '../../../src/introspection/guest-kernel-discovery.ts';
import { addr } from '../../../src/introspection/kernel-profile.ts';

export function hideProcessFromTaskList(qemuPid: number, introspector: GuestIntrospector, pid: number): void {
  const found = introspector.locateTask(pid);
  if (!found) throw new Error(`process ${pid} is not on the task list`);
  const { profile, location, memory } = introspector;
  const tasksOffset = BigInt(profile.structs.task_struct.members.tasks.offset);
  const entry = found.task + tasksOffset;
  const next = found.kernel.readU64(entry);
  const prev = found.kernel.readU64(entry + 8n);
  if (next === undefined || prev === undefined) throw new Error(`task ${pid}: list pointers unreadable`);
  const initTasks = location.initTask + tasksOffset;
  // init_task lives in the kernel image, every other task in the direct map.
  const physical = (virtual: bigint) => (virtual === initTasks ? imagePhysical(location, addr(profile.addresses.initTask) + tasksOffset) : virtual - location.directMapBase);
  const host = (p: bigint) => {
    const range = (memory.ranges as ReadonlyArray<{ guestPhysical: bigint; size: number; backingOffset: number }>)
      .find((r) => p >= r.guestPhysical && p + 8n <= r.guestPhysical + BigInt(r.size));
    if (!range) throw new Error(`physical 0x${p.toString(16)} outside guest RAM`);
    return range.backingOffset + Number(p - range.guestPhysical);
  };
  const u64 = (v: bigint) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(v);
    return b;
  };
  process.kill(qemuPid, 'SIGSTOP');
  const fd = openSync(`/proc/${qemuPid}/mem`, constants.O_RDWR);
  try {
    writeSync(fd, u64(next), 0, 8, host(physical(prev))); // prev->next = next
    writeSync(fd, u64(prev), 0, 8, host(physical(next) + 8n)); // next->prev = prev
  } finally {
    closeSync(fd);
    process.kill(qemuPid, 'SIGCONT');
  }
}
