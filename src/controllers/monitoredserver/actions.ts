// What a planner asks for and what the executor reports back. Planners are pure (observed state
// in, actions out); the executor is the only place that talks to the API server; status is a pure
// function of the observed state and the outcomes.
import type { KubeObject } from '../../kube/client/objects.ts';
import type { ResourceType } from '../../kube/client/resources.ts';
import type { EventType } from './events.ts';

/** The part of the MonitoredServer an action serves; a failed action stops the rest of its capability. */
export type Capability = 'finalizer' | 'serverVM' | 'idsVM' | 'processMapper' | 'diskInspection' | 'network' | 'response' | 'teardown' | 'evacuation';

export interface PlannedEvent {
  type: EventType;
  reason: string;
  message: string;
}

interface ActionBase {
  capability: Capability;
  /**
   * Names the action in a failure: `Synced=False` carries `<failureReason>` (e.g. ApplyIDSVMFailed)
   * and the API server's message.
   */
  failureReason: string;
  /** One log line on success. */
  log: string;
  /** Published after the action succeeded. */
  event?: PlannedEvent;
  /**
   * Errors that mean the user must change something (a template KubeVirt refuses, a pod Pod
   * Security forbids): reported in the capability's condition and not retried with backoff.
   */
  refusedWhen?: (err: unknown) => boolean;
  /** HTTP statuses that mean the action's goal is already reached (404 on delete, 409 on a stale precondition). */
  tolerate?: number[];
  /**
   * Errors that mean another writer got there first (409 AlreadyExists on a create that claims
   * something, e.g. an IDS-network address): nobody's fault and nothing to report; the capability
   * plans again once the cache shows the winner.
   */
  lostRaceWhen?: (err: unknown) => boolean;
}

/** Server-side apply of a whole object (create or update). */
export interface ApplyAction extends ActionBase {
  type: 'apply';
  resource: ResourceType;
  object: KubeObject;
}

/** A create (POST) that must not overwrite an existing object: 409 AlreadyExists is a failure unless tolerated. */
export interface CreateAction extends ActionBase {
  type: 'create';
  resource: ResourceType;
  object: KubeObject;
}

/** A merge or JSON patch of named fields, never of the rest of the object. */
export interface PatchAction extends ActionBase {
  type: 'patch';
  resource: ResourceType;
  namespace: string;
  name: string;
  patchType: 'merge' | 'json';
  body: unknown;
}

export interface DeleteAction extends ActionBase {
  type: 'delete';
  resource: ResourceType;
  namespace: string;
  name: string;
  /** Delete only the object we looked at: a newer one with the same name is left alone. */
  preconditionUid?: string;
  propagationPolicy?: 'Foreground' | 'Background' | 'Orphan';
}

/** A PUT to an aggregated API's subresource, e.g. KubeVirt's virtualmachines/<name>/addvolume. */
export interface SubresourceAction extends ActionBase {
  type: 'subresource';
  /** Full request path. */
  path: string;
  body: unknown;
}

export type Action = ApplyAction | CreateAction | PatchAction | DeleteAction | SubresourceAction;

export type OutcomeKind =
  /** The request succeeded (or its status was tolerated). */
  | 'done'
  /** The API server refused it for a reason only the user can fix; not retried with backoff. */
  | 'refused'
  /** Any other failure; the reconcile is retried with backoff. */
  | 'failed'
  /** Another writer got there first (lostRaceWhen): no Warning, no Synced=False; planned again shortly. */
  | 'lostRace'
  /** Not sent: an earlier action of the same capability did not succeed, or leadership was lost. */
  | 'skipped';

export interface Outcome {
  action: Action;
  kind: OutcomeKind;
  /** The object the API server returned (apply, patch). */
  object?: KubeObject;
  /** HTTP status of a failure, when there was one. */
  code?: number;
  message?: string;
}

/** What one reconcile did, keyed by capability, for the status computation. */
export class Outcomes {
  constructor(readonly all: readonly Outcome[] = []) {}

  of(capability: Capability): Outcome[] {
    return this.all.filter((o) => o.action.capability === capability);
  }

  /** The first refusal of a capability (its message goes into the capability's condition). */
  refused(capability: Capability): Outcome | undefined {
    return this.of(capability).find((o) => o.kind === 'refused');
  }

  /** The first failure that will be retried, across all capabilities. */
  firstFailure(): Outcome | undefined {
    return this.all.find((o) => o.kind === 'failed');
  }

  /** True when an action lost a race to another writer (planned again once the cache shows the winner). */
  lostRace(): boolean {
    return this.all.some((o) => o.kind === 'lostRace');
  }

  /** True when an action of this type for this capability succeeded in this reconcile. */
  did(capability: Capability, type: Action['type']): boolean {
    return this.of(capability).some((o) => o.kind === 'done' && o.action.type === type);
  }
}
