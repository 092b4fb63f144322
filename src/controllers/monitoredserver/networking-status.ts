// Pure: IDSNetworkJoined, MirrorAttached as the operator sees it, and status.idsNetwork.
//
// MirrorAttached belongs to whoever installs the mirror. With the tc provider that is the node agent
// on the server's node (its own server-side-apply field manager): the operator never writes the
// condition, only reads it for Ready, and until an agent has reported, Ready says it waits for one.
// With ovs-cni the CNI installs the mirror when the pods start, so the operator reports it from what
// the VMIs say.
import type { IdsNetworkStatus, MonitoredServer } from '../../api/v1alpha1/monitoredserver-types.ts';
import { IDS_NETWORK_NAD, idsNetworkPolicyName, MIRROR_NETWORK, IDS_NETWORK, mirrorNadName, mirrorProducerNadName, refersToNad } from '../../builders/networking.ts';
import { idsVmName, serverVmName } from '../../builders/names.ts';
import type { Condition, ConditionUpdate } from '../../kube/client/conditions.ts';
import type { VirtualMachineInstance } from '../../kube/client/objects.ts';
import type { Outcomes } from './actions.ts';
import { vmiIsReady, vmiNode, type ObservedState } from './observed-state.ts';
import { idsNetworkData, resolveNetworking, type NetworkingContext } from './planners/networking.ts';
import { bridgeSlot, mirrorPeer, OVS_MAX_MIRRORS_PER_BRIDGE } from './ovs-mirror-slots.ts';
import { ConditionType, Reason } from './reasons.ts';

type Update = Omit<ConditionUpdate, 'type' | 'observedGeneration'>;

/** Condition types another component writes under its own field manager: the operator never applies them. */
export const AGENT_OWNED_CONDITIONS: readonly string[] = [ConditionType.MirrorAttached, ConditionType.NetworkIsolated];

function usesNad(vmi: VirtualMachineInstance | undefined, network: string, namespace: string, nad: string): boolean {
  return refersToNad(vmi?.spec?.networks?.find((n) => n.name === network)?.multus?.networkName, namespace, nad);
}

export function idsNetworkJoined(ms: MonitoredServer, o: ObservedState, outcomes: Outcomes, ctx: NetworkingContext): Update {
  const ns = ms.metadata.namespace ?? '';
  const plan = resolveNetworking(ms, o, ctx);
  if (plan.refusal) return { status: 'False', ...plan.refusal };
  const refused = outcomes.refused('network');
  if (refused) {
    return {
      status: 'False',
      reason: Reason.NetworkAttachmentRefused,
      message: `the API server refused ${refused.action.log.replace(/^Apply /, '')}: ${refused.message} (is Multus with its NetworkAttachmentDefinition CRD installed${ctx.settings.multiNetworkPolicy ? ', and the MultiNetworkPolicy CRD that --ids-network-policy needs' : ''}?)`,
    };
  }
  const template = ms.spec.ids.template.spec?.template?.spec ?? { domain: { devices: {} } };
  const data = idsNetworkData(ms, template, plan, ctx);
  if (data && 'error' in data) {
    return { status: 'False', reason: Reason.IDSNetworkDataUnmergeable, message: `the IDS VM's network data cannot take its IDS-network address: ${data.error}` };
  }
  const nad = IDS_NETWORK_NAD;
  const missing = plan.nads.map((n) => n.metadata?.name ?? '').filter((n) => !o.nads?.[n]);
  if (ctx.settings.multiNetworkPolicy && !o.idsNetworkPolicy) missing.push(`MultiNetworkPolicy ${idsNetworkPolicyName(ms)}`);
  if (missing.length > 0) return { status: 'False', reason: Reason.IDSNetworkJoining, message: `creating NetworkAttachmentDefinitions ${missing.join(', ')}` };
  if (!plan.address) return { status: 'False', reason: Reason.IDSNetworkJoining, message: `allocating the IDS VM's address on the IDS network ${ctx.settings.idsCidr}` };
  const vm = `${ns}/${idsVmName(ms)}`;
  if (!vmiIsReady(o.idsVmi) || !usesNad(o.idsVmi, IDS_NETWORK, ns, nad)) {
    return { status: 'False', reason: Reason.IDSNetworkJoining, message: `IDS VirtualMachine ${vm} joins the IDS network (${ctx.settings.idsNetwork}, NetworkAttachmentDefinition ${nad}) with address ${plan.address} once it runs` };
  }
  return {
    status: 'True',
    reason: Reason.Joined,
    message: `IDS VirtualMachine ${vm} is on the IDS network (${ctx.settings.idsNetwork}, NetworkAttachmentDefinition ${nad}) with address ${plan.address} from its cloud-init network data`,
  };
}

export function idsNetworkStatus(ms: MonitoredServer, o: ObservedState, ctx: NetworkingContext): IdsNetworkStatus | undefined {
  const plan = resolveNetworking(ms, o, ctx);
  if (!plan.address) return undefined;
  return { address: plan.address, provider: ctx.settings.idsNetwork, networkAttachmentDefinition: IDS_NETWORK_NAD };
}

/** MirrorAttached (ovs-cni): the server's monitored NIC on the producer NAD, the IDS VM's on the consumer. */
function ovsMirrorAttached(ms: MonitoredServer, o: ObservedState, bridge: string): Update {
  const ns = ms.metadata.namespace ?? '';
  const producer = mirrorProducerNadName(ms);
  const server = o.serverVmi;
  const networks = server?.spec?.networks ?? [];
  const monitored = ms.spec.server.monitoredNetwork ?? networks[0]?.name;
  if (!server || !vmiNode(server)) return { status: 'False', reason: Reason.WaitingForServerPlacement, message: 'the mirror is attached once the server VM runs' };
  if (!usesNad(server, monitored ?? '', ns, producer)) {
    return {
      status: 'False',
      reason: Reason.ServerNICNotMirrorable,
      message: `with the ovs-cni mirroring provider the server's monitored network ${monitored ?? '(none)'} of VirtualMachine ${ns}/${serverVmName(ms)} must use NetworkAttachmentDefinition ${producer} (multus networkName), which HyperSpector created; change the VM's network and restart it when convenient (HyperSpector never restarts your server)`,
    };
  }
  if (o.mirrorPeers) {
    const slot = bridgeSlot(mirrorPeer(ms), o.mirrorPeers);
    if (!slot.fits) return bridgeFull(ms, vmiNode(server) ?? '', bridge, slot.mirrors, slot.holders);
  }
  if (!vmiIsReady(o.idsVmi) || !usesNad(o.idsVmi, MIRROR_NETWORK, ns, mirrorNadName(ms, 'ovs-cni'))) {
    return { status: 'False', reason: Reason.WaitingForMirrorAgent, message: `the mirror's consumer is attached once IDS VirtualMachine ${ns}/${idsVmName(ms)} runs` };
  }
  return { status: 'True', reason: 'Attached', message: `ovs-cni mirrors network ${monitored} of the server into the IDS VM's ${MIRROR_NETWORK} NIC (NADs ${producer}, ${mirrorNadName(ms, 'ovs-cni')})` };
}

function bridgeFull(ms: MonitoredServer, node: string, bridge: string, mirrors: number, holders: string[]): Update {
  const shown = holders.slice(0, 5).join(', ') + (holders.length > 5 ? ` and ${holders.length - 5} more` : '');
  return {
    status: 'False',
    reason: Reason.MirrorBridgeFull,
    message:
      `the OVS bridge ${bridge} on node ${node} already applies ${OVS_MAX_MIRRORS_PER_BRIDGE} port mirrors, the most Open vSwitch allows per bridge ` +
      `(${mirrors} MonitoredServers with mirroring have their server there; the slots are held by ${shown}), so the mirror of ${ms.metadata.namespace}/${ms.metadata.name} would copy nothing: ` +
      `run the server VM on another node (its node selector or affinity, or a live migration), or set spec.mirroring.enabled: false on another MonitoredServer whose server runs on ${node}; the mirror attaches as soon as a slot is free`,
  };
}

/**
 * MirrorAttached for Ready: `owned` is a condition the operator sets (ovs-cni); `agent` one it only
 * reads (tc: the agent's condition as it is, or the wait for it).
 */
export function mirrorAttached(ms: MonitoredServer, o: ObservedState, ctx: NetworkingContext): { owned?: Update; agent?: Update } {
  if (ms.spec.mirroring?.enabled === false) return {};
  if (ctx.settings.mirroring === 'ovs-cni') return { owned: ovsMirrorAttached(ms, o, ctx.settings.ovsBridge) };
  const reported = (ms.status?.conditions as Condition[] | undefined)?.find((c) => c.type === ConditionType.MirrorAttached && c.reason !== Reason.MirroringUnavailable);
  if (reported) return { agent: { status: reported.status, reason: reported.reason, message: reported.message } };
  const node = vmiNode(o.serverVmi);
  return {
    agent: {
      status: 'False',
      reason: Reason.WaitingForMirrorAgent,
      message: node
        ? `no node agent has reported the mirror of the server's traffic yet: is the hyperspector-agent DaemonSet running on node ${node}?`
        : 'the node agent attaches the mirror once the server VM runs on a node',
    },
  };
}
