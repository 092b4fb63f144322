// Disk inspection, Snapshot mode, the Kubernetes objects (pure): a CSI VolumeSnapshot of a server
// volume's claim, the claim restored from it, and the read-only hot-plugged disk that carries the
// copy into the IDS VM. Each snapshot generation of a volume shares one name across the three
// objects (`<serial>-g<generation>`), labelled with the MonitoredServer and the volume's serial and
// annotated with its generation, so the planner reads the whole rotation back from the cluster.
import type { MonitoredServer } from '../api/v1alpha1/monitoredserver-types.ts';
import type { KubeObject, ObjectMeta, PersistentVolumeClaim, VirtualMachineDisk, VirtualMachineVolume } from '../kube/client/objects.ts';
import type { ResourceType } from '../kube/client/resources.ts';
import { HOTPLUG_DISK_BUS, idsVolumeName } from './disk-inspection.ts';
import { ownerReference, roleLabels } from './names.ts';

export const VOLUME_SNAPSHOT: ResourceType = { apiVersion: 'snapshot.storage.k8s.io/v1', kind: 'VolumeSnapshot', plural: 'volumesnapshots', namespaced: true };
/** Label with the serial of the server volume a snapshot or copy is of. */
export const LABEL_DISK_SERIAL = 'hyperspector.io/disk-serial';
/** Annotation with the generation of a snapshot or copy (1, 2, ...: the rotation order). */
export const ANNOTATION_SNAPSHOT_GENERATION = 'hyperspector.io/snapshot-generation';
/** Annotation on a copy's claim: when KubeVirt first reported the copy Ready in the IDS VMI (RFC 3339). */
export const ANNOTATION_COPY_READY_AT = 'hyperspector.io/copy-ready-at';
/**
 * Annotation on a copy's claim: the IDS guest has had a remount round since the copy was Ready, so
 * the copy it replaces may be unplugged ("true").
 */
export const ANNOTATION_HANDOVER_DONE = 'hyperspector.io/handover-done';
/** Annotation with the server volume's name (spec.server.disks entry). */
export const ANNOTATION_SERVER_VOLUME = 'hyperspector.io/server-volume';

/** snapshot.storage.k8s.io/v1 VolumeSnapshot: the fields HyperSpector writes and reads. */
export interface VolumeSnapshot {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec?: { source?: { persistentVolumeClaimName?: string; volumeSnapshotContentName?: string }; volumeSnapshotClassName?: string };
  status?: { readyToUse?: boolean; creationTime?: string; restoreSize?: string; boundVolumeSnapshotContentName?: string; error?: { message?: string; time?: string } };
}

/** Name of generation `generation` of the snapshot, its restored claim and its disk in the IDS VM (a DNS label). */
export function snapshotCopyName(ms: MonitoredServer, volume: string, generation: number): string {
  return `${idsVolumeName(ms, volume)}-g${generation}`;
}

/** The generation of one of our snapshots or copies, from its annotation (or its name); undefined if neither tells. */
export function generationOf(obj: { metadata?: ObjectMeta } | undefined): number | undefined {
  const annotated = Number(obj?.metadata?.annotations?.[ANNOTATION_SNAPSHOT_GENERATION]);
  if (Number.isInteger(annotated) && annotated > 0) return annotated;
  const m = /-g(\d+)$/.exec(obj?.metadata?.name ?? '');
  return m ? Number(m[1]) : undefined;
}

function copyMeta(ms: MonitoredServer, volume: string, generation: number): ObjectMeta {
  return {
    name: snapshotCopyName(ms, volume, generation),
    namespace: ms.metadata.namespace,
    labels: { ...roleLabels(ms, 'disk-snapshot'), [LABEL_DISK_SERIAL]: idsVolumeName(ms, volume) },
    annotations: { [ANNOTATION_SNAPSHOT_GENERATION]: String(generation), [ANNOTATION_SERVER_VOLUME]: volume },
    ownerReferences: [ownerReference(ms)],
  };
}

/** A VolumeSnapshot of the server volume's claim; the class from the spec, else the snapshot controller's default for the driver. */
export function buildVolumeSnapshot(ms: MonitoredServer, volume: string, claimName: string, generation: number): VolumeSnapshot & KubeObject {
  const className = ms.spec.diskInspection?.snapshot?.volumeSnapshotClassName;
  return {
    apiVersion: VOLUME_SNAPSHOT.apiVersion,
    kind: VOLUME_SNAPSHOT.kind,
    metadata: copyMeta(ms, volume, generation),
    spec: { source: { persistentVolumeClaimName: claimName }, ...(className ? { volumeSnapshotClassName: className } : {}) },
  };
}

/** Kubernetes quantity in bytes (the binary and decimal suffixes claims use); undefined if unreadable. */
export function quantityBytes(q: string | undefined): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/.exec(q ?? '');
  if (!m) return undefined;
  const units: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };
  return Number(m[1]) * (m[2] ? units[m[2]]! : 1);
}

/**
 * The claim restored from the snapshot: the source claim's storage class, access modes and volume
 * mode, and the larger of its request and the snapshot's restoreSize (a restore may not be smaller).
 */
export function buildRestoredClaim(ms: MonitoredServer, volume: string, generation: number, source: PersistentVolumeClaim, snapshot: VolumeSnapshot): PersistentVolumeClaim & KubeObject {
  const requested = source.spec?.resources?.requests?.storage as string | undefined;
  const restore = snapshot.status?.restoreSize;
  const size = (quantityBytes(restore) ?? 0) > (quantityBytes(requested) ?? 0) ? restore : (requested ?? restore ?? '1Gi');
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: copyMeta(ms, volume, generation),
    spec: {
      accessModes: source.spec?.accessModes ?? ['ReadWriteOnce'],
      ...(source.spec?.storageClassName !== undefined ? { storageClassName: source.spec.storageClassName } : {}),
      ...(source.spec?.volumeMode ? { volumeMode: source.spec.volumeMode } : {}),
      resources: { requests: { storage: size ?? '1Gi' } },
      dataSource: { apiGroup: 'snapshot.storage.k8s.io', kind: VOLUME_SNAPSHOT.kind, name: snapshot.metadata?.name ?? snapshotCopyName(ms, volume, generation) },
    },
  };
}

/**
 * The copy in the IDS VM: read-only at the device and in the attachment pod, hotpluggable, with the
 * server volume's serial, so the guest's mount script finds every generation under the same name.
 * Only the IDS VM opens a copy: it is not shareable.
 */
export function buildSnapshotCopyDisk(ms: MonitoredServer, volume: string, generation: number): { disk: VirtualMachineDisk; volume: VirtualMachineVolume } {
  const name = snapshotCopyName(ms, volume, generation);
  return {
    disk: { name, disk: { bus: HOTPLUG_DISK_BUS, readonly: true }, serial: idsVolumeName(ms, volume) },
    volume: { name, persistentVolumeClaim: { claimName: name, readOnly: true, hotpluggable: true } },
  };
}
