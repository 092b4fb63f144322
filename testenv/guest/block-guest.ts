// A test guest that can use block devices: the test guest's Debian kernel (its kernel profile is the
// same), the scenario initramfs, plus the virtio transport, virtio-blk and ext4 modules of the same
// kernel package, loaded by /setup before the guest says it is ready. For real-guest nodes whose
// VMIs have PVC disks (at boot, or hot-plugged later: the kernel's PCIe hotplug driver is built in).
import { ensureDebianKernel, type DebianKernel } from './debian-kernel.ts';
import { buildInitramfs } from './initramfs.ts';
import { guestKernelModules } from './kernel-modules.ts';
import { SCENARIO_FILES } from './scenario.ts';

/** crc32c_generic: ext4 and jbd2 ask the crypto API for crc32c (a soft dependency). */
const BLOCK_MODULES = ['virtio_pci', 'virtio_blk', 'crc32c_generic', 'ext4'];

/** Printed by /setup when a module did not load (the guest is then of no use for disk tests). */
export const MODULES_FAILED_MARKER = '@@MODULES-FAILED';

export interface BlockGuestAssets {
  kernel: DebianKernel;
  initrd: string;
}

let cached: BlockGuestAssets | undefined;

export function blockGuestAssets(): BlockGuestAssets {
  if (cached) return cached;
  const kernel = ensureDebianKernel();
  const modules = guestKernelModules(kernel, BLOCK_MODULES);
  const initrd = buildInitramfs({
    ...SCENARIO_FILES,
    ...modules.files,
    '/setup': { content: `#!/bin/sh\n${modules.loadCommand} || echo "${MODULES_FAILED_MARKER}"\n`, mode: 0o755 },
  });
  cached = { kernel, initrd };
  return cached;
}

/**
 * A shell line for the guest: waits (guest-side, up to `seconds`) for the virtio disk with this
 * serial (/sys/block/vd*\/serial, what udev's by-id link is made from) and prints `@@DISK=<vdX>`.
 */
export function waitForDiskBySerial(serial: string, seconds: number): string {
  return (
    `i=0; d=; while [ -z "$d" ] && [ $i -lt ${seconds * 10} ]; do ` +
    `for s in /sys/block/vd*/serial; do [ -r "$s" ] && [ "$(cat "$s")" = '${serial}' ] && x=\${s%/serial} && x=\${x##*/} && [ -b /dev/$x ] && d=$x; done; ` +
    `[ -z "$d" ] && usleep 100000; i=$((i + 1)); done; [ -n "$d" ] && echo "@@DISK=$d"`
  );
}
