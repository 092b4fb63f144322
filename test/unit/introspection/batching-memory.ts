// Guest memory in a Buffer that can batch like the native reader, for unit tests of the snapshot
// batch: it records each batch's ranges and counts single reads beside it.
import { BufferPhysicalMemory, type BatchReadable, type PendingBatch } from '../../../src/introspection/physical-memory.ts';

/** Ranges starting at an address in `failAt` fail in a batch (as an unmapped host page would). */
export class BatchingMemory extends BufferPhysicalMemory implements BatchReadable {
  batches: Array<Array<[number, number]>> = [];
  singleReads = 0;
  failAt = new Set<number>();
  /** Offer background batches: read at once here (a test has no second thread), progress set when done. */
  background = false;
  started = 0;
  finished = 0;

  constructor(readonly bytes: Buffer) {
    super(bytes);
  }

  readBatch(physicals: Float64Array, lengths: Uint32Array, offsets: Uint32Array, count: number, into: Buffer, ok: Uint8Array): void {
    const batch: Array<[number, number]> = [];
    for (let i = 0; i < count; i++) {
      batch.push([physicals[i]!, lengths[i]!]);
      ok[i] = !this.failAt.has(physicals[i]!) && super.readInto(BigInt(physicals[i]!), into, offsets[i]!, lengths[i]!) ? 1 : 0;
    }
    this.batches.push(batch);
  }

  startBatch(physicals: Float64Array, lengths: Uint32Array, offsets: Uint32Array, count: number, into: Buffer, ok: Uint8Array, progress: Int32Array): PendingBatch | undefined {
    if (!this.background) return undefined;
    this.started++;
    this.readBatch(physicals, lengths, offsets, count, into, ok);
    Atomics.store(progress, 0, count);
    return { finish: () => void this.finished++ };
  }

  override readInto(physical: bigint, into: Buffer, at: number, length: number): boolean {
    this.singleReads++;
    return super.readInto(physical, into, at, length);
  }
}
