// Planner: disk inspection, Snapshot mode. For each server volume named in spec.server.disks: a
// CSI VolumeSnapshot of its claim, a claim restored from it, that copy hot-plugged read-only into
// the IDS VM under the volume's serial, and on every interval a new generation rotated in: the new
// copy is plugged before the old one is unplugged, and only an unplugged copy's claim and snapshot
// are deleted, so the IDS VM always has one. Everything is read back from the cluster (the
// generation is in each object's name and annotation; what is plugged is in the IDS VM and its
// VMI), so an operator restarted mid-rotation carries on where the objects are.
import type { MonitoredServer } from '../../../api/v1alpha1/monitoredserver-types.ts';
import { SNAPSHOT_INTERVAL_MINUTES, SNAPSHOT_READY_TIMEOUT_MINUTES } from '../../../api/v1alpha1/monitoredserver-types.ts';
import { REMOUNT_INTERVAL_SECONDS, type InspectedVolume } from '../../../builders/disk-inspection.ts';
import {
  ANNOTATION_COPY_READY_AT,
  ANNOTATION_HANDOVER_DONE,
  ANNOTATION_SERVER_VOLUME,
  buildRestoredClaim,
  buildSnapshotCopyDisk,
  buildVolumeSnapshot,
  generationOf,
  snapshotCopyName,
  VOLUME_SNAPSHOT,
  type VolumeSnapshot,
} from '../../../builders/disk-snapshot.ts';
import type { PersistentVolumeClaim, VirtualMachineDisk, VirtualMachineVolume } from '../../../kube/client/objects.ts';
import { PERSISTENT_VOLUME_CLAIM } from '../../../kube/client/resources.ts';
import type { Action } from '../actions.ts';
import type { ObservedState } from '../observed-state.ts';
import { EventReason } from '../reasons.ts';

/** One generation of a volume's snapshot: the snapshot, its restored claim, and where it is plugged. */
export interface SnapshotCopy {
  generation: number;
  name: string;
  snapshot?: VolumeSnapshot;
  claim?: PersistentVolumeClaim;
  /** In the live IDS VM's spec (KubeVirt plugs it, or keeps it plugged). */
  inSpec: boolean;
  /** In the IDS VMI (spec or volumeStatus): KubeVirt has not finished unplugging it. */
  inVmi: boolean;
  /** Plugged: in the VMI with volumeStatus phase Ready. */
  ready: boolean;
}

export interface VolumeRotation {
  volume: InspectedVolume;
  /** All generations found, oldest first. */
  copies: SnapshotCopy[];
  newest?: SnapshotCopy;
  /** The newest copy plugged and Ready in the IDS VMI: what the IDS reads now. */
  current?: SnapshotCopy;
  /** The copies the IDS VM spec should hold (the new one is added before the old one goes). */
  plug: SnapshotCopy[];
}

/** How the planner sees time: now, and how long a "minute" of the spec lasts (a test flag shortens it). */
export interface SnapshotClock {
  now: Date;
  minuteMs: number;
}

export function intervalMs(ms: MonitoredServer, clock: SnapshotClock): number {
  return (ms.spec.diskInspection?.snapshot?.intervalMinutes ?? SNAPSHOT_INTERVAL_MINUTES.default) * clock.minuteMs;
}

/**
 * How long an old copy stays plugged after its successor is Ready: one round of the IDS guest's
 * remount timer (it moves its mount to the new device) and 10 s for the round itself; shortened
 * with the snapshot minute in tests.
 */
export function handoverMs(clock: SnapshotClock): number {
  return Math.round(((REMOUNT_INTERVAL_SECONDS + 10) * 1000 * clock.minuteMs) / 60_000);
}

export function readyTimeoutMs(ms: MonitoredServer, clock: SnapshotClock): number {
  return (ms.spec.diskInspection?.snapshot?.readyTimeoutMinutes ?? SNAPSHOT_READY_TIMEOUT_MINUTES.default) * clock.minuteMs;
}

function createdAt(obj: { metadata?: { creationTimestamp?: string } } | undefined): number | undefined {
  const t = Date.parse(obj?.metadata?.creationTimestamp ?? '');
  return Number.isFinite(t) ? t : undefined;
}

function volumeOf(obj: { metadata?: { annotations?: Record<string, string> } } | undefined): string | undefined {
  return obj?.metadata?.annotations?.[ANNOTATION_SERVER_VOLUME];
}

/** Which generations of each volume exist, which are plugged, and which the IDS VM spec should hold. */
export function resolveRotations(ms: MonitoredServer, o: ObservedState, volumes: InspectedVolume[]): VolumeRotation[] {
  const live = o.idsNameTaken ? undefined : o.idsVm;
  const inSpec = new Set((live?.spec?.template?.spec?.volumes ?? []).map((v) => v.name));
  const vmi = o.idsVmi && !o.idsVmi.metadata?.deletionTimestamp ? o.idsVmi : undefined;
  const statuses = vmi?.status?.volumeStatus ?? [];
  const inVmiSpec = new Set((vmi?.spec?.volumes ?? []).map((v) => v.name));
  return volumes.map((volume) => {
    const byGeneration = new Map<number, SnapshotCopy>();
    const entry = (generation: number): SnapshotCopy => {
      let copy = byGeneration.get(generation);
      if (!copy) {
        const name = snapshotCopyName(ms, volume.volumeName, generation);
        const status = statuses.find((s) => s.name === name);
        copy = { generation, name, inSpec: inSpec.has(name), inVmi: inVmiSpec.has(name) || status !== undefined, ready: status?.phase === 'Ready' && inVmiSpec.has(name) };
        byGeneration.set(generation, copy);
      }
      return copy;
    };
    for (const snapshot of o.diskSnapshots ?? []) {
      const g = generationOf(snapshot);
      if (g !== undefined && volumeOf(snapshot) === volume.volumeName && snapshot.metadata?.name === snapshotCopyName(ms, volume.volumeName, g)) entry(g).snapshot = snapshot;
    }
    for (const claim of o.snapshotCopyClaims ?? []) {
      const g = generationOf(claim);
      if (g !== undefined && volumeOf(claim) === volume.volumeName && claim.metadata?.name === snapshotCopyName(ms, volume.volumeName, g)) entry(g).claim = claim;
    }
    // A copy KubeVirt still has plugged whose objects are gone from the caches is still plugged.
    for (const name of [...inSpec, ...inVmiSpec, ...statuses.map((s) => s.name)]) {
      const m = new RegExp(`^${snapshotCopyName(ms, volume.volumeName, 0).replace(/0$/, '')}(\\d+)$`).exec(name);
      if (m) entry(Number(m[1]));
    }
    const copies = [...byGeneration.values()].sort((a, b) => a.generation - b.generation);
    const withObjects = copies.filter((c) => c.snapshot || c.claim);
    const newest = withObjects.at(-1);
    const current = [...copies].reverse().find((c) => c.ready && c.inSpec);
    // The newest copy whose claim exists (restored from a snapshot that was ready) goes in.
    const candidate = [...copies].reverse().find((c) => c.claim && !c.claim.metadata?.deletionTimestamp);
    let plug: SnapshotCopy[];
    if (!candidate) {
      // Nothing newer to plug: what is plugged stays (its newest).
      const kept = [...copies].reverse().find((c) => c.inSpec);
      plug = kept ? [kept] : [];
    } else {
      // Until the new copy is Ready and the guest has had a remount round on it (handover), the one it replaces stays plugged.
      const previous = [...copies].reverse().find((c) => c.generation < candidate.generation && c.inSpec);
      const handedOver = candidate.ready && candidate.inSpec && (!previous || candidate.claim?.metadata?.annotations?.[ANNOTATION_HANDOVER_DONE] === 'true');
      plug = handedOver || !previous ? [candidate] : [previous, candidate];
    }
    return { volume, copies, ...(newest ? { newest } : {}), ...(current ? { current } : {}), plug };
  });
}

/** The disks and volumes the IDS VM spec holds for the rotations, in volume then generation order. */
export function snapshotHotplug(ms: MonitoredServer, rotations: VolumeRotation[]): Array<{ disk: VirtualMachineDisk; volume: VirtualMachineVolume }> {
  return rotations.flatMap((r) => r.plug.map((c) => buildSnapshotCopyDisk(ms, r.volume.volumeName, c.generation)));
}

export interface SnapshotPlan {
  actions: Action[];
  /** A snapshot past its readiness deadline (DiskAttached=False SnapshotNotReady). */
  notReady?: string;
  /** When a rotation or a readiness deadline is next due (ms from now). */
  recheckAfterMs?: number;
}

function snapshotErrorOf(s: VolumeSnapshot | undefined): string | undefined {
  return s?.status?.error?.message;
}

function describeCopy(c: SnapshotCopy): string {
  const time = c.snapshot?.status?.creationTime ?? c.snapshot?.metadata?.creationTimestamp;
  return `${c.name}${time ? ` (snapshot of ${time})` : ''}`;
}

/**
 * The writes of one reconcile: take a first snapshot; restore a ready one into a claim; take the
 * next one when the interval has passed since the newest (once it is plugged, or has failed its
 * deadline); delete the claims and snapshots of generations that are neither the newest nor
 * plugged (the IDS VM spec and VMI no longer hold them).
 */
export function planDiskSnapshots(ms: MonitoredServer, o: ObservedState, volumes: InspectedVolume[], clock: SnapshotClock): SnapshotPlan {
  const ns = ms.metadata.namespace ?? '';
  const now = clock.now.getTime();
  const interval = intervalMs(ms, clock);
  const timeout = readyTimeoutMs(ms, clock);
  const actions: Action[] = [];
  const notReady: string[] = [];
  let recheck: number | undefined;
  const wakeAt = (t: number) => {
    const after = Math.max(1000, t - now);
    recheck = recheck === undefined ? after : Math.min(recheck, after);
  };
  for (const rotation of resolveRotations(ms, o, volumes)) {
    const { volume, newest, current } = rotation;
    const source = o.claims?.[volume.claimName];
    const create = (generation: number, why: string) =>
      actions.push({
        type: 'create',
        capability: 'diskInspection',
        failureReason: 'CreateVolumeSnapshotFailed',
        log: `Snapshot claim ${ns}/${volume.claimName} of server volume ${volume.volumeName} as VolumeSnapshot ${snapshotCopyName(ms, volume.volumeName, generation)} (${why})`,
        resource: VOLUME_SNAPSHOT,
        object: buildVolumeSnapshot(ms, volume.volumeName, volume.claimName, generation),
        tolerate: [409],
        event: { type: 'Normal', reason: EventReason.DiskSnapshotCreated, message: `Took VolumeSnapshot ${snapshotCopyName(ms, volume.volumeName, generation)} of claim ${volume.claimName} (server volume ${volume.volumeName}): ${why}` },
      });
    if (!newest) {
      create((rotation.copies.at(-1)?.generation ?? 0) + 1, 'the first copy');
      continue;
    }
    const snapshot = newest.snapshot;
    const born = createdAt(snapshot) ?? createdAt(newest.claim) ?? now;
    const ready = snapshot?.status?.readyToUse === true;
    if (snapshot && ready && !newest.claim && source && !snapshot.metadata?.deletionTimestamp) {
      actions.push({
        type: 'create',
        capability: 'diskInspection',
        failureReason: 'RestoreVolumeSnapshotFailed',
        log: `Restore VolumeSnapshot ${ns}/${newest.name} into claim ${newest.name}`,
        resource: PERSISTENT_VOLUME_CLAIM,
        object: buildRestoredClaim(ms, volume.volumeName, newest.generation, source, snapshot),
        tolerate: [409],
        event: { type: 'Normal', reason: EventReason.DiskSnapshotRestored, message: `Restored VolumeSnapshot ${newest.name} into claim ${newest.name}, to be plugged read-only into the IDS VM` },
      });
    }
    const failed = !newest.claim && !ready && now - born >= timeout;
    if (!newest.claim && !ready) {
      if (failed) {
        const error = snapshotErrorOf(snapshot);
        notReady.push(
          // Stable while nothing changes (no new Warning per reconcile): the time it was taken, not its age.
          `VolumeSnapshot ${ns}/${newest.name} of claim ${volume.claimName} (server volume ${volume.volumeName}), taken ${new Date(born).toISOString()}, is not readyToUse within its deadline of ${timeout / 1000} s${error ? `: ${error}` : ''}; ${current ? `the IDS VM keeps reading ${describeCopy(current)}` : 'the IDS VM has no copy of it yet'}; the next snapshot is taken ${interval / 1000} s after this one`,
        );
      } else {
        wakeAt(born + timeout);
      }
    }
    // The handover: the old copy goes one guest remount round after the new one is Ready.
    const incoming = rotation.plug.length > 1 ? rotation.plug.at(-1) : undefined;
    if (incoming?.ready && incoming.inSpec && incoming.claim) {
      const readyAt = Date.parse(incoming.claim.metadata?.annotations?.[ANNOTATION_COPY_READY_AT] ?? '');
      if (!Number.isFinite(readyAt)) {
        actions.push(annotateCopy(ns, incoming.name, { [ANNOTATION_COPY_READY_AT]: clock.now.toISOString() }, `copy ${incoming.name} is Ready in the IDS VM; ${describeCopy(rotation.plug[0]!)} stays plugged for one remount round of the guest`));
        wakeAt(now + handoverMs(clock));
      } else if (now >= readyAt + handoverMs(clock)) {
        actions.push(annotateCopy(ns, incoming.name, { [ANNOTATION_HANDOVER_DONE]: 'true' }, `the IDS guest has moved to copy ${incoming.name}: unplug ${rotation.plug[0]!.name}`));
      } else {
        wakeAt(readyAt + handoverMs(clock));
      }
    }
    // The next generation: once the newest is plugged (or has failed), an interval after it was taken.
    const settled = (current !== undefined && current.generation === newest.generation) || failed;
    if (settled) {
      if (now >= born + interval) create(newest.generation + 1, `rotation every ${interval / 1000} s`);
      else wakeAt(born + interval);
    }
    // Superseded generations, no longer plugged anywhere: their claim, then their snapshot.
    const plugged = new Set(rotation.plug.map((c) => c.generation));
    for (const c of rotation.copies) {
      if (c.generation >= newest.generation || plugged.has(c.generation) || c.inSpec || c.inVmi) continue;
      if (c.claim && !c.claim.metadata?.deletionTimestamp) {
        actions.push(deleteCopyObject(ns, c.name, PERSISTENT_VOLUME_CLAIM, c.claim.metadata?.uid, `claim ${c.name} restored from a superseded snapshot`));
      }
      if (c.snapshot && !c.snapshot.metadata?.deletionTimestamp) {
        actions.push(deleteCopyObject(ns, c.name, VOLUME_SNAPSHOT, c.snapshot.metadata?.uid, `superseded VolumeSnapshot ${c.name}`));
      }
    }
  }
  return { actions, ...(notReady.length > 0 ? { notReady: notReady.join('; ') } : {}), ...(recheck !== undefined ? { recheckAfterMs: recheck } : {}) };
}

function annotateCopy(ns: string, name: string, annotations: Record<string, string>, why: string): Action {
  return {
    type: 'patch',
    capability: 'diskInspection',
    failureReason: 'AnnotateSnapshotCopyFailed',
    log: `Annotate claim ${ns}/${name}: ${why}`,
    resource: PERSISTENT_VOLUME_CLAIM,
    namespace: ns,
    name,
    patchType: 'merge',
    body: { metadata: { annotations } },
    tolerate: [404],
  };
}

function deleteCopyObject(ns: string, name: string, resource: typeof VOLUME_SNAPSHOT, uid: string | undefined, what: string, capability: 'diskInspection' | 'teardown' = 'diskInspection'): Action {
  return {
    type: 'delete',
    capability,
    failureReason: resource === VOLUME_SNAPSHOT ? 'DeleteVolumeSnapshotFailed' : 'DeleteSnapshotCopyFailed',
    log: `Delete ${what} (${ns}/${name})`,
    resource,
    namespace: ns,
    name,
    ...(uid ? { preconditionUid: uid } : {}),
    tolerate: [404, 409],
    event: { type: 'Normal', reason: EventReason.DiskSnapshotDeleted, message: `Deleted ${what}` },
  };
}

/** Teardown (after the IDS VM is gone): every claim and snapshot of ours; the server's claims are never touched. */
export function planSnapshotTeardown(o: ObservedState): Action[] {
  const actions: Action[] = [];
  for (const c of o.snapshotCopyClaims ?? []) {
    if (c.metadata?.deletionTimestamp) continue;
    actions.push(deleteCopyObject(c.metadata?.namespace ?? '', c.metadata?.name ?? '', PERSISTENT_VOLUME_CLAIM, c.metadata?.uid, `snapshot copy claim ${c.metadata?.name}`, 'teardown'));
  }
  for (const s of o.diskSnapshots ?? []) {
    if (s.metadata?.deletionTimestamp) continue;
    actions.push(deleteCopyObject(s.metadata?.namespace ?? '', s.metadata?.name ?? '', VOLUME_SNAPSHOT, s.metadata?.uid, `VolumeSnapshot ${s.metadata?.name}`, 'teardown'));
  }
  return actions;
}

/**
 * Snapshot mode, all of it: the rotation of each inspected volume (when disk inspection resolved
 * them: nothing while refused or waiting), and the removal of our snapshots and copies of volumes
 * no longer inspected (a disk removed from the spec, mode switched to Live) once no longer plugged.
 */
export function planSnapshotMode(ms: MonitoredServer, o: ObservedState, plan: { volumes: InspectedVolume[]; rotations?: VolumeRotation[]; refusal?: unknown; waiting?: string }, clock: SnapshotClock): SnapshotPlan {
  const ns = ms.metadata.namespace ?? '';
  const active = plan.rotations && !plan.refusal && !plan.waiting ? planDiskSnapshots(ms, o, plan.volumes, clock) : { actions: [] };
  if (plan.refusal || plan.waiting) return active;
  const inspected = new Set(plan.rotations ? plan.volumes.map((v) => v.volumeName) : []);
  const live = o.idsNameTaken ? undefined : o.idsVm;
  const busy = new Set([
    ...(live?.spec?.template?.spec?.volumes ?? []).map((v) => v.name),
    ...(o.idsVmi?.spec?.volumes ?? []).map((v) => v.name),
    ...(o.idsVmi?.status?.volumeStatus ?? []).map((v) => v.name),
  ]);
  const strays: Action[] = [];
  for (const claim of o.snapshotCopyClaims ?? []) {
    const name = claim.metadata?.name ?? '';
    if (inspected.has(volumeOf(claim) ?? '') || busy.has(name) || claim.metadata?.deletionTimestamp) continue;
    strays.push(deleteCopyObject(ns, name, PERSISTENT_VOLUME_CLAIM, claim.metadata?.uid, `claim ${name} of a volume no longer inspected from snapshots`));
  }
  for (const snapshot of o.diskSnapshots ?? []) {
    const name = snapshot.metadata?.name ?? '';
    if (inspected.has(volumeOf(snapshot) ?? '') || busy.has(name) || snapshot.metadata?.deletionTimestamp) continue;
    strays.push(deleteCopyObject(ns, name, VOLUME_SNAPSHOT, snapshot.metadata?.uid, `VolumeSnapshot ${name} of a volume no longer inspected from snapshots`));
  }
  return { ...active, actions: [...active.actions, ...strays] };
}
