// The prefetching snapshot memory: one batch of what the previous snapshot read, served to the walk;
// only addresses carry over between snapshots, never bytes.
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BatchedFilePhysicalMemory } from '../../../src/introspection/physical-memory.ts';
import type { ReadRanges } from '../../../src/introspection/native-range-reader.ts';
import { PrefetchBuffers, PrefetchedSnapshotMemory, ReadPlan } from '../../../src/introspection/prefetched-snapshot-memory.ts';
import { BatchingMemory } from './batching-memory.ts';

const image = () => {
  const b = Buffer.alloc(1 << 20);
  for (let i = 0; i < b.length; i++) b[i] = (i * 7) & 0xff;
  return b;
};

/** The same reads as a walk would make: a task-sized piece, two small ones near it, one far away. */
const walk = (m: PrefetchedSnapshotMemory) => [m.read(0x10000n, 3000), m.read(0x10c00n, 8), m.read(0x11000n, 176), m.read(0x80000n, 8)];

/**
 * A first snapshot of 300 pieces 2 KiB apart (300 ranges, above the background threshold) and a
 * second one whose batch is read in the background by BatchingMemory's pretend thread.
 */
function backgroundSnapshot(o: { stalled: boolean }) {
  const memory = new BatchingMemory(image());
  memory.background = true;
  memory.stalled = o.stalled;
  const buffers = new PrefetchBuffers();
  const first = new PrefetchedSnapshotMemory(memory, ReadPlan.empty, buffers);
  const many = (m: PrefetchedSnapshotMemory) => Array.from({ length: 300 }, (_, k) => m.read(BigInt(0x1000 + k * 2048), 16));
  const expected = many(first);
  const second = new PrefetchedSnapshotMemory(memory, first.nextPlan(), buffers);
  return { memory, buffers, many, expected, second };
}

describe('PrefetchedSnapshotMemory', () => {
  it('reads nothing ahead the first time, then everything the previous snapshot read in one batch', () => {
    const memory = new BatchingMemory(image());
    const first = new PrefetchedSnapshotMemory(memory, ReadPlan.empty);
    const bytes1 = walk(first);
    assert.deepEqual({ ...first.stats, batchMs: 0 }, { pieces: 0, groups: 0, bytes: 0, batchMs: 0, background: false, waitMs: 0, chunksReadByWalk: 0, hits: 0, misses: 4 });
    assert.equal(memory.batches.length, 0);
    const plan = first.nextPlan();
    assert.equal(plan.pieces, 4);

    memory.singleReads = 0;
    const second = new PrefetchedSnapshotMemory(memory, plan);
    assert.deepEqual(walk(second), bytes1);
    assert.equal(memory.singleReads, 0, 'every read served from the batch');
    assert.equal(second.stats.hits, 4);
    // Pieces within 1 KiB of each other are one range of the batch; the far one its own.
    assert.deepEqual(memory.batches, [[[0x10000, 0x11000 + 176 - 0x10000], [0x80000, 8]]]);
    assert.equal(second.nextPlan(), plan, 'an unchanged walk keeps its plan');
  });

  it('serves bytes read in this snapshot, never an earlier one', () => {
    const memory = new BatchingMemory(image());
    const first = new PrefetchedSnapshotMemory(memory, ReadPlan.empty);
    walk(first);
    memory.bytes.writeBigUInt64LE(0xdeadbeefn, 0x80000);
    const second = new PrefetchedSnapshotMemory(memory, first.nextPlan());
    assert.equal(second.read(0x80000n, 8)!.readBigUInt64LE(0), 0xdeadbeefn);
  });

  it('reads on its own what the batch could not read, a longer piece, and a new one; the next plan follows the walk', () => {
    const memory = new BatchingMemory(image());
    const first = new PrefetchedSnapshotMemory(memory, ReadPlan.empty);
    const expected = walk(first);
    memory.failAt.add(0x80000);
    memory.singleReads = 0;
    const second = new PrefetchedSnapshotMemory(memory, first.nextPlan());
    assert.deepEqual(walk(second), expected);
    assert.equal(memory.singleReads, 1, 'the failed range only');
    assert.deepEqual(second.read(0x11000n, 400), memory.bytes.subarray(0x11000, 0x11000 + 400)); // longer than planned (176)
    assert.ok(second.read(0x90000n, 16)); // new
    assert.equal(second.stats.misses, 3);
    const next = second.nextPlan();
    // The walk's four pieces (0x80000 read beside the batch, 0x11000 now 400 bytes) and the new one.
    assert.equal(next.pieces, 5);
    assert.equal(next.pieceLength[next.index.get(0x11000)!], 400);

    // A walk that no longer reads a piece drops it from the plan.
    const third = new PrefetchedSnapshotMemory(memory, next);
    third.read(0x10000n, 3000);
    const shrunk = third.nextPlan();
    assert.equal(shrunk.pieces, 1);
    assert.equal(shrunk.groups, 1);
  });

  it('locates a planned piece in its batch for reading in place, and counts it used like a read', () => {
    const memory = new BatchingMemory(image());
    const first = new PrefetchedSnapshotMemory(memory, ReadPlan.empty);
    walk(first);
    memory.failAt.add(0x80000);
    memory.singleReads = 0;
    const second = new PrefetchedSnapshotMemory(memory, first.nextPlan());
    const at = second.locate(0x11000, 176);
    assert.ok(at >= 0);
    assert.deepEqual(second.heldBytes.subarray(at, at + 176), memory.bytes.subarray(0x11000, 0x11000 + 176));
    assert.equal(second.heldView.getBigUint64(at, true), memory.bytes.readBigUInt64LE(0x11000));
    assert.equal(second.locate(0x11000, 177), -1, 'longer than the piece read');
    assert.equal(second.locate(0x11008, 8), -1, 'not where a piece starts');
    assert.equal(second.locate(0x80000, 8), -1, 'its range failed in the batch');
    assert.equal(second.stats.hits, 1);
    assert.equal(memory.singleReads, 0, 'locate never reads: the caller reads when it answers -1');
    // Located pieces are what the next plan keeps (the others were neither read nor located).
    const next = second.nextPlan();
    assert.deepEqual([...next.index.keys()], [0x11000]);
  });

  it('orders the next batch by first use, so that a batch read in the background keeps ahead of the walk', () => {
    const memory = new BatchingMemory(image());
    const first = new PrefetchedSnapshotMemory(memory, ReadPlan.empty);
    // A walk that starts far away, then reads a task and what lies near it, then somewhere between.
    const reads = (m: PrefetchedSnapshotMemory) => [m.read(0x80000n, 8), m.read(0x10000n, 3000), m.read(0x10c00n, 8), m.read(0x11000n, 176), m.read(0x40000n, 64)];
    const expected = reads(first);
    const plan = first.nextPlan();
    assert.deepEqual([...plan.groupPhysical], [0x80000, 0x10000, 0x40000]);
    assert.deepEqual([...plan.groupOffset], [0, 8, 8 + 0x11000 + 176 - 0x10000]);
    const second = new PrefetchedSnapshotMemory(memory, plan);
    assert.deepEqual(reads(second), expected);
    assert.equal(second.stats.misses, 0);
    // A walk in another order makes a plan in that order.
    const third = new PrefetchedSnapshotMemory(memory, plan);
    third.read(0x40000n, 64);
    third.read(0x80000n, 8);
    assert.deepEqual([...third.nextPlan().groupPhysical], [0x40000, 0x80000]);
  });

  it('reads a large batch in the background; the walk reads a chunk the reader has not reached itself; waits for the reader before the buffers are used again', () => {
    const { memory, buffers, many, expected, second } = backgroundSnapshot({ stalled: true });
    assert.equal(second.stats.background, true);
    assert.equal(memory.started, 1);
    assert.deepEqual(many(second), expected);
    assert.equal(second.stats.misses, 0);
    // The test's reader never gets ahead: the walk claimed and read each 32-range chunk as it came to it, once.
    assert.deepEqual(memory.readNow, Array.from({ length: 10 }, (_, c) => [c * 32, Math.min(32, 300 - c * 32)]));
    assert.equal(second.stats.chunksReadByWalk, 10);
    assert.equal(memory.finished, 0, 'still pending until the snapshot ends');
    second.finish();
    assert.equal(memory.finished, 1);
    // A snapshot that ended without finish (an exception in the walk): the next one waits for its batch first.
    const third = new PrefetchedSnapshotMemory(memory, second.nextPlan(), buffers);
    many(third);
    new PrefetchedSnapshotMemory(memory, third.nextPlan(), buffers);
    assert.equal(memory.finished, 2);
  });

  it('while the reader holds the chunk the walk needs, the walk reads chunks from the far end of the batch', () => {
    const { memory, many, expected, second } = backgroundSnapshot({ stalled: false });
    assert.deepEqual(many(second), expected);
    // Ten chunks: the reader went 0, 1, 2, 3, 4 while the walk, each time it came to the chunk
    // being read, read one from the end: 9, 8, 7, 6, 5. Nothing was read twice.
    assert.deepEqual(memory.readNow.map(([first]) => first / 32), [9, 8, 7, 6, 5]);
    assert.equal(second.stats.chunksReadByWalk, 5);
    assert.equal(second.stats.misses, 0);
    second.finish();
  });

  it('stops a plan after the group that passes 64 MiB, and holds only the pieces it reads', () => {
    const MiB = 1 << 20;
    const plan = ReadPlan.compile(new Map([[0, 40 * MiB], [100 * MiB, 40 * MiB], [200 * MiB, 8]]));
    assert.deepEqual([plan.groups, plan.pieces, plan.totalBytes], [2, 2, 80 * MiB]);
    assert.equal(plan.index.has(200 * MiB), false);
  });

  it('coalesces overlapping and nearby pieces and keeps each piece at its place in the range', () => {
    const plan = ReadPlan.compile(new Map([[0x2000, 64], [0x2010, 8], [0x2400, 16], [0x3000, 8], [0x9000, 8]]));
    assert.equal(plan.groups, 3);
    assert.deepEqual([...plan.groupPhysical], [0x2000, 0x3000, 0x9000]);
    assert.deepEqual([...plan.groupLength], [0x410, 8, 8]);
    assert.equal(plan.pieceOffset[plan.index.get(0x2400)!], 0x400);
    const memory = new BatchingMemory(image());
    const m = new PrefetchedSnapshotMemory(memory, plan);
    assert.deepEqual(m.read(0x2010n, 8), memory.bytes.subarray(0x2010, 0x2018));
    assert.deepEqual(m.read(0x2400n, 16), memory.bytes.subarray(0x2400, 0x2410));
    assert.equal(memory.singleReads, 0);
  });
});

describe('BatchedFilePhysicalMemory', () => {
  // A file stands in for /proc/<pid>/mem: guest-physical 0x1000.. is at file offset 0x100.. (the "host address").
  let dir: string;
  let fd: number;
  const bytes = image().subarray(0, 0x8000);
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'batched-'));
    writeFileSync(join(dir, 'mem'), bytes);
    fd = openSync(join(dir, 'mem'), 'r');
  });
  after(() => {
    closeSync(fd);
    rmSync(dir, { recursive: true });
  });
  const ranges = [{ guestPhysical: 0x1000n, size: 0x4000, backingOffset: 0x100 }];
  const request = (physicals: number[]) => ({
    physicals: Float64Array.from(physicals),
    lengths: new Uint32Array(physicals.length).fill(16),
    offsets: Uint32Array.from(physicals.map((_, i) => i * 16)),
    into: Buffer.alloc(physicals.length * 16),
    ok: new Uint8Array(physicals.length),
  });

  it('passes host addresses to the native reader, marks what it could not read and goes on after it', () => {
    const calls: Array<[number[], number]> = [];
    // Reads like process_vm_readv from the file; the range at host 0x400 fails.
    const readRanges: ReadRanges = (_pid, addresses, lengths, into, offsets, first, count) => {
      calls.push([[...addresses.subarray(first, first + count)], count]);
      for (let i = first; i < first + count; i++) {
        if (addresses[i] === 0x400) return i === first ? -14 : i;
        bytes.copy(into, offsets[i]!, addresses[i]!, addresses[i]! + lengths[i]!);
      }
      return first + count;
    };
    const memory = new BatchedFilePhysicalMemory(fd, ranges, undefined, 1234, readRanges);
    // 0x1300 maps to host 0x400 (fails); 0x9000 is outside RAM (never passed to the reader).
    const r = request([0x1000, 0x1300, 0x1400, 0x9000, 0x2000]);
    memory.readBatch(r.physicals, r.lengths, r.offsets, 5, r.into, r.ok);
    assert.deepEqual([...r.ok], [1, 0, 1, 0, 1]);
    assert.deepEqual(calls, [[[0x100, 0x400, 0x500], 3], [[0x500], 1], [[0x1100], 1]]);
    assert.deepEqual(r.into.subarray(32, 48), bytes.subarray(0x500, 0x510));
    assert.deepEqual(r.into.subarray(64, 80), bytes.subarray(0x1100, 0x1110));
    assert.equal(memory.refused, undefined);
  });

  it('stops batching when the kernel refuses process_vm_readv as a whole (EPERM from a seccomp profile)', () => {
    const memory = new BatchedFilePhysicalMemory(fd, ranges, undefined, 1234, () => -1);
    const r = request([0x1000, 0x2000]);
    memory.readBatch(r.physicals, r.lengths, r.offsets, 2, r.into, r.ok);
    assert.deepEqual([...r.ok], [0, 0]);
    assert.equal(memory.refused, 'process_vm_readv: EPERM');
    // Single reads (pread) still work.
    assert.deepEqual(memory.read(0x1000n, 16), bytes.subarray(0x100, 0x110));
  });
});
