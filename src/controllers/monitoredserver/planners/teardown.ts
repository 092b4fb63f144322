// Planner: what a deleted MonitoredServer's finalizer does, one step per reconcile: the process
// mapper and the IDS VM go first (and are waited for), then the server VM is released, retained or
// deleted per spec.server.deletionPolicy, then the finalizer is removed.
import type { MonitoredServer } from '../../../api/v1alpha1/monitoredserver-types.ts';
import { ANNOTATION_MONITORED_BY, FINALIZER, idsVmName, isAdopting, LABEL_MANAGED_BY, LABEL_MONITORED_SERVER, LABEL_ROLE } from '../../../builders/names.ts';
import { MONITORED_SERVER } from '../../../api/v1alpha1/resource.ts';
import type { VirtualMachine } from '../../../kube/client/objects.ts';
import { VIRTUAL_MACHINE } from '../../../kube/client/resources.ts';
import type { Action } from '../actions.ts';
import type { ObservedState } from '../observed-state.ts';
import { deleteMapperPod, deleteProcessBaseline } from './process-mapper.ts';
import { deleteIntakeObject } from './ids-intake.ts';
import { EventReason } from '../reasons.ts';
import { planNetworkTeardown, type NetworkingContext } from './networking.ts';
import { planSnapshotTeardown } from './disk-snapshot.ts';
import { deleteIsolationPolicy } from './isolation.ts';

/** How long a child may take to finish deleting before the teardown says it is stuck. */
export const TEARDOWN_STALL_MS = 30_000;

export interface TeardownPlan {
  actions: Action[];
  /** What the teardown waits on (Ready=False Deleting says it); undefined once the finalizer goes. */
  waitingOn?: string;
  /** The wait has lasted past TEARDOWN_STALL_MS: a Warning the user can act on. */
  stalled?: boolean;
}

/**
 * Foreground: the VM stays (deleting) until its VMI is gone, so the teardown waits for the guest to
 * have stopped — and can say so when KubeVirt cannot finish — instead of for the VM object only.
 */
function deleteVm(ns: string, name: string, failureReason: string, reason: string, message: string): Action {
  return {
    type: 'delete',
    capability: 'teardown',
    failureReason,
    log: message,
    resource: VIRTUAL_MACHINE,
    namespace: ns,
    name,
    propagationPolicy: 'Foreground',
    tolerate: [404],
    event: { type: 'Normal', reason, message },
  };
}

/**
 * Removes exactly HyperSpector's label keys and annotation from a VM it does not delete: from the
 * VM and from its VMI template. Template labels are not part of the template spec, so KubeVirt
 * restarts nothing; a VMI already running (and its launcher pod) keeps them until its next start.
 */
function removeMarks(ns: string, vm: VirtualMachine, reason: string, message: string): Action {
  const ours = (present: Record<string, string> | undefined) => {
    const out: Record<string, null> = {};
    for (const key of [LABEL_MONITORED_SERVER, LABEL_ROLE, LABEL_MANAGED_BY]) if (present?.[key] !== undefined) out[key] = null;
    return out;
  };
  const templateLabels = ours(vm.spec.template?.metadata?.labels as Record<string, string> | undefined);
  return {
    type: 'patch',
    capability: 'teardown',
    failureReason: 'ReleaseServerVMFailed',
    log: message,
    resource: VIRTUAL_MACHINE,
    namespace: ns,
    name: vm.metadata?.name ?? '',
    patchType: 'merge',
    body: {
      metadata: { labels: ours(vm.metadata?.labels), annotations: { [ANNOTATION_MONITORED_BY]: null } },
      ...(Object.keys(templateLabels).length > 0 ? { spec: { template: { metadata: { labels: templateLabels } } } } : {}),
    },
    tolerate: [404],
    event: { type: 'Normal', reason, message },
  };
}

function removeFinalizer(ms: MonitoredServer): Action[] {
  const index = ms.metadata.finalizers?.indexOf(FINALIZER) ?? -1;
  if (index < 0) return [];
  return [
    {
      type: 'patch',
      capability: 'teardown',
      failureReason: 'RemoveFinalizerFailed',
      log: `Remove finalizer ${FINALIZER}`,
      resource: MONITORED_SERVER,
      namespace: ms.metadata.namespace ?? '',
      name: ms.metadata.name ?? '',
      patchType: 'json',
      // test+remove: fails (422, retried) instead of removing someone else's finalizer if the list moved.
      body: [
        { op: 'test', path: `/metadata/finalizers/${index}`, value: FINALIZER },
        { op: 'remove', path: `/metadata/finalizers/${index}` },
      ],
      tolerate: [404],
    },
  ];
}

/** What the IDS side's teardown waits on, naming the node whose virt-handler must act. */
function idsTeardownWait(ms: MonitoredServer, o: ObservedState, now: Date): { waitingOn: string; stalled: boolean } {
  const ns = ms.metadata.namespace ?? '';
  const vmi = o.idsVmi;
  if (!vmi) return { waitingOn: `waiting for IDS VirtualMachine ${ns}/${idsVmName(ms)} to be deleted`, stalled: false };
  const since = vmi.metadata?.deletionTimestamp ? new Date(vmi.metadata.deletionTimestamp).getTime() : undefined;
  const node = vmi.status?.nodeName;
  const finalizers = vmi.metadata?.finalizers ?? [];
  const stalled = since !== undefined && now.getTime() - since > TEARDOWN_STALL_MS;
  const what = `IDS VMI ${ns}/${vmi.metadata?.name} (phase ${vmi.status?.phase ?? 'unknown'}${finalizers.length ? `, finalizers ${finalizers.join(', ')}` : ''})`;
  if (!stalled) return { waitingOn: `waiting for ${what} to stop`, stalled };
  return { waitingOn: `${what} has not finished deleting for more than ${TEARDOWN_STALL_MS / 1000} s${node ? `: is virt-handler running on node ${node}?` : ''}`, stalled };
}

export function planTeardown(ms: MonitoredServer, o: ObservedState, now: Date, networking?: NetworkingContext): TeardownPlan {
  if (!ms.metadata.finalizers?.includes(FINALIZER)) return { actions: [] };
  const ns = ms.metadata.namespace ?? '';
  const actions: Action[] = [];
  // 1. The process mapper and the IDS VM (ours): delete them, wait until the VM is gone.
  const pod = o.processMapperPod;
  if (pod && !pod.metadata?.deletionTimestamp) actions.push(deleteMapperPod(pod, 'teardown', undefined, EventReason.ProcessMapperDeleted));
  if (o.processBaseline && !o.processBaseline.metadata?.deletionTimestamp) actions.push(deleteProcessBaseline(o.processBaseline, 'teardown'));
  // The alert intake's key and Service live in the operator's namespace (no owner reference reaches them).
  if (o.intakeKeySecret && !o.intakeKeySecret.metadata?.deletionTimestamp) actions.push(deleteIntakeObject(o.intakeKeySecret, 'key', 'teardown'));
  if (o.intakeService && !o.intakeService.metadata?.deletionTimestamp) actions.push(deleteIntakeObject(o.intakeService, 'service', 'teardown'));
  // The Isolate response's NetworkPolicy (owned, so garbage-collected anyway): not left to outlive the MonitoredServer.
  const isolation = o.isolationPolicy;
  if (isolation && !isolation.metadata?.deletionTimestamp) actions.push(deleteIsolationPolicy(ms, isolation));
  if (o.idsVm) {
    if (!o.idsVm.metadata?.deletionTimestamp) {
      actions.push(deleteVm(ns, idsVmName(ms), 'DeleteIDSVMFailed', EventReason.IDSVMDeleted, `Deleted IDS VirtualMachine ${idsVmName(ms)}`));
    }
    return { actions, ...idsTeardownWait(ms, o, now) };
  }
  // 2. The server VM: release an adopted one, retain or delete an owned one per deletionPolicy.
  const vm = o.serverVm;
  const ours = vm && !o.serverClaimedBy && !o.serverNameTaken && vm.metadata?.labels?.[LABEL_MONITORED_SERVER] === ms.metadata.name;
  if (vm && ours) {
    const vmName = vm.metadata?.name ?? '';
    if (!isAdopting(ms) && ms.spec.server.deletionPolicy === 'Delete') {
      if (!vm.metadata?.deletionTimestamp) {
        actions.push(deleteVm(ns, vmName, 'DeleteServerVMFailed', EventReason.ServerVMDeleted, `Deleted server VirtualMachine ${vmName} (deletionPolicy Delete)`));
      }
      return { actions, waitingOn: `waiting for server VirtualMachine ${ns}/${vmName} to be deleted (deletionPolicy Delete)`, stalled: false };
    }
    actions.push(
      isAdopting(ms)
        ? removeMarks(ns, vm, EventReason.ServerVMReleased, `Released VirtualMachine ${vmName}: removed HyperSpector's label and annotation`)
        : removeMarks(ns, vm, EventReason.ServerVMRetained, `Kept server VirtualMachine ${vmName} (deletionPolicy Retain)`),
    );
  }
  // 3. Our NADs and the IDS-network address (once the IDS VM that used them is gone), then release the MonitoredServer.
  actions.push(...planNetworkTeardown(ms, o, networking?.claimNamespace, networking?.settings));
  // Snapshot mode: our snapshots and the claims restored from them (the server's claims are never touched).
  actions.push(...planSnapshotTeardown(o));
  actions.push(...removeFinalizer(ms));
  return { actions };
}
