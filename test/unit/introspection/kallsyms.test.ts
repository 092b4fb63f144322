// kallsyms decoded from the read-only data of real Debian kernels (6.1, whose stable series carries
// kallsyms_seqs_of_names between the markers and the token table, and 6.12 with the 6.4+ order),
// checked against what `profile build` finds in the same image by other means.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseElf } from '../../../src/introspection/elf.ts';
import { findDigitTokens, KallsymsError, parseKallsyms } from '../../../src/introspection/kallsyms.ts';
import { extractKernelElf } from '../../../src/introspection/kernel-image.ts';
import { buildKernelProfile } from '../../../src/introspection/kernel-profile-builder.ts';
import { DEBIAN_KERNELS, ensureDebianKernel } from '../../../testenv/guest/debian-kernel.ts';

for (const [series, metaPackage, order] of [
  ['6.1', DEBIAN_KERNELS['bookworm-6.1'], 'offsets-first'],
  ['6.12', DEBIAN_KERNELS['bookworm-6.12'], 'names-first'],
] as const) {
  describe(`kallsyms of Debian's ${series} kernel`, function () {
    this.timeout(180_000);
    const wanted = ['_text', 'init_task', 'init_mm', 'linux_banner', '__start_BTF', '__stop_BTF', 'jiffies_64', 'init_pid_ns'];
    let rodata: { address: bigint; data: Buffer };
    let btfAddress: bigint;
    let image: Buffer;
    let file: string;

    before(() => {
      file = ensureDebianKernel(metaPackage).vmlinuz;
      image = readFileSync(file);
      const elf = parseElf(extractKernelElf(image).elf);
      rodata = elf.sections.get('.rodata')!;
      btfAddress = elf.sections.get('.BTF')!.address;
    });

    it('finds the token table among the digit sequences and decodes the symbols a profile needs', () => {
      const candidates = findDigitTokens(rodata.data);
      assert.ok(candidates.length >= 1);
      const errors: string[] = [];
      const kallsyms = candidates.map((c) => {
        try {
          return parseKallsyms(rodata.data, c, wanted);
        } catch (err) {
          assert.ok(err instanceof KallsymsError, String(err));
          errors.push(err.message);
          return undefined;
        }
      }).find((k) => k !== undefined);
      assert.ok(kallsyms, `no candidate parsed: ${errors.join('; ')}`);
      assert.equal(kallsyms.layout.order, order);
      assert.ok(kallsyms.count > 50_000, `only ${kallsyms.count} symbols`);
      for (const name of wanted) assert.ok(kallsyms.address(name) !== undefined, `${name} missing`);
      // The same addresses `profile build` finds without symbols (static init_task) and from sections.
      const profile = buildKernelProfile({ kernelImage: image, fileName: file });
      assert.equal(kallsyms.address('init_task'), BigInt(profile.addresses.initTask));
      assert.equal(kallsyms.address('init_mm'), BigInt(profile.addresses.initMm));
      assert.equal(kallsyms.address('linux_banner'), BigInt(profile.addresses.linuxBanner));
      assert.equal(kallsyms.address('_text'), BigInt(profile.addresses.text));
      assert.equal(kallsyms.address('__start_BTF'), btfAddress);
      assert.equal(kallsyms.type('init_task'), 'D');
      // linux_banner holds the real banner (with the build number) in the image.
      const at = Number(kallsyms.address('linux_banner')! - rodata.address);
      assert.equal(rodata.data.toString('latin1', at, rodata.data.indexOf(0, at)), profile.kernel.banner);
      assert.match(profile.kernel.banner, /\) #\d/);
    });

    it('refuses digit sequences that are not a token table', () => {
      const fake = Buffer.alloc(4096);
      const digits = Buffer.from('0\x001\x002\x003\x004\x005\x006\x007\x008\x009\x00', 'latin1');
      digits.copy(fake, 2048);
      assert.deepEqual(findDigitTokens(fake), [2048]);
      assert.throws(() => parseKallsyms(fake, 2048, wanted), KallsymsError);
    });
  });
}
