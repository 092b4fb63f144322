// Guest-physical memory as the introspector sees it: a few ranges of guest-physical addresses, each
// backed by something we can read. Reads never write; a read outside RAM returns undefined.
import { readSync } from 'node:fs';

export interface PhysicalMemory {
  /** Bytes at a guest-physical address, or undefined when any part lies outside guest RAM. */
  read(physical: bigint, length: number): Buffer | undefined;
  readonly ranges: readonly PhysicalRange[];
}

export interface PhysicalRange {
  /** First guest-physical address of the range. */
  guestPhysical: bigint;
  size: number;
}

export interface BackedRange extends PhysicalRange {
  /** Where the range starts in the backing store (a byte offset, e.g. a host virtual address). */
  backingOffset: number;
}

/** Common range lookup for both backings. */
abstract class RangedMemory implements PhysicalMemory {
  constructor(readonly ranges: readonly BackedRange[]) {}

  read(physical: bigint, length: number): Buffer | undefined {
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const at = physical + BigInt(done);
      const range = this.ranges.find((r) => at >= r.guestPhysical && at < r.guestPhysical + BigInt(r.size));
      if (!range) return undefined;
      const within = Number(at - range.guestPhysical);
      const n = Math.min(length - done, range.size - within);
      if (!this.readBacking(range.backingOffset + within, out, done, n)) return undefined;
      done += n;
    }
    return out;
  }

  protected abstract readBacking(offset: number, into: Buffer, at: number, length: number): boolean;
}

/** Guest RAM read through a file descriptor opened read-only on /proc/<qemu-pid>/mem. */
export class FilePhysicalMemory extends RangedMemory {
  constructor(private readonly fd: number, ranges: readonly BackedRange[]) {
    super(ranges);
  }

  protected readBacking(offset: number, into: Buffer, at: number, length: number): boolean {
    try {
      return readSync(this.fd, into, at, length, offset) === length;
    } catch {
      // The QEMU process may have exited or unmapped the region since we looked.
      return false;
    }
  }
}

/** Guest RAM held in a Buffer: synthetic images in tests. */
export class BufferPhysicalMemory extends RangedMemory {
  constructor(private readonly image: Buffer, ranges?: readonly BackedRange[]) {
    super(ranges ?? [{ guestPhysical: 0n, size: image.length, backingOffset: 0 }]);
  }

  protected readBacking(offset: number, into: Buffer, at: number, length: number): boolean {
    if (offset + length > this.image.length) return false;
    this.image.copy(into, at, offset, offset + length);
    return true;
  }
}
