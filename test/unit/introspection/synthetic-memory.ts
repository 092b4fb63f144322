// Synthetic guest-physical memory with x86-64 page tables built by hand, for unit tests.
import { BufferPhysicalMemory } from '../../../src/introspection/physical-memory.ts';

export const PRESENT_RW = 0x3n;
export const PS = 0x80n;
export const NX = 1n << 63n;

/** A tiny physical memory with a bump allocator for page tables. */
export class SyntheticMemory {
  readonly image = Buffer.alloc(8 << 20);
  private nextTable = 0x100000n;

  allocTable(): bigint {
    const at = this.nextTable;
    this.nextTable += 0x1000n;
    return at;
  }

  entry(table: bigint, index: bigint): bigint {
    return this.image.readBigUInt64LE(Number(table + index * 8n));
  }

  setEntry(table: bigint, index: bigint, value: bigint): void {
    this.image.writeBigUInt64LE(value, Number(table + index * 8n));
  }

  /** Maps `virtual` to `physical` with a page of `level` (1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB), creating tables. */
  map(top: bigint, levels: 4 | 5, virtual: bigint, physical: bigint, pageLevel: 1 | 2 | 3, extraBits = 0n): void {
    let table = top;
    for (let level = levels; level > pageLevel; level--) {
      const index = (virtual >> BigInt(12 + 9 * (level - 1))) & 0x1ffn;
      let e = this.entry(table, index);
      if ((e & 1n) === 0n) {
        e = this.allocTable() | PRESENT_RW;
        this.setEntry(table, index, e);
      }
      table = e & 0x000ffffffffff000n;
    }
    const index = (virtual >> BigInt(12 + 9 * (pageLevel - 1))) & 0x1ffn;
    this.setEntry(table, index, physical | PRESENT_RW | (pageLevel > 1 ? PS : 0n) | extraBits);
  }

  memory(): BufferPhysicalMemory {
    return new BufferPhysicalMemory(this.image);
  }
}

