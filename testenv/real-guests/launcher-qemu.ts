// The QEMU command line virt-launcher's libvirt gives a VMI, reduced to what this machine runs and
// what the tests read (pure): `-name guest=<namespace>_<name>,debug-threads=on`, `-uuid` from the
// VMI's firmware UUID, `-m size=<k>k`, q35, the pod's tap as `hostua-<network>` with the VMI's MAC,
// the serial console as KubeVirt's `virt-serial0` socket (with its log file) under
// /var/run/kubevirt-private/<vmi uid>/ — here under the pod's run directory — and a QMP monitor.
// Its PVC/DataVolume disks that are not hot-plugged are attached as libvirt attaches them (raw image,
// cache none; guest-disks.ts), and free PCIe root ports wait for hot-plugged ones, as KubeVirt keeps
// on q35. Differences, each because of this machine: TCG instead of KVM, direct kernel boot of the
// test guest's Debian kernel + busybox initramfs instead of the VMI's boot disk, memory capped, one vCPU.
import { join } from 'node:path';
import { hotplugPortArgs } from '../kubevirt/kubevirt-disk-options.ts';
import { generatedMac, type Vmi } from '../kubevirt/virt-handler-status.ts';
import { isSecondaryMultusNetwork, launcherDevices } from '../../src/agent/kubevirt-names.ts';
import type { VirtualMachineInstance } from '../../src/kube/client/objects.ts';

export const DEFAULT_MEMORY_MIB = 256;
export const MIN_MEMORY_MIB = 128;
/** Free PCIe root ports for hot-plugged disks (named pci.1 … like libvirt's). */
export const HOTPLUG_PORTS = 4;

export interface LauncherQemuOptions {
  vmi: Vmi;
  /** The launcher pod's private run directory (stands for /var/run inside the pod). */
  runDir: string;
  kernel: string;
  initrd: string;
  /** Upper bound of guest memory (the machine runs several guests at once). */
  maxMemoryMiB?: number;
  kaslr?: boolean;
  /** QEMU arguments of the disks attached at boot (guest-disks.ts bootDiskArgs). */
  diskArgs?: string[];
}

export interface LauncherQemu {
  args: string[];
  memoryMiB: number;
  serialSocket: string;
  serialLog: string;
  qmpSocket: string;
  mac: string;
}

/** A Kubernetes quantity in MiB (binary and decimal suffixes). */
export function quantityToMiB(quantity: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|K|M|G|T)?$/.exec(quantity.trim());
  if (!m) throw new Error(`cannot parse quantity ${JSON.stringify(quantity)}`);
  const factor: Record<string, number> = { '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return (Number(m[1]) * factor[m[2] ?? '']!) / 1024 ** 2;
}

/** Guest memory: the VMI's (memory.guest, else the memory request or limit), clamped for this machine. */
export function guestMemoryMiB(vmi: Vmi, maxMiB = DEFAULT_MEMORY_MIB): number {
  const domain = vmi.spec?.domain ?? {};
  const quantity: string | undefined = domain.memory?.guest ?? domain.resources?.requests?.memory ?? domain.resources?.limits?.memory;
  const wanted = quantity ? Math.floor(quantityToMiB(quantity)) : maxMiB;
  return Math.max(MIN_MEMORY_MIB, Math.min(maxMiB, wanted));
}

/** The name and MAC of the VMI's pod-network interface (what the stand-in reports in status.interfaces). */
export function podInterface(vmi: Vmi): { name: string; mac: string } {
  const network = (vmi.spec?.networks ?? []).find((n: { pod?: unknown }) => n.pod)?.name ?? 'default';
  const iface = (vmi.spec?.domain?.devices?.interfaces ?? []).find((i: { name: string }) => i.name === network);
  return { name: network, mac: iface?.macAddress ?? generatedMac(vmi.metadata.uid ?? '', network) };
}

/**
 * A NIC per secondary (Multus) network with a tap binding, on the tap virt-launcher names for it
 * (multus-attachments.ts makes the taps before QEMU starts), with the interface's MAC.
 */
export function secondaryNicArgs(vmi: Vmi): string[] {
  const v = vmi as VirtualMachineInstance;
  const args: string[] = [];
  for (const network of (v.spec?.networks ?? []).filter(isSecondaryMultusNetwork)) {
    const lookup = launcherDevices(v, network.name);
    if ('problem' in lookup) continue;
    const iface = v.spec.domain.devices.interfaces?.find((i) => i.name === network.name);
    const mac = iface?.macAddress ?? generatedMac(vmi.metadata.uid ?? '', network.name);
    args.push('-netdev', `tap,id=hostua-${network.name},ifname=${lookup.devices.tap},script=no,downscript=no`);
    args.push('-device', `virtio-net-pci,netdev=hostua-${network.name},id=ua-${network.name},mac=${mac},romfile=`);
  }
  return args;
}

export function launcherQemu(o: LauncherQemuOptions): LauncherQemu {
  const { vmi } = o;
  const uid = vmi.metadata.uid;
  if (!uid) throw new Error(`VMI ${vmi.metadata.namespace}/${vmi.metadata.name} has no uid`);
  const memoryMiB = guestMemoryMiB(vmi, o.maxMemoryMiB);
  const privateDir = join(o.runDir, 'kubevirt-private', uid);
  const serialSocket = join(privateDir, 'virt-serial0');
  const serialLog = `${serialSocket}-log`;
  const qmpSocket = join(o.runDir, 'libvirt', 'monitor.sock');
  const { name: network, mac } = podInterface(vmi);
  const append = ['console=ttyS0', 'panic=-1', 'quiet', 'loglevel=1', o.kaslr === false ? 'nokaslr' : 'kaslr'].join(' ');
  const args = [
    '-name', `guest=${vmi.metadata.namespace}_${vmi.metadata.name},debug-threads=on`,
    '-machine', 'pc-q35-7.2,usb=off,dump-guest-core=off,acpi=on',
    '-accel', 'tcg',
    // qemu64: 4-level paging, as most hosts' guests; KASLR stays on, as in any distribution guest.
    '-cpu', 'qemu64',
    '-m', `size=${memoryMiB * 1024}k`,
    '-overcommit', 'mem-lock=off',
    '-smp', '1,sockets=1,dies=1,cores=1,threads=1',
    '-uuid', vmi.spec?.domain?.firmware?.uuid ?? uid,
    '-smbios', `type=1,manufacturer=KubeVirt,product=None,uuid=${vmi.spec?.domain?.firmware?.uuid ?? uid},family=KubeVirt`,
    '-no-user-config', '-nodefaults',
    '-chardev', `socket,id=charmonitor,path=${qmpSocket},server=on,wait=off`,
    '-mon', 'chardev=charmonitor,id=monitor,mode=control',
    '-rtc', 'base=utc',
    '-no-shutdown',
    '-netdev', `tap,id=hostua-${network},ifname=tap0,script=no,downscript=no`,
    '-device', `virtio-net-pci,netdev=hostua-${network},id=ua-${network},mac=${mac},romfile=`,
    ...secondaryNicArgs(vmi),
    '-chardev', `socket,id=charserial0,path=${serialSocket},server=on,wait=off,logfile=${serialLog},logappend=on`,
    '-device', 'isa-serial,chardev=charserial0,id=serial0,index=0',
    ...(o.diskArgs ?? []),
    ...hotplugPortArgs(HOTPLUG_PORTS),
    '-display', 'none',
    '-kernel', o.kernel, '-initrd', o.initrd, '-append', append,
    '-msg', 'timestamp=on',
  ];
  return { args, memoryMiB, serialSocket, serialLog, qmpSocket, mac };
}
