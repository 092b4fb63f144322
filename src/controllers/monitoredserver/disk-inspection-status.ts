// Pure: the DiskAttached condition in Live mode, from what disk inspection resolved and the IDS
// VMI's volumeStatus (KubeVirt's phases of a hot-plugged volume: Pending/Bound → AttachedToNode →
// MountedToPod → Ready, with the guest's device as `target`).
import type { MonitoredServer } from '../../api/v1alpha1/monitoredserver-types.ts';
import { DEFAULT_MOUNT_PATH, idsVolumeName } from '../../builders/disk-inspection.ts';
import { idsVmName } from '../../builders/names.ts';
import type { ConditionUpdate } from '../../kube/client/conditions.ts';
import type { Outcomes } from './actions.ts';
import { vmiIsRunning, type ObservedState } from './observed-state.ts';
import { resolveDiskInspection } from './planners/disk-inspection.ts';
import { Reason } from './reasons.ts';
import type { DiskInspectionPlan } from './planners/disk-inspection.ts';
import type { SnapshotCopy, VolumeRotation } from './planners/disk-snapshot.ts';
import type { DiskSnapshotStatus } from '../../api/v1alpha1/monitoredserver-types.ts';

type Update = Omit<ConditionUpdate, 'type' | 'observedGeneration'>;

/** DiskAttached with spec.server.disks set (Live or Snapshot mode); undefined otherwise. `snapshots`: what the Snapshot-mode planner found. */
export function diskAttached(ms: MonitoredServer, o: ObservedState, outcomes: Outcomes, snapshots?: { notReady?: string }): Update | undefined {
  const disks = ms.spec.server.disks ?? [];
  if (disks.length === 0) return undefined;
  const plan = resolveDiskInspection(ms, o);
  if (ms.spec.diskInspection?.mode === 'Snapshot') return snapshotAttached(ms, o, outcomes, plan, snapshots);
  if (plan.refusal) return { status: 'False', ...plan.refusal };
  if (plan.waiting) return { status: 'False', reason: Reason.DiskAttaching, message: plan.waiting };
  const how = plan.methodDescription ?? '';
  const refused = outcomes.refused('diskInspection');
  if (refused) {
    return { status: 'False', reason: Reason.HotplugRefused, message: `KubeVirt refused to hot-plug or unplug a server volume through ${how}: ${refused.message}` };
  }
  const ids = `${ms.metadata.namespace}/${idsVmName(ms)}`;
  const vmi = o.idsVmi;
  if (!o.idsVm || !vmiIsRunning(vmi)) {
    return { status: 'False', reason: Reason.DiskAttaching, message: `server volumes ${disks.join(', ')} are plugged through ${how} once IDS VirtualMachine ${ids} runs` };
  }
  const statuses = vmi?.status?.volumeStatus ?? [];
  const inVmi = new Set((vmi?.spec?.volumes ?? []).map((v) => v.name));
  const mountPath = ms.spec.diskInspection?.mountPath ?? DEFAULT_MOUNT_PATH;
  const states = plan.volumes.map((v) => {
    const name = idsVolumeName(ms, v.volumeName);
    const entry = statuses.find((s) => s.name === name);
    const phase = entry?.phase ?? (inVmi.has(name) ? 'Pending' : 'NotRequested');
    return { v, name, phase, target: entry?.target, ready: phase === 'Ready' && inVmi.has(name) };
  });
  if (states.every((s) => s.ready)) {
    const list = states.map((s) => `${s.v.volumeName} (claim ${s.v.claimName}, serial ${s.name}, target ${s.target || '?'})`).join(', ');
    return {
      status: 'True',
      reason: Reason.Attached,
      message: `server volumes ${list} are plugged read-only and shareable into IDS VirtualMachine ${ids} through ${how}; the IDS guest mounts each read-only at ${mountPath}/<volume>`,
    };
  }
  const list = states.map((s) => `${s.v.volumeName}: ${s.phase}${s.ready ? '' : entryMessage(statuses, s.name)}`).join('; ');
  return { status: 'False', reason: Reason.DiskAttaching, message: `hot-plugging server volumes into IDS VirtualMachine ${ids} through ${how}: ${list}` };
}

function entryMessage(statuses: Array<{ name: string; message?: string }>, name: string): string {
  const message = statuses.find((s) => s.name === name)?.message;
  return message ? ` (${message})` : '';
}

function snapshotTime(c: SnapshotCopy): string | undefined {
  return c.snapshot?.status?.creationTime ?? c.snapshot?.metadata?.creationTimestamp;
}

/** Where one volume's rotation stands, in words. */
function rotationState(r: VolumeRotation, statuses: Array<{ name: string; phase?: string; message?: string }>): string {
  const n = r.newest;
  if (!n) return `${r.volume.volumeName}: taking the first VolumeSnapshot of claim ${r.volume.claimName}`;
  const plugging = r.plug.find((c) => c !== r.current);
  if (plugging) {
    const entry = statuses.find((s) => s.name === plugging.name);
    return `${r.volume.volumeName}: plugging copy ${plugging.name} (${entry?.phase ?? (plugging.inSpec ? 'Pending' : 'NotRequested')}${entry?.message ? `: ${entry.message}` : ''})`;
  }
  if (!n.claim && n.snapshot?.status?.readyToUse !== true) return `${r.volume.volumeName}: waiting for VolumeSnapshot ${n.name} to be readyToUse`;
  if (!n.claim) return `${r.volume.volumeName}: restoring VolumeSnapshot ${n.name} into a claim`;
  return `${r.volume.volumeName}: copy ${n.name} not plugged yet`;
}

/** DiskAttached in Snapshot mode: True when every volume's current copy is plugged and Ready. */
function snapshotAttached(ms: MonitoredServer, o: ObservedState, outcomes: Outcomes, plan: DiskInspectionPlan, snapshots: { notReady?: string } | undefined): Update {
  if (plan.refusal) return { status: 'False', ...plan.refusal };
  if (plan.waiting) return { status: 'False', reason: Reason.DiskAttaching, message: plan.waiting };
  const how = plan.methodDescription ?? '';
  const refused = outcomes.refused('diskInspection');
  if (refused) {
    return { status: 'False', reason: Reason.HotplugRefused, message: `the API server refused a snapshot, restore or hotplug of a server volume copy (through ${how}): ${refused.message}` };
  }
  if (snapshots?.notReady) return { status: 'False', reason: Reason.SnapshotNotReady, message: snapshots.notReady };
  const ids = `${ms.metadata.namespace}/${idsVmName(ms)}`;
  const rotations = plan.rotations ?? [];
  const vmi = o.idsVmi;
  const statuses = vmi?.status?.volumeStatus ?? [];
  if (!o.idsVm || !vmiIsRunning(vmi)) {
    const progress = rotations.map((r) => rotationState(r, statuses)).join('; ');
    return { status: 'False', reason: Reason.DiskAttaching, message: `snapshot copies of ${(ms.spec.server.disks ?? []).join(', ')} are plugged through ${how} once IDS VirtualMachine ${ids} runs${progress ? ` (${progress})` : ''}` };
  }
  const mountPath = ms.spec.diskInspection?.mountPath ?? DEFAULT_MOUNT_PATH;
  if (rotations.length > 0 && rotations.every((r) => r.current)) {
    const list = rotations
      .map((r) => {
        const c = r.current!;
        const target = statuses.find((s) => s.name === c.name)?.target;
        return `${r.volume.volumeName} (snapshot ${c.name} of claim ${r.volume.claimName} taken ${snapshotTime(c) ?? '?'}, serial ${idsVolumeName(ms, r.volume.volumeName)}, target ${target || '?'})`;
      })
      .join(', ');
    return {
      status: 'True',
      reason: Reason.Attached,
      message: `snapshot copies ${list} are plugged read-only into IDS VirtualMachine ${ids} through ${how}; the IDS guest mounts each read-only at ${mountPath}/<volume>`,
    };
  }
  return { status: 'False', reason: Reason.DiskAttaching, message: `plugging snapshot copies into IDS VirtualMachine ${ids} through ${how}: ${rotations.map((r) => rotationState(r, statuses)).join('; ')}` };
}

/** status.diskInspection.snapshots: the copy of each volume the IDS VM reads now (Snapshot mode). */
export function snapshotStatuses(ms: MonitoredServer, o: ObservedState): DiskSnapshotStatus[] | undefined {
  if (ms.spec.diskInspection?.mode !== 'Snapshot' || (ms.spec.server.disks ?? []).length === 0) return undefined;
  const out: DiskSnapshotStatus[] = [];
  for (const r of resolveDiskInspection(ms, o).rotations ?? []) {
    if (!r.current) continue;
    const time = r.current.snapshot?.status?.creationTime;
    out.push({ volume: r.volume.volumeName, volumeSnapshot: r.current.name, claim: r.current.name, ...(time ? { creationTime: time } : {}) });
  }
  return out.length > 0 ? out : undefined;
}
