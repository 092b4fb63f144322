// Planner: the pair moves together. When the server VMI leaves its node — a live migration
// (VirtualMachineInstanceMigration, vmi.status.migrationState) or an eviction KubeVirt turned into
// vmi.status.evacuationNodeName (eviction strategy External on an owned server) — the IDS side on the
// old node is stopped (the IDS VM through KubeVirt's stop subresource, which also drops its hot-plugged
// disks and the mirror's target; the process-mapper pod deleted), and the other planners, held
// back while the pair moves, re-form it on the server's new node once the move has ended.
// For an owned server being evacuated the operator resolves the eviction itself: a migration when the
// VMI is live-migratable (at most `limits.max` of them in flight, a failed one retried with backoff),
// otherwise a restart elsewhere as its run strategy allows. Pure: observed state in, actions out.
import type { MonitoredServer } from '../../../api/v1alpha1/monitoredserver-types.ts';
import { idsVmName, isAdopting, LABEL_MANAGED_BY, LABEL_MONITORED_SERVER, LABEL_ROLE, MANAGED_BY, ownerReference, serverVmName } from '../../../builders/names.ts';
import type { KubeObject } from '../../../kube/client/objects.ts';
import { VIRTUAL_MACHINE_INSTANCE, type ResourceType } from '../../../kube/client/resources.ts';
import type { Action } from '../actions.ts';
import type { ObservedState, VirtualMachineInstance, VirtualMachineInstanceMigration } from '../observed-state.ts';
import { EventReason, Reason } from '../reasons.ts';
import { deleteMapperPod } from './process-mapper.ts';

export const VIRTUAL_MACHINE_INSTANCE_MIGRATION: ResourceType = {
  apiVersion: 'kubevirt.io/v1',
  kind: 'VirtualMachineInstanceMigration',
  plural: 'virtualmachineinstancemigrations',
  namespaced: true,
};

/** Role label of the migrations the operator creates to evacuate an owned server. */
export const EVACUATION_ROLE = 'evacuation';
/** Which attempt a migration is (1, 2, ...) for its VMI: the next one gets the next number. */
export const ANNOTATION_EVACUATION_ATTEMPT = 'hyperspector.io/evacuation-attempt';
/** The node the migration evacuates. */
export const ANNOTATION_EVACUATED_NODE = 'hyperspector.io/evacuated-node';

/** KubeVirt's evacuation controller marks the migrations it creates for a drained node with this annotation. */
export const EVACUATION_MIGRATION_ANNOTATION = 'kubevirt.io/evacuationMigration';

/** A migration waiting this long for a node (target pod not running) gets a hint in the condition. */
export const SCHEDULING_HINT_AFTER_MS = 60_000;
/** First retry of a failed evacuation migration; doubles per failure, at most MAX_RETRY_MS. */
export const FIRST_RETRY_MS = 10_000;
export const MAX_RETRY_MS = 300_000;
/** How soon a pair waiting for a migration slot is looked at again. */
export const SLOT_RECHECK_MS = 5_000;

const FINAL_MIGRATION_PHASES = new Set(['Succeeded', 'Failed']);

/** Why the pair is apart. `reason` is the condition reason of IDSRunning, Colocated and ProcessMapping. */
export interface PairMove {
  reason: typeof Reason.ServerMigrating | typeof Reason.ServerEvacuating | typeof Reason.EvacuationMigrationFailed | typeof Reason.ServerRestarting;
  /** What the monitoring gap is recorded as. */
  cause: 'Evacuation' | 'Migration' | 'Restart';
  /** The node the server leaves. */
  fromNode: string;
  /** Where it goes, once known. */
  toNode?: string;
  /** What happens and, for a failure, what to do. */
  message: string;
}

export interface EvacuationLimits {
  /** Evacuation migrations of this operator in flight (or just created), cluster-wide. */
  inFlight: number;
  /** At most this many at once (the operator's --concurrency). */
  max: number;
}

export interface EvacuationPlan {
  actions: Action[];
  /** Set while the pair is apart: the other planners of the pair hold back. */
  move?: PairMove;
  /** Look again after this long even if nothing changes (a backoff or a slot to wait for). */
  recheckAfterMs?: number;
}

export function migrationIsFinal(m: VirtualMachineInstanceMigration): boolean {
  return FINAL_MIGRATION_PHASES.has(m.status?.phase ?? '');
}

export function isOurEvacuation(m: VirtualMachineInstanceMigration): boolean {
  return m.metadata?.labels?.[LABEL_ROLE] === EVACUATION_ROLE && m.metadata?.labels?.[LABEL_MANAGED_BY] === MANAGED_BY;
}

function attemptOf(m: VirtualMachineInstanceMigration): number {
  const n = Number(m.metadata?.annotations?.[ANNOTATION_EVACUATION_ATTEMPT]);
  return Number.isFinite(n) ? n : 0;
}

/** When the migration entered its current phase (KubeVirt records each transition), else when it was created. */
function phaseSince(m: VirtualMachineInstanceMigration): number {
  const t = [...(m.status?.phaseTransitionTimestamps ?? [])].reverse().find((p) => p.phase === m.status?.phase)?.phaseTransitionTimestamp ?? m.metadata?.creationTimestamp;
  return t ? new Date(t).getTime() : 0;
}

/** Why a migration failed: KubeVirt copies the VMI's migration state to it once final; until then the VMI's says. */
function failureOf(m: VirtualMachineInstanceMigration, vmi: VirtualMachineInstance | undefined): string {
  const vmiState = vmi?.status?.migrationState;
  const state = m.status?.migrationState?.failureReason ? m.status.migrationState : vmiState?.migrationUid === m.metadata?.uid ? vmiState : m.status?.migrationState;
  const condition = m.status?.conditions?.find((c) => c.status === 'True' && /Fail|Abort/i.test(`${c.type}${c.reason ?? ''}`));
  return state?.failureReason || condition?.message || condition?.reason || 'KubeVirt gave no reason';
}

/** The retry delay after `failures` failed evacuation migrations from the same node. */
export function retryDelayMs(failures: number): number {
  return Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.max(0, failures - 1));
}

function liveMigratable(o: ObservedState): { migratable: boolean; known: boolean; why: string } {
  const c = o.serverVmi?.status?.conditions?.find((x) => x.type === 'LiveMigratable');
  return { migratable: c?.status === 'True', known: c?.status === 'True' || c?.status === 'False', why: c ? `${c.reason ?? 'NotMigratable'}: ${c.message ?? ''}`.trim() : 'KubeVirt has not reported LiveMigratable' };
}

export function planEvacuation(ms: MonitoredServer, o: ObservedState, now: Date, limits: EvacuationLimits): EvacuationPlan {
  const vmi = o.serverVmi;
  if (o.serverClaimedBy || o.serverNameTaken || !vmi) return { actions: [] };
  const ns = ms.metadata.namespace ?? '';
  const vmiName = vmi.metadata?.name ?? serverVmName(ms);
  const node = vmi.status?.nodeName ?? '';
  const evacuating = Boolean(vmi.status?.evacuationNodeName) && vmi.status?.evacuationNodeName === node;
  const migrations = (o.serverMigrations ?? []).filter((m) => m.spec?.vmiName === vmiName);

  // An owned server evacuated by a restart: the old VMI is going away.
  if (vmi.metadata?.deletionTimestamp) {
    if (!vmi.status?.evacuationNodeName || isAdopting(ms)) return { actions: [] };
    const move: PairMove = {
      reason: Reason.ServerRestarting,
      cause: 'Restart',
      fromNode: vmi.status.evacuationNodeName,
      message: `node ${vmi.status.evacuationNodeName} is being drained and the server VM could not be live-migrated: it restarts on another node; the IDS side follows`,
    };
    return { actions: stopIdsSide(ms, o, move), move };
  }
  if (vmi.status?.phase !== 'Running' || !node) return { actions: [] };

  const active = migrations.find((m) => !migrationIsFinal(m));
  const state = vmi.status?.migrationState;
  const stateInFlight = state !== undefined && !state.completed && !state.failed && Boolean(state.targetNode || state.targetPod);
  if (active || stateInFlight) {
    // The VMI's migration state is this migration's (not a finished earlier one's) when the UIDs agree.
    const current = state && (!active || !state.migrationUid || state.migrationUid === active.metadata?.uid) ? state : undefined;
    const to = current && !current.failed ? current.targetNode : undefined;
    const name = active?.metadata?.name ?? state?.migrationUid ?? 'in progress';
    const phase = active?.status?.phase ?? 'Running';
    const waiting = active && !to && now.getTime() - phaseSince(active) > SCHEDULING_HINT_AFTER_MS;
    const hint = waiting
      ? `; no node has taken the migration target for ${Math.round((now.getTime() - phaseSince(active)) / 1000)} s: check that another node is schedulable and has room for the server VM (kubectl get nodes; a cluster with every other node cordoned cannot take it)`
      : '';
    const from = current?.sourceNode ?? node;
    const move: PairMove = {
      reason: Reason.ServerMigrating,
      cause: evacuating || active?.metadata?.annotations?.[EVACUATION_MIGRATION_ANNOTATION] !== undefined || (active !== undefined && isOurEvacuation(active)) ? 'Evacuation' : 'Migration',
      fromNode: from,
      ...(to ? { toNode: to } : {}),
      message: `the server VM is migrating from node ${from}${to ? ` to node ${to}` : ''} (VirtualMachineInstanceMigration ${name}, ${phase})${hint}; the IDS VM and the process mapper were stopped on node ${from} and start beside the server once it has moved`,
    };
    return { actions: stopIdsSide(ms, o, move), move };
  }

  if (!evacuating) return { actions: [] };
  if (isAdopting(ms)) {
    // KubeVirt's evacuation controller migrates a VM whose eviction strategy is LiveMigrate; the VM's owner handles External.
    const move: PairMove = {
      reason: Reason.ServerEvacuating,
      cause: 'Evacuation',
      fromNode: node,
      message: `node ${node} is being drained: waiting for the server VM to be migrated (KubeVirt migrates it when its evictionStrategy is LiveMigrate or LiveMigrateIfPossible; with External its owner must move or stop it)`,
    };
    return { actions: stopIdsSide(ms, o, move), move };
  }

  const { migratable, known, why } = liveMigratable(o);
  if (!known) {
    // KubeVirt has not said yet whether it can migrate: a restart is never chosen on a guess.
    const move: PairMove = { reason: Reason.ServerEvacuating, cause: 'Evacuation', fromNode: node, message: `node ${node} is being drained: waiting for KubeVirt to report whether the server VM can live-migrate` };
    return { actions: stopIdsSide(ms, o, move), move, recheckAfterMs: SLOT_RECHECK_MS };
  }
  if (!migratable) return restartElsewhere(ms, o, node, why);

  const ours = migrations.filter(isOurEvacuation);
  const failedHere = ours.filter((m) => m.status?.phase === 'Failed' && m.metadata?.annotations?.[ANNOTATION_EVACUATED_NODE] === node).sort((a, b) => attemptOf(a) - attemptOf(b));
  const lastFailed = failedHere[failedHere.length - 1];
  if (lastFailed) {
    const retryAt = phaseSince(lastFailed) + retryDelayMs(failedHere.length);
    if (now.getTime() < retryAt) {
      const inMs = retryAt - now.getTime();
      const move: PairMove = {
        reason: Reason.EvacuationMigrationFailed,
        cause: 'Evacuation',
        fromNode: node,
        message: `node ${node} is being drained but migration ${lastFailed.metadata?.name} of the server VM failed (${failedHere.length} failed so far): ${failureOf(lastFailed, vmi)}; the server VM still runs on node ${node}; retried in ${Math.ceil(inMs / 1000)} s. If it keeps failing, check that another node is schedulable and has room for it, or stop the server VM (virtctl stop ${serverVmName(ms)} -n ${ns}) to let the drain finish`,
      };
      return { actions: stopIdsSide(ms, o, move), move, recheckAfterMs: inMs };
    }
  }
  if (limits.inFlight >= limits.max) {
    const move: PairMove = {
      reason: Reason.ServerEvacuating,
      cause: 'Evacuation',
      fromNode: node,
      message: `node ${node} is being drained: the server VM waits for a migration slot (${limits.inFlight} of at most ${limits.max} evacuation migrations in flight, the operator's --concurrency)`,
    };
    return { actions: stopIdsSide(ms, o, move), move, recheckAfterMs: SLOT_RECHECK_MS };
  }
  const attempt = 1 + Math.max(0, ...ours.map(attemptOf));
  const name = `${vmiName}-evacuate-${attempt}`;
  const migration: KubeObject & { spec: { vmiName: string } } = {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachineInstanceMigration',
    metadata: {
      name,
      namespace: ns,
      labels: { [LABEL_MONITORED_SERVER]: ms.metadata.name ?? '', [LABEL_ROLE]: EVACUATION_ROLE, [LABEL_MANAGED_BY]: MANAGED_BY },
      annotations: { [ANNOTATION_EVACUATION_ATTEMPT]: String(attempt), [ANNOTATION_EVACUATED_NODE]: node },
      ownerReferences: [ownerReference(ms)],
    },
    spec: { vmiName },
  };
  const move: PairMove = {
    reason: Reason.ServerMigrating,
    cause: 'Evacuation',
    fromNode: node,
    message: `node ${node} is being drained: migrating the server VM (VirtualMachineInstanceMigration ${name}); the IDS VM and the process mapper were stopped on node ${node} and start beside the server once it has moved`,
  };
  return {
    actions: [
      ...stopIdsSide(ms, o, move),
      {
        type: 'apply',
        capability: 'evacuation',
        failureReason: 'MigrateServerVMFailed',
        log: `Migrate server VMI ${ns}/${vmiName} off node ${node} (attempt ${attempt})`,
        resource: VIRTUAL_MACHINE_INSTANCE_MIGRATION,
        object: migration,
        event: { type: 'Normal', reason: EventReason.ServerVMEvacuating, message: `Node ${node} is being drained: created VirtualMachineInstanceMigration ${name} for the server VM` },
      },
    ],
    move,
  };
}

/** A server VMI that cannot live-migrate leaves the node by a restart, as its run strategy allows. */
function restartElsewhere(ms: MonitoredServer, o: ObservedState, node: string, why: string): EvacuationPlan {
  const ns = ms.metadata.namespace ?? '';
  const vm = serverVmName(ms);
  const vmi = o.serverVmi;
  const strategy = o.serverVm?.spec?.runStrategy ?? (o.serverVm?.spec?.running ? 'Always' : 'Halted');
  const comesBack = strategy === 'Always' || strategy === 'RerunOnFailure' || strategy === 'Manual';
  const move: PairMove = {
    reason: Reason.ServerRestarting,
    cause: 'Restart',
    fromNode: node,
    message: comesBack
      ? `node ${node} is being drained and the server VM is not live-migratable (${why}): it is restarted on another node (runStrategy ${strategy}); the IDS side follows`
      : `node ${node} is being drained and the server VM is not live-migratable (${why}): it is stopped (runStrategy ${strategy} does not start it again); start it to monitor it again`,
  };
  const event = { type: 'Warning' as const, reason: EventReason.ServerVMEvacuating, message: `Node ${node} is being drained and the server VM is not live-migratable (${why}): ${comesBack ? 'restarting it on another node' : `stopping it (runStrategy ${strategy})`}` };
  const restart: Action =
    strategy === 'Manual'
      ? // Deleting the VMI of a Manual VM would stop it for good: KubeVirt's restart starts it again.
        {
          type: 'subresource',
          capability: 'evacuation',
          failureReason: 'RestartServerVMFailed',
          log: `Restart server VM ${ns}/${vm} off node ${node}`,
          path: `/apis/subresources.kubevirt.io/v1/namespaces/${encodeURIComponent(ns)}/virtualmachines/${encodeURIComponent(vm)}/restart`,
          body: {},
          tolerate: [404, 409],
          event,
        }
      : {
          type: 'delete',
          capability: 'evacuation',
          failureReason: 'RestartServerVMFailed',
          log: `Restart server VMI ${ns}/${vm} off node ${node}`,
          resource: VIRTUAL_MACHINE_INSTANCE,
          namespace: ns,
          name: vmi?.metadata?.name ?? vm,
          ...(vmi?.metadata?.uid ? { preconditionUid: vmi.metadata.uid } : {}),
          tolerate: [404, 409],
          event,
        };
  return { actions: [...stopIdsSide(ms, o, move), restart], move };
}

/**
 * The IDS side on the node the server leaves: the IDS VM stopped through KubeVirt's stop subresource
 * (its hot-plugged disks and mirror target go with its VMI; the IDS VM planner starts it again on
 * the new node) and the process-mapper pod deleted (it is created again beside the server).
 */
export function stopIdsSide(ms: MonitoredServer, o: ObservedState, move: PairMove): Action[] {
  const ns = ms.metadata.namespace ?? '';
  const actions: Action[] = [];
  const ids = o.idsNameTaken ? undefined : o.idsVm;
  const stopped = ids?.spec?.runStrategy === 'Halted' || ids?.spec?.running === false;
  if (ids && !ids.metadata?.deletionTimestamp && !stopped) {
    const name = idsVmName(ms);
    actions.push({
      type: 'subresource',
      capability: 'evacuation',
      failureReason: 'StopIDSVMFailed',
      log: `Stop IDS VM ${ns}/${name}: the server VM leaves node ${move.fromNode}`,
      path: `/apis/subresources.kubevirt.io/v1/namespaces/${encodeURIComponent(ns)}/virtualmachines/${encodeURIComponent(name)}/stop`,
      body: {},
      // 409: KubeVirt says it is stopped already.
      tolerate: [404, 409],
      event: { type: 'Normal', reason: EventReason.IDSVMStopped, message: `Stopped IDS VirtualMachine ${name}: the server VM leaves node ${move.fromNode}; it starts again beside the server` },
    });
  }
  const pod = o.processMapperPod;
  if (pod && !pod.metadata?.deletionTimestamp) actions.push(deleteMapperPod(pod, 'evacuation', `the server VM leaves node ${move.fromNode}`, EventReason.ProcessMapperDeleted));
  return actions;
}
