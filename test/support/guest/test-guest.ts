// One-stop setup for introspection tests and the benchmark: Debian's kernel, its profile built
// with the real CLI code path, and the scenario initramfs.
import { readFileSync } from 'node:fs';
import { buildKernelProfile } from '../../../src/introspection/kernel-profile-builder.ts';
import type { KernelProfile } from '../../../src/introspection/kernel-profile.ts';
import { ensureDebianKernel, type DebianKernel } from './debian-kernel.ts';
import { buildInitramfs } from './initramfs.ts';
import { SCENARIO_FILES } from './scenario.ts';

export interface TestGuestAssets {
  kernel: DebianKernel;
  profile: KernelProfile;
  initrd: string;
}

let cached: TestGuestAssets | undefined;

export function testGuestAssets(): TestGuestAssets {
  if (cached) return cached;
  const kernel = ensureDebianKernel();
  const profile = buildKernelProfile({ kernelImage: readFileSync(kernel.vmlinuz), fileName: kernel.vmlinuz });
  cached = { kernel, profile, initrd: buildInitramfs(SCENARIO_FILES) };
  return cached;
}
