// Pure: which server taps on this node the Isolate response cuts off, from the caches only (the
// MonitoredServer's status.response, its server VMI and launcher pod). The operator decides the
// isolation (status.response: action Isolate, isolatedAt, no releasedAt); the agent on the server's
// node enforces it on every network the VM has — the pod network's tap as well as the Multus
// networks' taps a NetworkPolicy cannot reach — and reports NetworkIsolated under its own field
// manager. The mirror copy of a mirrored tap is kept inside the isolation filter (tc-isolation-plan.ts).
import type { MonitoredServer } from '../api/v1alpha1/monitoredserver-types.ts';
import { serverVmName } from '../builders/names.ts';
import { hooksForDirection } from '../dataplane/tc-mirror-plan.ts';
import { isolationSinkName, type TapIsolationSpec } from '../dataplane/tc-isolation-plan.ts';
import { launcherPodOf, type ClusterView, type MirrorDecision } from './desired-mirrors.ts';
import { launcherDevices, podUsesOrdinalNames } from './kubevirt-names.ts';

const NETWORK_STATUS_ANNOTATION = 'k8s.v1.cni.cncf.io/network-status';

/** The agent's condition for the isolation of the server's taps. */
export const NETWORK_ISOLATED = 'NetworkIsolated';
export const IsolationReason = {
  Isolated: 'Isolated',
  WaitingForServerPod: 'WaitingForServerPod',
  TapNotIsolable: 'TapNotIsolable',
  IsolationFailed: 'IsolationFailed',
} as const;

export type IsolationDecision =
  /** No isolation holds for a server on this node: remove whatever of ours is on its pod. */
  | { readonly kind: 'none'; readonly key: string; readonly serverPodUid?: string }
  | { readonly kind: 'waiting'; readonly key: string; readonly reason: string; readonly message: string }
  | { readonly kind: 'isolate'; readonly key: string; readonly serverPodUid: string; readonly serverPod: string; readonly taps: readonly TapIsolationSpec[] };

/** status.response says the server is isolated and the user has not released it. */
export function isolationHolds(ms: MonitoredServer): boolean {
  const r = ms.status?.response;
  return !ms.metadata.deletionTimestamp && r?.action === 'Isolate' && r.isolatedAt !== undefined && r.releasedAt === undefined;
}

export function decideIsolation(ms: MonitoredServer, view: ClusterView, nodeName: string, mirror: MirrorDecision): IsolationDecision {
  const namespace = ms.metadata.namespace ?? '';
  const key = `${namespace}/${ms.metadata.name}`;
  const vmi = view.vmi(namespace, serverVmName(ms));
  if (!vmi || vmi.status?.nodeName !== nodeName) return { kind: 'none', key };
  const pod = launcherPodOf(vmi, view.launcherPods());
  const podUid = pod?.metadata?.uid;
  if (!isolationHolds(ms)) return podUid ? { kind: 'none', key, serverPodUid: podUid } : { kind: 'none', key };
  if (!pod || !podUid) {
    return { kind: 'waiting', key, reason: IsolationReason.WaitingForServerPod, message: `the launcher pod of server VMI ${vmi.metadata?.name} is not running on node ${nodeName}` };
  }
  const ordinal = podUsesOrdinalNames(pod.metadata?.annotations?.[NETWORK_STATUS_ANNOTATION]);
  const sink = isolationSinkName(ms.metadata.uid ?? '');
  const taps: TapIsolationSpec[] = [];
  for (const network of vmi.spec.networks ?? []) {
    const lookup = launcherDevices(vmi, network.name, ordinal);
    if ('problem' in lookup) {
      return { kind: 'waiting', key, reason: IsolationReason.TapNotIsolable, message: `network ${network.name} of server VMI ${vmi.metadata?.name} cannot be cut off at a tap: ${lookup.message}` };
    }
    const mirrored = mirror.kind === 'mirror' && mirror.mirror.serverTap === lookup.devices.tap ? mirror.mirror : undefined;
    const mirrorTo = mirrored ? Object.fromEntries(hooksForDirection(mirrored.direction).map((hook) => [hook, mirrored.linkName])) : {};
    taps.push({ tap: lookup.devices.tap, mirrorTo, sink });
  }
  return { kind: 'isolate', key, serverPodUid: podUid, serverPod: `${namespace}/${pod.metadata?.name}`, taps };
}
