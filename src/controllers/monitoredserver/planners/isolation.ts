// Planner: spec.response.onAlert: Isolate. Once per alert burst (alert-burst.ts, shared with Pause)
// the server VMI's launcher pod is cut off the pod network: a deny-all NetworkPolicy (Ingress and
// Egress, no rules; builders/isolation-policy.ts), owned by the MonitoredServer and labelled as
// ours, with a Warning Event ServerIsolated that says how to release it. While the isolation holds
// the policy is kept (re-created if deleted, re-pointed at a new VMI of the server); the user's one
// step (the release annotation) deletes it. A new alert after the release isolates again. Only our
// policy (by name and label) is ever written: the user's NetworkPolicies are never touched.
//
// The pod network is all a NetworkPolicy reaches: a server VM with other networks (Multus) cannot
// be isolated by this release, and ResponseReady says so instead of promising it.
import type { MonitoredServer, ResponseStatus } from '../../../api/v1alpha1/monitoredserver-types.ts';
import { buildIsolationPolicy, isolatedVmiUid, isolationPolicyName, type NetworkPolicy } from '../../../builders/isolation-policy.ts';
import type { ConditionUpdate } from '../../../kube/client/conditions.ts';
import { NETWORK_POLICY } from '../../../kube/client/resources.ts';
import type { Action } from '../actions.ts';
import type { ObservedState } from '../observed-state.ts';
import { ConditionType, EventReason, Reason } from '../reasons.ts';
import { bindingOf, TAP_BINDINGS } from '../../../agent/kubevirt-names.ts';
import { alertDescription, ANNOTATION_RELEASE_RESPONSE, newAlertBurst, releaseCommand, releaseOf } from './alert-burst.ts';

type Update = Omit<ConditionUpdate, 'type' | 'observedGeneration'>;

export type IsolationDecision =
  /** A new alert burst: isolate the server VMI (uid), or record it when the policy is in place already. */
  | { kind: 'isolate'; alertTime: string; vmiUid: string; alreadyIsolated: boolean }
  /** The isolation holds: the policy stays, following the server's current VMI when there is one. */
  | { kind: 'hold'; vmiUid?: string }
  /** The user released it: delete the policy (or record it when it is gone already). */
  | { kind: 'release'; releasedAt: string }
  | { kind: 'none' };

/** status.response says the server is isolated and the user has not released it. */
function isolationInForce(response: ResponseStatus | undefined): response is ResponseStatus & { isolatedAt: string } {
  return response?.action === 'Isolate' && response.isolatedAt !== undefined && response.releasedAt === undefined;
}

/** The server VMI's UID (the launcher pods' `kubevirt.io/created-by`), when it is ours and not going away. */
function serverVmiUid(o: ObservedState): string | undefined {
  const vmi = o.serverVmi;
  if (!vmi || vmi.metadata?.deletionTimestamp || o.serverClaimedBy || o.serverNameTaken) return undefined;
  return vmi.metadata?.uid;
}

export function decideIsolation(ms: MonitoredServer, o: ObservedState): IsolationDecision {
  const previous = ms.status?.response;
  const vmiUid = serverVmiUid(o);
  const burst = ms.spec.response?.onAlert === 'Isolate' && !o.serverClaimedBy && !o.serverNameTaken ? newAlertBurst(ms) : undefined;
  if (burst && vmiUid) return { kind: 'isolate', alertTime: burst, vmiUid, alreadyIsolated: isolatedVmiUid(o.isolationPolicy) === vmiUid };
  // A burst without a server VMI to select waits for one; a policy already in place stays.
  if (burst) return { kind: 'hold' };
  if (isolationInForce(previous)) {
    const releasedAt = releaseOf(ms, previous.isolatedAt, previous.alertTime);
    if (releasedAt) return { kind: 'release', releasedAt };
    return vmiUid ? { kind: 'hold', vmiUid } : { kind: 'hold' };
  }
  return { kind: 'none' };
}

function applyPolicy(ms: MonitoredServer, vmiUid: string, log: string, event?: Action['event']): Action {
  return {
    type: 'apply',
    capability: 'response',
    failureReason: 'IsolateServerFailed',
    log,
    resource: NETWORK_POLICY,
    object: buildIsolationPolicy(ms, vmiUid),
    ...(event ? { event } : {}),
  };
}

/** The teardown's deletion of the policy (a deleted MonitoredServer isolates nothing any more). */
export function deleteIsolationPolicy(ms: MonitoredServer, policy: NetworkPolicy): Action {
  return { ...deletion(ms, policy, `Delete NetworkPolicy ${ms.metadata.namespace}/${isolationPolicyName(ms)}: the MonitoredServer is deleted`), capability: 'teardown' };
}

function deletePolicy(ms: MonitoredServer, o: ObservedState, log: string, event?: Action['event']): Action[] {
  const policy = o.isolationPolicy;
  if (!policy || policy.metadata?.deletionTimestamp) return [];
  return [deletion(ms, policy, log, event)];
}

function deletion(ms: MonitoredServer, policy: NetworkPolicy, log: string, event?: Action['event']): Action {
  return {
    type: 'delete',
    capability: 'response',
    failureReason: 'ReleaseIsolationFailed',
    log,
    resource: NETWORK_POLICY,
    namespace: ms.metadata.namespace ?? '',
    name: isolationPolicyName(ms),
    ...(policy.metadata?.uid ? { preconditionUid: policy.metadata.uid } : {}),
    tolerate: [404, 409],
    ...(event ? { event } : {}),
  };
}

export function planIsolation(ms: MonitoredServer, o: ObservedState): Action[] {
  const decision = decideIsolation(ms, o);
  const ns = ms.metadata.namespace ?? '';
  const policy = `${ns}/${isolationPolicyName(ms)}`;
  const vmi = `${ns}/${o.serverVmi?.metadata?.name}`;
  switch (decision.kind) {
    case 'isolate': {
      if (decision.alreadyIsolated) return [];
      const message = `Isolated server VMI ${vmi}: NetworkPolicy ${policy} denies all ingress and egress of its launcher pod on the ${alertDescription(ms, decision.alertTime)}. Release: ${releaseCommand(ms)}`;
      return [applyPolicy(ms, decision.vmiUid, `Isolate server VMI ${vmi} with NetworkPolicy ${policy} (spec.response.onAlert: Isolate)`, { type: 'Warning', reason: EventReason.ServerIsolated, message: message.slice(0, 1000) })];
    }
    case 'hold':
      // Re-created if someone deleted it, re-pointed when the server runs as a new VMI.
      if (!decision.vmiUid || isolatedVmiUid(o.isolationPolicy) === decision.vmiUid) return [];
      return [applyPolicy(ms, decision.vmiUid, `Keep server VMI ${vmi} isolated: NetworkPolicy ${policy} selects its launcher pod (VMI ${decision.vmiUid})`)];
    case 'release':
      return deletePolicy(ms, o, `Delete NetworkPolicy ${policy}: isolation released (${ANNOTATION_RELEASE_RESPONSE}=${decision.releasedAt})`, {
        type: 'Normal',
        reason: EventReason.ResponseReleased,
        message: `Removed NetworkPolicy ${policy}: the isolation of server VMI ${vmi} was released (${ANNOTATION_RELEASE_RESPONSE}=${decision.releasedAt})`,
      });
    case 'none':
      // Ours but no isolation holds (status.response moved on, e.g. to a Pause): not left behind.
      return deletePolicy(ms, o, `Delete NetworkPolicy ${policy}: no isolation holds`);
  }
}

/** status.response after this reconcile when an isolation is decided; `responded`: its action succeeded. */
export function isolationStatus(ms: MonitoredServer, o: ObservedState, responded: boolean, now: Date): ResponseStatus | undefined {
  const previous = ms.status?.response;
  const decision = decideIsolation(ms, o);
  if (decision.kind === 'isolate' && (decision.alreadyIsolated || responded)) {
    // A burst within an isolation that holds keeps its start; after a release it is a new isolation.
    const keep = isolationInForce(previous) && !releaseOf(ms, previous.isolatedAt, previous.alertTime) && decision.alreadyIsolated;
    return { action: 'Isolate', alertTime: decision.alertTime, isolatedAt: keep ? previous.isolatedAt : now.toISOString() };
  }
  if (decision.kind === 'release' && previous && (responded || !o.isolationPolicy)) return { ...previous, releasedAt: decision.releasedAt };
  return previous;
}

/** What Responded says of the node agent's layer (its NetworkIsolated condition), when the agent filters taps. */
function agentLayer(ms: MonitoredServer): string {
  const c = ms.status?.conditions?.find((x) => x.type === ConditionType.NetworkIsolated);
  if (c?.status === 'True') return `; and ${c.message} (NetworkIsolated)`;
  return `; the node agent's filter on its taps is not in place yet (NetworkIsolated: ${c ? `${c.reason}: ${c.message}` : 'not reported yet'})`;
}

/** Responded while the response is an isolation: True Isolated naming the alert (and the agent's layer when `agentFilters`), False Released. */
export function isolationResponded(ms: MonitoredServer, response: ResponseStatus, agentFilters = false): Update | undefined {
  if (response.action !== 'Isolate' || !response.isolatedAt) return undefined;
  if (response.releasedAt) {
    return { status: 'False', reason: Reason.Released, message: `NetworkPolicy ${isolationPolicyName(ms)} was removed: the isolation on the alert at ${response.alertTime} was released at ${response.releasedAt}` };
  }
  return {
    status: 'True',
    reason: Reason.Isolated,
    message: `the server VM is cut off the pod network by NetworkPolicy ${isolationPolicyName(ms)} (deny all ingress and egress) since ${response.isolatedAt}, on the ${alertDescription(ms, response.alertTime)}${agentFilters ? agentLayer(ms) : ''}; release it with: ${releaseCommand(ms)}`.slice(0, 2000),
  };
}

type VmSpec = { networks?: unknown[]; domain?: { devices?: { interfaces?: unknown[] } } };

/** The server VM's spec as known: its running VMI's, else its VM's template, else the MonitoredServer's template. */
function serverSpec(ms: MonitoredServer, o: ObservedState): VmSpec | undefined {
  if (o.serverVmi?.spec?.networks) return o.serverVmi.spec as VmSpec;
  if (o.serverVm?.spec?.template?.spec?.networks) return o.serverVm.spec.template.spec as VmSpec;
  return (ms.spec.server.template?.spec as { template?: { spec?: VmSpec } } | undefined)?.template?.spec;
}

/** The server's networks other than the pod network: a NetworkPolicy cannot cut them. */
export function secondaryNetworks(ms: MonitoredServer, o: ObservedState): string[] {
  const networks = (serverSpec(ms, o)?.networks ?? []) as Array<{ name: string; pod?: unknown }>;
  return networks.filter((n) => n.pod === undefined).map((n) => n.name);
}

/** The server's networks whose binding has no tap in the launcher pod (SR-IOV, passt, ...): no tap filter can cut them. */
export function untappableNetworks(ms: MonitoredServer, o: ObservedState): string[] {
  const spec = serverSpec(ms, o);
  const interfaces = (spec?.domain?.devices?.interfaces ?? []) as Array<Parameters<typeof bindingOf>[0] & { name: string }>;
  return ((spec?.networks ?? []) as Array<{ name: string }>)
    .filter((n) => !(TAP_BINDINGS as readonly string[]).includes(bindingOf(interfaces.find((i) => i.name === n.name))))
    .map((n) => n.name);
}

/**
 * ResponseReady with onAlert: Isolate. Armed when every network of the server can be cut: the pod
 * network by the NetworkPolicy, and — `agentFilters`, the node agent mirrors with tc on the nodes —
 * every network's tap by the agent's filter. Without the agent, a server with other networks cannot
 * be isolated; with it, one whose binding has no tap cannot.
 */
export function isolationReadiness(ms: MonitoredServer, o: ObservedState, agentFilters = false): Update {
  const untappable = agentFilters ? untappableNetworks(ms, o) : [];
  if (untappable.length > 0) {
    return {
      status: 'False',
      reason: Reason.ResponseUnavailable,
      message: `isolating the server VM's networks ${untappable.join(', ')} is not available in this release: their binding has no tap in the launcher pod for the node agent to filter; use the bridge or masquerade binding, Pause, or None to monitor without a response`,
    };
  }
  if (agentFilters) {
    return {
      status: 'True',
      reason: Reason.Armed,
      message: `an alert cuts the server VM off every network once per alert burst: the pod network by NetworkPolicy ${isolationPolicyName(ms)} (deny all ingress and egress), every network's tap by the node agent's filter (after the mirror's copy to the IDS VM); release it with: ${releaseCommand(ms)}`,
    };
  }
  const others = secondaryNetworks(ms, o);
  if (others.length > 0) {
    return {
      status: 'False',
      reason: Reason.ResponseUnavailable,
      message: `isolating the server VM's networks besides the pod network (${others.join(', ')}) is not available in this release: Isolate cuts only the pod network (a NetworkPolicy), so an alert would leave those open; use Pause, or None to monitor without a response`,
    };
  }
  return {
    status: 'True',
    reason: Reason.Armed,
    message: `an alert cuts the server VM off the pod network (NetworkPolicy ${isolationPolicyName(ms)}, deny all ingress and egress) once per alert burst; release it with: ${releaseCommand(ms)}`,
  };
}
