// Turns what a distribution ships (a bzImage `vmlinuz`, or a plain `vmlinux`) into the kernel's
// ELF image. A bzImage is real-mode setup code followed by a compressed `vmlinux.bin`; the boot
// protocol header (Documentation/arch/x86/boot.rst) says where that payload is. The decompressors
// are libraries: node:zlib (gzip, zstd), node-liblzma (xz with the x86 BCJ filter the kernel uses)
// and lz4-napi (LZ4 blocks inside the kernel's legacy LZ4 framing).
import { gunzipSync, zstdDecompressSync } from 'node:zlib';
import { unxzSync } from 'node-liblzma';
import { uncompressSync as lz4UncompressBlock } from 'lz4-napi';
import { isElf } from './elf.ts';

export class KernelImageError extends Error {}

export type KernelCompression = 'none' | 'gzip' | 'xz' | 'zstd' | 'lz4' | 'bzip2' | 'lzma' | 'lzo';

export interface ExtractedKernel {
  elf: Buffer;
  compression: KernelCompression;
}

const BOOT_HEADER_MAGIC = 0x53726448; // "HdrS"
const LZ4_LEGACY_MAGIC = 0x184c2102;
const LZ4_LEGACY_BLOCK = 8 << 20;

export function detectCompression(payload: Buffer): KernelCompression | undefined {
  const b = payload;
  if (b.length < 6) return undefined;
  if (isElf(b)) return 'none';
  if (b[0] === 0x1f && (b[1] === 0x8b || b[1] === 0x9e)) return 'gzip';
  if (b.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (b.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (b.readUInt32LE(0) === LZ4_LEGACY_MAGIC) return 'lz4';
  if (b.toString('latin1', 0, 3) === 'BZh') return 'bzip2';
  if (b[0] === 0x5d && b[1] === 0x00) return 'lzma';
  if (b[0] === 0x89 && b.toString('latin1', 1, 4) === 'LZO') return 'lzo';
  return undefined;
}

/** The compressed payload of a bzImage, or undefined when the file is not one. */
export function bzImagePayload(image: Buffer): Buffer | undefined {
  if (image.length < 0x260 || image.readUInt32LE(0x202) !== BOOT_HEADER_MAGIC) return undefined;
  const setupSectors = image[0x1f1] || 4; // 0 means 4, for ancient kernels
  const protectedModeStart = (setupSectors + 1) * 512;
  const version = image.readUInt16LE(0x206);
  if (version < 0x208) throw new KernelImageError(`bzImage boot protocol ${version.toString(16)} is too old (need 2.08+, kernel 2.6.26+)`);
  const offset = image.readUInt32LE(0x248);
  const length = image.readUInt32LE(0x24c);
  const start = protectedModeStart + offset;
  if (start + length > image.length) throw new KernelImageError('bzImage payload runs past the end of the file (truncated download?)');
  return image.subarray(start, start + length);
}

export function extractKernelElf(image: Buffer): ExtractedKernel {
  if (isElf(image)) return { elf: image, compression: 'none' };
  const payload = bzImagePayload(image);
  if (!payload) throw new KernelImageError('not a Linux kernel: neither an ELF vmlinux nor a bzImage (no "HdrS" boot header)');
  const compression = detectCompression(payload);
  let elf: Buffer;
  try {
    elf = decompress(payload, compression);
  } catch (err) {
    if (err instanceof KernelImageError) throw err;
    throw new KernelImageError(`cannot decompress the ${compression} kernel payload: ${(err as Error).message}`);
  }
  if (!isElf(elf)) throw new KernelImageError(`the ${compression} payload of the bzImage is not an ELF image`);
  return { elf, compression: compression! };
}

function decompress(payload: Buffer, compression: KernelCompression | undefined): Buffer {
  // The kernel build appends the uncompressed size (u32 LE) after xz, zstd, lz4, lzma and lzo payloads.
  const withoutSize = payload.subarray(0, payload.length - 4);
  switch (compression) {
    case 'none': return payload;
    case 'gzip': return gunzipSync(payload);
    case 'xz': return unxzSync(withoutSize);
    case 'zstd': return zstdDecompressSync(withoutSize);
    case 'lz4': return decompressLz4Legacy(payload);
    case undefined: throw new KernelImageError(`unknown kernel compression (payload starts with ${payload.subarray(0, 4).toString('hex')})`);
    default: throw new KernelImageError(`kernel compression ${compression} is not supported (supported: gzip, xz, zstd, lz4, or an uncompressed vmlinux)`);
  }
}

/** `lz4 -l` framing: magic, then blocks of [u32 compressed size][LZ4 block], each inflating to 8 MiB except the last. */
function decompressLz4Legacy(payload: Buffer): Buffer {
  const total = payload.readUInt32LE(payload.length - 4);
  const out: Buffer[] = [];
  let produced = 0;
  let p = 4;
  while (produced < total) {
    if (p + 4 > payload.length) throw new KernelImageError('truncated LZ4 payload');
    const blockSize = payload.readUInt32LE(p);
    p += 4;
    const expected = Math.min(LZ4_LEGACY_BLOCK, total - produced);
    // lz4-napi takes lz4_flex's "size prepended" block format: [u32 uncompressed size][block].
    const sized = Buffer.alloc(4 + blockSize);
    sized.writeUInt32LE(expected, 0);
    payload.copy(sized, 4, p, p + blockSize);
    const block = lz4UncompressBlock(sized);
    out.push(block);
    produced += block.length;
    p += blockSize;
  }
  return Buffer.concat(out);
}
