// Networking, the Kubernetes side (pure): the Multus NetworkAttachmentDefinitions HyperSpector
// creates for the configured providers, and the two NICs the IDS VM gets. A NAD whose config is the
// same for every MonitoredServer (tc's mirror, the IDS network) is shared by those of a namespace:
// one per namespace, no owner, deleted by the last MonitoredServer of the namespace that needs it.
// ovs-cni's NADs name a mirror of their own and stay one per MonitoredServer, owned by it.
//
//   mirroring provider tc (default)  shared mirror NAD `hyperspector-mirror`: a CNI `dummy` device
//                                    (containernetworking/plugins, "dummy: Creates a new Dummy device
//                                    in the container") chained with `tuning` for the MTU. It only
//                                    gives the IDS VM's mirror NIC a pod interface: KubeVirt's bridge
//                                    binding puts it with the tap on the in-pod bridge k6t-<hash>,
//                                    where the node agent's veth brings the copies (docs/dataplane.md).
//                                    A dummy drops what it is sent, so nothing leaves the pod.
//   mirroring provider ovs-cni       a producer/consumer NAD pair per MonitoredServer, as ovs-cni's
//                                    traffic-mirroring docs (docs/traffic-mirroring.md, ≥ v0.29) chain
//                                    them: {"type":"ovs","bridge":B} then {"type":"ovs-mirror-producer",
//                                    "bridge":B,"mirrors":[{"name":M,"ingress":bool,"egress":bool}]}
//                                    on the server's NIC, {"type":"ovs-mirror-consumer","bridge":B,
//                                    "mirrors":[{"name":M}]} on the IDS VM's; cniVersion 0.4.0.
//   IDS network vxlan (default)      shared `hyperspector-ids`: the CNI `bridge` plugin on the node's
//                                    overlay bridge (hsids0, kept by the agent), no IPAM (the guest
//                                    gets its address from cloud-init), the overlay MTU.
//   IDS network ovn-k8s-layer2       shared `hyperspector-ids`: an OVN-Kubernetes layer2 secondary
//                                    network (type ovn-k8s-cni-overlay, topology layer2, one network
//                                    name for every NAD, netAttachDefName = the NAD), no subnets.
//
// Every NAD name starts with `hyperspector-`: the ValidatingAdmissionPolicy in the chart refuses any
// other VM, VMI or Pod that references such a NAD, and any edit of one by anyone but the operator.
import { LRUCache } from 'lru-cache';
import { createHash } from 'node:crypto';
import type { MonitoredServer } from '../api/v1alpha1/monitoredserver-types.ts';
import type { KubeObject, ObjectMeta, VirtualMachine } from '../kube/client/objects.ts';
import { LABEL_MANAGED_BY, LABEL_MONITORED_SERVER, LABEL_ROLE, MANAGED_BY, ownerReference, roleLabels } from './names.ts';

export const MIRRORING_PROVIDERS = ['tc', 'ovs-cni'] as const;
export type MirroringProvider = (typeof MIRRORING_PROVIDERS)[number];
export const IDS_NETWORK_PROVIDERS = ['vxlan', 'ovn-k8s-layer2'] as const;
export type IdsNetworkProvider = (typeof IDS_NETWORK_PROVIDERS)[number];

/** The prefix of every NAD HyperSpector makes (the admission policy protects these names). */
export const NAD_PREFIX = 'hyperspector-';
/** The IDS VM's network (spec.networks[].name) that receives the copies; the agent's --ids-mirror-network. */
export const MIRROR_NETWORK = 'hyperspector-mirror';
/** The IDS VM's network on the IDS-only network. */
export const IDS_NETWORK = 'hyperspector-ids';
/** Label on our NADs: which of our networks a NAD is. */
export const LABEL_NETWORK = 'hyperspector.io/network';

/** Cluster-wide networking choices (operator flags, from the chart's values). */
export interface NetworkingSettings {
  mirroring: MirroringProvider;
  idsNetwork: IdsNetworkProvider;
  /** The IDS network's IPv4 prefix, e.g. 10.99.0.0/16: each IDS VM gets one address of it. */
  idsCidr: string;
  /** MTU of the IDS network NIC (vxlan: the overlay's, underlay MTU − 50). */
  idsMtu: number;
  /** MTU of the IDS VM's mirror NIC: at least the mirrored interface's. */
  mirrorMtu: number;
  /** vxlan: the node's overlay bridge the agent keeps (its --overlay-bridge). */
  overlayBridge: string;
  /** ovn-k8s-layer2: the network name shared by every IDS NAD. */
  ovnNetworkName: string;
  /** ovs-cni: the OVS bridge the server's monitored NIC and the IDS VM's consumer NIC are on. */
  ovsBridge: string;
  /**
   * A MultiNetworkPolicy per IDS VM on the IDS network (defence in depth where the provider enforces
   * it: OVN-Kubernetes, multi-networkpolicy-iptables): only addresses of the IDS network in or out.
   */
  multiNetworkPolicy: boolean;
}

export const DEFAULT_NETWORKING: NetworkingSettings = {
  mirroring: 'tc',
  idsNetwork: 'vxlan',
  idsCidr: '10.99.0.0/16',
  idsMtu: 1450,
  mirrorMtu: 1500,
  overlayBridge: 'hsids0',
  ovnNetworkName: 'hyperspector-ids',
  ovsBridge: 'br-hyperspector',
  multiNetworkPolicy: false,
};

export interface NetworkAttachmentDefinition extends KubeObject {
  apiVersion: 'k8s.cni.cncf.io/v1';
  kind: 'NetworkAttachmentDefinition';
  spec: { config: string };
}

export type NadRole = 'ids-network' | 'mirror' | 'mirror-producer';

/** Label on a NAD the MonitoredServers of its namespace share (no owner, no monitored-server label). */
export const LABEL_SHARED = 'hyperspector.io/shared';

/** The IDS network's NAD: one per namespace, shared. */
export const IDS_NETWORK_NAD = `${NAD_PREFIX}ids`;
/** tc mirroring's NAD (a dummy): one per namespace, shared. */
export const SHARED_MIRROR_NAD = `${NAD_PREFIX}mirror`;

/** The NAD of the IDS VM's mirror NIC (tc: the shared dummy; ovs-cni: this MonitoredServer's consumer). */
export function mirrorNadName(ms: MonitoredServer, mirroring: MirroringProvider): string {
  return mirroring === 'tc' ? SHARED_MIRROR_NAD : `${NAD_PREFIX}mirror-${ms.metadata.name}`;
}

/**
 * NADs an older version made per MonitoredServer for what is now shared: the IDS network's, and
 * tc's mirror (under ovs-cni that name is the current consumer NAD).
 */
export function legacyNadNames(ms: MonitoredServer, mirroring: MirroringProvider): string[] {
  return [`${NAD_PREFIX}ids-${ms.metadata.name}`, ...(mirroring === 'tc' ? [`${NAD_PREFIX}mirror-${ms.metadata.name}`] : [])];
}

/** Whether a Multus network reference (`name` or `namespace/name`, from a VMI in `namespace`) names the NAD `nad`. */
export function refersToNad(ref: string | undefined, namespace: string, nad: string): boolean {
  return ref === nad || ref === `${namespace}/${nad}`;
}

/** Whether a NAD of ours is one the namespace's MonitoredServers share. */
export function isSharedNad(nad: KubeObject): boolean {
  return nad.metadata?.labels?.[LABEL_SHARED] === 'true';
}

/** ovs-cni only: the NAD the server's monitored NIC must use (the producer). */
export function mirrorProducerNadName(ms: MonitoredServer): string {
  return `${NAD_PREFIX}mirror-producer-${ms.metadata.name}`;
}

/** ovs-cni's mirror name (an OVS Mirror row): unique per MonitoredServer, from its UID. */
export function ovsMirrorName(ms: MonitoredServer): string {
  return `hs-${(ms.metadata.uid ?? ms.metadata.name ?? '').replace(/-/g, '').slice(0, 12)}`;
}

function nadObject(metadata: ObjectMeta, config: Record<string, unknown>): NetworkAttachmentDefinition {
  return { apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata, spec: { config: JSON.stringify({ cniVersion: '0.4.0', name: metadata.name, ...config }) } };
}

/** A NAD of one MonitoredServer: its labels, owned by it. */
function nad(ms: MonitoredServer, name: string, role: NadRole, config: Record<string, unknown>): NetworkAttachmentDefinition {
  return nadObject({ name, namespace: ms.metadata.namespace, labels: { ...roleLabels(ms, 'network'), [LABEL_NETWORK]: role }, ownerReferences: [ownerReference(ms)] }, config);
}

/** A NAD the namespace's MonitoredServers share: our labels without a MonitoredServer's, no owner. */
function sharedNad(namespace: string, name: string, role: NadRole, config: Record<string, unknown>): NetworkAttachmentDefinition {
  return nadObject({ name, namespace, labels: { [LABEL_ROLE]: 'network', [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_NETWORK]: role, [LABEL_SHARED]: 'true' } }, config);
}

export function buildIdsNetworkNad(namespace: string, s: NetworkingSettings): NetworkAttachmentDefinition {
  const name = IDS_NETWORK_NAD;
  if (s.idsNetwork === 'vxlan') {
    // No ipam: the node gets no address on the overlay and the pod interface none either; the
    // guest configures its own from cloud-init.
    return sharedNad(namespace, name, 'ids-network', { plugins: [{ type: 'bridge', bridge: s.overlayBridge, mtu: s.idsMtu, isGateway: false, ipMasq: false, hairpinMode: false }] });
  }
  // OVN-Kubernetes: every NAD of one network carries the same `name`; the NAD is named in netAttachDefName.
  return {
    ...sharedNad(namespace, name, 'ids-network', {}),
    spec: {
      config: JSON.stringify({ cniVersion: '0.4.0', name: s.ovnNetworkName, type: 'ovn-k8s-cni-overlay', topology: 'layer2', mtu: s.idsMtu, netAttachDefName: `${namespace}/${name}` }),
    },
  };
}

/** The NADs of the mirror: tc one (the IDS NIC's dummy, shared), ovs-cni two (consumer for the IDS, producer for the server). */
export function buildMirrorNads(ms: MonitoredServer, s: NetworkingSettings): NetworkAttachmentDefinition[] {
  if (s.mirroring === 'tc') {
    return [sharedNad(ms.metadata.namespace ?? '', SHARED_MIRROR_NAD, 'mirror', { plugins: [{ type: 'dummy' }, { type: 'tuning', mtu: s.mirrorMtu }] })];
  }
  const direction = ms.spec.mirroring?.direction ?? 'Both';
  const mirror = ovsMirrorName(ms);
  // ovs-cni's ingress/egress are the port's view, which is the server's: ingress = what the server sends.
  return [
    nad(ms, mirrorNadName(ms, s.mirroring), 'mirror', { plugins: [{ type: 'ovs', bridge: s.ovsBridge }, { type: 'ovs-mirror-consumer', bridge: s.ovsBridge, mirrors: [{ name: mirror }] }] }),
    nad(ms, mirrorProducerNadName(ms), 'mirror-producer', {
      plugins: [
        { type: 'ovs', bridge: s.ovsBridge },
        { type: 'ovs-mirror-producer', bridge: s.ovsBridge, mirrors: [{ name: mirror, ingress: direction !== 'Ingress', egress: direction !== 'Egress' }] },
      ],
    }),
  ];
}

/** Every NAD a MonitoredServer needs (the IDS network always; the mirror's when it mirrors). */
export function buildNads(ms: MonitoredServer, s: NetworkingSettings): NetworkAttachmentDefinition[] {
  return [buildIdsNetworkNad(ms.metadata.namespace ?? '', s), ...(isMirrored(ms) ? buildMirrorNads(ms, s) : [])];
}

export function isMirrored(ms: MonitoredServer): boolean {
  return ms.spec.mirroring?.enabled !== false;
}

/** A locally administered unicast MAC, stable per MonitoredServer and network (02:xx:...). */
export function stableMac(ms: MonitoredServer, network: string): string {
  const input = `${ms.metadata.uid ?? ms.metadata.name}\0${network}`;
  let mac = recentMacs.get(input);
  if (mac === undefined) {
    const h = createHash('sha256').update(input).digest();
    mac = ['02', ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
    recentMacs.set(input, mac);
  }
  return mac;
}

/** The MACs computed lately: every reconcile names each IDS VM's NICs several times. */
const recentMacs = new LRUCache<string, string>({ max: 8192 });

type VmiSpec = NonNullable<NonNullable<VirtualMachine['spec']['template']>['spec']>;
type VmiInterface = NonNullable<VmiSpec['domain']['devices']['interfaces']>[number];
type VmiNetwork = NonNullable<VmiSpec['networks']>[number];

export interface IdsNics {
  /** The mirror NIC's NAD (no mirror NIC without one). */
  mirrorNad?: string;
}

/** The IDS VM's NICs for a MonitoredServer under these settings. */
export function idsNics(ms: MonitoredServer, s: Pick<NetworkingSettings, 'mirroring'>): IdsNics {
  return isMirrored(ms) ? { mirrorNad: mirrorNadName(ms, s.mirroring) } : {};
}

/**
 * The IDS VMI spec with its mirror NIC and IDS-network NIC added (a copy): Multus networks, bridge
 * binding, stable MACs (the guest's network data matches them). A template network or interface with
 * one of our names is replaced. The MTU is the NAD's: KubeVirt's bridge binding gives the tap and
 * the guest NIC the pod interface's MTU.
 */
export function withIdsNics(vmiSpec: VmiSpec, ms: MonitoredServer, nics: IdsNics): VmiSpec {
  const spec = structuredClone(vmiSpec);
  const ours = new Set([MIRROR_NETWORK, IDS_NETWORK]);
  const interfaces: VmiInterface[] = (spec.domain.devices.interfaces ?? []).filter((i) => !ours.has(i.name));
  const networks: VmiNetwork[] = (spec.networks ?? []).filter((n) => !ours.has(n.name));
  const add = (network: string, nadName: string) => {
    interfaces.push({ name: network, bridge: {}, macAddress: stableMac(ms, network) } as VmiInterface);
    networks.push({ name: network, multus: { networkName: nadName } });
  };
  if (nics.mirrorNad) add(MIRROR_NETWORK, nics.mirrorNad);
  add(IDS_NETWORK, IDS_NETWORK_NAD);
  spec.domain = { ...spec.domain, devices: { ...spec.domain.devices, interfaces } };
  spec.networks = networks;
  return spec;
}

export interface MultiNetworkPolicy extends KubeObject {
  apiVersion: 'k8s.cni.cncf.io/v1beta1';
  kind: 'MultiNetworkPolicy';
  spec: Record<string, unknown>;
}

/** The annotation that ties a MultiNetworkPolicy to the networks it is for (multi-networkpolicy's API). */
export const POLICY_FOR_ANNOTATION = 'k8s.v1.cni.cncf.io/policy-for';

export function idsNetworkPolicyName(ms: MonitoredServer): string {
  return `${NAD_PREFIX}ids-${ms.metadata.name}`;
}

/**
 * The IDS VM's launcher pod on the IDS network: ingress only from, egress only to, the IDS
 * network's prefix (so neither a server nor anything else that reached the network by a route
 * around the overlay can talk to the IDS VM there). The launcher pod carries the IDS VMI's labels.
 */
export function buildIdsNetworkPolicy(ms: MonitoredServer, s: NetworkingSettings): MultiNetworkPolicy {
  const peers = [{ ipBlock: { cidr: s.idsCidr } }];
  return {
    apiVersion: 'k8s.cni.cncf.io/v1beta1',
    kind: 'MultiNetworkPolicy',
    metadata: {
      name: idsNetworkPolicyName(ms),
      namespace: ms.metadata.namespace,
      labels: { ...roleLabels(ms, 'network'), [LABEL_NETWORK]: 'ids-network' },
      annotations: { [POLICY_FOR_ANNOTATION]: `${ms.metadata.namespace}/${IDS_NETWORK_NAD}` },
      ownerReferences: [ownerReference(ms)],
    },
    spec: {
      podSelector: { matchLabels: { [LABEL_MONITORED_SERVER]: ms.metadata.name ?? '', [LABEL_ROLE]: 'ids' } },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ from: peers }],
      egress: [{ to: peers }],
    },
  };
}
