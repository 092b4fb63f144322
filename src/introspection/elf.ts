// Just enough of ELF64 (little-endian, x86-64) to find a kernel's sections by name. The kernel
// image we read is `vmlinux` as carried inside a bzImage: stripped of symbols, but with .BTF,
// .data and .rodata intact, which is all a profile needs.

export interface ElfSection {
  name: string;
  /** Link-time virtual address. */
  address: bigint;
  fileOffset: number;
  size: number;
  data: Buffer;
}

export interface ElfImage {
  machine: number;
  entry: bigint;
  sections: Map<string, ElfSection>;
}

export class NotElfError extends Error {}

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
export const EM_X86_64 = 62;
const SHT_NOBITS = 8;

export function isElf(image: Buffer): boolean {
  return image.length >= 4 && image.subarray(0, 4).equals(ELF_MAGIC);
}

export function parseElf(image: Buffer): ElfImage {
  if (!isElf(image)) throw new NotElfError('not an ELF file (bad magic)');
  if (image[4] !== ELFCLASS64 || image[5] !== ELFDATA2LSB) {
    throw new NotElfError('only 64-bit little-endian ELF kernels (x86-64) are supported');
  }
  const machine = image.readUInt16LE(18);
  const entry = image.readBigUInt64LE(24);
  const shoff = Number(image.readBigUInt64LE(40));
  const shentsize = image.readUInt16LE(58);
  const shnum = image.readUInt16LE(60);
  const shstrndx = image.readUInt16LE(62);
  if (shoff === 0 || shoff + shnum * shentsize > image.length) {
    throw new NotElfError('ELF section header table missing or truncated');
  }
  const header = (i: number) => {
    const o = shoff + i * shentsize;
    return {
      nameOffset: image.readUInt32LE(o),
      type: image.readUInt32LE(o + 4),
      address: image.readBigUInt64LE(o + 16),
      fileOffset: Number(image.readBigUInt64LE(o + 24)),
      size: Number(image.readBigUInt64LE(o + 32)),
    };
  };
  const names = header(shstrndx);
  const sections = new Map<string, ElfSection>();
  for (let i = 1; i < shnum; i++) {
    const h = header(i);
    const nameStart = names.fileOffset + h.nameOffset;
    const name = image.toString('latin1', nameStart, image.indexOf(0, nameStart));
    const inFile = h.type !== SHT_NOBITS && h.fileOffset + h.size <= image.length;
    sections.set(name, {
      name,
      address: h.address,
      fileOffset: h.fileOffset,
      size: h.size,
      data: inFile ? image.subarray(h.fileOffset, h.fileOffset + h.size) : Buffer.alloc(0),
    });
  }
  return { machine, entry, sections };
}
