// Planner: the process-mapper Pod beside the server VM. A Pod's spec cannot change, so a pod built
// for another node, VMI or setting (its spec hash differs) is deleted and created anew.
import type { MonitoredServer } from '../../../api/v1alpha1/monitoredserver-types.ts';
import { LABEL_MONITORED_SERVER, LABEL_MONITORED_SERVER_NAMESPACE, processMapperPodName } from '../../../builders/names.ts';
import { ANNOTATION_SPEC_HASH, buildProcessMapperPod, type ProcessMapperSettings } from '../../../builders/process-mapper-pod.ts';
import { CONFIG_MAP, POD } from '../../../kube/client/resources.ts';
import type { KubeObject } from '../../../kube/client/objects.ts';
import { statusCodeOf } from '../../../kube/client/rest.ts';
import type { Action, Capability } from '../actions.ts';
import type { Pod, VirtualMachineInstance } from '../observed-state.ts';
import { vmiNode, type ObservedState } from '../observed-state.ts';
import { EventReason } from '../reasons.ts';

/**
 * Refusals the user must act on (e.g. Pod Security admission forbids privileged pods in this
 * namespace). A namespace created a moment ago has no default ServiceAccount yet: ServiceAccount
 * admission refuses the pod (403) until the service account controller made it — retried, not reported.
 */
export function isRefusedPod(err: unknown): boolean {
  const code = statusCodeOf(err);
  if (code !== 403 && code !== 422) return false;
  return !/error looking up service account/.test((err as Error).message ?? '');
}

/** The VMI's virt-launcher pod UID on `node` (vmi.status.activePods maps pod UID → node; two during a migration). */
export function launcherPodOn(vmi: VirtualMachineInstance | undefined, node: string | undefined): string | undefined {
  if (!node) return undefined;
  const active = (vmi?.status?.activePods ?? {}) as Record<string, string>;
  return Object.keys(active).find((uid) => active[uid] === node);
}

export function planProcessMapper(ms: MonitoredServer, o: ObservedState, settings: ProcessMapperSettings): Action[] {
  const ns = settings.namespace;
  const name = processMapperPodName(ms);
  const pod = o.processMapperPod;
  const enabled = ms.spec.processMapping?.enabled !== false && !o.serverClaimedBy && !o.serverNameTaken;
  const serverNode = vmiNode(o.serverVmi);
  const launcherPodUid = launcherPodOn(o.serverVmi, serverNode);
  const desired =
    enabled && serverNode && o.serverVmi && launcherPodUid && o.serverNodeUid
      ? buildProcessMapperPod(ms, { nodeName: serverNode, name: o.serverVmi.metadata?.name ?? '', uid: o.serverVmi.metadata?.uid ?? '', launcherPodUid, nodeUid: o.serverNodeUid }, settings)
      : undefined;
  if (pod) {
    if (pod.metadata?.deletionTimestamp) return [];
    if (desired && pod.metadata?.annotations?.[ANNOTATION_SPEC_HASH] === desired.metadata.annotations[ANNOTATION_SPEC_HASH]) return [];
    if (enabled && !desired) return []; // server not placed: keep the pod until we know where it goes
    const why = enabled ? `the server VM is now ${o.serverVmi?.metadata?.uid} on node ${serverNode}` : 'process mapping is disabled';
    return [deleteMapperPod(pod, 'processMapper', why, enabled ? EventReason.ProcessMapperReplaced : EventReason.ProcessMapperDeleted)];
  }
  if (!desired) return [];
  return [
    {
      type: 'apply',
      capability: 'processMapper',
      failureReason: 'CreateProcessMapperFailed',
      log: `Create process-mapper pod ${ns}/${name} on node ${serverNode}`,
      resource: POD,
      object: desired,
      refusedWhen: isRefusedPod,
      // No Event: creating the pod is a step, not a milestone (ProcessMapping says how it goes, a
      // problem is a Warning, MonitoringStarted marks the end); replacing or deleting it is one.
    },
  ];
}

/** The MonitoredServer (namespace/name key) a process-mapper pod belongs to, from its two labels. */
export function processMapperOwnerKeys(pod: Pick<Pod, 'metadata'>): string[] {
  const labels = pod.metadata?.labels ?? {};
  const ns = labels[LABEL_MONITORED_SERVER_NAMESPACE];
  const name = labels[LABEL_MONITORED_SERVER];
  return ns && name ? [`${ns}/${name}`] : [];
}

/** Deletes a process-mapper pod whose MonitoredServer no longer exists. */
export function orphanedMapperPodDeletion(pod: Pod): Action {
  return deleteMapperPod(pod, 'processMapper', `its MonitoredServer ${processMapperOwnerKeys(pod)[0] ?? '(unknown)'} no longer exists`);
}

/** Deletes the stored process baseline (the MonitoredServer is going, or gone), guarded by its UID. */
export function deleteProcessBaseline(configMap: KubeObject, capability: Capability): Action {
  const ns = configMap.metadata?.namespace ?? '';
  const name = configMap.metadata?.name ?? '';
  return {
    type: 'delete',
    capability,
    failureReason: 'DeleteProcessBaselineFailed',
    log: `Delete stored process baseline ConfigMap ${ns}/${name}`,
    resource: CONFIG_MAP,
    namespace: ns,
    name,
    ...(configMap.metadata?.uid ? { preconditionUid: configMap.metadata.uid } : {}),
    tolerate: [404, 409],
  };
}

/**
 * Deletes a process-mapper pod where it runs (the operator's namespace), guarded by its UID; gone
 * already or changed meanwhile is fine. With `eventReason`, a Normal Event says why.
 */
export function deleteMapperPod(pod: Pod, capability: Capability, why?: string, eventReason?: string): Action {
  const ns = pod.metadata?.namespace ?? '';
  const name = pod.metadata?.name ?? '';
  const because = why ? `: ${why}` : '';
  return {
    type: 'delete',
    capability,
    failureReason: 'DeleteProcessMapperFailed',
    log: `Delete process-mapper pod ${ns}/${name}${because}`,
    resource: POD,
    namespace: ns,
    name,
    ...(pod.metadata?.uid ? { preconditionUid: pod.metadata.uid } : {}),
    tolerate: [404, 409],
    ...(eventReason ? { event: { type: 'Normal' as const, reason: eventReason, message: `Deleted process-mapper pod ${name}${because}` } } : {}),
  };
}
