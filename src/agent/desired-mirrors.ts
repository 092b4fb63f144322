// Pure: which MonitoredServers this node must mirror, and with which devices. From the caches only
// (MonitoredServers, the VMIs and launcher pods), never from the kernel: the executor
// (mirror-reconciler.ts) compares this with what the kernel holds.
//
// A MonitoredServer is this node's when its server VMI runs here (status.nodeName). Then the agent
// on this node owns its MirrorAttached condition: either a mirror to install, or the reason it
// cannot be installed yet. Every other MonitoredServer is no business of this node's agent.
import type { MonitoredServer } from '../api/v1alpha1/monitoredserver-types.ts';
import { idsVmName, serverVmName } from '../builders/names.ts';
import type { MirrorDirection } from '../dataplane/tc-mirror-plan.ts';
import type { Pod, VirtualMachineInstance } from '../kube/client/objects.ts';
import { launcherDevices, podUsesOrdinalNames } from './kubevirt-names.ts';

/** KubeVirt's labels on virt-launcher pods. */
export const LAUNCHER_POD_LABEL = 'kubevirt.io=virt-launcher';
export const LABEL_CREATED_BY = 'kubevirt.io/created-by';
const NETWORK_STATUS_ANNOTATION = 'k8s.v1.cni.cncf.io/network-status';

/** Reasons of MirrorAttached when the agent reports it (named constants, also Event reasons). */
export const MirrorReason = {
  Attached: 'Attached',
  WaitingForServerPod: 'WaitingForServerPod',
  WaitingForIDSVM: 'WaitingForIDSVM',
  IDSMirrorNICMissing: 'IDSMirrorNICMissing',
  MonitoredNetworkNotFound: 'MonitoredNetworkNotFound',
  UnsupportedBinding: 'UnsupportedBinding',
  MirrorFailed: 'MirrorFailed',
} as const;
export type MirrorReason = (typeof MirrorReason)[keyof typeof MirrorReason];

export interface MirrorSettings {
  readonly nodeName: string;
  /** Name of the IDS VM's network that receives the copies (the operator adds it to the IDS VM). */
  readonly idsMirrorNetwork: string;
  /** ovs-cni: the CNI mirrors and the operator reports MirrorAttached; this agent installs nothing. Default tc. */
  readonly mirroringProvider?: 'tc' | 'ovs-cni';
}

/** Everything the executor needs to install one mirror; names are derived, never remembered. */
export interface DesiredMirror {
  /** `namespace/name` of the MonitoredServer. */
  readonly key: string;
  readonly serverPodUid: string;
  readonly serverPod: string;
  readonly idsPodUid: string;
  readonly idsPod: string;
  /** The server VM's tap in its launcher pod (the mirrored interface). */
  readonly serverTap: string;
  /** The in-pod bridge of the IDS VM's mirror NIC. */
  readonly idsBridge: string;
  /** The veth end in the server's launcher pod (tc mirror destination) and in the IDS's. */
  readonly linkName: string;
  readonly idsLinkName: string;
  readonly direction: MirrorDirection;
}

export type MirrorDecision =
  /** Not this node's (server elsewhere or unplaced), mirroring disabled, or the MonitoredServer is going away. */
  | { readonly kind: 'none'; readonly key: string }
  | { readonly kind: 'waiting'; readonly key: string; readonly reason: MirrorReason; readonly message: string }
  | { readonly kind: 'mirror'; readonly key: string; readonly mirror: DesiredMirror };

export interface ClusterView {
  /** The VMI `namespace/name` → VMI. */
  vmi(namespace: string, name: string): VirtualMachineInstance | undefined;
  /** Launcher pods on this node. */
  launcherPods(): readonly Pod[];
}

/** Interface names of the mirror link: `hsm`/`hsi` + 8 hex digits of the MonitoredServer's UID (≤ 15 bytes, unique per pod). */
export function mirrorLinkNames(msUid: string): { server: string; ids: string } {
  const hex = msUid.replace(/-/g, '').slice(0, 8).toLowerCase();
  return { server: `hsm${hex}`, ids: `hsi${hex}` };
}
export const MIRROR_LINK_PATTERN = /^hs[mi][0-9a-f]{8}$/;

function vmiNode(vmi: VirtualMachineInstance | undefined): string | undefined {
  return vmi?.status?.nodeName || undefined;
}

/**
 * The running, not terminating launcher pod of `vmi` on this node. During a migration both the
 * source and the target pod run: the VMI's own pod is the one that started first.
 */
export function launcherPodOf(vmi: VirtualMachineInstance, pods: readonly Pod[]): Pod | undefined {
  const uid = vmi.metadata?.uid;
  if (!uid) return undefined;
  const candidates = pods.filter(
    (p) => p.metadata?.labels?.[LABEL_CREATED_BY] === uid && p.metadata?.namespace === vmi.metadata?.namespace && !p.metadata?.deletionTimestamp && p.status?.phase === 'Running',
  );
  return candidates.sort((a, b) => (a.metadata?.creationTimestamp ?? '').localeCompare(b.metadata?.creationTimestamp ?? ''))[0];
}

/** The operator's own MirrorAttached says the release cannot mirror (see MirroringUnavailable in the controller's reasons). */
export function operatorSaysMirroringUnavailable(ms: MonitoredServer): boolean {
  return (ms.status?.conditions ?? []).some((c) => c.type === 'MirrorAttached' && c.reason === 'MirroringUnavailable');
}

export function decideMirror(ms: MonitoredServer, view: ClusterView, settings: MirrorSettings): MirrorDecision {
  const namespace = ms.metadata.namespace ?? '';
  const key = `${namespace}/${ms.metadata.name}`;
  const none: MirrorDecision = { kind: 'none', key };
  if (ms.metadata.deletionTimestamp || ms.spec.mirroring?.enabled === false || settings.mirroringProvider === 'ovs-cni') return none;
  // The operator of this release does not yet give the IDS VM its mirror NIC and says so in
  // MirrorAttached (reason MirroringUnavailable, keeping Ready False): the agent stands aside instead
  // of fighting over the condition, and installs nothing.
  if (operatorSaysMirroringUnavailable(ms)) return none;
  const serverVmi = view.vmi(namespace, serverVmName(ms));
  if (vmiNode(serverVmi) !== settings.nodeName || !serverVmi) return none;
  const waiting = (reason: MirrorReason, message: string): MirrorDecision => ({ kind: 'waiting', key, reason, message });

  const pods = view.launcherPods();
  const serverPod = launcherPodOf(serverVmi, pods);
  if (!serverPod) return waiting(MirrorReason.WaitingForServerPod, `the launcher pod of server VMI ${serverVmi.metadata?.name} is not running on node ${settings.nodeName}`);
  const server = launcherDevices(serverVmi, ms.spec.server.monitoredNetwork, podUsesOrdinalNames(serverPod.metadata?.annotations?.[NETWORK_STATUS_ANNOTATION]));
  if ('problem' in server) {
    return waiting(server.problem === 'NetworkNotFound' ? MirrorReason.MonitoredNetworkNotFound : MirrorReason.UnsupportedBinding, server.message);
  }

  const idsName = idsVmName(ms);
  const idsVmi = view.vmi(namespace, idsName);
  if (!idsVmi || vmiNode(idsVmi) !== settings.nodeName) {
    const where = vmiNode(idsVmi);
    return waiting(MirrorReason.WaitingForIDSVM, where ? `IDS VMI ${idsName} runs on node ${where}, not on the server's node ${settings.nodeName}` : `IDS VMI ${idsName} is not running on node ${settings.nodeName} yet`);
  }
  if (!(idsVmi.spec.networks ?? []).some((n) => n.name === settings.idsMirrorNetwork)) {
    return waiting(MirrorReason.IDSMirrorNICMissing, `IDS VMI ${idsName} has no network ${settings.idsMirrorNetwork} to receive the mirrored traffic`);
  }
  const idsPod = launcherPodOf(idsVmi, pods);
  if (!idsPod) return waiting(MirrorReason.WaitingForIDSVM, `the launcher pod of IDS VMI ${idsName} is not running on node ${settings.nodeName}`);
  const ids = launcherDevices(idsVmi, settings.idsMirrorNetwork, podUsesOrdinalNames(idsPod.metadata?.annotations?.[NETWORK_STATUS_ANNOTATION]));
  if ('problem' in ids) return waiting(MirrorReason.IDSMirrorNICMissing, ids.message);

  const names = mirrorLinkNames(ms.metadata.uid ?? '');
  return {
    kind: 'mirror',
    key,
    mirror: {
      key,
      serverPodUid: serverPod.metadata!.uid!,
      serverPod: `${namespace}/${serverPod.metadata?.name}`,
      idsPodUid: idsPod.metadata!.uid!,
      idsPod: `${namespace}/${idsPod.metadata?.name}`,
      serverTap: server.devices.tap,
      idsBridge: ids.devices.bridge,
      linkName: names.server,
      idsLinkName: names.ids,
      direction: ms.spec.mirroring?.direction ?? 'Both',
    },
  };
}
