// Inter-VM disk mounting, the Kubernetes side (pure): which hotplug mechanism the cluster's KubeVirt
// offers, the read-only shareable disk and hotpluggable volume that carry one server volume into the
// IDS VM, the Secret with the IDS VM's merged user data, and the IDS VM spec with both.
// The in-guest half (mount script, user-data merge) is disk-inspection-cloud-init.ts.
import type { MonitoredServer } from '../api/v1alpha1/monitoredserver-types.ts';
import type { KubeVirt, Secret, VirtualMachine, VirtualMachineDisk, VirtualMachineVolume } from '../kube/client/objects.ts';
import {
  buildDiskInspectionCloudInit,
  diskSerialForVolume,
  mergeDiskInspectionUserData,
  type DiskInspectionMode,
} from './disk-inspection-cloud-init.ts';
import { idsCloudInitSecretName, ownerReference, roleLabels } from './names.ts';

export const HOTPLUG_VOLUMES_GATE = 'HotplugVolumes';
export const DECLARATIVE_HOTPLUG_VOLUMES_GATE = 'DeclarativeHotplugVolumes';
/** KubeVirt release from which DeclarativeHotplugVolumes is Beta, on unless disabled. */
const DECLARATIVE_DEFAULT_ON_FROM: [number, number] = [1, 9];
export const DEFAULT_MOUNT_PATH = '/.serverfs';
/** How often the IDS guest re-mounts the server's disks (Live mode). */
export const REMOUNT_INTERVAL_SECONDS = 60;
/**
 * The bus of a hot-plugged disk. KubeVirt v1.8 allows `scsi` or `virtio` for a hot-plugged `disk`
 * (pkg/storage/admitters/storagehotplug.go ValidateHotplugDiskConfiguration); virtio-blk is what the
 * QEMU proof (test/host/disk/) ran, and its 20-byte serial is what diskSerialForVolume fits.
 */
export const HOTPLUG_DISK_BUS = 'virtio';
/** Key of the user data in a cloud-init userDataSecretRef Secret (KubeVirt reads `userdata` or `userData`). */
export const USER_DATA_SECRET_KEY = 'userdata';
/** Key of the network data in the same Secret (KubeVirt reads `networkdata` or `networkData`). */
export const NETWORK_DATA_SECRET_KEY = 'networkdata';
/** Disk and volume name of the cloud-init drive added to an IDS template that has none. */
export const CLOUD_INIT_VOLUME = 'hs-cloudinit';

/** How KubeVirt takes a volume into a running VM. */
export type HotplugMethod = 'Declarative' | 'Subresource';

export type HotplugSupport = { method: HotplugMethod; description: string } | { method: undefined; message: string };

function version(kubevirt: KubeVirt): [number, number] | undefined {
  const v = kubevirt.status?.observedKubeVirtVersion ?? kubevirt.status?.targetKubeVirtVersion;
  const m = /^v?(\d+)\.(\d+)/.exec(v ?? '');
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/**
 * The hotplug mechanism of the cluster's KubeVirt, decided as its virt-controller decides
 * (v1.8.2 pkg/virt-controller/watch/vm/vm.go handleDeclarativeVolumeHotplug): the VM spec's
 * hotpluggable volumes are synced to the running VMI only when DeclarativeHotplugVolumes is on and
 * HotplugVolumes is off; with HotplugVolumes on, volumes are plugged through the addvolume and
 * removevolume subresources. A gate is on when listed in featureGates, or (DeclarativeHotplugVolumes
 * from KubeVirt 1.9, Beta) unless listed in disabledFeatureGates.
 */
export function hotplugSupport(kubevirt: KubeVirt | undefined): HotplugSupport {
  if (!kubevirt) {
    return {
      method: undefined,
      message:
        'no KubeVirt CR (kubevirt.io/v1 KubeVirt) could be read, so the hotplug feature gates are unknown: is KubeVirt installed, and does the operator have its ClusterRole to read KubeVirt CRs?',
    };
  }
  const dev = kubevirt.spec?.configuration?.developerConfiguration;
  const enabled = new Set(dev?.featureGates ?? []);
  const disabled = new Set(dev?.disabledFeatureGates ?? []);
  const v = version(kubevirt);
  const declarativeDefault = v !== undefined && (v[0] > DECLARATIVE_DEFAULT_ON_FROM[0] || (v[0] === DECLARATIVE_DEFAULT_ON_FROM[0] && v[1] >= DECLARATIVE_DEFAULT_ON_FROM[1]));
  const declarative = enabled.has(DECLARATIVE_HOTPLUG_VOLUMES_GATE) || (declarativeDefault && !disabled.has(DECLARATIVE_HOTPLUG_VOLUMES_GATE));
  const legacy = enabled.has(HOTPLUG_VOLUMES_GATE);
  const cr = `KubeVirt CR ${kubevirt.metadata?.namespace}/${kubevirt.metadata?.name}`;
  if (declarative && !legacy) {
    return { method: 'Declarative', description: `KubeVirt's declarative hotplug (feature gate ${DECLARATIVE_HOTPLUG_VOLUMES_GATE} in ${cr})` };
  }
  if (legacy) {
    const why = declarative ? `; KubeVirt ignores ${DECLARATIVE_HOTPLUG_VOLUMES_GATE} while ${HOTPLUG_VOLUMES_GATE} is on` : '';
    return { method: 'Subresource', description: `the addvolume/removevolume subresources (feature gate ${HOTPLUG_VOLUMES_GATE} in ${cr}${why})` };
  }
  return {
    method: undefined,
    message: `the ${cr} enables neither ${DECLARATIVE_HOTPLUG_VOLUMES_GATE} nor ${HOTPLUG_VOLUMES_GATE}, so no volume can be hot-plugged into the IDS VM: add ${DECLARATIVE_HOTPLUG_VOLUMES_GATE} to its spec.configuration.developerConfiguration.featureGates, or remove spec.server.disks`,
  };
}

/** A server volume to plug into the IDS VM, and the claim behind it. */
export interface InspectedVolume {
  /** The volume's name in the server VM (an entry of spec.server.disks). */
  volumeName: string;
  /** The PersistentVolumeClaim: the PVC volume's claim, or a DataVolume's PVC (same name). */
  claimName: string;
}

/** Name of the disk and volume carrying `volume` in the IDS VM: its serial (unique, a DNS label). */
export function idsVolumeName(ms: MonitoredServer, volume: string): string {
  return diskSerialForVolume(ms.metadata.name ?? '', volume);
}

/**
 * The disk: read-only at the device (`readonly`), shareable (QEMU's share-rw, so the server's
 * QEMU keeps its write lock and the IDS opens the image read-only beside it), with the serial the
 * guest's mount script finds it by. The volume: the claim, read-only in the attachment pod too,
 * hotpluggable. A DataVolume is plugged through its PVC so that the pod mounts it read-only as well.
 */
export function buildHotplugDisk(ms: MonitoredServer, v: InspectedVolume): { disk: VirtualMachineDisk; volume: VirtualMachineVolume } {
  const name = idsVolumeName(ms, v.volumeName);
  return {
    disk: { name, disk: { bus: HOTPLUG_DISK_BUS, readonly: true }, shareable: true, serial: name },
    volume: { name, persistentVolumeClaim: { claimName: v.claimName, readOnly: true, hotpluggable: true } },
  };
}

/** The body of the VM's addvolume subresource for the same disk (KubeVirt's AddVolumeOptions). */
export function addVolumeOptions({ disk, volume }: { disk: VirtualMachineDisk; volume: VirtualMachineVolume }): Record<string, unknown> {
  return { name: disk.name, disk, volumeSource: { persistentVolumeClaim: volume.persistentVolumeClaim } };
}

function cloudInitSource(volume: VirtualMachineVolume) {
  return volume.cloudInitNoCloud ?? volume.cloudInitConfigDrive;
}

/**
 * The user's inline user data in the IDS template's cloud-init volume, or an error naming why it
 * cannot be merged (kept in a Secret of the user's: HyperSpector does not read the user's Secrets).
 */
export function templateUserData(ms: MonitoredServer): { userData: string | undefined } | { error: string } {
  const volumes = ms.spec.ids.template.spec?.template?.spec?.volumes ?? [];
  const withCloudInit = volumes.filter((v) => cloudInitSource(v));
  if (withCloudInit.length > 1) return { error: `the IDS template has ${withCloudInit.length} cloud-init volumes; keep one` };
  const source = withCloudInit[0] ? cloudInitSource(withCloudInit[0]) : undefined;
  if (!source) return { userData: undefined };
  if (source.secretRef?.name) {
    return {
      error: `the IDS template's cloud-init volume ${withCloudInit[0]!.name} takes its user data from Secret ${source.secretRef.name}, which HyperSpector does not read: put the user data inline (userData or userDataBase64); HyperSpector moves the merged user data into a Secret of its own`,
    };
  }
  if (source.userDataBase64) return { userData: Buffer.from(source.userDataBase64, 'base64').toString('utf8') };
  return { userData: source.userData };
}

export interface DiskInspectionUserData {
  disks: InspectedVolume[];
  mode: DiskInspectionMode;
  mountPath: string;
}

/** The IDS VM's user data: the user's, with the mount script and its timer merged in. Throws when it cannot be merged. */
export function buildIdsUserData(ms: MonitoredServer, input: DiskInspectionUserData): string {
  const user = templateUserData(ms);
  if ('error' in user) throw new Error(user.error);
  const pieces = buildDiskInspectionCloudInit({
    disks: input.disks.map((d) => ({ volumeName: d.volumeName, serial: idsVolumeName(ms, d.volumeName) })),
    mountPath: input.mountPath,
    mode: input.mode,
    remountIntervalSeconds: REMOUNT_INTERVAL_SECONDS,
  });
  return mergeDiskInspectionUserData(user.userData, pieces);
}

/**
 * The Secret the IDS VM's cloud-init volume references (owned by the MonitoredServer): the user data
 * (when the IDS VM reads it from here) and the network data (when networking gives the IDS VM its
 * address; key `networkdata`, read through networkDataSecretRef).
 */
export function buildIdsCloudInitSecret(ms: MonitoredServer, userData: string | undefined, networkData?: string): Secret & { apiVersion: 'v1'; kind: 'Secret' } {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: idsCloudInitSecretName(ms),
      namespace: ms.metadata.namespace,
      labels: roleLabels(ms, 'ids-cloud-init'),
      ownerReferences: [ownerReference(ms)],
    },
    type: 'Opaque',
    data: {
      ...(userData !== undefined ? { [USER_DATA_SECRET_KEY]: Buffer.from(userData, 'utf8').toString('base64') } : {}),
      ...(networkData !== undefined ? { [NETWORK_DATA_SECRET_KEY]: Buffer.from(networkData, 'utf8').toString('base64') } : {}),
    },
  };
}

/** What disk inspection adds to the IDS VM. */
export interface IdsDiskInspection {
  /** Disks and volumes of the server's volumes, in order. */
  hotplug: Array<{ disk: VirtualMachineDisk; volume: VirtualMachineVolume }>;
  /** The cloud-init volume takes its user data from this Secret (undefined: the template's cloud-init as is). */
  cloudInitSecretName?: string;
  /** The cloud-init volume takes its network data from this Secret (networking: the IDS-network address). */
  networkDataSecretName?: string;
}

type VmiSpec = NonNullable<NonNullable<VirtualMachine['spec']['template']>['spec']>;

/**
 * Adds disk inspection to an IDS VMI spec (a copy): the template's cloud-init volume takes its user
 * data from the Secret instead of inline (network data stays as written), or a cloud-init drive is
 * added when the template has none; the hot-plugged disks and volumes go last.
 */
export function withDiskInspection(vmiSpec: VmiSpec, inspection: IdsDiskInspection): VmiSpec {
  const spec = structuredClone(vmiSpec);
  const devices = spec.domain.devices ?? {};
  let volumes = spec.volumes ?? [];
  let disks = devices.disks ?? [];
  const secretName = inspection.cloudInitSecretName;
  const networkSecretName = inspection.networkDataSecretName;
  if (secretName || networkSecretName) {
    const index = volumes.findIndex((v) => cloudInitSource(v));
    if (index >= 0) {
      const volume = { ...volumes[index]! };
      const key = volume.cloudInitNoCloud ? 'cloudInitNoCloud' : 'cloudInitConfigDrive';
      let source = { ...volume[key]! };
      if (secretName) {
        const { userData: _u, userDataBase64: _b, secretRef: _s, ...rest } = source;
        source = { ...rest, secretRef: { name: secretName } };
      }
      if (networkSecretName) {
        const { networkData: _n, networkDataBase64: _nb, networkDataSecretRef: _ns, ...rest } = source;
        source = { ...rest, networkDataSecretRef: { name: networkSecretName } };
      }
      volume[key] = source;
      volumes = volumes.map((v, i) => (i === index ? volume : v));
    } else {
      const source = { ...(secretName ? { secretRef: { name: secretName } } : {}), ...(networkSecretName ? { networkDataSecretRef: { name: networkSecretName } } : {}) };
      volumes = [...volumes, { name: CLOUD_INIT_VOLUME, cloudInitNoCloud: source }];
      disks = [...disks, { name: CLOUD_INIT_VOLUME, disk: { bus: 'virtio' } }];
    }
  }
  const plugged = new Set(inspection.hotplug.map((h) => h.volume.name));
  volumes = [...volumes.filter((v) => !plugged.has(v.name)), ...inspection.hotplug.map((h) => h.volume)];
  disks = [...disks.filter((d) => !plugged.has(d.name)), ...inspection.hotplug.map((h) => h.disk)];
  spec.volumes = volumes;
  spec.domain = { ...spec.domain, devices: { ...devices, disks } };
  return spec;
}

/** The PersistentVolumeClaim behind a VM volume: a PVC volume's claim, a DataVolume's PVC (same name). */
export function claimNameOf(volume: VirtualMachineVolume): string | undefined {
  return volume.persistentVolumeClaim?.claimName ?? volume.dataVolume?.name;
}
