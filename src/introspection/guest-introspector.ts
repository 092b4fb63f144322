// Entry point of the introspection library: attach to a QEMU process, identify the guest kernel
// among the given profiles, and take process-table snapshots on demand.
import { closeSync, constants, openSync, readFileSync } from 'node:fs';
import { guestPhysicalRanges, ramCandidates } from './guest-ram-locator.ts';
import { discoverKernel, GuestKernelDiscoveryError, GuestProfileCache, imagePhysical, type ProfileSource } from './guest-kernel-discovery.ts';
import { KernelNotFoundError, locateKernel, ProfileMismatchError, type KernelLocation } from './kernel-locator.ts';
import { addr, hex, type KernelProfile } from './kernel-profile.ts';
import { AddressSpace } from './page-table.ts';
import { BatchedFilePhysicalMemory, ChunkArena, ChunkedSnapshotMemory, FilePhysicalMemory, type BatchReadable, type PhysicalMemory } from './physical-memory.ts';
import { nativeBackgroundReader, nativeRangeReader } from './native-range-reader.ts';
import { PrefetchBuffers, PrefetchedSnapshotMemory, ReadPlan, type PrefetchStats } from './prefetched-snapshot-memory.ts';
import type { ProcessSnapshot } from './process-info.ts';
import { parseMaps, parseQemuCommandLine, readCommandLine } from './qemu-process.ts';
import { findHiddenProcesses } from './hidden-processes.ts';
import { findHiddenModules, listModules } from './kernel-modules.ts';
import { readOpenFiles, readProcessDetails, type ProcessDetails } from './process-details.ts';
import type { GuestSocket } from './sockets.ts';
import { CmdlineMemo, walkTasks } from './task-walker.ts';

export interface IntrospectionOptions {
  maxTasks: number;
  maxCmdline: number;
  /** A snapshot that saw the task list change is retried this many times in total. */
  attempts: number;
  /**
   * Build the profile from the running kernel's own BTF and kallsyms when no given profile matches
   * (the default); false: only the given profiles.
   */
  zeroConfig: boolean;
  /** Profiles built from guest memory, by banner; pass one cache to every attach of a sidecar. */
  profileCache?: GuestProfileCache;
  /** Guest memory is read in aligned chunks of this size per snapshot (ChunkedSnapshotMemory). */
  chunkSize: number;
  /** Also walk the kernel's PID map for processes hidden from the task list (hiddenProcesses). */
  detectHidden: boolean;
}

/**
 * maxCmdline: /proc/<pid>/cmdline has no limit of its own (ARG_MAX, a quarter of the stack limit,
 * bounds it); 256 KiB keeps every real command line whole, longer ones are marked cmdlineTruncated.
 */
export const DEFAULT_INTROSPECTION_OPTIONS: IntrospectionOptions = { maxTasks: 65536, maxCmdline: 256 * 1024, attempts: 3, zeroConfig: true, chunkSize: 16 * 1024, detectHidden: true };

/** A socket and who holds it: a row of `ss -anp`. */
export type ProcessSocket = { pid: number; comm: string; fd: number } & GuestSocket;

export class GuestAttachError extends Error {}

/** A kernel whose jiffies have not moved for this long while QEMU kept using CPU is no longer running. */
const KERNEL_FROZEN_MS = 3000;
const FROZEN_WHILE_RUNNING_CPU_MS = 1000;
/** Without QEMU's CPU time (in-memory tests), only a much longer freeze counts. */
const KERNEL_FROZEN_NO_CPU_INFO_MS = 60_000;

/** The guest now runs another kernel (or none): its banner is no longer where it was at attach. */
export class GuestKernelChangedError extends Error {}

interface Identified {
  profile: KernelProfile;
  location: KernelLocation;
  source: ProfileSource;
}

/**
 * Opens guest memory strictly for reading. O_RDONLY is the whole point: the IDS side must never be
 * able to change the server VM (docs/architecture.md §1). (libuv adds O_CLOEXEC itself.)
 */
export function openGuestMemoryReadOnly(pid: number, procRoot = '/proc'): number {
  return openSync(`${procRoot}/${pid}/mem`, constants.O_RDONLY);
}

/**
 * /proc/<pid>/pagemap, read-only: which pages of QEMU's guest RAM the host ever backed (presence
 * bits only; page frame numbers need CAP_SYS_ADMIN and are not used). Undefined when unreadable:
 * probes then read every candidate page.
 */
function openPagemap(pid: number, procRoot = '/proc'): number | undefined {
  try {
    return openSync(`${procRoot}/${pid}/pagemap`, constants.O_RDONLY);
  } catch {
    return undefined;
  }
}

export class GuestIntrospector {
  private constructor(
    readonly memory: PhysicalMemory,
    readonly profile: KernelProfile,
    readonly location: KernelLocation,
    /** Where the profile came from: the guest's own memory, or a given (ConfigMap) profile. */
    readonly profileSource: ProfileSource,
    private readonly options: IntrospectionOptions,
    /** Descriptors to close with the introspector (guest memory, its pagemap). */
    private readonly fds: readonly number[] = [],
  ) {
    this.bannerPhysical = imagePhysical(location, addr(profile.addresses.linuxBanner));
    this.banner = Buffer.from(profile.kernel.banner, 'latin1');
    this.jiffiesPhysical = profile.addresses.jiffies ? imagePhysical(location, addr(profile.addresses.jiffies)) : undefined;
  }

  private readonly bannerPhysical: bigint;
  private readonly banner: Buffer;
  private readonly jiffiesPhysical?: bigint;
  /** The last jiffies value, when it was first seen, and QEMU's CPU time when it was first seen again (unchanged). */
  private lastJiffies?: { value: bigint; changedAt: number; cpuWhileStill?: number };
  /** CPU time (ms) the QEMU process has used, when attached to one. */
  private cpuTimeMs?: () => number | undefined;

  /** Attaches to an in-memory or otherwise prepared physical memory (tests, core files). */
  static fromMemory(memory: PhysicalMemory, profiles: KernelProfile[], options: Partial<IntrospectionOptions> = {}): GuestIntrospector {
    const o = { ...DEFAULT_INTROSPECTION_OPTIONS, ...options };
    const { profile, location, source } = identify(memory, profiles, o, undefined);
    return new GuestIntrospector(memory, profile, location, source, o);
  }

  /** Attaches to a running QEMU process: finds guest RAM among its mappings, confirmed by finding the kernel in it. */
  static attachToQemu(pid: number, profiles: KernelProfile[], options: Partial<IntrospectionOptions> = {}): GuestIntrospector {
    const args = readCommandLine(pid);
    if (!args) throw new GuestAttachError(`QEMU process ${pid} not found`);
    const cmd = parseQemuCommandLine(args);
    const candidates = ramCandidates(parseMaps(readFileSync(`/proc/${pid}/maps`, 'utf8')), cmd);
    if (candidates.length === 0) throw new GuestAttachError(`QEMU process ${pid}: no mapping of ${cmd.ramBytes} bytes (the guest RAM size from -m)`);
    const o = { ...DEFAULT_INTROSPECTION_OPTIONS, ...options };
    const fd = openGuestMemoryReadOnly(pid);
    const pagemapFd = openPagemap(pid);
    const fds = pagemapFd === undefined ? [fd] : [fd, pagemapFd];
    const failures: Error[] = [];
    const readRanges = nativeRangeReader();
    const background = nativeBackgroundReader();
    for (const mapping of candidates) {
      const ranges = guestPhysicalRanges(mapping.start, cmd.ramBytes, cmd.machineType);
      const memory = readRanges ? new BatchedFilePhysicalMemory(fd, ranges, pagemapFd, pid, readRanges, background) : new FilePhysicalMemory(fd, ranges, pagemapFd);
      try {
        const cpuTimeMs = () => processCpuTimeMs(pid);
        const { profile, location, source } = identify(memory, profiles, o, cpuTimeMs);
        const introspector = new GuestIntrospector(memory, profile, location, source, o, fds);
        introspector.cpuTimeMs = cpuTimeMs;
        return introspector;
      } catch (err) {
        failures.push(err as Error);
      }
    }
    for (const f of fds) closeSync(f);
    throw failures.find((e) => e instanceof ProfileMismatchError)
      ?? new GuestAttachError(`QEMU process ${pid}: no kernel found in ${candidates.length} candidate RAM mapping(s): ${failures.map((e) => e.message).join('; ')}`);
  }

  /**
   * Threads, executable and open files of one process (a fresh walk finds it); undefined when no
   * such process, or the profile has no detail offsets.
   */
  processDetails(pid: number): (ProcessDetails & { pid: number }) | undefined {
    const found = this.locateTask(pid);
    if (!found) return undefined;
    const details = readProcessDetails(found.kernel, this.profile, found.task, found.mm);
    return details ? { pid, ...details } : undefined;
  }

  /**
   * Every socket user space holds open, with its process and fd (what `ss -anp` lists), from one
   * fresh walk; undefined when the profile lacks the detail or socket offsets. A process whose fd
   * table is torn mid-read is left out of this listing, not misreported.
   */
  listSockets(): ProcessSocket[] | undefined {
    if (!this.profile.details || !this.profile.sockets) return undefined;
    const { kernel, walk } = this.freshWalk();
    const out: ProcessSocket[] = [];
    for (const p of walk.processes) {
      const at = walk.addresses.get(p.pid);
      if (p.kernelThread || !at) continue;
      for (const f of readOpenFiles(kernel, this.profile, at.task) ?? []) {
        if (f.socket) out.push({ pid: p.pid, comm: p.comm, fd: f.fd, ...f.socket });
      }
    }
    return out;
  }

  /** Kernel virtual addresses of a listed process's task_struct and mm_struct (a fresh walk). */
  locateTask(pid: number): { task: bigint; mm: bigint; kernel: AddressSpace } | undefined {
    const { kernel, walk } = this.freshWalk();
    const at = walk.addresses.get(pid);
    return at ? { ...at, kernel } : undefined;
  }

  /** A walk of the task list without command lines, over its own chunk cache (details, sockets). */
  private freshWalk(): { kernel: AddressSpace; walk: ReturnType<typeof walkTasks> } {
    this.checkKernel();
    const memory = new ChunkedSnapshotMemory(this.memory, this.options.chunkSize);
    const kernel = this.kernelSpace(memory);
    const walk = walkTasks(kernel, this.profile, this.location.initTask, {
      maxTasks: this.options.maxTasks,
      maxCmdline: 0,
      userSpace: (pgd) => new AddressSpace(memory, pgd, this.location.pagingLevels),
      recordAddresses: true,
    });
    return { kernel, walk };
  }

  /** Throws GuestKernelChangedError when the guest rebooted (into this or another kernel) since the attach. */
  checkKernel(): void {
    const here = this.memory.read(this.bannerPhysical, this.banner.length);
    if (!here || !here.equals(this.banner)) {
      throw new GuestKernelChangedError(`the guest no longer runs ${this.profile.kernel.release} where it was found (rebooted?)`);
    }
    // A kexec or reset may leave the old image intact: then its clock stops while QEMU keeps
    // running another kernel. (A tickless idle kernel or a paused VM also stops jiffies, but then
    // QEMU burns no CPU time: that is not a change of kernel.)
    if (this.jiffiesPhysical === undefined) return;
    const value = this.memory.read(this.jiffiesPhysical, 8)?.readBigUInt64LE(0);
    const now = performance.now();
    if (value === undefined) throw new GuestKernelChangedError('jiffies unreadable');
    if (!this.lastJiffies || this.lastJiffies.value !== value) {
      this.lastJiffies = { value, changedAt: now };
      return;
    }
    // QEMU's CPU time (a read of /proc/<pid>/stat, ~0.5 ms) only once the clock stands still: the
    // CPU it spends is counted from the first snapshot that saw the same value.
    const cpu = this.cpuTimeMs?.();
    this.lastJiffies.cpuWhileStill ??= cpu;
    const frozenMs = now - this.lastJiffies.changedAt;
    const since = this.lastJiffies.cpuWhileStill;
    const cpuSpent = cpu !== undefined && since !== undefined ? cpu - since : undefined;
    if (frozenMs > KERNEL_FROZEN_MS && (cpuSpent === undefined ? frozenMs > KERNEL_FROZEN_NO_CPU_INFO_MS : cpuSpent > FROZEN_WHILE_RUNNING_CPU_MS)) {
      throw new GuestKernelChangedError(`the kernel ${this.profile.kernel.release} found at attach stopped (jiffies frozen for ${Math.round(frozenMs)} ms while QEMU used ${cpuSpent ?? '?'} ms of CPU): the guest rebooted into another kernel`);
    }
  }

  snapshot(): ProcessSnapshot {
    const started = performance.now();
    this.checkKernel();
    let attempt = 0;
    let result;
    let kernel: AddressSpace;
    let reads: SnapshotReads;
    do {
      attempt++;
      reads = this.snapshotReads();
      kernel = this.kernelSpace(reads.kernel);
      const user = reads.user;
      result = walkTasks(kernel, this.profile, this.location.initTask, {
        maxTasks: this.options.maxTasks,
        maxCmdline: this.options.maxCmdline,
        userSpace: (pgd) => new AddressSpace(user, pgd, this.location.pagingLevels),
        cmdlineMemo: this.cmdlineMemo,
      });
      this.cmdlineMemo.rotate();
      // A retry reads first what this attempt read (and the hidden-process walk joins the last one).
      if (!result.consistent && attempt < this.options.attempts) reads.done();
      else break;
    } while (true);
    const pidNs = this.profile.addresses.initPidNs;
    const hiddenProcesses = result.consistent && pidNs && this.options.detectHidden
      ? findHiddenProcesses(kernel, this.profile, addr(pidNs) + this.location.virtualSlide, new Set(result.processes.map((p) => p.pid)))
      : undefined;
    const { modules: modulesHead, moduleKset } = this.profile.addresses;
    const modules = modulesHead ? listModules(kernel, this.profile, addr(modulesHead) + this.location.virtualSlide) : undefined;
    const hiddenModules = modules && moduleKset && this.options.detectHidden
      ? findHiddenModules(kernel, this.profile, addr(moduleKset) + this.location.virtualSlide, modules)
      : undefined;
    reads.done();
    const l = this.location;
    return {
      takenAt: new Date().toISOString(),
      durationMs: performance.now() - started,
      consistent: result.consistent,
      problems: result.problems,
      attempts: attempt,
      kernel: {
        release: this.profile.kernel.release,
        profileSource: this.profileSource,
        pagingLevels: l.pagingLevels,
        virtualSlide: hex(l.virtualSlide),
        physicalSlide: hex(l.physicalSlide),
        kernelVirtualBase: hex(l.kernelVirtualBase),
        directMapBase: hex(l.directMapBase),
      },
      processes: result.processes,
      ...(hiddenProcesses ? { hiddenProcesses } : {}),
      ...(modules ? { modules } : {}),
      ...(hiddenModules ? { hiddenModules } : {}),
    };
  }

  close(): void {
    for (const fd of this.fds) closeSync(fd);
  }

  /** Reads from guest memory (chunks) the last snapshot's final attempt made (without the native reader). */
  lastChunkReads = 0;
  /** With the native reader: what the last snapshot's final attempt read in its batch and beside it. */
  lastPrefetch?: PrefetchStats;
  /** Where the last snapshot read: the next one reads all of it in one batch first. */
  private readPlan = ReadPlan.empty;
  private readonly prefetchBuffers = new PrefetchBuffers();
  private readonly cmdlineMemo = new CmdlineMemo();

  /** Whether snapshots read guest memory in batches (the native reader was built and loaded). */
  get batchedReads(): boolean {
    return isBatchReadable(this.memory);
  }

  /**
   * How one snapshot attempt reads guest memory. With the native reader: one batch of everything
   * the previous snapshot read, then single reads for what changed (docs/process-mapping.md,
   * *Reading guest memory fast*). Without it: aligned chunks for kernel memory, where three task_structs
   * share a slab (1000 processes: 4074 → 848 reads, listing 1.01× → 0.88× the plain-pread floor),
   * and a process's own page tables and argument page read exactly (no neighbour shares their chunk).
   */
  private snapshotReads(): SnapshotReads {
    const backing = this.memory;
    if (isBatchReadable(backing)) {
      const memory = new PrefetchedSnapshotMemory(backing, this.readPlan, this.prefetchBuffers);
      return {
        kernel: memory,
        user: memory,
        done: () => {
          memory.finish();
          this.readPlan = memory.nextPlan();
          this.lastPrefetch = { ...memory.stats };
        },
      };
    }
    const memory = new ChunkedSnapshotMemory(backing, this.options.chunkSize, this.arena);
    return { kernel: memory, user: backing, done: () => { this.lastChunkReads = memory.chunkReads; } };
  }
  private arenaOfChunks?: ChunkArena;

  private get arena(): ChunkArena {
    return (this.arenaOfChunks ??= new ChunkArena(this.options.chunkSize));
  }

  /** Fresh per snapshot: page tables change while the guest runs. */
  private kernelSpace(memory: PhysicalMemory): AddressSpace {
    const top = this.memory.ranges.reduce((max, r) => (r.guestPhysical + BigInt(r.size) > max ? r.guestPhysical + BigInt(r.size) : max), 0n);
    return new AddressSpace(memory, this.location.kernelPageTable, this.location.pagingLevels, { base: this.location.directMapBase, size: top });
  }
}

/** The memories one snapshot attempt reads kernel and user space through, and what to keep when it is done. */
interface SnapshotReads {
  kernel: PhysicalMemory;
  user: PhysicalMemory;
  done(): void;
}

const isBatchReadable = (m: PhysicalMemory): m is PhysicalMemory & BatchReadable => 'readBatch' in m && !('refused' in m && m.refused);

/** utime + stime of a process in ms (fields 14 and 15 of /proc/<pid>/stat, in USER_HZ = 100 ticks). */
function processCpuTimeMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}

function identify(memory: PhysicalMemory, profiles: KernelProfile[], options: IntrospectionOptions, cpuTimeMs: (() => number | undefined) | undefined): Identified {
  if (!options.zeroConfig) return { ...identifyKernel(memory, profiles), source: 'configmap' };
  try {
    return discoverKernel(memory, profiles, options.profileCache ?? new GuestProfileCache(), cpuTimeMs);
  } catch (err) {
    // Kernels without BTF or kallsyms: the given profiles are all there is.
    if (profiles.length === 0 || !(err instanceof KernelNotFoundError || err instanceof GuestKernelDiscoveryError)) throw err;
    try {
      return { ...identifyKernel(memory, profiles), source: 'configmap' };
    } catch (fallbackErr) {
      if (fallbackErr instanceof ProfileMismatchError || fallbackErr instanceof KernelNotFoundError) throw fallbackErr;
      throw new GuestAttachError(`${(err as Error).message}; with the given profiles: ${(fallbackErr as Error).message}`);
    }
  }
}

function identifyKernel(memory: PhysicalMemory, profiles: KernelProfile[]): { profile: KernelProfile; location: KernelLocation } {
  if (profiles.length === 0) throw new GuestAttachError('no kernel profiles given');
  let mismatch: ProfileMismatchError | undefined;
  let notFound: Error | undefined;
  for (const profile of profiles) {
    try {
      return { profile, location: locateKernel(memory, profile) };
    } catch (err) {
      if (err instanceof ProfileMismatchError) mismatch = err;
      else if (err instanceof KernelNotFoundError) notFound = err;
      else throw err;
    }
  }
  if (mismatch) {
    throw new ProfileMismatchError(`no profile matches the guest kernel (tried ${profiles.map((p) => p.kernel.release).join(', ')}): ${mismatch.runningBanner?.trim() ?? 'unknown banner'}`, mismatch.runningBanner);
  }
  throw notFound!;
}
