// One snapshot's view of guest memory that reads in one batch, first, every piece the previous
// snapshot read, then serves the walk from that batch. A listing repeats itself while the guest's
// processes stay (the same task_structs, creds, mm_structs, page-table entries and argument pages),
// so one process_vm_readv batch replaces thousands of dependent single reads. Only the addresses are
// carried from one snapshot to the next, never the bytes: every byte served was read during this
// snapshot. A piece the batch does not hold (a new process, a moved page) is read on its own and
// joins the next snapshot's plan.
import type { BatchReadable, PhysicalMemory, PhysicalRange } from './physical-memory.ts';

/** Pieces closer than this are read as one (a system call's share costs more than copying ~4 KiB). */
const COALESCE_GAP = 1024;
/** Largest single read of coalesced pieces. */
const MAX_GROUP_BYTES = 64 * 1024;
/** Bounds on a plan, so that an odd snapshot (a huge walk) cannot make the next one read without end. */
const MAX_PLAN_PIECES = 1 << 17;
const MAX_PLAN_BYTES = 64 << 20;

/**
 * What to read first: the pieces (guest-physical address and length) one snapshot read, sorted and
 * coalesced into groups, each group one range of the batch.
 */
export class ReadPlan {
  static readonly empty = ReadPlan.compile(new Map());

  private constructor(
    /** Piece number by guest-physical address. */
    readonly index: ReadonlyMap<number, number>,
    readonly pieceLength: Uint32Array,
    /** Where each piece's bytes are in the batch buffer. */
    readonly pieceOffset: Uint32Array,
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

  /** A plan of these pieces (address → length), within the plan bounds. */
  static compile(pieces: ReadonlyMap<number, number>): ReadPlan {
    const addresses = Float64Array.from(pieces.keys()).sort();
    const n = Math.min(addresses.length, MAX_PLAN_PIECES);
    const index = new Map<number, number>();
    const pieceLength = new Uint32Array(n);
    const pieceOffset = new Uint32Array(n);
    const pieceGroup = new Uint32Array(n);
    const groupPhysical: number[] = [];
    const groupLength: number[] = [];
    const groupOffset: number[] = [];
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
        groupPhysical.push(p);
        groupOffset.push(total);
      }
      end = Math.max(end, p + length);
      const g = groupPhysical.length - 1;
      index.set(p, i);
      pieceLength[i] = length;
      pieceOffset[i] = groupOffset[g]! + (p - start);
      pieceGroup[i] = g;
    }
    if (start >= 0) {
      groupLength.push(end - start);
      total += end - start;
    }
    // i: the pieces the plan holds (fewer than n when cut).
    return new ReadPlan(index, pieceLength.subarray(0, i), pieceOffset.subarray(0, i), pieceGroup.subarray(0, i), Float64Array.from(groupPhysical), Uint32Array.from(groupLength), Uint32Array.from(groupOffset), total);
  }
}

/** What a snapshot's reads cost: pieces and groups (system-call ranges) of the batch, and single reads beside it. */
export interface PrefetchStats {
  pieces: number;
  groups: number;
  bytes: number;
  /** Time the batch took (ms). */
  batchMs: number;
  hits: number;
  misses: number;
}

/** Buffers reused from snapshot to snapshot (one listing at a time per introspector). */
export class PrefetchBuffers {
  ok = new Uint8Array(0);
  used = new Uint8Array(0);
  bytes = Buffer.alloc(0);
  view = new DataView(this.bytes.buffer, this.bytes.byteOffset, 0);

  ensure(plan: ReadPlan): void {
    if (this.ok.length < plan.groups) this.ok = new Uint8Array(Math.max(plan.groups, this.ok.length * 2));
    if (this.used.length < plan.pieces) this.used = new Uint8Array(Math.max(plan.pieces, this.used.length * 2));
    if (this.bytes.length < plan.totalBytes) {
      this.bytes = Buffer.allocUnsafe(Math.max(plan.totalBytes, this.bytes.length * 2));
      this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.length);
    }
    this.used.fill(0, 0, plan.pieces);
  }
}

export class PrefetchedSnapshotMemory implements PhysicalMemory {
  /** Pieces read beside the batch (address → longest length). */
  private readonly missed = new Map<number, number>();
  private usedPieces = 0;
  readonly stats: PrefetchStats;

  constructor(
    private readonly backing: PhysicalMemory & BatchReadable,
    private readonly plan: ReadPlan,
    private readonly buffers: PrefetchBuffers = new PrefetchBuffers(),
  ) {
    const started = performance.now();
    buffers.ensure(plan);
    if (plan.groups > 0) backing.readBatch(plan.groupPhysical, plan.groupLength, plan.groupOffset, plan.groups, buffers.bytes, buffers.ok);
    this.stats = { pieces: plan.pieces, groups: plan.groups, bytes: plan.totalBytes, batchMs: performance.now() - started, hits: 0, misses: 0 };
  }

  get ranges(): readonly PhysicalRange[] {
    return this.backing.ranges;
  }

  /** The plan of the next snapshot: the pieces this one read (the same plan when nothing changed). */
  nextPlan(): ReadPlan {
    const { plan, buffers } = this;
    if (this.missed.size === 0 && this.usedPieces === plan.pieces) return plan;
    const pieces = new Map<number, number>();
    for (const [p, i] of plan.index) if (buffers.used[i] === 1) pieces.set(p, plan.pieceLength[i]!);
    for (const [p, length] of this.missed) if ((pieces.get(p) ?? 0) < length) pieces.set(p, length);
    return ReadPlan.compile(pieces);
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
    if (i === undefined || buffers.ok[plan.pieceGroup[i]!] !== 1 || plan.pieceLength[i]! < length) return -1;
    this.stats.hits++;
    if (buffers.used[i] === 0) {
      buffers.used[i] = 1;
      this.usedPieces++;
    }
    return plan.pieceOffset[i]!;
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
