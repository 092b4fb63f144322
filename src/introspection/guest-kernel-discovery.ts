// Zero-configuration kernel profiles: everything a profile holds, read from the running guest
// kernel itself instead of from its image. A kernel built with CONFIG_DEBUG_INFO_BTF keeps its
// type information in memory (the .BTF section, /sys/kernel/btf/vmlinux) and, with
// CONFIG_KALLSYMS_ALL, the addresses of its data symbols in kallsyms. So at attach time:
//  1. scan guest RAM for kallsyms' token table and decode the symbols we need (kallsyms.ts);
//  2. kernel-image addresses map linearly to physical ones, and both the virtual and the physical
//     load address are 2 MiB aligned: the physical place of `linux_banner` is one of the RAM
//     addresses congruent to its virtual address modulo 2 MiB that holds "Linux version ", and the
//     BTF blob must then sit at __start_BTF's physical place (magic 0xeb9f) — two independent checks;
//  3. read [__start_BTF, __stop_BTF) and build the struct layouts with the same code as
//     `profile build` (kernel-profile-builder.ts); cache them by banner;
//  4. init_task's virtual and physical addresses give the location (kernel-locator.ts), which the
//     kernel's own page tables must confirm.
// A ConfigMap profile whose banner is that of the running kernel overrides the BTF-built layouts.
import { createHash } from 'node:crypto';
import { Btf } from './btf.ts';
import { DIGIT_TOKENS, DIGIT_TOKENS_TAIL, DIGIT_TOKENS_TAIL_OFFSET, findDigitTokens, isTokenTable, KallsymsError, parseKallsyms, type Kallsyms } from './kallsyms.ts';
import { kernelLocation, KernelNotFoundError, scan, type KernelLocation } from './kernel-locator.ts';
import { addr, hex, KERNEL_PROFILE_FORMAT, type KernelProfile } from './kernel-profile.ts';
import { detailOffsets, kthreadFullName, socketOffsets, START_KERNEL_MAP, structLayoutsFromBtf, workqueueWorkers } from './kernel-profile-builder.ts';
import type { PhysicalMemory } from './physical-memory.ts';

export type ProfileSource = 'guest-memory' | 'configmap';

export interface DiscoveredKernel {
  profile: KernelProfile;
  location: KernelLocation;
  source: ProfileSource;
  /** True when the profile came from the cache (the BTF was not parsed again). */
  cached: boolean;
}

/** Symbols a profile needs; kallsyms has them when the kernel has CONFIG_KALLSYMS_ALL (all distributions). */
const PROFILE_SYMBOLS = ['_text', 'init_task', 'init_mm', 'linux_banner', '__start_BTF', '__stop_BTF'] as const;
/** Used when present: jiffies_64 tells a live kernel from a stale image left in RAM. */
const OPTIONAL_SYMBOLS = ['jiffies_64', 'init_pid_ns', 'modules', 'module_kset'] as const;
/**
 * How long attaching waits for jiffies to move. An idle tickless (NO_HZ) kernel updates jiffies
 * only when it wakes up: gaps of 0.6 s were measured on an idle 6.12 guest under TCG. Only the
 * first kernel found waits (a live one returns at its next tick); stale images after a reboot
 * cost the full wait.
 */
const LIVENESS_WAIT_MS = 1500;

/**
 * Link address of _text on x86-64 with the default CONFIG_PHYSICAL_START (16 MiB), which every
 * distribution uses; only differences to it matter (the profile's link-time addresses are the
 * runtime ones minus the virtual KASLR slide).
 */
const DEFAULT_TEXT_LINK = START_KERNEL_MAP + 0x1000000n;
const TWO_MIB = 0x200000n;
/** kallsyms' tables lie within this much of the token table (names and offsets of ~10^6 symbols). */
const WINDOW_BEFORE = 24 << 20;
const WINDOW_AFTER = 8 << 20;
/** .rodata of a distribution kernel is 4–7 MiB; kallsyms sits inside it. */
const RODATA_WINDOW = 16 << 20;
const BTF_MAX = 64 << 20;

export class GuestKernelDiscoveryError extends Error {}

/** Profiles built from guest memory, by exact banner; shared across attaches (and reboots) of a sidecar. */
export class GuestProfileCache {
  private readonly byBanner = new Map<string, KernelProfile>();
  constructor(private readonly capacity = 8) {}

  get(banner: string): KernelProfile | undefined {
    return this.byBanner.get(banner);
  }

  set(banner: string, profile: KernelProfile): void {
    this.byBanner.delete(banner);
    this.byBanner.set(banner, profile);
    while (this.byBanner.size > this.capacity) this.byBanner.delete(this.byBanner.keys().next().value!);
  }

  get size(): number {
    return this.byBanner.size;
  }

  /** Most recently built first. */
  profiles(): KernelProfile[] {
    return [...this.byBanner.values()].reverse();
  }
}

export interface RunningKernelSymbols {
  kallsyms: Kallsyms;
  /** Runtime virtual minus physical address, for kernel-image addresses. */
  imageDelta: bigint;
  banner: string;
}

/**
 * Kernels (kallsyms and the image's virtual-to-physical delta) in guest RAM, likeliest first. After
 * a reboot or kexec the old kernel's image may still be in RAM: the caller picks the live one. Reading all RAM
 * through /proc/<pid>/mem is what attaching costs, so first the likely places: on x86-64 the
 * kernel's .rodata starts on a 2 MiB boundary (vmlinux.lds.S aligns it for large-page mappings)
 * and begins with a copy of the banner, and kallsyms lies inside it. Only when that fails is all
 * of RAM scanned.
 */
export function* runningKernelCandidates(memory: PhysicalMemory, problems: string[], scope: 'likely-places' | 'everywhere' = 'everywhere', extraSymbols: readonly string[] = []): Generator<RunningKernelSymbols> {
  const wanted = [...PROFILE_SYMBOLS, ...OPTIONAL_SYMBOLS, ...extraSymbols];
  const seen = new Set<bigint>();
  for (const rodata of likelyRodataStarts(memory)) {
    const window = readUpTo(memory, rodata, RODATA_WINDOW);
    if (!window) continue;
    for (const digits of findDigitTokens(window)) {
      seen.add(rodata + BigInt(digits));
      const found = tryKallsyms(memory, window, digits, wanted, problems);
      if (found) yield found;
    }
  }
  if (scope === 'likely-places') return;
  for (const tail of scan(memory, DIGIT_TOKENS_TAIL)) {
    const digits = tail - BigInt(DIGIT_TOKENS_TAIL_OFFSET);
    if (seen.has(digits)) continue;
    // Cheap checks first: the digit tokens, then a token table around them (~1 KiB).
    const around = memory.read((digits - 2048n) & ~7n, 4096);
    const at = Number(digits - ((digits - 2048n) & ~7n));
    if (!around || !around.subarray(at, at + DIGIT_TOKENS.length).equals(DIGIT_TOKENS) || !isTokenTable(around, at)) continue;
    const range = memory.ranges.find((r) => digits >= r.guestPhysical && digits < r.guestPhysical + BigInt(r.size))!;
    const start = maxBig(range.guestPhysical, (digits - BigInt(WINDOW_BEFORE)) & ~7n);
    const end = minBig(range.guestPhysical + BigInt(range.size), digits + BigInt(WINDOW_AFTER));
    const window = memory.read(start, Number(end - start));
    if (!window) continue;
    const found = tryKallsyms(memory, window, Number(digits - start), wanted, problems);
    if (found) yield found;
  }
}

function tryKallsyms(memory: PhysicalMemory, window: Buffer, digitsAt: number, wanted: string[], problems: string[]): RunningKernelSymbols | undefined {
  let kallsyms: Kallsyms;
  try {
    kallsyms = parseKallsyms(window, digitsAt, wanted);
  } catch (err) {
    if (!(err instanceof KallsymsError)) throw err;
    problems.push(err.message);
    return undefined;
  }
  const missing = PROFILE_SYMBOLS.filter((s) => kallsyms.address(s) === undefined);
  if (missing.length > 0) {
    throw new GuestKernelDiscoveryError(`kallsyms of the guest kernel lacks ${missing.join(', ')} (kernel without CONFIG_KALLSYMS_ALL or BTF: give a profile in a ConfigMap)`);
  }
  const located = imageDelta(memory, kallsyms);
  if (!located) {
    problems.push('kallsyms found, but linux_banner and .BTF are not where it says');
    return undefined;
  }
  return { kallsyms, ...located };
}

/** 2 MiB boundaries whose first page holds "Linux version ". */
function* likelyRodataStarts(memory: PhysicalMemory): Generator<bigint> {
  const needle = Buffer.from('Linux version ', 'latin1');
  for (const range of memory.ranges) {
    const end = range.guestPhysical + BigInt(range.size);
    for (let p = (range.guestPhysical + TWO_MIB - 1n) & ~(TWO_MIB - 1n); p + 4096n <= end; p += TWO_MIB) {
      // A page the guest never touched reads as zeros; reading it would make the host fault it in.
      if (memory.touched?.(p) === false) continue;
      const page = memory.read(p, 4096);
      if (page && page.indexOf(needle) >= 0) yield p;
    }
  }
}

function readUpTo(memory: PhysicalMemory, start: bigint, length: number): Buffer | undefined {
  const range = memory.ranges.find((r) => start >= r.guestPhysical && start < r.guestPhysical + BigInt(r.size));
  if (!range) return undefined;
  return memory.read(start, Number(minBig(BigInt(length), range.guestPhysical + BigInt(range.size) - start)));
}

function imageDelta(memory: PhysicalMemory, kallsyms: Kallsyms): { imageDelta: bigint; banner: string } | undefined {
  const banner = kallsyms.address('linux_banner')!;
  const btf = kallsyms.address('__start_BTF')!;
  for (const range of memory.ranges) {
    const first = range.guestPhysical + (((banner - range.guestPhysical) % TWO_MIB) + TWO_MIB) % TWO_MIB;
    for (let p = first; p + 256n <= range.guestPhysical + BigInt(range.size); p += TWO_MIB) {
      if (memory.touched?.(p) === false) continue;
      const text = memory.read(p, 256);
      if (!text || text.toString('latin1', 0, 14) !== 'Linux version ') continue;
      const delta = banner - p;
      const magic = memory.read(btf - delta, 4);
      if (!magic || magic.readUInt16LE(0) !== 0xeb9f || magic[2] !== 1) continue;
      const nl = text.indexOf(0x0a);
      if (nl < 0) continue;
      return { imageDelta: delta, banner: text.toString('latin1', 0, nl + 1) };
    }
  }
  return undefined;
}

/** Builds the profile of the running kernel from its own BTF and kallsyms (no cache). */
export function profileFromGuest(memory: PhysicalMemory, running: RunningKernelSymbols): KernelProfile {
  const { kallsyms, imageDelta: delta, banner } = running;
  const sym = (name: (typeof PROFILE_SYMBOLS)[number]) => kallsyms.address(name)!;
  const btfLength = Number(sym('__stop_BTF') - sym('__start_BTF'));
  if (btfLength <= 0 || btfLength > BTF_MAX) throw new GuestKernelDiscoveryError(`implausible .BTF size ${btfLength} in guest memory`);
  const blob = memory.read(sym('__start_BTF') - delta, btfLength);
  if (!blob) throw new GuestKernelDiscoveryError('the guest kernel\'s .BTF is outside guest RAM');
  const btf = new Btf(blob);
  const slide = sym('_text') - DEFAULT_TEXT_LINK;
  const link = (name: (typeof PROFILE_SYMBOLS)[number]) => hex(sym(name) - slide);
  const release = /^Linux version (\S+)/.exec(banner)?.[1] ?? 'unknown';
  return {
    format: KERNEL_PROFILE_FORMAT,
    kernel: { release, banner, architecture: 'x86_64' },
    source: { file: 'guest-memory', sha256: createHash('sha256').update(blob).digest('hex'), compression: 'none', addressesFrom: 'guest-memory' },
    addresses: {
      startKernelMap: hex(START_KERNEL_MAP),
      text: link('_text'),
      initTask: link('init_task'),
      initMm: link('init_mm'),
      linuxBanner: link('linux_banner'),
      ...(kallsyms.address('jiffies_64') !== undefined ? { jiffies: hex(kallsyms.address('jiffies_64')! - slide) } : {}),
      ...(kallsyms.address('init_pid_ns') !== undefined ? { initPidNs: hex(kallsyms.address('init_pid_ns')! - slide) } : {}),
      ...(kallsyms.address('modules') !== undefined ? { modules: hex(kallsyms.address('modules')! - slide) } : {}),
      ...(kallsyms.address('module_kset') !== undefined ? { moduleKset: hex(kallsyms.address('module_kset')! - slide) } : {}),
    },
    ...workqueueWorkers(btf, release),
    ...kthreadFullName(btf),
    ...detailOffsets(btf),
    ...socketOffsets(btf),
    structs: structLayoutsFromBtf(btf),
  };
}

/**
 * Finds a kernel whose profile is known without scanning RAM: the kernel image starts 2 MiB
 * aligned in physical memory (CONFIG_PHYSICAL_ALIGN), so its banner can only be at one offset from
 * each 2 MiB boundary; init_task's real_parent (itself) then gives its runtime virtual address.
 * Yields every place such a kernel image is found (a stale one may remain after a reboot).
 */
export function* locateKnownKernel(memory: PhysicalMemory, profile: KernelProfile): Generator<KernelLocation> {
  const text = addr(profile.addresses.text);
  const bannerOffset = addr(profile.addresses.linuxBanner) - text;
  const initTaskOffset = addr(profile.addresses.initTask) - text;
  const banner = Buffer.from(profile.kernel.banner, 'latin1');
  const parentOffset = BigInt(profile.structs.task_struct.members.real_parent.offset);
  for (const range of memory.ranges) {
    const end = range.guestPhysical + BigInt(range.size);
    for (let base = (range.guestPhysical + TWO_MIB - 1n) & ~(TWO_MIB - 1n); base + bannerOffset < end; base += TWO_MIB) {
      if (memory.touched?.(base + bannerOffset) === false) continue;
      const here = memory.read(base + bannerOffset, banner.length);
      if (!here || !here.equals(banner)) continue;
      const initTask = memory.read(base + initTaskOffset + parentOffset, 8);
      if (!initTask) continue;
      try {
        const location = kernelLocation(memory, profile, initTask.readBigUInt64LE(0), base + initTaskOffset);
        checkInitTask(memory, profile, location);
        yield location;
      } catch (err) {
        if (err instanceof KernelNotFoundError || err instanceof GuestKernelDiscoveryError) continue;
        throw err;
      }
    }
  }
}

/**
 * Identifies the running kernel from guest memory alone. `overrides` are ConfigMap profiles: one
 * whose banner matches wins. Known kernels (overrides, then the cache) are found by probing 2 MiB
 * boundaries; an unknown one by scanning for kallsyms and reading its BTF. A reboot (kexec, or a
 * reset that keeps RAM) can leave the previous kernel's image intact in RAM, so a candidate must
 * be live (its jiffies advance); a frozen one is used only when nothing live is found (a paused
 * VM). Throws KernelNotFoundError while the guest is not (yet) running Linux.
 */
export function discoverKernel(memory: PhysicalMemory, overrides: readonly KernelProfile[], cache: GuestProfileCache, cpuTimeMs?: () => number | undefined): DiscoveredKernel {
  let frozen: DiscoveredKernel | undefined;
  for (const [profiles, source] of [[overrides, 'configmap'], [cache.profiles(), 'guest-memory']] as const) {
    for (const profile of profiles) {
      for (const location of locateKnownKernel(memory, profile)) {
        const found = { profile, location, source, cached: source === 'guest-memory' };
        const liveness = kernelLiveness(memory, profile, location, cpuTimeMs);
        if (liveness === 'live' || liveness === 'unknown') return found;
        if (liveness === 'inconclusive') frozen ??= found;
      }
    }
  }
  const problems: string[] = [];
  // A full scan of RAM only when the likely places hold no kernel that may be running.
  const scope = (): 'likely-places' | 'everywhere' => (frozen ? 'likely-places' : 'everywhere');
  for (const running of chain(runningKernelCandidates(memory, problems, 'likely-places'), () => (scope() === 'everywhere' ? runningKernelCandidates(memory, problems, 'everywhere') : []))) {
    // jiffies read now and again after the profile is built: a live kernel has ticked meanwhile
    // (building from BTF takes longer than a tick), so attaching rarely waits for liveness.
    const before = jiffiesObservation(memory, running, cpuTimeMs);
    const override = overrides.find((p) => p.kernel.banner === running.banner);
    let profile = override ?? cache.get(running.banner);
    const cached = !override && profile !== undefined;
    if (!profile) {
      profile = profileFromGuest(memory, running);
      cache.set(running.banner, profile);
    }
    const initTask = running.kallsyms.address('init_task')!;
    let location: KernelLocation;
    try {
      location = kernelLocation(memory, profile, initTask, initTask - running.imageDelta);
      checkInitTask(memory, profile, location);
    } catch (err) {
      if (!(err instanceof KernelNotFoundError || err instanceof GuestKernelDiscoveryError)) throw err;
      problems.push(`${profile.kernel.release}: ${err.message}`);
      continue;
    }
    const found: DiscoveredKernel = { profile, location, source: override ? 'configmap' : 'guest-memory', cached };
    const liveness = kernelLiveness(memory, profile, location, cpuTimeMs, before);
    if (liveness === 'live' || liveness === 'unknown') return found;
    if (liveness === 'inconclusive') frozen ??= found;
  }
  if (frozen) return frozen;
  throw new KernelNotFoundError(`no running kernel found in guest memory (guest still booting, or not Linux?)${problems.length ? `: ${problems.slice(0, 3).join('; ')}` : ''}`);
}

/** Physical address of a kernel-image symbol given at its link-time address. */
export function imagePhysical(location: KernelLocation, linkAddress: bigint): bigint {
  return linkAddress - START_KERNEL_MAP + location.physicalSlide;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Whether a kernel found in RAM is the one running: live when its jiffies advance within
 * LIVENESS_WAIT_MS; stale when they do not while QEMU kept a vCPU busy (it runs something else);
 * inconclusive when they do not and QEMU was idle (a paused VM, or QEMU's CPU time unknown);
 * unknown when the profile has no jiffies address (profiles built from an image).
 */
export function kernelLiveness(
  memory: PhysicalMemory, profile: KernelProfile, location: KernelLocation, cpuTimeMs?: () => number | undefined,
  /** An earlier read of the same jiffies: the wait counts from then. */
  since?: JiffiesObservation,
): 'live' | 'stale' | 'inconclusive' | 'unknown' {
  if (!profile.addresses.jiffies) return 'unknown';
  const at = imagePhysical(location, addr(profile.addresses.jiffies));
  const now = memory.read(at, 8)?.readBigUInt64LE(0);
  if (now === undefined) return 'stale';
  if (since && since.physical === at && since.value !== now) return 'live';
  const first = since?.physical === at ? since.value : now;
  const started = since?.physical === at ? since.at : performance.now();
  const cpuStart = since?.physical === at ? since.cpuMs : cpuTimeMs?.();
  while (performance.now() - started < LIVENESS_WAIT_MS) {
    Atomics.wait(sleeper, 0, 0, 5); // attach is synchronous; a few ms at most
    if (memory.read(at, 8)?.readBigUInt64LE(0) !== first) return 'live';
  }
  const cpuEnd = cpuTimeMs?.();
  if (cpuStart === undefined || cpuEnd === undefined) return 'inconclusive';
  return cpuEnd - cpuStart > LIVENESS_WAIT_MS / 2 ? 'stale' : 'inconclusive';
}

/** jiffies_64 of a kernel found in RAM, read at a moment (kernelLiveness compares later reads with it). */
export interface JiffiesObservation {
  physical: bigint;
  value: bigint;
  at: number;
  cpuMs: number | undefined;
}

function jiffiesObservation(memory: PhysicalMemory, running: RunningKernelSymbols, cpuTimeMs?: () => number | undefined): JiffiesObservation | undefined {
  const virtual = running.kallsyms.address('jiffies_64');
  if (virtual === undefined) return undefined;
  const physical = virtual - running.imageDelta;
  const value = memory.read(physical, 8)?.readBigUInt64LE(0);
  return value === undefined ? undefined : { physical, value, at: performance.now(), cpuMs: cpuTimeMs?.() };
}

/** The first iterable, then the one `more` gives once the first is exhausted. */
function* chain<T>(first: Iterable<T>, more: () => Iterable<T>): Generator<T> {
  yield* first;
  yield* more();
}

/** init_task as the layouts describe it: comm "swapper/0", pid 0, its own real parent. */
function checkInitTask(memory: PhysicalMemory, profile: KernelProfile, location: KernelLocation): void {
  const t = profile.structs.task_struct.members;
  const p = location.initTask - location.virtualSlide - START_KERNEL_MAP + location.physicalSlide;
  const task = memory.read(p, profile.structs.task_struct.size);
  const comm = task?.toString('latin1', t.comm.offset, t.comm.offset + 10);
  if (!task || comm !== 'swapper/0\0' || task.readInt32LE(t.pid.offset) !== 0 || task.readBigUInt64LE(t.real_parent.offset) !== location.initTask) {
    throw new GuestKernelDiscoveryError(`init_task at ${hex(location.initTask)} does not look like init_task with the ${profile.source.addressesFrom} layouts of ${profile.kernel.release}`);
  }
}

const maxBig = (a: bigint, b: bigint) => (a > b ? a : b);
const minBig = (a: bigint, b: bigint) => (a < b ? a : b);
