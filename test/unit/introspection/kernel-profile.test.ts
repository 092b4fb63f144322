// Kernel profiles from the BTF of a real Debian kernel (linux-image-amd64, downloaded and cached by
// testenv/guest/debian-kernel.ts), and the errors for inputs that are not usable kernels.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { compressSync as lz4CompressBlock } from 'lz4-napi';
import { filter as xzFilter, xzSync } from 'node-liblzma';
import { Btf, BtfKind } from '../../../src/introspection/btf.ts';
import { parseElf } from '../../../src/introspection/elf.ts';
import { extractKernelElf, KernelImageError } from '../../../src/introspection/kernel-image.ts';
import { buildKernelProfile, ProfileBuildError, START_KERNEL_MAP } from '../../../src/introspection/kernel-profile-builder.ts';
import { KernelProfileError, parseKernelProfile, type KernelProfile } from '../../../src/introspection/kernel-profile.ts';
import { ensureDebianKernel } from '../../../testenv/guest/debian-kernel.ts';

describe('kernel profiles from a real Debian kernel', function () {
  this.timeout(180_000);
  let vmlinuz: Buffer;
  let vmlinux: Buffer;
  let btf: Btf;
  let profile: KernelProfile;

  before(() => {
    const kernel = ensureDebianKernel();
    vmlinuz = readFileSync(kernel.vmlinuz);
    const extracted = extractKernelElf(vmlinuz);
    assert.equal(extracted.compression, 'xz'); // Debian builds CONFIG_KERNEL_XZ
    vmlinux = extracted.elf;
    btf = new Btf(parseElf(vmlinux).sections.get('.BTF')!.data);
    profile = buildKernelProfile({ kernelImage: vmlinuz, fileName: kernel.vmlinuz });
  });

  describe('BTF', () => {
    it('reads the whole type table', () => {
      assert.ok(btf.typeCount > 50_000, `only ${btf.typeCount} types`);
      assert.equal(btf.struct('task_struct').kind, BtfKind.Struct);
      assert.throws(() => btf.struct('no_such_struct_anywhere'), /struct no_such_struct_anywhere not found/);
    });

    it('gives the layouts the C definitions imply', () => {
      const listHead = btf.struct('list_head');
      assert.equal(listHead.sizeOrType, 16);
      assert.deepEqual(['next', 'prev'].map((m) => btf.findMember(listHead, m)?.byteOffset), [0, 8]);
      const task = btf.struct('task_struct');
      assert.equal(btf.findMember(task, 'comm')?.size, 16); // char comm[TASK_COMM_LEN]
      const pid = btf.findMember(task, 'pid')!;
      assert.equal(pid.size, 4);
      assert.equal(btf.findMember(task, 'tgid')?.byteOffset, pid.byteOffset + 4); // pid_t pid; pid_t tgid;
      assert.equal(btf.findMember(task, 'tasks')?.size, 16);
      assert.equal(btf.findMember(task, 'real_parent')?.size, 8);
      assert.equal(btf.findMember(btf.struct('cred'), 'uid')?.size, 4); // kuid_t is a struct around uid_t
    });

    it('finds members nested in anonymous structs and unions', () => {
      const mm = btf.struct('mm_struct');
      // In 6.x every mm_struct field sits in an anonymous struct (before cpu_bitmap[]).
      assert.ok(!mm.members.some((m) => m.name === 'pgd'));
      const pgd = btf.findMember(mm, 'pgd')!;
      assert.equal(pgd.size, 8);
      const argStart = btf.findMember(mm, 'arg_start')!;
      assert.equal(btf.findMember(mm, 'arg_end')?.byteOffset, argStart.byteOffset + 8);
    });
  });

  describe('profile', () => {
    it('records the layouts, addresses and banner', () => {
      assert.match(profile.kernel.banner, /^Linux version 6\.\d+\.\d+-\d+-amd64 \(debian-kernel@lists\.debian\.org\).*\n$/);
      assert.equal(profile.kernel.release, /^Linux version (\S+)/.exec(profile.kernel.banner)![1]);
      assert.equal(profile.structs.task_struct.members.state.btfName, '__state');
      assert.equal(profile.source.addressesFrom, 'static-structures');
      for (const a of ['initTask', 'initMm', 'linuxBanner', 'text'] as const) {
        assert.ok(BigInt(profile.addresses[a]) > START_KERNEL_MAP, `${a} ${profile.addresses[a]} is not a kernel-image address`);
      }
      assert.ok(profile.workqueueWorkers, 'a 6.1 kernel names work-queue workers through worker_private');
    });

    it('round-trips through JSON and validation', () => {
      assert.deepEqual(parseKernelProfile(JSON.stringify(profile)), profile);
      assert.throws(() => parseKernelProfile(JSON.stringify({ ...profile, format: 'v0' })), KernelProfileError);
      const broken = structuredClone(profile) as { structs: { cred: { members: Record<string, unknown> } } };
      delete broken.structs.cred.members.euid;
      assert.throws(() => parseKernelProfile(JSON.stringify(broken)), /invalid at \/structs\/cred\/members/);
    });

    it('takes addresses from a System.map when given one, and names a distribution stub', () => {
      const map = `${profile.addresses.initTask.slice(2)} D init_task\n${profile.addresses.initMm.slice(2)} D init_mm\n${profile.addresses.linuxBanner.slice(2)} R linux_banner\n`;
      const fromMap = buildKernelProfile({ kernelImage: vmlinux, fileName: 'vmlinux', systemMap: map });
      assert.equal(fromMap.source.addressesFrom, 'system-map');
      assert.deepEqual(fromMap.addresses, profile.addresses); // the image's own structures agree with the symbols
      const stub = 'ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package\n';
      assert.throws(() => buildKernelProfile({ kernelImage: vmlinux, fileName: 'vmlinux', systemMap: stub }), /looks like a distribution stub/);
    });
  });

  describe('kernel image formats', () => {
    // A bzImage around a payload: boot header "HdrS", protocol 2.15, one setup sector.
    const bzImage = (payload: Buffer) => {
      const head = Buffer.alloc(1024);
      head[0x1f1] = 1;
      head.writeUInt32LE(0x53726448, 0x202);
      head.writeUInt16LE(0x020f, 0x206);
      head.writeUInt32LE(0, 0x248);
      head.writeUInt32LE(payload.length, 0x24c);
      return Buffer.concat([head, payload]);
    };
    const withSize = (compressed: Buffer, size: number) => {
      const tail = Buffer.alloc(4);
      tail.writeUInt32LE(size);
      return Buffer.concat([compressed, tail]);
    };
    // Two LZ4 legacy blocks need more than 8 MiB of input.
    const sample = () => vmlinux.subarray(0, 9 << 20);

    it('extracts gzip, xz (x86 BCJ), zstd and LZ4-legacy payloads', () => {
      const elf = sample();
      const lz4Legacy = () => {
        const parts: Buffer[] = [Buffer.from([0x02, 0x21, 0x4c, 0x18])];
        for (let off = 0; off < elf.length; off += 8 << 20) {
          const block = lz4CompressBlock(elf.subarray(off, off + (8 << 20))).subarray(4); // drop lz4_flex's size prefix
          const size = Buffer.alloc(4);
          size.writeUInt32LE(block.length);
          parts.push(size, block);
        }
        return withSize(Buffer.concat(parts), elf.length);
      };
      const payloads = {
        gzip: gzipSync(elf, { level: 1 }),
        xz: withSize(xzSync(elf, { preset: 0, filters: [xzFilter.X86, xzFilter.LZMA2] }), elf.length),
        zstd: withSize(zstdCompressSync(elf), elf.length),
        lz4: lz4Legacy(),
      };
      for (const [compression, payload] of Object.entries(payloads)) {
        const out = extractKernelElf(bzImage(payload));
        assert.equal(out.compression, compression);
        assert.ok(out.elf.equals(elf), `${compression} payload did not round-trip`);
      }
    });

    it('refuses what is not a usable kernel, saying why', () => {
      assert.throws(() => extractKernelElf(Buffer.from('#!/bin/sh\necho not a kernel\n'.repeat(100))), (e: Error) => e instanceof KernelImageError && /not a Linux kernel/.test(e.message));
      assert.throws(() => extractKernelElf(bzImage(Buffer.from('BZh91AY&SY'.repeat(10)))), /bzip2 is not supported/);
      assert.throws(() => extractKernelElf(bzImage(Buffer.from('garbage!'.repeat(10)))), /unknown kernel compression/);
      assert.throws(() => extractKernelElf(bzImage(withSize(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1, 2, 3]), 10))), /(cannot decompress the xz kernel payload|the xz payload of the bzImage is not an ELF image)/);
      // An ELF without .BTF: the real image with the section renamed in the string table.
      const noBtf = Buffer.from(vmlinux);
      // Section names live in the section-name string table (e_shstrndx); rename ".BTF" there only.
      const shoff = Number(noBtf.readBigUInt64LE(40));
      const names = Number(noBtf.readBigUInt64LE(shoff + noBtf.readUInt16LE(62) * noBtf.readUInt16LE(58) + 24));
      const at = noBtf.indexOf('\0.BTF\0', names);
      noBtf.write('\0.XYZ\0', at, 'latin1');
      assert.throws(() => buildKernelProfile({ kernelImage: noBtf, fileName: 'vmlinux' }), (e: Error) => e instanceof ProfileBuildError && /no \.BTF section/.test(e.message));
    });
  });
});
