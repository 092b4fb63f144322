// Which of a VMI's disks a real guest gets, and how (pure): every disk backed by a
// PersistentVolumeClaim or a DataVolume (its claim has the DataVolume's name). Those that are not
// hot-plugged are attached at boot, as virt-launcher's domain has them; hot-plugged ones (the
// volume says `hotpluggable: true`, or virt-controller lists it with `hotplugVolume` in
// status.volumeStatus) are plugged over QMP once the virt-handler stand-in reports them mounted into
// the launcher pod. Other volumes (containerDisk, cloud-init, ...) are not disks of the test guest,
// which boots its kernel directly. The QEMU objects are libvirt's (testenv/kubevirt/kubevirt-disk-options.ts).
import { kubevirtDiskSpec, type KubeVirtDisk } from '../kubevirt/kubevirt-disk-options.ts';
import type { Vmi } from '../kubevirt/virt-handler-status.ts';

export interface VmiClaimDisk {
  /** The volume's (and the disk's) name in the VMI spec. */
  volumeName: string;
  claimName: string;
  readOnly: boolean;
  shareable: boolean;
  serial?: string;
  hotplug: boolean;
}

/* eslint-disable @typescript-eslint/no-explicit-any -- VMI spec is KubeVirt's open schema here */

/** The VMI's PVC- and DataVolume-backed disks, in the order of spec.volumes. Throws for a disk this test guest cannot have. */
export function claimDisks(vmi: Vmi): VmiClaimDisk[] {
  const disks = new Map<string, any>((vmi.spec?.domain?.devices?.disks ?? []).map((d: any) => [d.name, d]));
  const hotplugStatus = new Set<string>((vmi.status?.volumeStatus ?? []).filter((v: any) => v.hotplugVolume).map((v: any) => v.name));
  const out: VmiClaimDisk[] = [];
  for (const volume of vmi.spec?.volumes ?? []) {
    const source = volume.persistentVolumeClaim ?? volume.dataVolume;
    if (!source) continue;
    const disk = disks.get(volume.name);
    if (!disk) continue; // a volume without a disk (e.g. a filesystem): not a block device of the guest
    const bus = disk.disk?.bus ?? 'virtio';
    if (!disk.disk || bus !== 'virtio') {
      throw new Error(`disk ${volume.name} of VMI ${vmi.metadata.namespace}/${vmi.metadata.name}: the real-guest test double attaches only virtio disks (this one is ${disk.disk ? `bus ${bus}` : Object.keys(disk).filter((k) => k !== 'name').join('/')})`);
    }
    out.push({
      volumeName: volume.name,
      claimName: volume.persistentVolumeClaim ? volume.persistentVolumeClaim.claimName : volume.dataVolume.name,
      readOnly: disk.disk.readonly === true,
      shareable: disk.shareable === true,
      ...(disk.serial ? { serial: String(disk.serial) } : {}),
      hotplug: source.hotpluggable === true || hotplugStatus.has(volume.name),
    });
  }
  return out;
}

/** libvirt's disk description for one of them over its image; `index` numbers libvirt's node names. */
export function libvirtDisk(disk: VmiClaimDisk, image: string, index: number): KubeVirtDisk {
  return {
    image,
    nodeName: `libvirt-${index}`,
    diskName: disk.volumeName,
    readOnly: disk.readOnly,
    shareable: disk.shareable,
    ...(disk.serial ? { serial: disk.serial } : {}),
  };
}

/** The QEMU arguments of the disks attached at boot (on the root bus, as libvirt places cold-plugged disks). */
export function bootDiskArgs(disks: Array<{ disk: VmiClaimDisk; image: string }>): string[] {
  return disks.flatMap(({ disk, image }, i) => {
    const { blockdevs, device } = kubevirtDiskSpec(libvirtDisk(disk, image, i + 1));
    return [...blockdevs.flatMap((b) => ['-blockdev', JSON.stringify(b)]), '-device', JSON.stringify(device)];
  });
}
