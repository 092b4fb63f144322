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

let loaded: { readRanges: ReadRanges } | null | undefined;

/** The native reader, or undefined when it was not built (looked up once, from this file upward). */
export function nativeRangeReader(): ReadRanges | undefined {
  if (loaded === undefined) {
    loaded = null;
    for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
      const candidate = join(dir, NATIVE_READER_PATH);
      if (existsSync(candidate)) {
        loaded = createRequire(import.meta.url)(candidate) as { readRanges: ReadRanges };
        break;
      }
      if (dirname(dir) === dir) break;
    }
  }
  return loaded?.readRanges;
}
