// One-stop setup for introspection tests and the benchmark: a Debian kernel (bookworm's default
// unless another meta-package is named, see DEBIAN_KERNELS), its profile built with the real CLI
// code path, and the scenario initramfs.
import { readFileSync } from 'node:fs';
import { buildKernelProfile } from '../../src/introspection/kernel-profile-builder.ts';
import type { KernelProfile } from '../../src/introspection/kernel-profile.ts';
import { DEBIAN_KERNELS, ensureDebianKernel, ensureDebianKernelModule, type DebianKernel } from './debian-kernel.ts';
import { buildInitramfs } from './initramfs.ts';
import { buildStaticGuestProgram } from './kexec.ts';
import { SCENARIO_FILES } from './scenario.ts';

/** The scenario plus /usr/bin/hs-workload (threads, open files, a listening socket). */
export const SCENARIO_FILES_WITH_WORKLOAD = () => ({ ...SCENARIO_FILES, '/usr/bin/hs-workload': { fromFile: buildStaticGuestProgram('workload', 'hs-workload', ['-lpthread']), mode: 0o755 } });

export interface TestGuestAssets {
  kernel: DebianKernel;
  profile: KernelProfile;
  initrd: string;
}

const cached = new Map<string, TestGuestAssets>();

export function testGuestAssets(kernelPackage: string = DEBIAN_KERNELS['bookworm-6.1']): TestGuestAssets {
  const hit = cached.get(kernelPackage);
  if (hit) return hit;
  const kernel = ensureDebianKernel(kernelPackage);
  const profile = buildKernelProfile({ kernelImage: readFileSync(kernel.vmlinuz), fileName: kernel.vmlinuz });
  // A module without dependencies to load (and hide) in the hidden-module test.
  const module = { '/lib/modules/dummy.ko': { fromFile: ensureDebianKernelModule(kernel, 'drivers/net/dummy.ko') } };
  const assets = { kernel, profile, initrd: buildInitramfs({ ...SCENARIO_FILES_WITH_WORKLOAD(), ...module }) };
  cached.set(kernelPackage, assets);
  return assets;
}
