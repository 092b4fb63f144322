// Planner: the response to alerts (spec.response.onAlert). Pause: once per alert burst — an alert
// newer than the one last responded to (alert-burst.ts) — the server VMI is paused through
// KubeVirt's `pause` subresource; it stays paused until the user releases it in one step, the
// annotation `hyperspector.io/release-response` set to a time at or after the pause (kubectl
// annotate ... --overwrite), whereupon it is unpaused. The server itself can do nothing about it:
// only the API unpauses. A server the user unpaused by hand is not paused again until a new alert
// comes. Isolate: isolation.ts, with the same bursts and the same release.
import type { MonitoredServer, ResponseStatus } from '../../../api/v1alpha1/monitoredserver-types.ts';
import type { Action } from '../actions.ts';
import type { ObservedState } from '../observed-state.ts';
import { EventReason } from '../reasons.ts';
import { alertDescription, ANNOTATION_RELEASE_RESPONSE, newAlertBurst, releaseCommand, releaseOf } from './alert-burst.ts';
import { decideIsolation, isolationStatus, planIsolation } from './isolation.ts';

export { ANNOTATION_RELEASE_RESPONSE, releaseCommand };

export type ResponseDecision =
  /** A new alert burst: pause the running server (or record it when it is paused already). */
  | { kind: 'pause'; alertTime: string; alreadyPaused: boolean }
  /** The user released the response: unpause (or record it when it runs already). */
  | { kind: 'release'; releasedAt: string; alreadyRunning: boolean }
  | { kind: 'none' };

function isPaused(o: ObservedState): boolean {
  return (o.serverVmi?.status?.conditions ?? []).some((c) => c.type === 'Paused' && c.status === 'True');
}

export function decideResponse(ms: MonitoredServer, o: ObservedState): ResponseDecision {
  if (ms.spec.response?.onAlert !== 'Pause') return { kind: 'none' };
  if (o.serverClaimedBy || o.serverNameTaken || o.serverVmi?.status?.phase !== 'Running') return { kind: 'none' };
  const burst = newAlertBurst(ms);
  const paused = isPaused(o);
  if (burst) return { kind: 'pause', alertTime: burst, alreadyPaused: paused };
  const previous = ms.status?.response;
  const releasedAt = previous?.pausedAt && !previous.releasedAt ? releaseOf(ms, previous.pausedAt, previous.alertTime) : undefined;
  if (releasedAt) return { kind: 'release', releasedAt, alreadyRunning: !paused };
  return { kind: 'none' };
}

function subresource(ms: MonitoredServer, o: ObservedState, verb: 'pause' | 'unpause'): string {
  return `/apis/subresources.kubevirt.io/v1/namespaces/${ms.metadata.namespace}/virtualmachineinstances/${o.serverVmi?.metadata?.name}/${verb}`;
}

/** The actions of the response: Pause's subresource calls, Isolate's NetworkPolicy. */
export function planResponse(ms: MonitoredServer, o: ObservedState): Action[] {
  return [...planPause(ms, o), ...planIsolation(ms, o)];
}

function planPause(ms: MonitoredServer, o: ObservedState): Action[] {
  const decision = decideResponse(ms, o);
  const vmi = `${ms.metadata.namespace}/${o.serverVmi?.metadata?.name}`;
  if (decision.kind === 'pause' && !decision.alreadyPaused) {
    const what = alertDescription(ms, decision.alertTime);
    return [
      {
        type: 'subresource',
        capability: 'response',
        failureReason: 'PauseServerFailed',
        log: `Pause server VMI ${vmi} (spec.response.onAlert: Pause)`,
        path: subresource(ms, o, 'pause'),
        body: {},
        tolerate: [409],
        event: { type: 'Warning', reason: EventReason.ServerPaused, message: `Paused server VMI ${vmi} on ${what}. Release: ${releaseCommand(ms)}`.slice(0, 1000) },
      },
    ];
  }
  if (decision.kind === 'release' && !decision.alreadyRunning) {
    return [
      {
        type: 'subresource',
        capability: 'response',
        failureReason: 'UnpauseServerFailed',
        log: `Unpause server VMI ${vmi}: response released (${ANNOTATION_RELEASE_RESPONSE}=${decision.releasedAt})`,
        path: subresource(ms, o, 'unpause'),
        body: {},
        tolerate: [409],
        event: { type: 'Normal', reason: EventReason.ResponseReleased, message: `Unpaused server VMI ${vmi}: the response was released (${ANNOTATION_RELEASE_RESPONSE}=${decision.releasedAt})` },
      },
    ];
  }
  return [];
}

/** status.response after this reconcile: what was responded to, from the decision and what the actions did. */
export function responseStatus(ms: MonitoredServer, o: ObservedState, responded: boolean, now: Date): ResponseStatus | undefined {
  if (decideIsolation(ms, o).kind !== 'none') return isolationStatus(ms, o, responded, now);
  const previous = ms.status?.response;
  const decision = decideResponse(ms, o);
  if (decision.kind === 'pause' && (decision.alreadyPaused || responded)) {
    return { action: 'Pause', alertTime: decision.alertTime, pausedAt: decision.alreadyPaused && previous?.pausedAt && !previous.releasedAt ? previous.pausedAt : now.toISOString() };
  }
  if (decision.kind === 'release' && (decision.alreadyRunning || responded) && previous) return { ...previous, releasedAt: decision.releasedAt };
  return previous;
}
