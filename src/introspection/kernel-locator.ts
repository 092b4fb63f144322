// Finds the running kernel in guest-physical memory and works out where KASLR put it.
//
// Method (no symbol file, nothing trusted from the guest beyond its memory contents):
//  1. Scan RAM for init_task: its comm is "swapper/0" and, at the profile's offsets, pid = tgid = 0
//     and real_parent points to init_task itself, mm is NULL. That self-pointer is its runtime virtual address
//     V, and where we found it is its physical address P. V - profile.initTask is the virtual KASLR
//     slide; P - (profile.initTask - __START_KERNEL_map) is the physical one.
//  2. Check the banner at linux_banner's runtime location: the profile matches this kernel build.
//  3. init_mm.pgd (swapper_pg_dir) gives the kernel page tables; whether they translate V to P with
//     4 or 5 levels tells the paging mode.
//  4. The first task after init_task lives in the direct map ("page_offset_base", randomized under
//     CONFIG_RANDOMIZE_MEMORY); translating it through the page tables gives the direct-map base.
import { translate, type PagingLevels } from './page-table.ts';
import type { PhysicalMemory } from './physical-memory.ts';
import { addr, hex, type KernelProfile } from './kernel-profile.ts';

export class KernelNotFoundError extends Error {}
export class ProfileMismatchError extends Error {
  constructor(message: string, readonly runningBanner?: string) {
    super(message);
  }
}

export interface KernelLocation {
  /** Runtime virtual address of init_task. */
  initTask: bigint;
  virtualSlide: bigint;
  physicalSlide: bigint;
  /** Runtime virtual address of the kernel text (_text). */
  kernelVirtualBase: bigint;
  kernelPhysicalBase: bigint;
  pagingLevels: PagingLevels;
  /** Physical address of the kernel's top-level page table (swapper_pg_dir). */
  kernelPageTable: bigint;
  directMapBase: bigint;
}

const SCAN_CHUNK = 16 << 20;
const KASLR_ALIGN = 0x200000n; // CONFIG_PHYSICAL_ALIGN
const KASLR_MAX = 1n << 30n; // the kernel image mapping is 1 GiB
const ONE_GIB_MASK = (1n << 30n) - 1n;

// Kernel half of the canonical address space, for 4-level (0xffff8...) and 5-level (0xff...) paging.
const isKernelPointer = (v: bigint) => v >> 56n === 0xffn;

export function locateKernel(memory: PhysicalMemory, profile: KernelProfile): KernelLocation {
  const t = profile.structs.task_struct.members;
  const initTaskLink = addr(profile.addresses.initTask);
  let runningBanner: string | undefined;

  for (const candidate of scan(memory, Buffer.from('swapper/0\0', 'latin1'))) {
    const p = candidate - BigInt(t.comm.offset);
    const task = memory.read(p, profile.structs.task_struct.size);
    if (!task) continue;
    if (task.readInt32LE(t.pid.offset) !== 0 || task.readInt32LE(t.tgid.offset) !== 0) continue;
    const v = task.readBigUInt64LE(t.real_parent.offset);
    const slide = v - initTaskLink;
    if (slide < 0n || slide >= KASLR_MAX || slide % KASLR_ALIGN !== 0n) continue;
    // (active_mm is not checked: the idle task borrows the last user mm, lazy TLB.)
    if (task.readBigUInt64LE(t.mm.offset) !== 0n) continue;
    if (!isKernelPointer(task.readBigUInt64LE(t.tasks.offset))) continue;

    // Kernel-image addresses map linearly: physical = virtual - imageDelta.
    const imageDelta = v - p;
    const bannerBytes = Buffer.from(profile.kernel.banner, 'latin1');
    const bannerHere = memory.read(addr(profile.addresses.linuxBanner) + slide - imageDelta, bannerBytes.length);
    if (!bannerHere || !bannerHere.equals(bannerBytes)) {
      runningBanner = findBanner(memory);
      continue;
    }
    return kernelLocation(memory, profile, v, p);
  }
  runningBanner ??= findBanner(memory);
  if (runningBanner && runningBanner !== profile.kernel.banner) {
    throw new ProfileMismatchError(`the guest runs a different kernel than the profile (${profile.kernel.release}): ${runningBanner.trim()}`, runningBanner);
  }
  throw new KernelNotFoundError(`no init_task of kernel ${profile.kernel.release} found in guest memory (guest still booting, or not Linux?)`);
}

/**
 * The rest of the location once init_task's runtime virtual address v and physical address p are
 * known (by a scan, or from kallsyms): slides, kernel page tables and paging mode, direct-map base.
 * Throws KernelNotFoundError when the page tables do not confirm v → p.
 */
export function kernelLocation(memory: PhysicalMemory, profile: KernelProfile, v: bigint, p: bigint): KernelLocation {
  const t = profile.structs.task_struct.members;
  const initTaskLink = addr(profile.addresses.initTask);
  const startKernelMap = addr(profile.addresses.startKernelMap);
  const slide = v - initTaskLink;
  const imageDelta = v - p;
  const pgdRaw = memory.read(addr(profile.addresses.initMm) + slide - imageDelta + BigInt(profile.structs.mm_struct.members.pgd.offset), 8);
  if (!pgdRaw) throw new KernelNotFoundError(`init_mm of the kernel at ${hex(v)} is outside guest RAM`);
  const kernelPageTable = pgdRaw.readBigUInt64LE(0) - imageDelta;
  const pagingLevels = ([4, 5] as const).find((levels) => translate(memory, kernelPageTable, v, levels)?.physical === p);
  if (!pagingLevels) throw new KernelNotFoundError(`found init_task at physical ${hex(p)} but the kernel page tables at ${hex(kernelPageTable)} do not map it`);

  const firstTaskLink = memory.read(p + BigInt(t.tasks.offset), 8);
  if (!firstTaskLink) throw new KernelNotFoundError(`init_task at ${hex(p)} unreadable`);
  const firstTask = firstTaskLink.readBigUInt64LE(0) - BigInt(t.tasks.offset);
  const firstTaskPhysical = translate(memory, kernelPageTable, firstTask, pagingLevels)?.physical;
  if (firstTaskPhysical === undefined) throw new KernelNotFoundError(`init_task.tasks.next ${hex(firstTask)} is not mapped`);
  const directMapBase = firstTask - firstTaskPhysical;
  if ((directMapBase & ONE_GIB_MASK) !== 0n) {
    throw new KernelNotFoundError(`direct-map base ${hex(directMapBase)} derived from the first task is not 1 GiB aligned`);
  }
  const physicalSlide = p - (initTaskLink - startKernelMap);
  const textLink = addr(profile.addresses.text);
  return {
    initTask: v,
    virtualSlide: slide,
    physicalSlide,
    kernelVirtualBase: textLink + slide,
    kernelPhysicalBase: textLink - startKernelMap + physicalSlide,
    pagingLevels,
    kernelPageTable,
    directMapBase,
  };
}

/** Physical addresses where needle starts, range by range, in chunks. */
export function* scan(memory: PhysicalMemory, needle: Buffer): Generator<bigint> {
  for (const range of memory.ranges) {
    for (let off = 0; off < range.size; off += SCAN_CHUNK) {
      const len = Math.min(SCAN_CHUNK + needle.length - 1, range.size - off);
      const chunk = memory.read(range.guestPhysical + BigInt(off), len);
      if (!chunk) continue;
      for (let i = chunk.indexOf(needle); i >= 0; i = chunk.indexOf(needle, i + 1)) {
        yield range.guestPhysical + BigInt(off + i);
      }
    }
  }
}

/**
 * A "Linux version ..." line in RAM, to name the kernel actually running in errors: the first one
 * with a build number ("#1 SMP"), as /proc/version shows it; kernels since 6.1 also keep a
 * placeholder copy without one ("# SMP").
 */
export function findBanner(memory: PhysicalMemory): string | undefined {
  let placeholder: string | undefined;
  for (const at of scan(memory, Buffer.from('Linux version ', 'latin1'))) {
    const bytes = memory.read(at, 256);
    if (!bytes) continue;
    const end = bytes.indexOf(0x0a);
    if (end <= 0) continue;
    const line = bytes.toString('latin1', 0, end + 1);
    if (/\) #\d/.test(line)) return line;
    placeholder ??= line;
  }
  return placeholder;
}
