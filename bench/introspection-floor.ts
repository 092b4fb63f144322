// The floor for bench:introspection: the same walk of the task list as the introspector (every
// thread-group leader: its task fields, parent's tgid, cred, mm, the process's own page-table walk
// to its argument page, the argument bytes), done by the plainest reader there is: fs.readSync
// (pread) into preallocated buffers, no validation, no objects, no caching. What it costs is what
// reading guest memory through /proc/<pid>/mem costs; the introspector's time above it is ours.
import { readSync } from 'node:fs';
import type { GuestIntrospector } from '../src/introspection/guest-introspector.ts';

export interface FloorResult {
  processes: number;
  bytesRead: number;
  reads: number;
}

export function floorWalk(introspector: GuestIntrospector, fd: number): FloorResult {
  const { profile, location, memory } = introspector;
  const t = profile.structs.task_struct.members;
  const m = profile.structs.mm_struct.members;
  const range = memory.ranges[0]!;
  if (memory.ranges.length !== 1) throw new Error('the floor reader handles one RAM range (guest RAM < 2 GiB)');
  const hostBase = (range as { backingOffset?: number }).backingOffset;
  if (hostBase === undefined) throw new Error('the floor reader needs a file-backed memory');
  const buf = Buffer.alloc(profile.structs.task_struct.size);
  const small = Buffer.alloc(8);
  const args = Buffer.alloc(4096);
  let reads = 0;
  let bytesRead = 0;
  const direct = location.directMapBase;
  const pread = (into: Buffer, length: number, physical: bigint) => {
    reads++;
    bytesRead += length;
    return readSync(fd, into, 0, length, hostBase + Number(physical));
  };
  const imageDelta = location.virtualSlide + 0xffffffff80000000n - location.physicalSlide;
  // Tasks, creds and mms live in the direct map; init_task (a parent) and init_cred in the image.
  const kernelPhysical = (virtual: bigint) => (virtual >= 0xffffffff80000000n ? virtual - imageDelta : virtual - direct);
  const levels = location.pagingLevels === 5 ? [48n, 39n, 30n, 21n, 12n] : [39n, 30n, 21n, 12n];
  let processes = 0;
  const head = location.initTask + BigInt(t.tasks.offset);
  pread(small, 8, kernelPhysical(head));
  let next = small.readBigUInt64LE(0);
  for (let guard = 0; next !== head && guard < 100_000; guard++) {
    const task = next - BigInt(t.tasks.offset);
    pread(buf, buf.length, kernelPhysical(task));
    next = buf.readBigUInt64LE(t.tasks.offset);
    processes++;
    pread(small, 4, kernelPhysical(buf.readBigUInt64LE(t.real_parent.offset) + BigInt(t.tgid.offset)));
    pread(args, profile.structs.cred.size, kernelPhysical(buf.readBigUInt64LE(t.cred.offset)));
    const mm = buf.readBigUInt64LE(t.mm.offset);
    if (mm === 0n) continue;
    pread(args, profile.structs.mm_struct.size, kernelPhysical(mm));
    let table = kernelPhysical(args.readBigUInt64LE(m.pgd.offset));
    const argStart = args.readBigUInt64LE(m.arg_start.offset);
    const argLength = Math.min(Number(args.readBigUInt64LE(m.arg_end.offset) - argStart), 4096 - Number(argStart & 0xfffn));
    let physical: bigint | undefined;
    for (const shift of levels) {
      pread(small, 8, table + ((argStart >> shift) & 0x1ffn) * 8n);
      const entry = small.readBigUInt64LE(0);
      if ((entry & 1n) === 0n) break;
      if (shift === 12n || (shift === 21n && entry & 0x80n)) {
        const pageMask = shift === 12n ? 0xfffn : 0x1fffffn;
        physical = (entry & 0x000ffffffffff000n & ~pageMask) | (argStart & pageMask);
        break;
      }
      table = entry & 0x000ffffffffff000n;
    }
    if (physical !== undefined && argLength > 0) pread(args, argLength, physical);
  }
  return { processes, bytesRead, reads };
}
