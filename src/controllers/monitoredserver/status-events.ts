// Pure: the Events a status change deserves. A problem the user must act on is a Warning once per
// change of reason or message; Ready turning True is a milestone; Ready leaving True is a Warning.
import type { MonitoredServerStatus } from '../../api/v1alpha1/monitoredserver-types.ts';
import { findCondition, type Condition } from '../../kube/client/conditions.ts';
import type { PlannedEvent } from './actions.ts';
import { ConditionType, EventReason, WARNING_REASONS } from './reasons.ts';

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
    if (ready.status === 'True') events.push({ type: 'Normal', reason: EventReason.MonitoringStarted, message: ready.message });
    else if (wasReady?.status === 'True') events.push({ type: 'Warning', reason: EventReason.MonitoringDegraded, message: ready.message });
  }
  return events;
}

/**
 * True when a status change must be written at once: the first status, a change of Ready or
 * Synced, a new generation, or a problem the user must act on. Other changes are progress
 * (Creating → Starting → Running) and may be coalesced.
 */
export function isUrgentStatusChange(before: MonitoredServerStatus | undefined, after: MonitoredServerStatus): boolean {
  if (!before) return true;
  if (before.observedGeneration !== after.observedGeneration) return true;
  for (const type of [ConditionType.Ready, ConditionType.Synced, ConditionType.Responded]) {
    const a = findCondition(conditions(before), type);
    const b = findCondition(conditions(after), type);
    if (a?.status !== b?.status) return true;
  }
  return statusEvents(before, after).some((e) => e.type === 'Warning');
}
