// Entry point of the introspection library: attach to a QEMU process, identify the guest kernel
// among the given profiles, and take process-table snapshots on demand.
import { closeSync, constants, openSync, readFileSync } from 'node:fs';
import { guestPhysicalRanges, ramCandidates } from './guest-ram-locator.ts';
import { KernelNotFoundError, locateKernel, ProfileMismatchError, type KernelLocation } from './kernel-locator.ts';
import { hex, type KernelProfile } from './kernel-profile.ts';
import { AddressSpace } from './page-table.ts';
import { FilePhysicalMemory, type PhysicalMemory } from './physical-memory.ts';
import type { ProcessSnapshot } from './process-info.ts';
import { parseMaps, parseQemuCommandLine, readCommandLine } from './qemu-process.ts';
import { walkTasks } from './task-walker.ts';

export interface IntrospectionOptions {
  maxTasks: number;
  maxCmdline: number;
  /** A snapshot that saw the task list change is retried this many times in total. */
  attempts: number;
}

export const DEFAULT_INTROSPECTION_OPTIONS: IntrospectionOptions = { maxTasks: 65536, maxCmdline: 4096, attempts: 3 };

export class GuestAttachError extends Error {}

/**
 * Opens guest memory strictly for reading. O_RDONLY is the whole point: the IDS side must never be
 * able to change the server VM (DESIGN.md §1). (libuv adds O_CLOEXEC itself.)
 */
export function openGuestMemoryReadOnly(pid: number, procRoot = '/proc'): number {
  return openSync(`${procRoot}/${pid}/mem`, constants.O_RDONLY);
}

export class GuestIntrospector {
  private constructor(
    readonly memory: PhysicalMemory,
    readonly profile: KernelProfile,
    readonly location: KernelLocation,
    private readonly options: IntrospectionOptions,
    private readonly fd?: number,
  ) {}

  /** Attaches to an in-memory or otherwise prepared physical memory (tests, core files). */
  static fromMemory(memory: PhysicalMemory, profiles: KernelProfile[], options: Partial<IntrospectionOptions> = {}): GuestIntrospector {
    const { profile, location } = identifyKernel(memory, profiles);
    return new GuestIntrospector(memory, profile, location, { ...DEFAULT_INTROSPECTION_OPTIONS, ...options });
  }

  /** Attaches to a running QEMU process: finds guest RAM among its mappings, confirmed by finding the kernel in it. */
  static attachToQemu(pid: number, profiles: KernelProfile[], options: Partial<IntrospectionOptions> = {}): GuestIntrospector {
    const args = readCommandLine(pid);
    if (!args) throw new GuestAttachError(`QEMU process ${pid} not found`);
    const cmd = parseQemuCommandLine(args);
    const candidates = ramCandidates(parseMaps(readFileSync(`/proc/${pid}/maps`, 'utf8')), cmd);
    if (candidates.length === 0) throw new GuestAttachError(`QEMU process ${pid}: no mapping of ${cmd.ramBytes} bytes (the guest RAM size from -m)`);
    const fd = openGuestMemoryReadOnly(pid);
    const failures: Error[] = [];
    for (const mapping of candidates) {
      const memory = new FilePhysicalMemory(fd, guestPhysicalRanges(mapping.start, cmd.ramBytes, cmd.machineType));
      try {
        const { profile, location } = identifyKernel(memory, profiles);
        return new GuestIntrospector(memory, profile, location, { ...DEFAULT_INTROSPECTION_OPTIONS, ...options }, fd);
      } catch (err) {
        failures.push(err as Error);
      }
    }
    closeSync(fd);
    throw failures.find((e) => e instanceof ProfileMismatchError)
      ?? new GuestAttachError(`QEMU process ${pid}: no kernel found in ${candidates.length} candidate RAM mapping(s): ${failures.map((e) => e.message).join('; ')}`);
  }

  snapshot(): ProcessSnapshot {
    const started = performance.now();
    let attempt = 0;
    let result;
    do {
      attempt++;
      result = walkTasks(this.kernelSpace(), this.profile, this.location.initTask, {
        maxTasks: this.options.maxTasks,
        maxCmdline: this.options.maxCmdline,
        userSpace: (pgd) => new AddressSpace(this.memory, pgd, this.location.pagingLevels),
      });
    } while (!result.consistent && attempt < this.options.attempts);
    const l = this.location;
    return {
      takenAt: new Date().toISOString(),
      durationMs: performance.now() - started,
      consistent: result.consistent,
      problems: result.problems,
      attempts: attempt,
      kernel: {
        release: this.profile.kernel.release,
        pagingLevels: l.pagingLevels,
        virtualSlide: hex(l.virtualSlide),
        physicalSlide: hex(l.physicalSlide),
        kernelVirtualBase: hex(l.kernelVirtualBase),
        directMapBase: hex(l.directMapBase),
      },
      processes: result.processes,
    };
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
  }

  /** Fresh per snapshot: page tables change while the guest runs. */
  private kernelSpace(): AddressSpace {
    const top = this.memory.ranges.reduce((max, r) => (r.guestPhysical + BigInt(r.size) > max ? r.guestPhysical + BigInt(r.size) : max), 0n);
    return new AddressSpace(this.memory, this.location.kernelPageTable, this.location.pagingLevels, { base: this.location.directMapBase, size: top });
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
