// The native range reader (native/guest-memory.c) against another real process: a Python child
// holds a known pattern; readRanges must copy exactly the ranges asked for and name the first range
// it could not read; startReadRanges the same in the background, publishing its progress in order.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { nativeBackgroundReader, nativeRangeReader, type ReadRanges } from '../../../src/introspection/native-range-reader.ts';

const SIZE = 4 << 20;
const EFAULT = 14;
/** An address never mapped in a process (the first page). */
const UNMAPPED = 16;

describe('native range reader (process_vm_readv batches)', function () {
  this.timeout(60_000);
  let child: ChildProcess;
  let base = 0;
  let readRanges: ReadRanges;
  /** The child's pattern: byte i is (i * 7 + (i >> 12)) & 0xff. */
  const expected = (i: number) => (i * 7 + (i >> 12)) & 0xff;

  before(async () => {
    readRanges = nativeRangeReader()!;
    assert.ok(readRanges, 'hack/build-native.sh built native/build/guest-memory.node');
    const program = [
      'import ctypes, sys',
      `n = ${SIZE}`,
      'b = (ctypes.c_ubyte * n).from_buffer(bytearray((i * 7 + (i >> 12)) & 0xff for i in range(n)))',
      'print(ctypes.addressof(b), flush=True)',
      'sys.stdin.read()',
    ].join('\n');
    child = spawn('python3', ['-c', program], { stdio: ['pipe', 'pipe', 'inherit'] });
    const [line] = (await once(child.stdout!, 'data')) as [Buffer];
    base = Number(line.toString().trim());
    assert.ok(base > 0);
  });

  after(() => {
    child?.kill();
  });

  /** n ranges spread over the pattern, of varied lengths; `bad` indices point at an unmapped page. */
  function request(n: number, bad: number[] = []) {
    const addresses = new Float64Array(n);
    const lengths = new Uint32Array(n);
    const offsets = new Uint32Array(n);
    const at: number[] = [];
    let total = 0;
    for (let i = 0; i < n; i++) {
      const start = (i * 9973) % (SIZE - 5000);
      at.push(start);
      lengths[i] = 8 + ((i * 37) % 3000);
      addresses[i] = bad.includes(i) ? UNMAPPED : base + start;
      offsets[i] = total;
      total += lengths[i]!;
    }
    return { addresses, lengths, offsets, at, into: Buffer.alloc(total) };
  }

  function assertCopied(r: ReturnType<typeof request>, upTo: number) {
    for (let i = 0; i < upTo; i++) {
      for (let k = 0; k < r.lengths[i]!; k += 97) assert.equal(r.into[r.offsets[i]! + k], expected(r.at[i]! + k), `range ${i} byte ${k}`);
    }
  }

  for (const n of [100, 3000]) {
    const how = n > 1024 ? 'several system calls' : 'one system call';
    it(`copies ${n} ranges exactly (${how})`, () => {
      const r = request(n);
      assert.equal(readRanges(child.pid!, r.addresses, r.lengths, r.into, r.offsets, 0, n), n);
      assertCopied(r, n);
    });

    it(`names the first range it could not read (${how})`, () => {
      for (const bad of [[n - 1], [Math.floor(n / 2)], [Math.floor(n / 2) + 1], [3, n - 2]]) {
        const r = request(n, bad);
        assert.equal(readRanges(child.pid!, r.addresses, r.lengths, r.into, r.offsets, 0, n), bad[0], `unreadable ${bad.join(', ')}`);
        assertCopied(r, bad[0]!);
      }
      const r = request(n, [0]);
      assert.equal(readRanges(child.pid!, r.addresses, r.lengths, r.into, r.offsets, 0, n), -EFAULT, 'the first range: -errno');
      // From an offset: indices stay absolute.
      const s = request(n, [n - 3]);
      assert.equal(readRanges(child.pid!, s.addresses, s.lengths, s.into, s.offsets, 2, n - 2), n - 3);
    });
  }

  it('reads in the background chunk by chunk, marks each chunk read once its ranges are settled, and skips a chunk the caller claimed', () => {
    const background = nativeBackgroundReader()!;
    const n = 3000;
    const chunkSize = 32;
    const chunkCount = Math.ceil(n / chunkSize);
    const bad = [0, 1200, 2999];
    const r = request(n, bad);
    const ok = new Uint8Array(n).fill(7);
    const chunks = new Int32Array(new SharedArrayBuffer(4 * chunkCount)).fill(2); // stale states: start resets them
    // The caller claims the chunk before last and reads nothing there. The thread reads in order
    // and is usually far from it, but a caller descheduled right after start() (a loaded machine)
    // can find it read already: then start again, a few times.
    const claimed = chunkCount - 2;
    let handle = background.start(child.pid!, r.addresses, r.lengths, r.into, r.offsets, ok, chunks, chunkSize, n);
    for (let attempt = 1; Atomics.compareExchange(chunks, claimed, 0, 1) !== 0; attempt++) {
      assert.equal(background.finish(handle), 0);
      assert.ok(attempt < 20, `the thread reached chunk ${claimed} before the caller in ${attempt} starts`);
      ok.fill(7);
      handle = background.start(child.pid!, r.addresses, r.lengths, r.into, r.offsets, ok, chunks, chunkSize, n);
    }
    const settled = new Set<number>();
    while (settled.size < chunkCount - 1) {
      for (let c = 0; c < chunkCount; c++) {
        if (c === claimed || settled.has(c) || Atomics.load(chunks, c) !== 2) continue;
        // A chunk marked read has every ok flag set.
        for (let i = c * chunkSize; i < Math.min(n, (c + 1) * chunkSize); i++) assert.notEqual(ok[i], 7, `range ${i} of chunk ${c}`);
        settled.add(c);
      }
    }
    assert.equal(background.finish(handle), 0);
    assert.equal(Atomics.load(chunks, claimed), 1, 'the claimed chunk was left to the caller');
    assert.ok(ok.subarray(claimed * chunkSize, (claimed + 1) * chunkSize).every((v) => v === 7), 'and not read');
    const notRead = [...ok.keys()].filter((i) => ok[i] !== 1 && Math.floor(i / chunkSize) !== claimed);
    assert.deepEqual(notRead, bad);
    for (let i = 0; i < n; i++) {
      if (bad.includes(i) || Math.floor(i / chunkSize) === claimed) continue;
      for (let k = 0; k < r.lengths[i]!; k += 97) assert.equal(r.into[r.offsets[i]! + k], expected(r.at[i]! + k), `range ${i} byte ${k}`);
    }
  });

  it('refuses bad arguments with a TypeError instead of reading out of bounds', () => {
    const background = nativeBackgroundReader()!;
    const r = request(10);
    const chunks = new Int32Array(new SharedArrayBuffer(4));
    assert.throws(() => background.start(child.pid!, r.addresses, r.lengths, Buffer.alloc(8), r.offsets, new Uint8Array(10), chunks, 32, 10), TypeError);
    assert.throws(() => background.start(child.pid!, r.addresses, r.lengths, r.into, r.offsets, new Uint8Array(5), chunks, 32, 10), TypeError);
    assert.throws(() => background.start(child.pid!, r.addresses, r.lengths, r.into, r.offsets, new Uint8Array(10), chunks, 4, 10), TypeError, 'chunks too short');
  });
});
