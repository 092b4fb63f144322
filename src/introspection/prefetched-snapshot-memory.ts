// One snapshot's view of guest memory that reads in one batch, first, every piece the previous
// snapshot read, then serves the walk from that batch. A listing repeats itself while the guest's
// processes stay (the same task_structs, creds, mm_structs, page-table entries and argument pages),
// so one process_vm_readv batch replaces thousands of dependent single reads. Only the addresses are
// carried from one snapshot to the next, never the bytes: every byte served was read during this
// snapshot. A piece the batch does not hold (a new process, a moved page) is read on its own and
// joins the next snapshot's plan. Where the memory can read in the background, the batch is read
// in the order the previous walk first used its pieces while this walk runs behind it: a piece not
// yet read is waited for.
import type { BatchReadable, PendingBatch, PhysicalMemory, PhysicalRange } from './physical-memory.ts';

/** Pieces closer than this are read as one (a system call's share costs more than copying ~4 KiB). */
const COALESCE_GAP = 1024;
/** Largest single read of coalesced pieces. */
const MAX_GROUP_BYTES = 64 * 1024;
/** Bounds on a plan, so that an odd snapshot (a huge walk) cannot make the next one read without end. */
const MAX_PLAN_PIECES = 1 << 17;
const MAX_PLAN_BYTES = 64 << 20;
/** Batches of at least this many ranges are read in the background (a thread costs ~30 µs). */
const BACKGROUND_AT = 256;
/** Ranges per chunk of a background batch: the unit the reader thread and the walk each claim. */
const CHUNK = 32;
/** Polls of a chunk being read before sleeping between them. */
const SPINS_BEFORE_SLEEP = 2000;
/** A wait this long means the reader is starved of CPU: then wait for all of it at once (a join, not a poll). */
const MAX_POLLING_MS = 200;
/** A background chunk's state in PrefetchBuffers.chunks (the same numbers as native/guest-memory.c). */
const Chunk = { notStarted: 0, beingRead: 1, read: 2 } as const;

/**
 * What to read first: the pieces (guest-physical address and length) one snapshot read, coalesced
 * into groups by address, each group one range of the batch, the groups in the order the snapshot
 * first used them (so that a batch read in the background keeps ahead of the next walk).
 */
export class ReadPlan {
  static readonly empty = ReadPlan.compile(new Map());

  private constructor(
    /** Piece number by guest-physical address. */
    readonly index: ReadonlyMap<number, number>,
    readonly pieceLength: Uint32Array,
    /** Where each piece's bytes are in the batch buffer. */
    readonly pieceOffset: Uint32Array,
    /** The group (range of the batch, in reading order) that holds each piece. */
    readonly pieceGroup: Uint32Array,
    readonly groupPhysical: Float64Array,
    readonly groupLength: Uint32Array,
    readonly groupOffset: Uint32Array,
    readonly totalBytes: number,
  ) {}

  get pieces(): number {
    return this.pieceLength.length;
  }

  get groups(): number {
    return this.groupLength.length;
  }

  /**
   * A plan of these pieces (address → length), within the plan bounds. `firstUse` orders the groups
   * (a group is read when its earliest piece was first used); without it, by address.
   */
  static compile(pieces: ReadonlyMap<number, number>, firstUse?: ReadonlyMap<number, number>): ReadPlan {
    const addresses = Float64Array.from(pieces.keys()).sort();
    const n = Math.min(addresses.length, MAX_PLAN_PIECES);
    const index = new Map<number, number>();
    const pieceLength = new Uint32Array(n);
    /** Offset within its group, then (below) within the batch. */
    const pieceOffset = new Uint32Array(n);
    const pieceGroup = new Uint32Array(n);
    const groupStart: number[] = [];
    const groupLength: number[] = [];
    const groupRank: number[] = [];
    let total = 0;
    let start = -1;
    let end = -1;
    let i = 0;
    for (; i < n; i++) {
      const p = addresses[i]!;
      const length = pieces.get(p)!;
      if (start < 0 || p > end + COALESCE_GAP || Math.max(end, p + length) - start > MAX_GROUP_BYTES) {
        if (start >= 0) {
          groupLength.push(end - start);
          total += end - start;
        }
        // Cut at MAX_PLAN_BYTES after a complete group: the pieces from here on are left out.
        if (total > MAX_PLAN_BYTES) {
          start = -1;
          break;
        }
        start = p;
        end = p;
        groupStart.push(p);
        groupRank.push(Infinity);
      }
      end = Math.max(end, p + length);
      const g = groupStart.length - 1;
      groupRank[g] = Math.min(groupRank[g]!, firstUse?.get(p) ?? i);
      index.set(p, i);
      pieceLength[i] = length;
      pieceOffset[i] = p - start;
      pieceGroup[i] = g;
    }
    if (start >= 0) {
      groupLength.push(end - start);
      total += end - start;
    }
    // Reading order: by first use; the batch buffer holds the groups in that order.
    const groups = groupLength.length;
    const order = Array.from({ length: groups }, (_, g) => g).sort((a, b) => groupRank[a]! - groupRank[b]! || a - b);
    const position = new Uint32Array(groups);
    const orderedPhysical = new Float64Array(groups);
    const orderedLength = new Uint32Array(groups);
    const orderedOffset = new Uint32Array(groups);
    let offset = 0;
    order.forEach((g, k) => {
      position[g] = k;
      orderedPhysical[k] = groupStart[g]!;
      orderedLength[k] = groupLength[g]!;
      orderedOffset[k] = offset;
      offset += groupLength[g]!;
    });
    // i: the pieces the plan holds (fewer than n when cut).
    for (let k = 0; k < i; k++) {
      const g = pieceGroup[k]!;
      pieceGroup[k] = position[g]!;
      pieceOffset[k] = orderedOffset[position[g]!]! + pieceOffset[k]!;
    }
    return new ReadPlan(index, pieceLength.subarray(0, i), pieceOffset.subarray(0, i), pieceGroup.subarray(0, i), orderedPhysical, orderedLength, orderedOffset, total);
  }
}

/** What a snapshot's reads cost: pieces and groups (system-call ranges) of the batch, and single reads beside it. */
export interface PrefetchStats {
  pieces: number;
  groups: number;
  bytes: number;
  /** Time the batch took (ms): from its start until it was all read (in the background: while the walk ran). */
  batchMs: number;
  /** Whether it was read in the background; how long the walk spent on chunks not read yet (ms), and how many it read itself. */
  background: boolean;
  waitMs: number;
  chunksReadByWalk: number;
  hits: number;
  misses: number;
}

/** Buffers reused from snapshot to snapshot (one listing at a time per introspector). */
export class PrefetchBuffers {
  ok = new Uint8Array(0);
  /** The order in which each piece was first used in this snapshot (0: not used). */
  used = new Uint32Array(0);
  bytes = Buffer.alloc(0);
  view = new DataView(this.bytes.buffer, this.bytes.byteOffset, 0);
  /** Each chunk's state in a background batch (shared memory: the reader thread and the walk claim chunks). */
  chunks = new Int32Array(new SharedArrayBuffer(4));
  /** A batch still reading into these buffers. */
  private pending?: PendingBatch;

  ensure(plan: ReadPlan): void {
    this.settle();
    if (this.ok.length < plan.groups) this.ok = new Uint8Array(Math.max(plan.groups, this.ok.length * 2));
    if (this.used.length < plan.pieces) this.used = new Uint32Array(Math.max(plan.pieces, this.used.length * 2));
    const chunks = Math.ceil(plan.groups / CHUNK);
    if (this.chunks.length < chunks) this.chunks = new Int32Array(new SharedArrayBuffer(4 * Math.max(chunks, this.chunks.length * 2)));
    if (this.bytes.length < plan.totalBytes) {
      this.bytes = Buffer.allocUnsafe(Math.max(plan.totalBytes, this.bytes.length * 2));
      this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.length);
    }
    this.used.fill(0, 0, plan.pieces);
  }

  reading(batch: PendingBatch): void {
    this.pending = batch;
  }

  /** The batch still reading into these buffers (the current snapshot's: ensure settles any earlier one). */
  get pendingBatch(): PendingBatch | undefined {
    return this.pending;
  }

  /** Waits for a batch still reading into these buffers; true if there was one. */
  settle(): boolean {
    const pending = this.pending;
    if (!pending) return false;
    this.pending = undefined;
    pending.finish();
    return true;
  }
}

export class PrefetchedSnapshotMemory implements PhysicalMemory {
  /** Pieces read beside the batch (address → longest length), and when each was first used. */
  private readonly missed = new Map<number, number>();
  private readonly missedFirstUse = new Map<number, number>();
  private usedPieces = 0;
  private uses = 0;
  /** Groups known to be read (all of them unless the batch is read in the background). */
  private readUpTo: number;
  /** Chunks above this one have been claimed (by the thread or the walk): where to look for one to read from the end. */
  private lastUnclaimed?: number;
  private readonly started = performance.now();
  readonly stats: PrefetchStats;

  constructor(
    private readonly backing: PhysicalMemory & BatchReadable,
    private readonly plan: ReadPlan,
    private readonly buffers: PrefetchBuffers = new PrefetchBuffers(),
  ) {
    buffers.ensure(plan);
    const { groups } = plan;
    const batch = groups >= BACKGROUND_AT ? backing.startBatch?.(plan.groupPhysical, plan.groupLength, plan.groupOffset, groups, buffers.bytes, buffers.ok, buffers.chunks, CHUNK) : undefined;
    if (batch) {
      buffers.reading(batch);
      this.readUpTo = 0;
    } else {
      if (groups > 0) backing.readBatch(plan.groupPhysical, plan.groupLength, plan.groupOffset, groups, buffers.bytes, buffers.ok);
      this.readUpTo = groups;
    }
    this.stats = { pieces: plan.pieces, groups, bytes: plan.totalBytes, batchMs: batch ? 0 : performance.now() - this.started, background: batch !== undefined, waitMs: 0, chunksReadByWalk: 0, hits: 0, misses: 0 };
  }

  get ranges(): readonly PhysicalRange[] {
    return this.backing.ranges;
  }

  /** Waits for the batch if it is still being read (before this snapshot's buffers are reused). */
  finish(): void {
    if (this.buffers.settle()) this.stats.batchMs = performance.now() - this.started;
    this.readUpTo = this.plan.groups;
  }

  /** The plan of the next snapshot: the pieces this one read, in the order it used them (the same plan when nothing changed). */
  nextPlan(): ReadPlan {
    const { plan, buffers } = this;
    if (this.missed.size === 0 && this.usedPieces === plan.pieces) return plan;
    const pieces = new Map<number, number>();
    const firstUse = new Map<number, number>();
    for (const [p, i] of plan.index) {
      if (buffers.used[i] === 0) continue;
      pieces.set(p, plan.pieceLength[i]!);
      firstUse.set(p, buffers.used[i]!);
    }
    for (const [p, length] of this.missed) {
      if ((pieces.get(p) ?? 0) < length) pieces.set(p, length);
      if (!firstUse.has(p)) firstUse.set(p, this.missedFirstUse.get(p)!);
    }
    return ReadPlan.compile(pieces, firstUse);
  }

  read(physical: bigint, length: number): Buffer | undefined {
    const out = Buffer.allocUnsafe(length);
    return this.readInto(physical, out, 0, length) ? out : undefined;
  }

  readInto(physical: bigint, into: Buffer, at: number, length: number): boolean {
    const from = this.locate(Number(physical), length);
    if (from >= 0) {
      copyBytes(this.buffers.bytes, into, at, from, length);
      return true;
    }
    const key = Number(physical);
    this.stats.misses++;
    if ((this.missed.get(key) ?? 0) < length) this.missed.set(key, length);
    if (!this.missedFirstUse.has(key)) this.missedFirstUse.set(key, ++this.uses);
    return this.backing.readInto(physical, into, at, length);
  }

  /** The batch buffer: `locate` answers offsets into it (valid for this snapshot only). */
  get heldBytes(): Buffer {
    return this.buffers.bytes;
  }

  get heldView(): DataView {
    return this.buffers.view;
  }

  /** Where the batch holds these bytes (a piece read from this address, at least this long), or -1. */
  locate(physical: number, length: number): number {
    const { plan, buffers } = this;
    const i = plan.index.get(physical);
    if (i === undefined) return -1;
    const g = plan.pieceGroup[i]!;
    if (g >= this.readUpTo && !this.isRead(g)) this.waitFor(g);
    if (buffers.ok[g] !== 1 || plan.pieceLength[i]! < length) return -1;
    this.stats.hits++;
    if (buffers.used[i] === 0) {
      buffers.used[i] = ++this.uses;
      this.usedPieces++;
    }
    return plan.pieceOffset[i]!;
  }

  /**
   * Makes sure group g of a background batch is read. The walk helps rather than waits: a chunk the
   * thread has not started it claims and reads here and now (the thread then skips it); while the
   * thread reads the one it needs, it reads chunks from the far end of the batch (which the thread
   * would come to last), and only when none is left polls (after a while, 50 µs sleeps).
   */
  private waitFor(g: number): void {
    const { chunks } = this.buffers;
    const c = Math.floor(g / CHUNK);
    if (Atomics.load(chunks, c) !== Chunk.read) {
      const started = performance.now();
      if (!this.readChunkHere(c)) {
        for (let spins = 0; Atomics.load(chunks, c) !== Chunk.read; spins++) {
          if (this.readChunkFromTheEnd(c)) continue;
          if (spins < SPINS_BEFORE_SLEEP) continue;
          if (performance.now() - started > MAX_POLLING_MS) {
            this.finish();
            return;
          }
          Atomics.wait(chunks, c, Chunk.beingRead, 0.05);
        }
      }
      this.stats.waitMs += performance.now() - started;
    }
    // Everything below the first chunk not read yet is settled.
    let next = Math.floor(this.readUpTo / CHUNK);
    while (next * CHUNK < this.plan.groups && Atomics.load(chunks, next) === Chunk.read) next++;
    if (next * CHUNK > this.readUpTo) this.readUpTo = Math.min(next * CHUNK, this.plan.groups);
  }

  /** Claims chunk c if nobody has started it and reads it on this thread; false if it was taken. */
  private readChunkHere(c: number): boolean {
    if (Atomics.compareExchange(this.buffers.chunks, c, Chunk.notStarted, Chunk.beingRead) !== Chunk.notStarted) return false;
    this.buffers.pendingBatch!.readNow(c * CHUNK, Math.min(CHUNK, this.plan.groups - c * CHUNK));
    Atomics.store(this.buffers.chunks, c, Chunk.read);
    this.stats.chunksReadByWalk++;
    return true;
  }

  /** Reads the last chunk nobody has started, if it lies beyond chunk `after`; false when there is none. */
  private readChunkFromTheEnd(after: number): boolean {
    const { chunks } = this.buffers;
    for (let c = (this.lastUnclaimed ??= Math.ceil(this.plan.groups / CHUNK) - 1); c > after; c--) {
      this.lastUnclaimed = c - 1;
      if (Atomics.load(chunks, c) === Chunk.notStarted && this.readChunkHere(c)) return true;
    }
    return false;
  }

  /** Whether group g is read (for a locate above the settled prefix). */
  private isRead(g: number): boolean {
    return Atomics.load(this.buffers.chunks, Math.floor(g / CHUNK)) === Chunk.read;
  }

  touched(physical: bigint): boolean | undefined {
    return this.backing.touched?.(physical);
  }
}

/** Small copies byte by byte: Buffer.copy's native call costs more than the copy below ~64 bytes. */
function copyBytes(from: Buffer, into: Buffer, at: number, start: number, length: number): void {
  if (length <= 64) {
    for (let k = 0; k < length; k++) into[at + k] = from[start + k]!;
  } else {
    from.copy(into, at, start, start + length);
  }
}
