// Pure: the Events a status change deserves. A problem the user must act on is a Warning once per
// change of reason or message; Ready turning True is a milestone; Ready leaving True is a Warning.
import { isDeepStrictEqual } from 'node:util';
import type { MonitoredServerStatus } from '../../api/v1alpha1/monitoredserver-types.ts';
import { findCondition, type Condition } from '../../kube/client/conditions.ts';
import type { PlannedEvent } from './actions.ts';
import { ConditionType, EventReason, Reason, WARNING_REASONS } from './reasons.ts';

const WATCHED = [
  ConditionType.ServerRunning,
  ConditionType.IDSRunning,
  ConditionType.Colocated,
  ConditionType.ProcessMapping,
  ConditionType.MirrorAttached,
  ConditionType.DiskAttached,
  ConditionType.ResponseReady,
  ConditionType.ServerRestartRequired,
];

function conditions(status: MonitoredServerStatus | undefined): Condition[] | undefined {
  return status?.conditions as Condition[] | undefined;
}

export function statusEvents(before: MonitoredServerStatus | undefined, after: MonitoredServerStatus): PlannedEvent[] {
  const events: PlannedEvent[] = [];
  for (const type of WATCHED) {
    const now = findCondition(conditions(after), type);
    const was = findCondition(conditions(before), type);
    // One Warning per reason (Colocated repeats IDSRunning's reason when no IDS VM can exist).
    if (events.some((e) => e.reason === now?.reason)) continue;
    if (now && WARNING_REASONS.has(now.reason) && (was?.reason !== now.reason || was.message !== now.message)) {
      events.push({ type: 'Warning', reason: now.reason, message: now.message });
    }
  }
  const ready = findCondition(conditions(after), ConditionType.Ready);
  const wasReady = findCondition(conditions(before), ConditionType.Ready);
  if (ready && wasReady?.status !== ready.status) {
    // The one milestone Event of a MonitoredServer's start (creating its children raises none):
    // which VMs, where, and the IDS VM's address on the IDS network.
    const address = after.idsNetwork?.address;
    if (ready.status === 'True') events.push({ type: 'Normal', reason: EventReason.MonitoringStarted, message: `${ready.message}${address ? `; IDS-network address ${address}` : ''}` });
    else if (wasReady?.status === 'True') events.push({ type: 'Warning', reason: EventReason.MonitoringDegraded, message: ready.message });
  }
  return events;
}

/** Ready reasons that wait on the user without being a problem: written at once, as problems are. */
const WAITS_ON_USER: ReadonlySet<string> = new Set([Reason.ServerVMStopped]);

/** A condition's status, or what its absence means: Ready absent is not Ready, Synced absent is in sync. */
function statusOf(status: MonitoredServerStatus | undefined, type: string): string {
  return findCondition(conditions(status), type)?.status ?? (type === ConditionType.Synced ? 'True' : 'False');
}

/**
 * True when a status change must be written at once: Ready or Synced turning (the first status
 * counts as not Ready), a new generation, a problem the user must act on (a Warning), or a state
 * that waits on the user (a stopped server). Everything else is progress (Creating → Starting →
 * Running, the first "creating" status included) and may be coalesced.
 */
export function isUrgentStatusChange(before: MonitoredServerStatus | undefined, after: MonitoredServerStatus): boolean {
  if (before && before.observedGeneration !== after.observedGeneration) return true;
  // What was responded to (an alert response taken, recorded or released) is written at once.
  if (!isDeepStrictEqual(before?.response, after.response)) return true;
  for (const type of [ConditionType.Ready, ConditionType.Synced, ConditionType.Responded]) {
    if (statusOf(before, type) !== statusOf(after, type)) return true;
  }
  const readyReason = findCondition(conditions(after), ConditionType.Ready)?.reason;
  if (readyReason && WAITS_ON_USER.has(readyReason) && findCondition(conditions(before), ConditionType.Ready)?.reason !== readyReason) return true;
  return statusEvents(before, after).some((e) => e.type === 'Warning');
}
