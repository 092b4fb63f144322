// x86-64 page-table walks on synthetic guest-physical memory images: 4- and 5-level paging,
// 4 KiB, 2 MiB and 1 GiB pages, holes, and reads that cross pages.
import assert from 'node:assert/strict';
import { AddressSpace, translate } from '../../../src/introspection/page-table.ts';
import { NX, PRESENT_RW, SyntheticMemory } from './synthetic-memory.ts';

for (const levels of [4, 5] as const) {
  describe(`page-table walk, ${levels}-level paging`, () => {
    // Addresses typical of the kernel: the image mapping, the direct map (5-level: 0xff11...), user space.
    const kernelText = 0xffffffff81000000n;
    const directMap = levels === 5 ? 0xff11000000000000n : 0xffff888000000000n;
    const user = 0x00007ffff7a00000n;
    let mem: SyntheticMemory;
    let top: bigint;

    beforeEach(() => {
      mem = new SyntheticMemory();
      top = mem.allocTable();
    });

    it('translates 4 KiB pages and keeps the offset within the page', () => {
      mem.map(top, levels, user, 0x3000n, 1, NX);
      assert.deepEqual(translate(mem.memory(), top, user + 0x123n, levels), { physical: 0x3123n, pageSize: 4096 });
    });

    it('translates 2 MiB and 1 GiB pages', () => {
      mem.map(top, levels, kernelText, 0x200000n, 2);
      mem.map(top, levels, directMap, 0x40000000n, 3);
      assert.deepEqual(translate(mem.memory(), top, kernelText + 0x1abcden, levels), { physical: 0x3abcden, pageSize: 2 << 20 });
      assert.deepEqual(translate(mem.memory(), top, directMap + 0x2345678n, levels), { physical: 0x42345678n, pageSize: 1 << 30 });
    });

    it('returns undefined for unmapped addresses and tables outside RAM', () => {
      mem.map(top, levels, user, 0x3000n, 1);
      assert.equal(translate(mem.memory(), top, user + 0x1000n, levels), undefined); // next page: PTE not present
      assert.equal(translate(mem.memory(), top, kernelText, levels), undefined); // no upper-level entry
      mem.setEntry(top, 5n, 0x7f0000000n | PRESENT_RW); // points past the end of RAM
      assert.equal(translate(mem.memory(), top, 5n << BigInt(levels === 5 ? 48 : 39), levels), undefined);
    });

    it('reads across pages that are not physically contiguous', () => {
      mem.map(top, levels, user, 0x5000n, 1);
      mem.map(top, levels, user + 0x1000n, 0x2000n, 1);
      mem.image.write('hello ', 0x5ffa, 'latin1');
      mem.image.write('world\0', 0x2000, 'latin1');
      const space = new AddressSpace(mem.memory(), top, levels);
      assert.equal(space.read(user + 0xffan, 12)?.toString('latin1'), 'hello world\0');
      assert.equal(space.read(user + 0x1ffen, 4), undefined); // runs into an unmapped page
    });
  });
}

describe('4- and 5-level tables are told apart', () => {
  it('a 5-level walk of 4-level tables does not find the mapping', () => {
    const mem = new SyntheticMemory();
    const top = mem.allocTable();
    const va = 0xffffffff81000000n;
    mem.map(top, 4, va, 0x200000n, 2);
    assert.equal(translate(mem.memory(), top, va, 4)?.physical, 0x200000n);
    assert.notEqual(translate(mem.memory(), top, va, 5)?.physical, 0x200000n);
  });
});

describe('AddressSpace linear fast path', () => {
  it('maps the direct map without touching page tables', () => {
    const mem = new SyntheticMemory();
    mem.image.write('direct', 0x1234, 'latin1');
    const space = new AddressSpace(mem.memory(), mem.allocTable(), 4, { base: 0xffff888000000000n, size: BigInt(mem.image.length) });
    assert.equal(space.read(0xffff888000001234n, 6)?.toString('latin1'), 'direct');
    assert.equal(space.physicalOf(0xffff888000000000n + BigInt(mem.image.length)), undefined); // past RAM: falls back to the (empty) tables
  });
});
