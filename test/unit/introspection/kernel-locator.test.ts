// Finding the kernel in a synthetic guest: init_task by its self-references, the virtual and
// physical KASLR slides, 4- or 5-level paging, the randomized direct-map base, and a profile that
// does not match the running kernel. (The same against a real Debian guest: test/host/introspection.)
import assert from 'node:assert/strict';
import { GuestIntrospector } from '../../../src/introspection/guest-introspector.ts';
import { ProfileMismatchError } from '../../../src/introspection/kernel-locator.ts';
import type { KernelProfile } from '../../../src/introspection/kernel-profile.ts';
import { SyntheticMemory } from './synthetic-memory.ts';

const m = (offset: number, size: number) => ({ offset, size });
const BANNER = 'Linux version 6.1.0-99-synthetic (test@example) #1 SMP\n';
const profile: KernelProfile = {
  format: 'hyperspector.io/kernel-profile/v1',
  kernel: { release: '6.1.0-99-synthetic', banner: BANNER, architecture: 'x86_64' },
  source: { file: 'none', sha256: '', compression: 'none', addressesFrom: 'static-structures' },
  // Link-time addresses: the image is linked to load at physical 0x400000.
  addresses: { startKernelMap: '0xffffffff80000000', text: '0xffffffff80400000', initTask: '0xffffffff80400000', initMm: '0xffffffff80410000', linuxBanner: '0xffffffff80420000' },
  structs: {
    task_struct: {
      size: 0x100,
      members: {
        tasks: m(0x00, 16), pid: m(0x10, 4), tgid: m(0x14, 4), comm: m(0x20, 16), real_parent: m(0x30, 8), mm: m(0x38, 8),
        active_mm: m(0x40, 8), cred: m(0x48, 8), start_time: m(0x50, 8), exit_state: m(0x58, 4), flags: m(0x5c, 4), state: m(0x60, 4),
      },
    },
    mm_struct: { size: 0x40, members: { pgd: m(0x10, 8), arg_start: m(0x18, 8), arg_end: m(0x20, 8) } },
    cred: { size: 0x20, members: { uid: m(4, 4), gid: m(8, 4), euid: m(12, 4) } },
    list_head: { size: 16, members: { next: m(0, 8), prev: m(8, 8) } },
  },
};

interface Layout {
  levels: 4 | 5;
  virtualSlide: bigint;
  physicalSlide: bigint;
  directMapBase: bigint;
}

/** A guest whose kernel was loaded with the given KASLR choices, with init_task and one process. */
function bootSyntheticGuest(l: Layout): SyntheticMemory {
  const mem = new SyntheticMemory();
  const img = mem.image;
  const t = profile.structs.task_struct.members;
  const top = mem.allocTable();
  const initTaskV = BigInt(profile.addresses.initTask) + l.virtualSlide;
  const initTaskP = 0x400000n + l.physicalSlide;
  const imageDelta = initTaskV - initTaskP;
  // The kernel image mapping (2 MiB pages) and the direct map (one 1 GiB page).
  mem.map(top, l.levels, initTaskV, initTaskP, 2);
  mem.map(top, l.levels, l.directMapBase, 0n, 3);

  const init = Number(initTaskP);
  const task1 = 0x300000;
  const link = (from: number, to: bigint) => {
    img.writeBigUInt64LE(to, from + t.tasks.offset);
    img.writeBigUInt64LE(to, from + t.tasks.offset + 8);
  };
  link(init, l.directMapBase + BigInt(task1 + t.tasks.offset));
  link(task1, initTaskV + BigInt(t.tasks.offset));
  img.write('swapper/0\0', init + t.comm.offset, 'latin1');
  img.writeBigUInt64LE(initTaskV, init + t.real_parent.offset);
  img.writeBigUInt64LE(BigInt(profile.addresses.initMm) + l.virtualSlide, init + t.active_mm.offset);
  img.writeInt32LE(1, task1 + t.pid.offset);
  img.writeInt32LE(1, task1 + t.tgid.offset);
  img.write('init\0', task1 + t.comm.offset, 'latin1');
  img.writeBigUInt64LE(initTaskV, task1 + t.real_parent.offset);
  img.writeBigUInt64LE(l.directMapBase + BigInt(task1 + 0x800), task1 + t.cred.offset);
  // init_mm.pgd is swapper_pg_dir, a kernel-image address; the banner sits at linux_banner.
  img.writeBigUInt64LE(top + imageDelta, Number(0x410000n + l.physicalSlide) + profile.structs.mm_struct.members.pgd.offset);
  img.write(BANNER, Number(0x420000n + l.physicalSlide), 'latin1');
  return mem;
}

describe('kernel locator', () => {
  for (const layout of [
    { levels: 4, virtualSlide: 0n, physicalSlide: 0n, directMapBase: 0xffff888000000000n },
    { levels: 4, virtualSlide: 0x2e400000n, physicalSlide: 0x200000n, directMapBase: 0xffff9d6a40000000n },
    { levels: 5, virtualSlide: 0x1200000n, physicalSlide: 0x200000n, directMapBase: 0xff3e2c1b00000000n },
  ] as Layout[]) {
    it(`resolves ${layout.levels}-level paging, virtual slide 0x${layout.virtualSlide.toString(16)}, physical slide 0x${layout.physicalSlide.toString(16)}`, () => {
      const guest = GuestIntrospector.fromMemory(bootSyntheticGuest(layout).memory(), [profile]);
      const l = guest.location;
      assert.equal(l.pagingLevels, layout.levels);
      assert.equal(l.virtualSlide, layout.virtualSlide);
      assert.equal(l.physicalSlide, layout.physicalSlide);
      assert.equal(l.directMapBase, layout.directMapBase);
      assert.equal(l.kernelVirtualBase, 0xffffffff80400000n + layout.virtualSlide);
      const snapshot = guest.snapshot();
      assert.equal(snapshot.consistent, true, snapshot.problems.join('; '));
      assert.deepEqual(snapshot.processes.map((p) => [p.pid, p.ppid, p.comm]), [[1, 0, 'init']]);
    });
  }

  it('picks the matching profile among several and refuses when none matches, naming the running kernel', () => {
    const memory = bootSyntheticGuest({ levels: 4, virtualSlide: 0x1000000n, physicalSlide: 0n, directMapBase: 0xffff888000000000n }).memory();
    const other = { ...profile, kernel: { ...profile.kernel, release: 'other', banner: 'Linux version 6.1.0-98-other (x@y) #1 SMP\n' } };
    assert.equal(GuestIntrospector.fromMemory(memory, [other, profile]).profile, profile);
    assert.throws(() => GuestIntrospector.fromMemory(memory, [other]), (err: Error) => {
      assert.ok(err instanceof ProfileMismatchError);
      assert.equal(err.runningBanner, BANNER);
      return true;
    });
  });

  it('says when there is no kernel at all', () => {
    assert.throws(() => GuestIntrospector.fromMemory(new SyntheticMemory().memory(), [profile]), /no init_task of kernel 6\.1\.0-99-synthetic found/);
  });
});
