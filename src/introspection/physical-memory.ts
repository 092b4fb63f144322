// Guest-physical memory as the introspector sees it: a few ranges of guest-physical addresses, each
// backed by something we can read. Reads never write; a read outside RAM returns undefined.
import { readSync } from 'node:fs';
import type { BackgroundReader, ReadRanges } from './native-range-reader.ts';

const EPERM = 1;
const ENOSYS = 38;

export interface PhysicalMemory {
  /** Bytes at a guest-physical address, or undefined when any part lies outside guest RAM. */
  read(physical: bigint, length: number): Buffer | undefined;
  /** Like read, into a caller's buffer (no allocation); false when any part lies outside guest RAM. */
  readInto(physical: bigint, into: Buffer, at: number, length: number): boolean;
  readonly ranges: readonly PhysicalRange[];
  /**
   * Whether the host ever backed the page at this address (false: never touched, so it reads as
   * zeros); undefined when the backing cannot tell. A hint for probes: reading an untouched page
   * through /proc/<pid>/mem makes the host fault it in, which is what made a first attach to a
   * large, mostly idle guest slow.
   */
  touched?(physical: bigint): boolean | undefined;
  /**
   * Where these bytes already are in memory this object holds, so that a caller can read them in
   * place instead of copying them out: an offset into `heldBytes`, or -1 (then read as usual).
   * The guest-physical address is a number here (guest RAM lies far below 2^53).
   */
  locate?(physical: number, length: number): number;
  readonly heldBytes?: Buffer;
  /** The same bytes for 64-bit reads (DataView.getBigUint64 is about 3× faster than readBigUInt64LE). */
  readonly heldView?: DataView;
}

/**
 * Many reads in one go: request i is lengths[i] bytes at guest-physical physicals[i], copied into
 * `into` at offsets[i]; ok[i] says whether it was read in full. Memories that can batch (the native
 * reader) implement it; it is what PrefetchedSnapshotMemory needs.
 */
export interface BatchReadable {
  readBatch(physicals: Float64Array, lengths: Uint32Array, offsets: Uint32Array, count: number, into: Buffer, ok: Uint8Array): void;
  /** Why batches are not possible here, once refused as a whole: callers then read singly. */
  readonly refused?: string;
  /**
   * Like readBatch, in the background and in order, `chunkSize` requests at a time: returns at
   * once. chunks[c] (shared memory) is 0 while chunk c is not started, 1 while it is read, 2 once
   * it is (its ok flags set). Undefined when this memory cannot read in the background.
   */
  startBatch?(physicals: Float64Array, lengths: Uint32Array, offsets: Uint32Array, count: number, into: Buffer, ok: Uint8Array, chunks: Int32Array, chunkSize: number): PendingBatch | undefined;
}

/** A batch being read in the background. */
export interface PendingBatch {
  /**
   * Reads requests [first, first + count) now, on the caller's thread, setting their ok flags: for
   * a chunk the caller claimed (chunks[c] 0 → 1) rather than wait for the thread to reach it.
   */
  readNow(first: number, count: number): void;
  /** Waits until every chunk is read. */
  finish(): void;
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
    return this.readInto(physical, out, 0, length) ? out : undefined;
  }

  readInto(physical: bigint, into: Buffer, at: number, length: number): boolean {
    // Fast path: the whole read inside the first range (guest RAM below the PCI hole).
    const first = this.ranges[0]!;
    if (physical >= first.guestPhysical && physical + BigInt(length) <= first.guestPhysical + BigInt(first.size)) {
      return this.readBacking(first.backingOffset + Number(physical - first.guestPhysical), into, at, length);
    }
    let done = 0;
    while (done < length) {
      const p = physical + BigInt(done);
      const range = this.ranges.find((r) => p >= r.guestPhysical && p < r.guestPhysical + BigInt(r.size));
      if (!range) return false;
      const within = Number(p - range.guestPhysical);
      const n = Math.min(length - done, range.size - within);
      if (!this.readBacking(range.backingOffset + within, into, at + done, n)) return false;
      done += n;
    }
    return true;
  }

  protected abstract readBacking(offset: number, into: Buffer, at: number, length: number): boolean;
}

/** Guest RAM read through a file descriptor opened read-only on /proc/<qemu-pid>/mem. */
export class FilePhysicalMemory extends RangedMemory {
  private readonly entry = Buffer.alloc(8);

  constructor(
    private readonly fd: number,
    ranges: readonly BackedRange[],
    /** /proc/<qemu-pid>/pagemap, opened read-only: tells touched pages from never-touched ones. */
    private readonly pagemapFd?: number,
  ) {
    super(ranges);
  }

  touched(physical: bigint): boolean | undefined {
    if (this.pagemapFd === undefined) return undefined;
    const range = this.ranges.find((r) => physical >= r.guestPhysical && physical < r.guestPhysical + BigInt(r.size));
    if (!range) return false;
    const virtual = range.backingOffset + Number(physical - range.guestPhysical);
    try {
      if (readSync(this.pagemapFd, this.entry, 0, 8, Math.floor(virtual / 4096) * 8) !== 8) return undefined;
    } catch {
      return undefined;
    }
    // Documentation/admin-guide/mm/pagemap.rst: bit 63 present, bit 62 swapped.
    return (this.entry.readBigUInt64LE(0) >> 62n) !== 0n;
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

/**
 * FilePhysicalMemory that also reads many pieces per system call (process_vm_readv through the
 * native reader, at the same host virtual addresses /proc/<pid>/mem is read at).
 */
export class BatchedFilePhysicalMemory extends FilePhysicalMemory implements BatchReadable {
  private hostAddresses = new Float64Array(0);
  refused?: string;
  /** The ranges as numbers (guest-physical addresses fit: below 2^52). */
  private readonly numericRanges: ReadonlyArray<{ start: number; end: number; host: number }>;

  constructor(
    fd: number,
    ranges: readonly BackedRange[],
    pagemapFd: number | undefined,
    private readonly pid: number,
    private readonly readRanges: ReadRanges,
    private readonly background?: BackgroundReader,
  ) {
    super(fd, ranges, pagemapFd);
    this.numericRanges = ranges.map((r) => ({ start: Number(r.guestPhysical), end: Number(r.guestPhysical) + r.size, host: r.backingOffset }));
  }

  /**
   * QEMU's host virtual address of each request. A request not inside one range (none in practice:
   * the walk reads within pages) is left to the caller's single reads: its address is -1 and it is
   * marked not read.
   */
  private hostAddressesOf(physicals: Float64Array, lengths: Uint32Array, count: number): Float64Array {
    // A new array while a background batch may still read the old one (the caller settles it first, but never share).
    if (this.hostAddresses.length < count || this.background) this.hostAddresses = new Float64Array(Math.max(count, this.hostAddresses.length));
    const hosts = this.hostAddresses;
    for (let i = 0; i < count; i++) {
      const p = physicals[i]!;
      const range = this.numericRanges.find((r) => p >= r.start && p + lengths[i]! <= r.end);
      hosts[i] = range ? range.host + (p - range.start) : -1;
    }
    return hosts;
  }

  startBatch(physicals: Float64Array, lengths: Uint32Array, offsets: Uint32Array, count: number, into: Buffer, ok: Uint8Array, chunks: Int32Array, chunkSize: number): PendingBatch | undefined {
    const background = this.background;
    if (!background || this.refused) return undefined;
    const hosts = this.hostAddressesOf(physicals, lengths, count);
    const handle = background.start(this.pid, hosts, lengths, into, offsets, ok, chunks, chunkSize, count);
    return {
      readNow: (first, n) => this.readInOrder(hosts, lengths, offsets, into, ok, first, first + n),
      finish: () => {
        const errno = background.finish(handle);
        if (errno === EPERM || errno === ENOSYS) this.refused = errno === EPERM ? 'process_vm_readv: EPERM' : 'process_vm_readv: ENOSYS';
      },
    };
  }

  readBatch(physicals: Float64Array, lengths: Uint32Array, offsets: Uint32Array, count: number, into: Buffer, ok: Uint8Array): void {
    this.readInOrder(this.hostAddressesOf(physicals, lengths, count), lengths, offsets, into, ok, 0, count);
  }

  /** Requests [from, to) at these host addresses, each marked in ok; stops batching when refused as a whole. */
  private readInOrder(hosts: Float64Array, lengths: Uint32Array, offsets: Uint32Array, into: Buffer, ok: Uint8Array, from: number, to: number): void {
    ok.fill(1, from, to);
    let first = from;
    while (first < to) {
      // The native call stops at the first range it cannot read; such a range is marked and skipped.
      let end = first;
      while (end < to && hosts[end]! >= 0) end++;
      const done = end > first ? this.readRanges(this.pid, hosts, lengths, into, offsets, first, end - first) : first;
      if (done === -EPERM || done === -ENOSYS) {
        // Refused as a whole (a seccomp profile without process_vm_readv, a kernel without it):
        // nothing was read, and the introspector goes back to single reads.
        this.refused = done === -EPERM ? 'process_vm_readv: EPERM' : 'process_vm_readv: ENOSYS';
        ok.fill(0, from, to);
        return;
      }
      const stop = done < 0 ? first : done;
      if (stop >= to) break;
      ok[stop] = 0;
      first = stop + 1;
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

/**
 * One snapshot's view of guest memory: reads go through aligned chunks, each read from the backing
 * memory once. A read through /proc/<pid>/mem costs a syscall and a page-table walk in the host
 * kernel (12–20 µs measured under load) against ~0.6 µs per KiB copied, so one chunk read serves
 * the many small reads that land near each other (three task_structs per slab, creds, mm_structs).
 * A process's own page tables and argument page are read directly (nothing near them is read in the
 * same snapshot). Made anew per snapshot: the guest keeps running.
 */
export class ChunkedSnapshotMemory implements PhysicalMemory {
  private readonly chunks = new Map<number, Buffer | null>();
  readonly chunkShift: bigint;
  /** Chunks read from the backing memory (the number of syscalls, for the benchmark). */
  chunkReads = 0;

  constructor(
    private readonly backing: PhysicalMemory,
    readonly chunkSize = 16 * 1024,
    /** Where chunk buffers come from; pass one arena across snapshots to avoid allocating and collecting them. */
    private readonly arena: ChunkArena = new ChunkArena(chunkSize),
  ) {
    arena.reset();
    if ((chunkSize & (chunkSize - 1)) !== 0 || chunkSize < 4096) throw new Error(`chunk size ${chunkSize} is not a power of two ≥ 4096`);
    this.chunkShift = BigInt(Math.log2(chunkSize));
  }

  get ranges(): readonly PhysicalRange[] {
    return this.backing.ranges;
  }

  read(physical: bigint, length: number): Buffer | undefined {
    const out = Buffer.allocUnsafe(length);
    return this.readInto(physical, out, 0, length) ? out : undefined;
  }

  readInto(physical: bigint, into: Buffer, at: number, length: number): boolean {
    let done = 0;
    while (done < length) {
      const p = physical + BigInt(done);
      const index = Number(p >> this.chunkShift);
      const chunk = this.chunk(index);
      if (!chunk) return false;
      const within = Number(p - (BigInt(index) << this.chunkShift));
      if (within >= chunk.length) return false;
      const n = Math.min(length - done, chunk.length - within);
      chunk.copy(into, at + done, within, within + n);
      done += n;
    }
    return true;
  }

  private chunk(index: number): Buffer | undefined {
    const cached = this.chunks.get(index);
    if (cached !== undefined) return cached ?? undefined;
    const start = BigInt(index) << this.chunkShift;
    const range = this.backing.ranges.find((r) => start >= r.guestPhysical && start < r.guestPhysical + BigInt(r.size));
    let chunk: Buffer | null = null;
    if (range) {
      const length = Number(minBig(BigInt(this.chunkSize), range.guestPhysical + BigInt(range.size) - start));
      const buf = this.arena.take().subarray(0, length);
      this.chunkReads++;
      if (this.backing.readInto(start, buf, 0, length)) chunk = buf;
    }
    this.chunks.set(index, chunk);
    return chunk ?? undefined;
  }
}

/** Fixed-size chunk buffers carved from large slabs, reused from snapshot to snapshot. */
export class ChunkArena {
  private readonly slabs: Buffer[] = [];
  private next = 0;
  private readonly perSlab: number;

  constructor(readonly chunkSize: number, slabBytes = 4 << 20) {
    this.perSlab = Math.max(1, Math.floor(slabBytes / chunkSize));
  }

  /** Everything handed out before is free again (the previous snapshot is done with it). */
  reset(): void {
    this.next = 0;
  }

  take(): Buffer {
    const slab = Math.floor(this.next / this.perSlab);
    if (slab === this.slabs.length) this.slabs.push(Buffer.allocUnsafe(this.perSlab * this.chunkSize));
    const at = (this.next++ % this.perSlab) * this.chunkSize;
    return this.slabs[slab]!.subarray(at, at + this.chunkSize);
  }
}

const minBig = (a: bigint, b: bigint) => (a < b ? a : b);
