// Planner: inter-VM disk mounting, Live mode. Each server volume named in spec.server.disks is
// plugged into the IDS VM read-only and shareable, by KubeVirt's declarative hotplug (the disks are
// part of the IDS VM spec we apply) or, where the KubeVirt CR shows only the older HotplugVolumes
// gate, by the VM's addvolume/removevolume subresources. The IDS VM's user data (the user's, with the
// mount script merged in) lives in a Secret of ours. What cannot work is refused before anything is
// touched: the IDS VM keeps exactly the disks it has.
import { isDeepStrictEqual } from 'node:util';
import type { MonitoredServer } from '../../../api/v1alpha1/monitoredserver-types.ts';
import {
  addVolumeOptions,
  buildHotplugDisk,
  buildIdsCloudInitSecret,
  buildIdsUserData,
  claimNameOf,
  DEFAULT_MOUNT_PATH,
  hotplugSupport,
  idsVolumeName,
  NETWORK_DATA_SECRET_KEY,
  templateUserData,
  USER_DATA_SECRET_KEY,
  type HotplugMethod,
  type IdsDiskInspection,
  type InspectedVolume,
} from '../../../builders/disk-inspection.ts';
import { INTAKE_DATA_KEYS } from '../../../builders/ids-intake.ts';
import { idsCloudInitSecretName, idsVmName } from '../../../builders/names.ts';
import { needsApply } from '../../../kube/client/apply.ts';
import type { Secret, VirtualMachine, VirtualMachineDisk, VirtualMachineVolume } from '../../../kube/client/objects.ts';
import { SECRET } from '../../../kube/client/resources.ts';
import { statusCodeOf } from '../../../kube/client/rest.ts';
import type { Action } from '../actions.ts';
import { vmiIsRunning, type ObservedState } from '../observed-state.ts';
import { EventReason, Reason } from '../reasons.ts';
import { resolveRotations, snapshotHotplug, type VolumeRotation } from './disk-snapshot.ts';

export interface DiskInspectionPlan {
  /** How disks are plugged, with the words for the condition message (when known). */
  method?: HotplugMethod;
  methodDescription?: string;
  /** Something only the user can fix: nothing is changed while it stands. */
  refusal?: { reason: string; message: string };
  /** Nothing to do yet (e.g. no server VM): nothing is changed. */
  waiting?: string;
  /** The server volumes to plug (empty on a refusal). */
  volumes: InspectedVolume[];
  /** What the IDS VM gets (undefined: the template as is). */
  ids?: IdsDiskInspection;
  /** The Secret with the merged user data, to apply. */
  secret?: Secret & { apiVersion: 'v1'; kind: 'Secret' };
  /** The disks the IDS VM should have plugged (Snapshot mode: the copies; Live mode: the server volumes). */
  wanted?: Array<{ disk: VirtualMachineDisk; volume: VirtualMachineVolume }>;
  /** Snapshot mode: each volume's generations and which are plugged. */
  rotations?: VolumeRotation[];
}

function sourceOf(volume: VirtualMachineVolume): string {
  return Object.keys(volume).find((k) => k !== 'name') ?? 'unknown';
}

/** Our hot-plugged disks in the live IDS VM: hotpluggable claim volumes named like a serial of ours, not from the template. */
function livePlugged(ms: MonitoredServer, live: VirtualMachine | undefined): Array<{ disk: VirtualMachineDisk; volume: VirtualMachineVolume }> {
  const spec = live?.spec?.template?.spec;
  if (!spec) return [];
  const templateVolumes = new Set((ms.spec.ids.template.spec?.template?.spec?.volumes ?? []).map((v) => v.name));
  const disks = spec.domain?.devices?.disks ?? [];
  const out: Array<{ disk: VirtualMachineDisk; volume: VirtualMachineVolume }> = [];
  for (const volume of spec.volumes ?? []) {
    const hotpluggable = volume.persistentVolumeClaim?.hotpluggable || volume.dataVolume?.hotpluggable;
    if (!hotpluggable || templateVolumes.has(volume.name) || !volume.name.startsWith('hs-')) continue;
    const disk = disks.find((d) => d.name === volume.name);
    if (disk) out.push({ disk, volume });
  }
  return out;
}

/** True when the live IDS VM's cloud-init volume already reads our Secret. */
function usesOurSecret(ms: MonitoredServer, live: VirtualMachine | undefined): boolean {
  const name = idsCloudInitSecretName(ms);
  return (live?.spec?.template?.spec?.volumes ?? []).some((v) => (v.cloudInitNoCloud ?? v.cloudInitConfigDrive)?.secretRef?.name === name);
}

/** The IDS VM as it is: the disks it has, and our Secret if it already reads it. */
function unchanged(ms: MonitoredServer, live: VirtualMachine | undefined): IdsDiskInspection | undefined {
  const hotplug = livePlugged(ms, live);
  const secret = usesOurSecret(ms, live);
  if (hotplug.length === 0 && !secret) return undefined;
  return { hotplug, ...(secret ? { cloudInitSecretName: idsCloudInitSecretName(ms) } : {}) };
}

/** Checks each named server volume; the first that cannot be plugged is the refusal. */
function resolveVolumes(ms: MonitoredServer, o: ObservedState): { volumes: InspectedVolume[] } | { refusal: { reason: string; message: string } } {
  const ns = ms.metadata.namespace;
  const vmName = o.serverVm?.metadata?.name ?? '';
  const serverVolumes = o.serverVm?.spec?.template?.spec?.volumes ?? [];
  const volumes: InspectedVolume[] = [];
  for (const name of ms.spec.server.disks ?? []) {
    const volume = serverVolumes.find((v) => v.name === name);
    if (!volume) {
      const known = serverVolumes.map((v) => v.name).join(', ') || 'none';
      return {
        refusal: {
          reason: Reason.DiskVolumeNotFound,
          message: `spec.server.disks names ${name}, which is not a volume of VirtualMachine ${ns}/${vmName} (its volumes: ${known}); name one of its PersistentVolumeClaim or DataVolume volumes`,
        },
      };
    }
    const claimName = claimNameOf(volume);
    if (!claimName) {
      const source = sourceOf(volume);
      return {
        refusal: {
          reason: Reason.DiskVolumeUnsupported,
          message: `volume ${name} of VirtualMachine ${ns}/${vmName} is a ${source} volume: only PersistentVolumeClaim and DataVolume volumes can be plugged into the IDS VM (other volumes live inside the server's launcher pod); remove ${name} from spec.server.disks`,
        },
      };
    }
    const claim = o.claims?.[claimName];
    if (!claim) {
      return {
        refusal: {
          reason: Reason.DiskClaimNotFound,
          message: `PersistentVolumeClaim ${ns}/${claimName} behind volume ${name} of VirtualMachine ${ns}/${vmName} does not exist; create it, or remove ${name} from spec.server.disks`,
        },
      };
    }
    if ((claim.spec?.accessModes ?? []).includes('ReadWriteOncePod')) {
      return {
        refusal: {
          reason: Reason.DiskClaimReadWriteOncePod,
          message: `PersistentVolumeClaim ${ns}/${claimName} behind volume ${name} has access mode ReadWriteOncePod: only the server's pod may mount it, so the IDS VM cannot read it; use ReadWriteOnce or ReadWriteMany, or remove ${name} from spec.server.disks`,
        },
      };
    }
    volumes.push({ volumeName: name, claimName });
  }
  return { volumes };
}

/**
 * Everything disk inspection decides for one MonitoredServer (pure; used by the planners and the
 * status). With `networkData` (networking gives the IDS VM its address), the same Secret also carries
 * the network data and the IDS VM reads it from there; the user data stays what it is (the merged
 * one when disks are inspected, the template's otherwise, or what the Secret already holds while disk
 * inspection is refused).
 */
export function resolveDiskInspection(ms: MonitoredServer, o: ObservedState, networkData?: string): DiskInspectionPlan {
  const base = resolveDiskInspectionAlone(ms, o);
  if (networkData === undefined) return base;
  const name = idsCloudInitSecretName(ms);
  const ids: IdsDiskInspection = { ...(base.ids ?? { hotplug: [] }), networkDataSecretName: name };
  if (base.secret) {
    const data = base.secret.data ?? {};
    return { ...base, ids, secret: buildIdsCloudInitSecret(ms, Buffer.from(data[USER_DATA_SECRET_KEY] ?? '', 'base64').toString('utf8'), networkData) };
  }
  let userData: string | undefined;
  const kept = o.idsCloudInitSecret?.data?.[USER_DATA_SECRET_KEY];
  if (ids.cloudInitSecretName && kept !== undefined) {
    userData = Buffer.from(kept, 'base64').toString('utf8');
  } else {
    const user = templateUserData(ms);
    // The user's own Secret (secretRef) stays where it is; inline user data moves into ours.
    if (!('error' in user) && user.userData !== undefined) {
      userData = user.userData;
      ids.cloudInitSecretName = name;
    }
  }
  return { ...base, ids, secret: buildIdsCloudInitSecret(ms, userData, networkData) };
}

function resolveDiskInspectionAlone(ms: MonitoredServer, o: ObservedState): DiskInspectionPlan {
  const live = o.idsNameTaken ? undefined : o.idsVm;
  const disks = ms.spec.server.disks ?? [];
  const mode = ms.spec.diskInspection?.mode ?? 'Live';
  const mountPath = ms.spec.diskInspection?.mountPath ?? DEFAULT_MOUNT_PATH;
  const keep = unchanged(ms, live);
  const keepOnly = (extra: Partial<DiskInspectionPlan>): DiskInspectionPlan => ({ volumes: [], ...(keep ? { ids: keep } : {}), ...extra });
  const snapshotMode = mode === 'Snapshot';
  if (disks.length === 0) {
    // Once the IDS VM reads our Secret it keeps doing so (switching back would restart it); the
    // Secret then mounts nothing.
    if (!keep?.cloudInitSecretName) return keepOnly({});
    const secret = buildIdsCloudInitSecret(ms, buildIdsUserData(ms, { disks: [], mode, mountPath }));
    // Subresource mode: the last disks go through removevolume too (KubeVirt applies a VM spec
    // without them only at the next restart), so the spec we apply keeps them meanwhile.
    const emptied = hotplugSupport(o.kubevirt);
    if (emptied.method === 'Subresource' && keep.hotplug.length > 0) {
      return { method: emptied.method, methodDescription: emptied.description, volumes: [], ids: { hotplug: keep.hotplug, cloudInitSecretName: idsCloudInitSecretName(ms) }, secret };
    }
    return { volumes: [], ids: { hotplug: [], cloudInitSecretName: idsCloudInitSecretName(ms) }, secret };
  }
  if (o.serverClaimedBy || o.serverNameTaken || !o.serverVm) return keepOnly({ waiting: 'waiting for the server VM, whose volumes are plugged into the IDS VM' });
  const support = hotplugSupport(o.kubevirt);
  const resolved = resolveVolumes(ms, o);
  if ('refusal' in resolved) return keepOnly({ refusal: resolved.refusal, ...(support.method ? { method: support.method, methodDescription: support.description } : {}) });
  if (!support.method) return keepOnly({ refusal: { reason: Reason.HotplugUnavailable, message: support.message } });
  if (snapshotMode && !o.snapshotApiUnavailable && o.diskSnapshots === undefined) return keepOnly({ waiting: 'waiting for the VolumeSnapshot cache to list our snapshots' });
  if (snapshotMode && o.snapshotApiUnavailable) {
    return keepOnly({
      refusal: {
        reason: Reason.SnapshotAPIUnavailable,
        message: `spec.diskInspection.mode Snapshot needs CSI VolumeSnapshots (snapshot.storage.k8s.io/v1), which the operator cannot read: ${o.snapshotApiUnavailable}; install the external-snapshotter CRDs and snapshot controller (and a CSI driver with snapshots), or use mode Live`,
      },
      method: support.method,
      methodDescription: support.description,
    });
  }
  let userData: string;
  try {
    userData = buildIdsUserData(ms, { disks: resolved.volumes, mode, mountPath });
  } catch (err) {
    return keepOnly({
      refusal: {
        reason: Reason.IDSCloudInitUnmergeable,
        message: `the IDS VM's user data cannot take the disk-inspection cloud-init that mounts the server's disks: ${(err as Error).message}`,
      },
      method: support.method,
      methodDescription: support.description,
    });
  }
  const rotations = snapshotMode ? resolveRotations(ms, o, resolved.volumes) : undefined;
  const wanted = rotations ? snapshotHotplug(ms, rotations) : resolved.volumes.map((v) => buildHotplugDisk(ms, v));
  // Declarative: the IDS VM spec holds exactly the wanted disks (KubeVirt plugs and unplugs to
  // match). Subresource: a new IDS VM is created with them; later changes go through addvolume and
  // removevolume, and the spec we apply keeps what KubeVirt has (apply would otherwise drop them).
  const hotplug = support.method === 'Declarative' || !live ? wanted : livePlugged(ms, live);
  return {
    method: support.method,
    methodDescription: support.description,
    volumes: resolved.volumes,
    ids: { hotplug, cloudInitSecretName: idsCloudInitSecretName(ms) },
    secret: buildIdsCloudInitSecret(ms, userData),
    wanted,
    ...(rotations ? { rotations } : {}),
  };
}

/**
 * The live IDS VM has a hot-plugged disk of ours the desired one does not: the apply must be sent
 * (it replaces KubeVirt's atomic volume and disk lists), even where needsApply sees no difference.
 */
export function hasDisksToDrop(ms: MonitoredServer, o: ObservedState): boolean {
  const live = o.idsNameTaken ? undefined : o.idsVm;
  const keep = new Set((resolveDiskInspection(ms, o).ids?.hotplug ?? []).map((h) => h.volume.name));
  return livePlugged(ms, live).some((p) => !keep.has(p.volume.name));
}

/** Keys of the IDS VM's Secret the operator writes: cloud-init's and the intake's (others' keys are left alone). */
const OUR_SECRET_KEYS: ReadonlySet<string> = new Set([USER_DATA_SECRET_KEY, NETWORK_DATA_SECRET_KEY, ...INTAKE_DATA_KEYS]);

function ourKeys(data: Record<string, string> | undefined): string[] {
  return Object.keys(data ?? {}).filter((k) => OUR_SECRET_KEYS.has(k)).sort();
}

/**
 * The IDS VM's one Secret, applied before the IDS VM that reads it (capability idsVM): its user data
 * (disk inspection), its network data (networking) and the alert intake's token data
 * (`intakeData`, planIdsIntake). `waitForNetwork`: networking gives the IDS VM an address not yet
 * claimed; the IDS VM waits for it, and the Secret is written once, with it.
 */
export function planIdsCloudInit(ms: MonitoredServer, o: ObservedState, networkData?: string, intakeData?: Record<string, string>, waitForNetwork = false): Action[] {
  if (waitForNetwork) return [];
  const plan = resolveDiskInspection(ms, o, networkData);
  const live = o.idsCloudInitSecret;
  // Nothing of cloud-init's: the Secret holds the token data, or is emptied of what it held.
  const cloudInit = plan.secret ?? (intakeData || ourKeys(live?.data).length > 0 ? buildIdsCloudInitSecret(ms, undefined) : undefined);
  if (!cloudInit) return [];
  const secret = intakeData ? { ...cloudInit, data: { ...cloudInit.data, ...intakeData } } : cloudInit;
  // A key we no longer write (the intake turned off, disks no longer inspected) goes with the apply.
  if (live && !needsApply(secret, live) && isDeepStrictEqual(ourKeys(live.data), ourKeys(secret.data))) return [];
  const name = secret.metadata?.name ?? '';
  const epoch = intakeData?.epoch ? ` (intake token of epoch ${Buffer.from(intakeData.epoch, 'base64').toString()})` : '';
  return [
    {
      type: 'apply',
      capability: 'idsVM',
      failureReason: 'ApplyIDSCloudInitFailed',
      log: `${live ? 'Apply' : 'Create'} the IDS VM's Secret ${ms.metadata.namespace}/${name}${epoch}`,
      resource: SECRET,
      object: secret,
    },
  ];
}

/** The subresources refuse a request only the user can fix (an invalid disk, the gate turned off): 400/422. */
export function isRefusedHotplug(err: unknown): boolean {
  const code = statusCodeOf(err);
  return code === 400 || code === 422;
}

function subresourcePath(ns: string, vm: string, verb: 'addvolume' | 'removevolume'): string {
  return `/apis/subresources.kubevirt.io/v1/namespaces/${encodeURIComponent(ns)}/virtualmachines/${encodeURIComponent(vm)}/${verb}`;
}

/** KubeVirt's pending add and remove requests on the live IDS VM, by volume name. */
function pendingRequests(live: VirtualMachine): { add: Set<string>; remove: Set<string> } {
  const requests = live.status?.volumeRequests ?? [];
  const names = (pick: (r: (typeof requests)[number]) => string | undefined) => new Set(requests.map(pick).filter((n): n is string => Boolean(n)));
  return { add: names((r) => r.addVolumeOptions?.name), remove: names((r) => r.removeVolumeOptions?.name) };
}

/**
 * Subresource mode: our hot-plugged volumes in the live IDS VM's spec that its running VMI does not
 * have and that KubeVirt holds no request for. For a moment that is only a VMI watch event lagging
 * the VM's; if it lasts, KubeVirt lost the request: virt-controller (v1.8) writes an addvolume into
 * the VM spec and drops the request even when its call to the VMI failed because the VMI, created
 * from the spec a moment earlier, was not running yet. The running VMI then never gets the disk. The
 * controller tracks how long each name has stood so (planDiskHotplug's `lost`).
 */
export function hotplugsMissingFromVmi(ms: MonitoredServer, o: ObservedState): string[] {
  const live = o.idsNameTaken ? undefined : o.idsVm;
  if (!live || live.metadata?.deletionTimestamp || !vmiIsRunning(o.idsVmi) || hotplugSupport(o.kubevirt).method !== 'Subresource') return [];
  const inVmi = new Set((o.idsVmi?.spec?.volumes ?? []).map((v) => v.name));
  const pending = pendingRequests(live);
  return livePlugged(ms, live)
    .map((p) => p.volume.name)
    .filter((name) => !inVmi.has(name) && !pending.add.has(name) && !pending.remove.has(name));
}

/**
 * Subresource mode only, once the IDS VMI runs (KubeVirt plugs into a running VMI; a request sent
 * while the VMI starts can be lost, see hotplugsMissingFromVmi): addvolume for each wanted disk the
 * IDS VM does not have, removevolume for each of ours it should no longer have; none while KubeVirt
 * still holds a request for that volume. `lost`: wanted volumes KubeVirt wrote into the IDS VM spec
 * but never into its running VMI, long enough to be sure: removevolume takes each out of the spec,
 * and the next reconcile plugs it again.
 */
export function planDiskHotplug(ms: MonitoredServer, o: ObservedState, lost: ReadonlySet<string> = new Set()): Action[] {
  const plan = resolveDiskInspection(ms, o);
  const live = o.idsNameTaken ? undefined : o.idsVm;
  if (plan.method !== 'Subresource' || plan.refusal || plan.waiting || !plan.secret || !live || live.metadata?.deletionTimestamp || !vmiIsRunning(o.idsVmi)) return [];
  const ns = ms.metadata.namespace ?? '';
  const vm = idsVmName(ms);
  const pending = pendingRequests(live);
  const plugged = new Set(livePlugged(ms, live).map((p) => p.volume.name));
  const inSpec = new Set((live.spec?.template?.spec?.volumes ?? []).map((v) => v.name));
  const wanted = new Map((plan.wanted ?? []).map((w) => [w.disk.name, w]));
  const actions: Action[] = [];
  const removal = (name: string, why: string): Action => ({
    type: 'subresource',
    capability: 'diskInspection',
    failureReason: 'RemoveVolumeFailed',
    log: `Unplug ${name} from IDS VirtualMachine ${ns}/${vm}: ${why}`,
    path: subresourcePath(ns, vm, 'removevolume'),
    body: { name },
    refusedWhen: isRefusedHotplug,
    tolerate: [409],
    event: { type: 'Normal', reason: EventReason.DiskUnplugged, message: `Asked KubeVirt to unplug ${name} from ${vm} (removevolume): ${why}` },
  });
  for (const [name, w] of wanted) {
    if (pending.add.has(name)) continue;
    if (inSpec.has(name)) {
      if (lost.has(name) && !pending.remove.has(name)) actions.push(removal(name, 'KubeVirt wrote it into the IDS VM spec but never into its running VMI (a hot-plug request lost while the VMI started); it is plugged again next'));
      continue;
    }
    const claimName = w.volume.persistentVolumeClaim?.claimName ?? '';
    const serverVolume = plan.volumes.find((v) => idsVolumeName(ms, v.volumeName) === w.disk.serial)?.volumeName ?? name;
    actions.push({
      type: 'subresource',
      capability: 'diskInspection',
      failureReason: 'AddVolumeFailed',
      log: `Hot-plug server volume ${serverVolume} (claim ${claimName}) read-only into IDS VirtualMachine ${ns}/${vm} as ${name}`,
      path: subresourcePath(ns, vm, 'addvolume'),
      body: addVolumeOptions(w),
      refusedWhen: isRefusedHotplug,
      // 409: KubeVirt already holds a request for this volume (our earlier one, not yet in the cache).
      tolerate: [409],
      event: { type: 'Normal', reason: EventReason.DiskPlugged, message: `Asked KubeVirt to hot-plug server volume ${serverVolume} (claim ${claimName}) read-only into ${vm} (addvolume)` },
    });
  }
  const why = (name: string) => (/-g\d+$/.test(name) && plan.rotations ? 'a superseded snapshot copy' : 'no longer in spec.server.disks');
  for (const name of plugged) {
    if (wanted.has(name) || pending.remove.has(name)) continue;
    actions.push(removal(name, why(name)));
  }
  return actions;
}
