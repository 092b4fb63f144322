// The native range reader (native/guest-memory.c): process_vm_readv(2) of many ranges of another
// process's memory in one system call. Optional: where it was not built, guest memory is read with
// pread on /proc/<pid>/mem, one system call per piece (correct, several times slower).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Reads ranges [first, first + count) of another process: range i is lengths[i] bytes at host
 * virtual address addresses[i], copied into `into` at offsets[i]. Returns the index of the first
 * range not read in full (first + count when all were), or -errno when the first one failed.
 */
export type ReadRanges = (pid: number, addresses: Float64Array, lengths: Uint32Array, into: Buffer, offsets: Uint32Array, first: number, count: number) => number;

/** Where hack/build-native.sh and the Dockerfile put the module, relative to the repository (or image) root. */
export const NATIVE_READER_PATH = join('native', 'build', 'guest-memory.node');

/**
 * Reading in the background: start(…) returns at once while a thread reads ranges 0..count-1 in
 * order, chunkSize at a time. `chunks` (shared memory) holds each chunk's state: 0 not started,
 * 1 being read, 2 read (its ok flags set). The thread claims a chunk by compare-and-swap 0 → 1;
 * the caller may claim one the same way (Atomics.compareExchange) and read it itself, and the
 * thread skips it. finish(handle) waits for the thread: 0, or the errno that refused the batch as
 * a whole (then what was not read is marked so).
 */
export interface BackgroundReader {
  start(pid: number, addresses: Float64Array, lengths: Uint32Array, into: Buffer, offsets: Uint32Array, ok: Uint8Array, chunks: Int32Array, chunkSize: number, count: number): unknown;
  finish(handle: unknown): number;
}

interface NativeModule {
  readRanges: ReadRanges;
  startReadRanges: BackgroundReader['start'];
  finishReadRanges: BackgroundReader['finish'];
}

let loaded: NativeModule | null | undefined;

/** The native reader, or undefined when it was not built (looked up once, from this file upward). */
export function nativeRangeReader(): ReadRanges | undefined {
  return nativeModule()?.readRanges;
}

/** The native background reader, or undefined when the module was not built. */
export function nativeBackgroundReader(): BackgroundReader | undefined {
  const native = nativeModule();
  return native && { start: native.startReadRanges, finish: native.finishReadRanges };
}

function nativeModule(): NativeModule | undefined {
  if (loaded === undefined) {
    loaded = null;
    for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
      const candidate = join(dir, NATIVE_READER_PATH);
      if (existsSync(candidate)) {
        loaded = createRequire(import.meta.url)(candidate) as NativeModule;
        break;
      }
      if (dirname(dir) === dir) break;
    }
  }
  return loaded ?? undefined;
}
