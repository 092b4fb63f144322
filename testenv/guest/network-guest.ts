// A test guest with a network driver: the scenario guest plus the virtio NIC's modules (virtio_pci,
// virtio_net and what they depend on), loaded by /setup. The guest's eth0 is the NIC QEMU puts on
// the launcher pod's tap; the test gives it the pod's IP from the console (what virt-launcher's DHCP
// server would hand it with the bridge binding).
import { ensureDebianKernel, type DebianKernel } from './debian-kernel.ts';
import { buildInitramfs } from './initramfs.ts';
import { guestKernelModules } from './kernel-modules.ts';
import { SCENARIO_FILES } from './scenario.ts';

const NETWORK_MODULES = ['virtio_pci', 'virtio_net'];

/** Printed by /setup when a module did not load (the guest then has no NIC). */
export const NET_MODULES_FAILED_MARKER = '@@NET-MODULES-FAILED';

export interface NetworkGuestAssets {
  kernel: DebianKernel;
  initrd: string;
}

let cached: NetworkGuestAssets | undefined;

export function networkGuestAssets(): NetworkGuestAssets {
  if (cached) return cached;
  const kernel = ensureDebianKernel();
  const modules = guestKernelModules(kernel, NETWORK_MODULES);
  const initrd = buildInitramfs({
    ...SCENARIO_FILES,
    ...modules.files,
    '/setup': { content: `#!/bin/sh\n${modules.loadCommand} || echo "${NET_MODULES_FAILED_MARKER}"\n`, mode: 0o755 },
  });
  cached = { kernel, initrd };
  return cached;
}

/** Shell line for the guest: eth0 up with the pod's IP, everything on-link (the node answers ARP by proxy). */
export function configureGuestNic(podIp: string): string {
  return `ip link set lo up && ip link set eth0 up && ip addr add ${podIp}/32 dev eth0 && ip route add default dev eth0 && echo @@NIC-UP`;
}
