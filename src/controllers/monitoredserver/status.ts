// Pure: the MonitoredServer status (conditions and summary fields) from the observed state.
// Each condition says what is wrong and what the user can do about it.
import { isDeepStrictEqual } from 'node:util';
import type { MonitoredServer, MonitoredServerStatus, ResponseStatus, VmStatus } from '../../api/v1alpha1/monitoredserver-types.ts';
import { conditionsEqual, removeCondition, setCondition, type Condition, type ConditionUpdate } from '../../kube/client/conditions.ts';
import { idsVmName, isAdopting, processMapperPodName, serverVmName } from '../../builders/names.ts';
import { releaseCommand, responseStatus } from './planners/response.ts';
import { isolationReadiness, isolationResponded } from './planners/isolation.ts';
import type { Outcome, Outcomes } from './actions.ts';
import { diskAttached, snapshotStatuses } from './disk-inspection-status.ts';
import { nextMonitoringGap } from './monitoring-gap.ts';
import { pairMoveConditions } from './pair-move-status.ts';
import type { PairMove } from './planners/evacuation.ts';
import { AGENT_OWNED_CONDITIONS, idsNetworkJoined, idsNetworkStatus, mirrorAttached } from './networking-status.ts';
import type { NetworkingContext } from './planners/networking.ts';
import { ConditionType, Reason } from './reasons.ts';
import { podIsReady, printableStatus, vmCondition, vmiIsReady, vmiIsRunning, vmiNode, vmStatusBehind, type ObservedState } from './observed-state.ts';

type Update = Omit<ConditionUpdate, 'type' | 'observedGeneration'>;

function serverRunning(ms: MonitoredServer, o: ObservedState, outcomes: Outcomes): Update {
  const ns = ms.metadata.namespace;
  const name = serverVmName(ms);
  if (o.serverClaimedBy) {
    return {
      status: 'False',
      reason: Reason.ServerVMAlreadyMonitored,
      message: `VirtualMachine ${ns}/${name} is already monitored by MonitoredServer ${o.serverClaimedBy}; delete that MonitoredServer or monitor another VM`,
    };
  }
  if (o.serverNameTaken) {
    return {
      status: 'False',
      reason: Reason.ServerVMNameConflict,
      message: `a VirtualMachine named ${ns}/${name} already exists and was not created by this MonitoredServer; rename one of them, or adopt it with spec.server.virtualMachineName`,
    };
  }
  const refused = outcomes.refused('serverVM');
  if (refused) {
    return {
      status: 'False',
      reason: Reason.ServerVMInvalid,
      message: `the API server refused VirtualMachine ${ns}/${name} built from spec.server.template: ${refused.message}`,
    };
  }
  if (!o.serverVm) {
    return isAdopting(ms)
      ? { status: 'False', reason: Reason.ServerVMNotFound, message: `VirtualMachine ${ns}/${name} (spec.server.virtualMachineName) does not exist; create it or fix the name` }
      : { status: 'False', reason: Reason.ServerVMCreating, message: `creating VirtualMachine ${ns}/${name}` };
  }
  if (vmiIsRunning(o.serverVmi) && !vmStatusBehind(o.serverVm)) {
    return { status: 'True', reason: Reason.Running, message: `VirtualMachine ${ns}/${name} is running on node ${o.serverVmi?.status?.nodeName}` };
  }
  const phase = printableStatus(o.serverVm);
  const strategy = o.serverVm.spec?.runStrategy ?? (o.serverVm.spec?.running ? 'Always' : 'Halted');
  // KubeVirt shows a new VM as Stopped until its VMI exists: only a VM that is meant to stay down
  // (Halted, or Manual without a start) is stopped.
  const meantToRun = strategy === 'Always' || strategy === 'RerunOnFailure';
  if (!o.serverVmi && !meantToRun && (phase === 'Stopped' || phase === undefined)) {
    return {
      status: 'False',
      reason: Reason.ServerVMStopped,
      message: `VirtualMachine ${ns}/${name} is stopped (runStrategy ${strategy}); start it to monitor it`,
    };
  }
  return { status: 'False', reason: Reason.ServerVMStarting, message: `VirtualMachine ${ns}/${name} is ${phase ?? 'starting'}` };
}

/** The user's server VM reports RestartRequired: a template change waits for a restart HyperSpector never does. */
function serverRestartRequired(ms: MonitoredServer, o: ObservedState): Update | undefined {
  if (!o.serverVm || o.serverClaimedBy || o.serverNameTaken) return undefined;
  const name = `${ms.metadata.namespace}/${serverVmName(ms)}`;
  const condition = vmCondition(o.serverVm, 'RestartRequired');
  if (condition?.status === 'True') {
    return {
      status: 'True',
      reason: Reason.RestartRequired,
      message: `VirtualMachine ${name} waits for a restart to apply a change of its template (KubeVirt: ${condition.message ?? 'RestartRequired'}); HyperSpector never restarts your server: restart it when convenient (virtctl restart ${serverVmName(ms)} -n ${ms.metadata.namespace}); its IDS VM follows`,
    };
  }
  return { status: 'False', reason: Reason.UpToDate, message: `VirtualMachine ${name} runs its current template` };
}

function unschedulableMessage(o: ObservedState): string | undefined {
  const c = o.idsVmi?.status?.conditions?.find((x) => x.type === 'PodScheduled' && x.status === 'False');
  return c ? `${c.reason ?? 'Unschedulable'}: ${c.message ?? ''}`.trim() : undefined;
}

function idsRunning(ms: MonitoredServer, o: ObservedState, outcomes: Outcomes, serverNode: string | undefined): Update {
  const ns = ms.metadata.namespace;
  const name = idsVmName(ms);
  if (o.idsNameTaken) {
    return {
      status: 'False',
      reason: Reason.IDSVMNameConflict,
      message: `a VirtualMachine named ${ns}/${name} already exists and is not this MonitoredServer's IDS VM; delete or rename it`,
    };
  }
  const refused = outcomes.refused('idsVM');
  if (refused) {
    return {
      status: 'False',
      reason: Reason.IDSVMInvalid,
      message: `the API server refused IDS VirtualMachine ${ns}/${name} built from spec.ids.template: ${refused.message}`,
    };
  }
  if (!o.idsVm) {
    return serverNode
      ? { status: 'False', reason: Reason.IDSVMCreating, message: `creating IDS VirtualMachine ${ns}/${name} on node ${serverNode}` }
      : { status: 'False', reason: Reason.WaitingForServerPlacement, message: `the IDS VM is created once the server VM has a node` };
  }
  if (vmiIsReady(o.idsVmi) && !vmStatusBehind(o.idsVm)) {
    return { status: 'True', reason: Reason.Running, message: `IDS VirtualMachine ${ns}/${name} is running on node ${o.idsVmi?.status?.nodeName}` };
  }
  const unschedulable = unschedulableMessage(o);
  if (unschedulable) {
    return {
      status: 'False',
      reason: Reason.IDSVMUnschedulable,
      message: `IDS VirtualMachine ${ns}/${name} cannot be scheduled on node ${serverNode ?? '(unknown)'} beside the server VM: ${unschedulable}`,
    };
  }
  if (o.idsVmi?.metadata?.deletionTimestamp) {
    return { status: 'False', reason: Reason.IDSVMRestarting, message: `IDS VirtualMachine ${ns}/${name} is restarting to follow the server VM or a template change` };
  }
  return { status: 'False', reason: Reason.IDSVMStarting, message: `IDS VirtualMachine ${ns}/${name} is ${printableStatus(o.idsVm) ?? 'starting'}` };
}

function colocated(o: ObservedState, ids: Update, serverNode: string | undefined): Update {
  if (!serverNode) {
    return { status: 'False', reason: Reason.WaitingForServerPlacement, message: 'waiting for the server VM to be scheduled to a node' };
  }
  const idsNode = vmiNode(o.idsVmi);
  if (!idsNode && (ids.reason === Reason.IDSVMInvalid || ids.reason === Reason.IDSVMNameConflict)) {
    // Nothing will be placed until the user acts: say that, not "waiting".
    return { status: 'False', reason: ids.reason, message: `no IDS VM can be placed beside the server on node ${serverNode}: see condition IDSRunning` };
  }
  if (!idsNode) {
    return { status: 'False', reason: Reason.WaitingForIDSPlacement, message: `waiting for the IDS VM to be scheduled to node ${serverNode}` };
  }
  if (idsNode !== serverNode) {
    return {
      status: 'False',
      reason: Reason.NodeMismatch,
      message: `the IDS VM runs on node ${idsNode} but the server VM on node ${serverNode}; moving the IDS VM`,
    };
  }
  return { status: 'True', reason: Reason.SameNode, message: `the server and IDS VMs run on node ${serverNode}` };
}

/** Container states that will not fix themselves: the user must act (image, profile ConfigMap, ...). */
const FAILING_WAIT_REASONS = new Set(['ImagePullBackOff', 'ErrImagePull', 'CrashLoopBackOff', 'CreateContainerConfigError', 'InvalidImageName', 'CreateContainerError']);

function processMapping(ms: MonitoredServer, o: ObservedState, outcomes: Outcomes, serverNode: string | undefined): Update {
  const name = processMapperPodName(ms);
  if (!serverNode) return { status: 'False', reason: Reason.WaitingForServerPlacement, message: 'the process mapper starts once the server VM has a node' };
  const refused = outcomes.refused('processMapper');
  if (refused) {
    return {
      status: 'False',
      reason: Reason.ProcessMapperFailing,
      message: `the API server refused process-mapper pod ${name} (it must run privileged with hostPID on node ${serverNode}): ${refused.message}`,
    };
  }
  const pod = o.processMapperPod;
  if (!pod || pod.metadata?.deletionTimestamp) {
    return { status: 'False', reason: Reason.ProcessMapperCreating, message: `creating process-mapper pod ${name} on node ${serverNode}` };
  }
  if (podIsReady(pod)) {
    return { status: 'True', reason: Reason.Mapping, message: `pod ${name} on node ${pod.spec?.nodeName ?? serverNode} maps the server VM's processes from guest memory` };
  }
  const waiting = pod.status?.containerStatuses?.find((c) => c.state?.waiting?.reason)?.state?.waiting;
  if (waiting?.reason && FAILING_WAIT_REASONS.has(waiting.reason)) {
    return { status: 'False', reason: Reason.ProcessMapperFailing, message: `pod ${name}: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}` };
  }
  const unschedulable = pod.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
  const detail = unschedulable ? `: ${unschedulable.reason ?? 'Unschedulable'}: ${unschedulable.message ?? ''}` : ` (${pod.status?.phase ?? 'Pending'})`;
  return { status: 'False', reason: Reason.ProcessMapperStarting, message: `pod ${name} is not ready yet${detail}` };
}

/**
 * Capabilities the spec enables whose machinery this release does not have yet. Each is a
 * condition that is False with a reason naming it, so Ready is never True while part of what the
 * user asked for does not run; the message says how to monitor without it.
 */
function unavailableCapabilities(ms: MonitoredServer, o: ObservedState, networking: NetworkingContext | undefined): Array<[string, Update]> {
  const out: Array<[string, Update]> = [];
  if (ms.spec.mirroring?.enabled !== false && !networking) {
    out.push([
      ConditionType.MirrorAttached,
      {
        status: 'False',
        reason: Reason.MirroringUnavailable,
        message:
          "traffic mirroring (spec.mirroring) is not available in this release: no node agent mirrors the server's traffic, so the IDS VM gets none; set spec.mirroring.enabled: false to monitor without it",
      },
    ]);
  }
  const response = ms.spec.response?.onAlert ?? 'None';
  if (response === 'Pause') {
    out.push([
      ConditionType.ResponseReady,
      { status: 'True', reason: Reason.Armed, message: `an alert pauses the server VMI once per alert burst; release it with: ${releaseCommand(ms)}` },
    ]);
  } else if (response === 'Isolate') {
    out.push([ConditionType.ResponseReady, isolationReadiness(ms, o, networking?.settings.mirroring === 'tc')]);
  } else if (response !== 'None') {
    out.push([
      ConditionType.ResponseReady,
      {
        status: 'False',
        reason: Reason.ResponseUnavailable,
        message: `the alert response ${response} (spec.response.onAlert) is not available in this release: alerts are not acted on; use Pause, or None to monitor without a response`,
      },
    ]);
  }
  return out;
}

function vmStatus(name: string, vm: ObservedState['serverVm'], vmi: ObservedState['serverVmi']): VmStatus {
  const out: VmStatus = { name };
  const phase = printableStatus(vm);
  if (phase) out.phase = phase;
  if (vm) out.ready = vmiIsReady(vmi);
  const node = vmiNode(vmi);
  if (node) out.nodeName = node;
  return out;
}

/**
 * The status the MonitoredServer should have; `previous` keeps lastTransitionTime stable. With
 * `networking`, IDSNetworkJoined and MirrorAttached are part of Ready (the node agent's
 * MirrorAttached is read, never written: see networking-status.ts).
 */
export function computeStatus(ms: MonitoredServer, o: ObservedState, outcomes: Outcomes, now: Date, move?: PairMove, networking?: NetworkingContext, snapshots?: { notReady?: string }): MonitoredServerStatus {
  const generation = ms.metadata.generation ?? 0;
  const serverNode = o.serverClaimedBy || o.serverNameTaken ? undefined : vmiNode(o.serverVmi);
  const mappingEnabled = ms.spec.processMapping?.enabled !== false;
  const ids = idsRunning(ms, o, outcomes, serverNode);
  const parts: Array<[string, Update]> = [
    [ConditionType.ServerRunning, serverRunning(ms, o, outcomes)],
    [ConditionType.IDSRunning, ids],
    [ConditionType.Colocated, colocated(o, ids, serverNode)],
  ];
  if (mappingEnabled) parts.push([ConditionType.ProcessMapping, processMapping(ms, o, outcomes, serverNode)]);
  const disk = diskAttached(ms, o, outcomes, snapshots);
  if (disk) parts.push([ConditionType.DiskAttached, disk]);
  const capabilities = unavailableCapabilities(ms, o, networking);
  parts.push(...capabilities);
  // While the pair moves, the stopped IDS side says why (pair-move-status.ts).
  const moving = move ? pairMoveConditions(move) : {};
  for (const part of parts) part[1] = moving[part[0]] ?? part[1];
  // Read for Ready, never written by the operator (the node agent's condition).
  const readOnly: Array<[string, Update]> = [];
  if (networking) {
    parts.push([ConditionType.IDSNetworkJoined, idsNetworkJoined(ms, o, outcomes, networking)]);
    const mirror = mirrorAttached(ms, o, networking);
    if (mirror.owned) parts.push([ConditionType.MirrorAttached, mirror.owned]);
    if (mirror.agent) readOnly.push([ConditionType.MirrorAttached, mirror.agent]);
  }
  // An IDS VM that waits for its network (an address, network data it can take) is not created:
  // Ready names that wait, not "creating the IDS VM".
  const networkFirst = networking && !o.idsVm ? parts.filter(([t, u]) => t === ConditionType.IDSNetworkJoined && u.status !== 'True' && u.reason !== Reason.IDSNetworkJoining) : [];
  const notReady = [...networkFirst, ...parts, ...readOnly].find(([, u]) => u.status !== 'True');
  const ready: Update = notReady
    ? { status: 'False', reason: notReady[1].reason, message: `${notReady[0]}: ${notReady[1].message}` }
    : { status: 'True', reason: Reason.Monitoring, message: `IDS VM ${idsVmName(ms)} monitors server VM ${serverVmName(ms)} on node ${serverNode}` };

  let conditions: Condition[] = (ms.status?.conditions as Condition[] | undefined) ?? [];
  // A disabled mechanism has no condition at all.
  if (!mappingEnabled) conditions = removeCondition(conditions, ConditionType.ProcessMapping);
  for (const type of [ConditionType.MirrorAttached, ConditionType.DiskAttached, ConditionType.ResponseReady, ConditionType.IDSNetworkJoined]) {
    if (!parts.some(([t]) => t === type)) conditions = removeCondition(conditions, type);
  }
  // Synced exists only while an action fails and is retried: the failing action and the API server's words.
  const failure = outcomes.firstFailure();
  conditions = failure
    ? setCondition(conditions, { type: ConditionType.Synced, ...syncFailure(failure), observedGeneration: generation }, now)
    : removeCondition(conditions, ConditionType.Synced);
  const restart = serverRestartRequired(ms, o);
  if (!restart) conditions = removeCondition(conditions, ConditionType.ServerRestartRequired);
  const informational: Array<[string, Update]> = restart ? [[ConditionType.ServerRestartRequired, restart]] : [];
  const response = responseStatus(ms, o, outcomes.of('response').some((x) => x.kind === 'done'), now);
  const responded = respondedCondition(ms, response, networking?.settings.mirroring === 'tc');
  if (responded) informational.push([ConditionType.Responded, responded]);
  else conditions = removeCondition(conditions, ConditionType.Responded);
  for (const [type, update] of [[ConditionType.Ready, ready] as [string, Update], ...parts, ...informational]) {
    conditions = setCondition(conditions, { type, ...update, observedGeneration: generation }, now);
  }
  // A VM is named in status only once it exists and is this MonitoredServer's (kubectl get shows it).
  const serverVm = o.serverClaimedBy || o.serverNameTaken ? undefined : o.serverVm;
  const idsVm = o.idsNameTaken ? undefined : o.idsVm;
  const status: MonitoredServerStatus = { observedGeneration: generation, conditions };
  if (serverVm) status.serverVM = vmStatus(serverVmName(ms), serverVm, o.serverVmi);
  if (idsVm) status.idsVM = vmStatus(idsVmName(ms), idsVm, o.idsVmi);
  if (serverNode) status.nodeName = serverNode;
  if (response) status.response = response;
  const gap = nextMonitoringGap(ms.status?.lastMonitoringGap, move, ready.status === 'True', serverNode, now);
  if (gap) status.lastMonitoringGap = gap;
  const idsNetwork = networking ? idsNetworkStatus(ms, o, networking) : undefined;
  if (idsNetwork) status.idsNetwork = idsNetwork;
  const copies = snapshotStatuses(ms, o);
  if (copies) status.diskInspection = { snapshots: copies };
  return status;
}

/** Responded: True while the server is paused or isolated for an alert, False once the user released it. */
function respondedCondition(ms: MonitoredServer, response: ResponseStatus | undefined, agentFilters: boolean): Update | undefined {
  const isolation = response ? isolationResponded(ms, response, agentFilters) : undefined;
  if (isolation) return isolation;
  if (!response?.pausedAt) return undefined;
  if (response.releasedAt) return { status: 'False', reason: Reason.Released, message: `the server VMI was unpaused: the response to the alert at ${response.alertTime} was released at ${response.releasedAt}` };
  return { status: 'True', reason: Reason.ServerPaused, message: `the server VMI was paused at ${response.pausedAt} on the alert at ${response.alertTime}; release it with: ${releaseCommand(ms)}` };
}

/** Synced=False: which action failed (its failureReason) and what the API server said. */
export function syncFailure(failure: Outcome): Update {
  const code = failure.code !== undefined ? ` (HTTP ${failure.code})` : '';
  return {
    status: 'False',
    reason: failure.action.failureReason,
    message: `${failure.action.log} failed${code} and is retried with backoff: ${failure.message ?? 'unknown error'}`.slice(0, 2000),
  };
}

/**
 * While a deleted MonitoredServer is torn down it is never Ready: Ready says Deleting and what the
 * teardown waits on (`waitingOn`, from the finalizer's current step).
 */
export function deletingStatus(ms: MonitoredServer, waitingOn: string, now: Date): MonitoredServerStatus {
  const generation = ms.metadata.generation ?? 0;
  const conditions = setCondition(
    ((ms.status?.conditions as Condition[] | undefined) ?? []).filter((c) => !AGENT_OWNED_CONDITIONS.includes(c.type)),
    { type: ConditionType.Ready, status: 'False', reason: Reason.Deleting, message: `deleting: ${waitingOn}`, observedGeneration: generation },
    now,
  );
  return { ...operatorOwned(ms.status), observedGeneration: generation, conditions };
}

/** The status without the fields other writers own (status.alerts: the process mapper's field manager). */
function operatorOwned(status: MonitoredServerStatus | undefined): MonitoredServerStatus {
  const { alerts: _alerts, ...rest } = status ?? {};
  return rest;
}

/**
 * True when writing `next` would change nothing the user sees: conditions compared as a map, the
 * rest as values (key order aside, as the API server may return it in another order); fields the
 * operator does not write (status.alerts) are not compared.
 */
export function statusEqual(current: MonitoredServerStatus | undefined, next: MonitoredServerStatus): boolean {
  if (!current) return false;
  // A condition another component owns (the node agent's MirrorAttached) is not the operator's to write or compare.
  const nextTypes = new Set((next.conditions ?? []).map((c) => c.type));
  const foreign = (c: { type: string }) => AGENT_OWNED_CONDITIONS.includes(c.type) && !nextTypes.has(c.type);
  const own = operatorOwned(current);
  const { conditions: a, ...restA } = { ...own, ...(own.conditions ? { conditions: own.conditions.filter((c) => !foreign(c)) } : {}) };
  const { conditions: b, ...restB } = next;
  return conditionsEqual(a as Condition[] | undefined, b as Condition[]) && isDeepStrictEqual(restA, restB);
}
