// x86-64 virtual → guest-physical translation by walking the guest's own page tables (Intel SDM
// vol. 3A §4.5): 4-level (PML4) or 5-level (PML5, LA57) paging, with 1 GiB and 2 MiB pages.
import type { PhysicalMemory } from './physical-memory.ts';

export type PagingLevels = 4 | 5;

const PRESENT = 1n;
const PAGE_SIZE_BIT = 1n << 7n;
const ADDRESS_MASK = 0x000ffffffffff000n; // bits 12..51
const PAGE_1G_MASK = 0x000fffffc0000000n;
const PAGE_2M_MASK = 0x000fffffffe00000n;

/** One page-table entry read on a walk: where it is (guest-physical) and what it held. */
export interface TableEntry {
  address: bigint;
  value: bigint;
  /** The address as a number, and the value's low and high 32 bits: compared without making BigInts. */
  at: number;
  low: number;
  high: number;
}

export interface Translation {
  physical: bigint;
  /** Size of the page that maps the address (4 KiB, 2 MiB or 1 GiB). */
  pageSize: number;
}

/**
 * Translates one virtual address given the physical address of the top-level table (CR3 with flags
 * masked). Returns undefined for unmapped addresses and for tables outside guest RAM.
 */
const entryBuffer = Buffer.alloc(8);
/** Scratch for one 64-bit read at a time (reads are synchronous), shared so that an AddressSpace allocates nothing. */
const u64Scratch = Buffer.alloc(8);
const SHIFTS_5 = [48n, 39n, 30n, 21n, 12n];
const SHIFTS_4 = [39n, 30n, 21n, 12n];

export function translate(memory: PhysicalMemory, topTable: bigint, virtual: bigint, levels: PagingLevels, path?: TableEntry[]): Translation | undefined {
  let table = topTable & ADDRESS_MASK;
  // Shift of each level's 9-bit index: PML5 48, PML4 39, PDPT 30, PD 21, PT 12.
  const shifts = levels === 5 ? SHIFTS_5 : SHIFTS_4;
  for (const shift of shifts) {
    const index = (virtual >> shift) & 0x1ffn;
    if (!memory.readInto(table + index * 8n, entryBuffer, 0, 8)) return undefined;
    const entry = entryBuffer.readBigUInt64LE(0);
    path?.push({ address: table + index * 8n, at: Number(table + index * 8n), value: entry, low: entryBuffer.readUInt32LE(0), high: entryBuffer.readUInt32LE(4) });
    if ((entry & PRESENT) === 0n) return undefined;
    if (shift === 30n && (entry & PAGE_SIZE_BIT) !== 0n) {
      return { physical: (entry & PAGE_1G_MASK) | (virtual & 0x3fffffffn), pageSize: 1 << 30 };
    }
    if (shift === 21n && (entry & PAGE_SIZE_BIT) !== 0n) {
      return { physical: (entry & PAGE_2M_MASK) | (virtual & 0x1fffffn), pageSize: 1 << 21 };
    }
    if (shift === 12n) return { physical: (entry & ADDRESS_MASK) | (virtual & 0xfffn), pageSize: 4096 };
    table = entry & ADDRESS_MASK;
  }
  return undefined;
}

/**
 * A virtual address space (one set of page tables) with a translation cache. The guest keeps
 * running, so callers make a new one per snapshot rather than trusting old translations.
 */
export class AddressSpace {
  /** Made on first use: most user spaces of a listing never translate (their argument page is remembered). */
  private cacheOfPages?: Map<bigint, bigint | null>;
  private readonly linearEnd?: bigint;

  constructor(
    private readonly memory: PhysicalMemory,
    private readonly topTable: bigint,
    private readonly levels: PagingLevels,
    /** Optional fast path: a linear range (the kernel's direct map) where physical = virtual - base. */
    private readonly linear?: { base: bigint; size: bigint },
  ) {
    if (linear) this.linearEnd = linear.base + linear.size;
  }

  physicalOf(virtual: bigint): bigint | undefined {
    if (this.linear && virtual >= this.linear.base && virtual < this.linear.base + this.linear.size) {
      return virtual - this.linear.base;
    }
    const page = virtual >> 12n;
    const cache = (this.cacheOfPages ??= new Map());
    let physPage = cache.get(page);
    if (physPage === undefined) {
      const t = translate(this.memory, this.topTable, page << 12n, this.levels);
      physPage = t ? t.physical >> 12n : null;
      cache.set(page, physPage);
    }
    return physPage === null ? undefined : (physPage << 12n) | (virtual & 0xfffn);
  }

  read(virtual: bigint, length: number): Buffer | undefined {
    const parts: Buffer[] = [];
    let done = 0;
    while (done < length) {
      const at = virtual + BigInt(done);
      const inPage = Math.min(length - done, 4096 - Number(at & 0xfffn));
      const physical = this.physicalOf(at);
      if (physical === undefined) return undefined;
      // Consecutive virtual pages are often physically consecutive (slab objects in the direct
      // map): extend the read while that holds, to keep the number of syscalls low.
      let n = inPage;
      while (done + n < length) {
        const next = this.physicalOf(at + BigInt(n));
        if (next !== physical + BigInt(n)) break;
        n += Math.min(length - done - n, 4096);
      }
      const bytes = this.memory.read(physical, n);
      if (!bytes) return undefined;
      parts.push(bytes);
      done += n;
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  /** Like read, into a caller's buffer; false when any page is unmapped. */
  readInto(virtual: bigint, into: Buffer, at: number, length: number): boolean {
    const linear = this.linear;
    // The direct map in one piece (task_structs, creds, mm_structs): no page-by-page walk.
    if (linear && virtual >= linear.base && virtual + BigInt(length) <= linear.base + linear.size) {
      return this.memory.readInto(virtual - linear.base, into, at, length);
    }
    let done = 0;
    while (done < length) {
      const v = virtual + BigInt(done);
      const physical = this.physicalOf(v);
      if (physical === undefined) return false;
      let n = Math.min(length - done, 4096 - Number(v & 0xfffn));
      // Extend over physically consecutive pages (always, in the direct map).
      while (done + n < length && this.physicalOf(v + BigInt(n)) === physical + BigInt(n)) n += Math.min(length - done - n, 4096);
      if (!this.memory.readInto(physical, into, at + done, n)) return false;
      done += n;
    }
    return true;
  }

  /**
   * Translates one address and returns the walk's last two entries with it (the page-directory and
   * page-table entries for a 4 KiB page): enough to tell later that the same page still maps it.
   */
  translateRecorded(virtual: bigint): { translation: Translation; leafEntries: TableEntry[] } | undefined {
    const path: TableEntry[] = [];
    const translation = translate(this.memory, this.topTable, virtual, this.levels, path);
    return translation ? { translation, leafEntries: path.slice(-2) } : undefined;
  }

  /**
   * Whether these entries still hold what they held: then the address they were read for still
   * maps to the same page. Sound for the lower levels of a live address space's mapping: the
   * tables above them are freed only when the whole range they cover is unmapped.
   */
  entriesUnchanged(entries: readonly TableEntry[]): boolean {
    const { memory } = this;
    const held = memory.heldBytes;
    for (const e of entries) {
      const at = held ? memory.locate!(e.at, 8) : -1;
      if (at >= 0) {
        if (held!.readUInt32LE(at) !== e.low || held!.readUInt32LE(at + 4) !== e.high) return false;
      } else if (!memory.readInto(e.address, u64Scratch, 0, 8) || u64Scratch.readBigUInt64LE(0) !== e.value) {
        return false;
      }
    }
    return true;
  }

  /** Reads guest-physical memory (a page found by translateRecorded) through this space's memory. */
  readPhysical(physical: bigint, length: number): Buffer | undefined {
    return this.memory.read(physical, length);
  }

  /**
   * Where the memory already holds `length` bytes at `offset` into a struct at this virtual address
   * (zero-copy): an offset into `heldBytes`, or -1. Only in the direct map (physical = virtual -
   * base), without a walk.
   */
  locateMember(struct: bigint, offset: number, length: number): number {
    const { linear, memory } = this;
    if (!memory.locate || !linear || struct < linear.base || struct >= this.linearEnd!) return -1;
    return memory.locate(Number(struct - linear.base) + offset, length);
  }

  /** Like locateMember, for a guest-physical address. */
  locatePhysical(physical: bigint, length: number): number {
    return this.memory.locate ? this.memory.locate(Number(physical), length) : -1;
  }

  /** The buffer locate's offsets point into (undefined when the memory holds nothing itself). */
  get heldBytes(): Buffer | undefined {
    return this.memory.heldBytes;
  }

  get heldView(): DataView | undefined {
    return this.memory.heldView;
  }

  readU64(virtual: bigint): bigint | undefined {
    return this.readInto(virtual, u64Scratch, 0, 8) ? u64Scratch.readBigUInt64LE(0) : undefined;
  }
}
