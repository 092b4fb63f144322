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

type Update = Omit<ConditionUpdate, 'type' | 'observedGeneration'>;

/** DiskAttached for Live mode with spec.server.disks set; undefined otherwise. */
export function diskAttached(ms: MonitoredServer, o: ObservedState, outcomes: Outcomes): Update | undefined {
  const disks = ms.spec.server.disks ?? [];
  if (disks.length === 0 || (ms.spec.diskInspection?.mode ?? 'Live') !== 'Live') return undefined;
  const plan = resolveDiskInspection(ms, o);
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
