// The QEMU options a KubeVirt VM gets for a PVC disk, rebuilt here so the host tests run two QEMUs
// exactly as virt-launcher + libvirt would start them. Where each option comes from:
//
// KubeVirt (kubevirt/kubevirt, pkg/virt-launcher/virtwrap/converter/storage/):
// - disk.go, Convert_v1_Disk_To_api_Disk: `readOnly: true` -> `<readonly/>`; `serial` -> `<serial>`;
//   `shareable: true` -> `<shareable/>` and the cache mode defaults to `none` (only none or
//   directsync are accepted for a shareable disk); the driver is `<driver name="qemu" cache=...>`
//   with discard="unmap".
// - volume.go, convert_v1_Hotplug_PersistentVolumeClaim_To_api_Disk / convertHotplugVolumeWithoutCBT:
//   a filesystem-mode hot-plugged PVC is `<disk type="file">` with driver type "raw" and
//   error_policy "stop" over the volume's disk.img (KubeVirt's hotplug-disks directory); a
//   non-hotplug PVC (the server's own disk) is the same without the hotplug path.
// - driver.go, SetDriverCacheMode: cache "none" needs O_DIRECT on the backing file system (else
//   writethrough, which a shareable disk refuses); SetOptimalIOMode adds io="native" only for
//   preallocated images, so a sparse disk.img keeps QEMU's default aio=threads.
//
// libvirt (libvirt/libvirt, src/qemu/):
// - qemu_block.c, qemuBlockStorageSourceGetBackendProps: the `file` blockdev gets "read-only" from
//   <readonly/> and "cache":{"direct":true,"no-flush":false} for cache="none"; no "locking" key is
//   ever set, so QEMU's default (locking=auto, i.e. on for local files) is in force. Recent libvirt
//   puts a raw image's options on the storage node directly (no separate "raw" format node; see
//   tests/qemuxmlconfdata/disk-shared.x86_64-latest.args), older releases add a raw format node with
//   "read-only" over a storage node with "auto-read-only": the tests check both layouts.
// - qemu_command.c, qemuBuildDiskDeviceProps: `<shareable/>` -> "share-rw":true on the device;
//   cache none -> "write-cache":"on"; `<serial>` -> "serial"; error_policy stop -> "werror"/"rerror".
// - qemu_hotplug.c, qemuDomainAttachDiskGeneric: a hot-plugged disk gets the same storage props
//   (qemuBuildStorageSourceChainAttachPrepareBlockdev -> QMP blockdev-add) and the same device
//   props (qemuBuildDiskDeviceProps -> QMP device_add), so kubevirtDiskSpec serves both.

export interface KubeVirtDisk {
  /** The raw image (a filesystem-mode PVC's disk.img). */
  image: string;
  /** libvirt's node name / KubeVirt's alias source (ua-<disk name>). */
  nodeName: string;
  diskName: string;
  readOnly: boolean;
  shareable: boolean;
  serial?: string;
  /** Older libvirt: storage node with auto-read-only under a raw format node carrying read-only. */
  formatNode?: boolean;
}

const CACHE_NONE = { direct: true, 'no-flush': false };

/** The -blockdev objects and the -device object libvirt generates for the disk KubeVirt describes. */
export function kubevirtDiskSpec(d: KubeVirtDisk): { blockdevs: Array<Record<string, unknown>>; device: Record<string, unknown> } {
  const storage = `${d.nodeName}-storage`;
  const blockdevs = d.formatNode
    ? [
        { driver: 'file', filename: d.image, 'node-name': storage, 'auto-read-only': true, discard: 'unmap', cache: CACHE_NONE },
        { 'node-name': `${d.nodeName}-format`, 'read-only': d.readOnly, discard: 'unmap', cache: CACHE_NONE, driver: 'raw', file: storage },
      ]
    : [{ driver: 'file', filename: d.image, 'node-name': storage, 'read-only': d.readOnly, cache: CACHE_NONE, discard: 'unmap' }];
  const device: Record<string, unknown> = { driver: 'virtio-blk-pci', drive: d.formatNode ? `${d.nodeName}-format` : storage, id: `ua-${d.diskName}` };
  if (d.shareable) device['share-rw'] = true;
  device['write-cache'] = 'on';
  if (d.serial) device.serial = d.serial;
  device.werror = 'stop';
  device.rerror = 'stop';
  return { blockdevs, device };
}

/** The same as QEMU command-line arguments. */
export function kubevirtDiskArgs(d: KubeVirtDisk): string[] {
  const { blockdevs, device } = kubevirtDiskSpec(d);
  return [...blockdevs.flatMap((b) => ['-blockdev', JSON.stringify(b)]), '-device', JSON.stringify(device)];
}

/** The IDS side of inter-VM disk mounting: the server's disk hot-plugged readonly + shareable. */
export function idsDisk(image: string, diskName: string, serial: string, index: number, formatNode = false): KubeVirtDisk {
  return { image, nodeName: `libvirt-${index}`, diskName, readOnly: true, shareable: true, serial, formatNode };
}

export function idsDiskArgs(image: string, diskName: string, serial: string, index: number, formatNode = false): string[] {
  return kubevirtDiskArgs(idsDisk(image, diskName, serial, index, formatNode));
}

/** The server's own PVC disk: read-write, not shareable (the server VM is not changed by HyperSpector). */
export function serverDiskArgs(image: string, diskName: string, index: number): string[] {
  return kubevirtDiskArgs({ image, nodeName: `libvirt-${index}`, diskName, readOnly: false, shareable: false });
}

/**
 * Empty PCIe root ports for hot-plug, as KubeVirt asks libvirt to keep on q35 (a virtio-blk-pci
 * device can only be hot-plugged into a free port), named like libvirt's pci.N.
 */
export function hotplugPortArgs(count: number): string[] {
  return Array.from({ length: count }, (_, i) => ['-device', JSON.stringify({ driver: 'pcie-root-port', id: `pci.${i + 1}`, chassis: i + 1, port: 16 + i, bus: 'pcie.0' })]).flat();
}
