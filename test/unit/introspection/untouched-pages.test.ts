// Attaching probes guest RAM at every 2 MiB boundary for the kernel. Pages the host never backed
// read as zeros and cannot hold it; reading them through /proc/<pid>/mem would fault them in (a
// 3 GiB guest took 8 s and grew by ~2 GiB of page mappings). The probes skip them.
import assert from 'node:assert/strict';
import { locateKnownKernel, runningKernelCandidates } from '../../../src/introspection/guest-kernel-discovery.ts';
import type { KernelProfile } from '../../../src/introspection/kernel-profile.ts';
import { BufferPhysicalMemory } from '../../../src/introspection/physical-memory.ts';

const MIB2 = 0x200000;

class CountingMemory extends BufferPhysicalMemory {
  reads: bigint[] = [];
  constructor(image: Buffer, private readonly touchedPages: ((p: bigint) => boolean | undefined)) {
    super(image);
  }
  override readInto(physical: bigint, into: Buffer, at: number, length: number): boolean {
    this.reads.push(physical);
    return super.readInto(physical, into, at, length);
  }
  touched(physical: bigint): boolean | undefined {
    return this.touchedPages(physical);
  }
}

describe('kernel probes skip guest pages the host never backed', () => {
  const image = Buffer.alloc(8 * MIB2);
  image.write('Linux version 6.1.0-test (a banner with no kallsyms after it)\n', 2 * MIB2, 'latin1');

  it('likely places: only touched 2 MiB boundaries are read', () => {
    const none = new CountingMemory(image, () => false);
    assert.deepEqual([...runningKernelCandidates(none, [], 'likely-places')], []);
    assert.deepEqual(none.reads, [], 'nothing read when nothing was ever touched');

    const some = new CountingMemory(image, (p) => p === BigInt(2 * MIB2));
    Array.from(runningKernelCandidates(some, [], 'likely-places'));
    assert.equal(some.reads[0], BigInt(2 * MIB2), 'the touched boundary with the banner is read');
    assert.ok(some.reads.every((p) => p >= BigInt(2 * MIB2) && p < BigInt(3 * MIB2) + BigInt(16 << 20)), 'and its .rodata window, nothing else');

    const unknown = new CountingMemory(image, () => undefined);
    Array.from(runningKernelCandidates(unknown, [], 'likely-places'));
    assert.ok(unknown.reads.length >= 8, 'a backing that cannot tell is read everywhere');
  });

  it('known kernels: the banner is looked for only where pages were touched', () => {
    const profile = {
      kernel: { banner: 'Linux version 6.1.0-test\n' },
      addresses: { text: '0xffffffff81000000', linuxBanner: '0xffffffff81100000', initTask: '0xffffffff81180000' },
      structs: { task_struct: { members: { real_parent: { offset: 0, size: 8 } } } },
    } as unknown as KernelProfile;
    const none = new CountingMemory(image, () => false);
    assert.deepEqual([...locateKnownKernel(none, profile)], []);
    assert.deepEqual(none.reads, []);
    const all = new CountingMemory(image, () => true);
    Array.from(locateKnownKernel(all, profile));
    assert.ok(all.reads.length > 0);
  });
});
