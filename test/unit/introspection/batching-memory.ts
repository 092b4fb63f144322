// Guest memory in a Buffer that can batch like the native reader, for unit tests of the snapshot
// batch: it records each batch's ranges and counts single reads beside it.
import { BufferPhysicalMemory, type BatchReadable, type PendingBatch } from '../../../src/introspection/physical-memory.ts';

/** Ranges starting at an address in `failAt` fail in a batch (as an unmapped host page would). */
export class BatchingMemory extends BufferPhysicalMemory implements BatchReadable {
  batches: Array<Array<[number, number]>> = [];
  singleReads = 0;
  failAt = new Set<number>();
  /**
   * Offer background batches. A test has no second thread, so the pretend reader thread moves in
   * steps: it claims chunk 0 at the start, and each time the walk reads a chunk itself (readNow) it
   * finishes the chunk it holds and claims the next one nobody claimed; finish reads the rest.
   * With `stalled`, it never starts (the walk then reads every chunk it needs itself).
   */
  background = false;
  stalled = false;
  started = 0;
  finished = 0;
  readNow: Array<[number, number]> = [];

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

  startBatch(physicals: Float64Array, lengths: Uint32Array, offsets: Uint32Array, count: number, into: Buffer, ok: Uint8Array, chunks: Int32Array, chunkSize: number): PendingBatch | undefined {
    if (!this.background) return undefined;
    this.started++;
    const chunkCount = Math.ceil(count / chunkSize);
    chunks.fill(0, 0, chunkCount);
    const read = (first: number, n: number) => this.readBatch(physicals.subarray(first), lengths.subarray(first), offsets.subarray(first), n, into, ok.subarray(first));
    let holding = -1;
    /** The pretend thread: finish the chunk it holds, claim the next free one. */
    const step = () => {
      if (holding >= 0) {
        read(holding * chunkSize, Math.min(chunkSize, count - holding * chunkSize));
        Atomics.store(chunks, holding, 2);
      }
      holding = -1;
      for (let c = 0; c < chunkCount; c++) {
        if (Atomics.compareExchange(chunks, c, 0, 1) === 0) {
          holding = c;
          break;
        }
      }
    };
    if (!this.stalled) step();
    return {
      readNow: (first, n) => {
        this.readNow.push([first, n]);
        read(first, n);
        if (!this.stalled) step();
      },
      finish: () => {
        this.finished++;
        do step(); while (holding >= 0);
      },
    };
  }

  override readInto(physical: bigint, into: Buffer, at: number, length: number): boolean {
    this.singleReads++;
    return super.readInto(physical, into, at, length);
  }
}
