// Pure: how long monitoring was blind while the pair moved. A gap opens when the IDS side stops on
// the node the server leaves (a PairMove) and closes when the MonitoredServer is Ready again;
// status.lastMonitoringGap keeps the last one, an Event marks each end, and the operator's histogram
// hyperspector_monitoring_gap_seconds counts the closed ones.
import { Histogram, type Registry } from 'prom-client';
import type { MonitoringGap } from '../../api/v1alpha1/monitoredserver-types.ts';
import type { PlannedEvent } from './actions.ts';
import type { PairMove } from './planners/evacuation.ts';
import { EventReason } from './reasons.ts';

/** The gap after this reconcile: opened by a move, closed when Ready, else unchanged. */
export function nextMonitoringGap(previous: MonitoringGap | undefined, move: PairMove | undefined, ready: boolean, serverNode: string | undefined, now: Date): MonitoringGap | undefined {
  const open = previous !== undefined && previous.endTime === undefined;
  if (move && !open) {
    return { cause: move.cause, startTime: now.toISOString(), fromNode: move.fromNode, ...(move.toNode ? { toNode: move.toNode } : {}) };
  }
  if (open && move) {
    // A migration names its target only once it has one; a restart only when the new VMI is placed.
    return move.toNode && previous.toNode !== move.toNode ? { ...previous, toNode: move.toNode } : previous;
  }
  if (open && ready) {
    const seconds = Math.max(0, (now.getTime() - new Date(previous.startTime).getTime()) / 1000);
    return { ...previous, ...(serverNode ? { toNode: serverNode } : {}), endTime: now.toISOString(), durationSeconds: Math.round(seconds * 1000) / 1000 };
  }
  return previous;
}

function describe(gap: MonitoringGap): string {
  const to = gap.toNode ? ` to node ${gap.toNode}` : '';
  switch (gap.cause) {
    case 'Evacuation':
      return `node ${gap.fromNode ?? '?'} is drained: the server VM migrates${to}`;
    case 'Restart':
      return `node ${gap.fromNode ?? '?'} is drained: the server VM restarts elsewhere`;
    default:
      return `the server VM migrates from node ${gap.fromNode ?? '?'}${to}`;
  }
}

/** Events for a change of the gap: one when it opens, one when it closes. */
export function monitoringGapEvents(before: MonitoringGap | undefined, after: MonitoringGap | undefined): PlannedEvent[] {
  if (!after || (before?.startTime === after.startTime && before.endTime === after.endTime)) return [];
  const events: PlannedEvent[] = [];
  if (before?.startTime !== after.startTime) {
    events.push({ type: 'Warning', reason: EventReason.MonitoringGapStarted, message: `Monitoring paused: ${describe(after)}; the IDS VM and the process mapper were stopped on node ${after.fromNode ?? '?'} and start beside the server once it has moved` });
  }
  if (after.endTime !== undefined) {
    events.push({ type: 'Normal', reason: EventReason.MonitoringGapEnded, message: `Monitoring resumed on node ${after.toNode ?? '?'} after a gap of ${after.durationSeconds ?? 0} s (${describe(after)})` });
  }
  return events;
}

/** A gap that closed between `before` and `after`, to be counted once. */
export function closedGap(before: MonitoringGap | undefined, after: MonitoringGap | undefined): MonitoringGap | undefined {
  return after?.endTime !== undefined && (before?.startTime !== after.startTime || before.endTime === undefined) ? after : undefined;
}

export const MONITORING_GAP_BUCKETS = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800];

/** hyperspector_monitoring_gap_seconds{cause}: how long each closed gap lasted. */
export function monitoringGapHistogram(registry: Registry): Histogram<'cause'> {
  const existing = registry.getSingleMetric('hyperspector_monitoring_gap_seconds');
  if (existing) return existing as Histogram<'cause'>;
  return new Histogram({
    name: 'hyperspector_monitoring_gap_seconds',
    help: 'How long monitoring of a server VM was blind while the pair moved (migration, node drain, restart elsewhere): from the IDS side stopping to Ready again',
    labelNames: ['cause'],
    buckets: MONITORING_GAP_BUCKETS,
    registers: [registry],
  });
}
