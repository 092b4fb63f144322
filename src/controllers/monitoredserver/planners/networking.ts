// Planner: the IDS VM's networks. The NADs of the configured providers (the namespace's shared ones,
// ovs-cni's owned by the MonitoredServer), and the IDS VM's IDS-network address: claimed once by creating the claim object
// named after the lowest free address (docs in builders/ids-address.ts), read back from the cache
// afterwards, released on teardown. The IDS VM waits for its address, because the address is in its
// cloud-init network data and changing that later would mean a restart.
import type { MonitoredServer } from '../../../api/v1alpha1/monitoredserver-types.ts';
import { addressOfClaim, buildAddressClaim, lowestFreeAddress, parseIpv4Prefix } from '../../../builders/ids-address.ts';
import { buildIdsNetworkData, withFirstNicMac } from '../../../builders/ids-network-data.ts';
import { buildIdsNetworkPolicy, buildNads, idsNics, isSharedNad, refersToNad, type IdsNics, type NetworkAttachmentDefinition, type NetworkingSettings } from '../../../builders/networking.ts';
import { needsApply } from '../../../kube/client/apply.ts';
import type { VirtualMachine, VirtualMachineInstance } from '../../../kube/client/objects.ts';
import { CONFIG_MAP, MULTI_NETWORK_POLICY, NETWORK_ATTACHMENT_DEFINITION } from '../../../kube/client/resources.ts';
import { statusCodeOf } from '../../../kube/client/rest.ts';
import type { Action } from '../actions.ts';
import type { ObservedState } from '../observed-state.ts';
import { EventReason, Reason } from '../reasons.ts';

type VmiSpec = NonNullable<NonNullable<VirtualMachine['spec']['template']>['spec']>;

/** Networking as the operator is configured: the providers and where address claims live. */
export interface NetworkingContext {
  settings: NetworkingSettings;
  /** Namespace of the address claims (the operator's own). */
  claimNamespace: string;
}

export interface NetworkingPlan {
  nads: NetworkAttachmentDefinition[];
  /** The IDS VM's address with its prefix length (e.g. 10.99.0.7/16), once claimed. */
  address?: string;
  /** The address to claim now (none claimed yet). */
  claim?: string;
  /** Something only the user or the administrator can fix (a full prefix, a bad configuration). */
  refusal?: { reason: string; message: string };
}

export function resolveNetworking(ms: MonitoredServer, o: ObservedState, ctx: NetworkingContext): NetworkingPlan {
  const nads = buildNads(ms, ctx.settings);
  let prefix;
  try {
    prefix = parseIpv4Prefix(ctx.settings.idsCidr);
  } catch (err) {
    return { nads, refusal: { reason: Reason.IDSNetworkMisconfigured, message: `the operator's --ids-network-cidr: ${(err as Error).message}` } };
  }
  const claimed = o.addressClaim ? addressOfClaim(o.addressClaim) : undefined;
  if (claimed) return { nads, address: `${claimed}/${prefix.length}` };
  const taken = new Set((o.addressClaims ?? []).map(addressOfClaim).filter((a): a is string => a !== undefined));
  const free = lowestFreeAddress(prefix, taken);
  if (!free) {
    return {
      nads,
      refusal: {
        reason: Reason.IDSNetworkFull,
        message: `every address of the IDS network ${ctx.settings.idsCidr} is claimed by another IDS VM (${taken.size} claims): give the operator a larger --ids-network-cidr (chart value idsNetwork.cidr)`,
      },
    };
  }
  return { nads, claim: free };
}

/** The IDS VM's network data (or why the template's cannot take ours), once its address is known. */
export function idsNetworkData(ms: MonitoredServer, vmiSpec: VmiSpec, plan: NetworkingPlan, ctx: NetworkingContext): { networkData: string } | { error: string } | undefined {
  if (!plan.address) return undefined;
  try {
    return {
      networkData: buildIdsNetworkData(ms, withFirstNicMac(ms, vmiSpec), {
        address: plan.address,
        mtu: ctx.settings.idsMtu,
        mirrorMtu: ctx.settings.mirrorMtu,
        mirror: ms.spec.mirroring?.enabled !== false,
      }),
    };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/**
 * What planIdsVm and planIdsCloudInit get: the network data once the address is claimed; an empty
 * object (the IDS VM waits) while it is not, or while the template's network data cannot take ours.
 */
export function planIdsNetworkData(ms: MonitoredServer, o: ObservedState, ctx: NetworkingContext): { networkData?: string; address?: string; nics: IdsNics } {
  const template = ms.spec.ids.template.spec?.template?.spec ?? { domain: { devices: {} } };
  const plan = resolveNetworking(ms, o, ctx);
  const data = idsNetworkData(ms, template, plan, ctx);
  const nics = idsNics(ms, ctx.settings);
  return data && 'networkData' in data ? { networkData: data.networkData, ...(plan.address ? { address: plan.address } : {}), nics } : { nics };
}

/** Apply the NADs that are missing or differ; claim an address when there is none (capability network). */
export function planNetworking(ms: MonitoredServer, o: ObservedState, ctx: NetworkingContext): Action[] {
  if (o.idsNameTaken || o.serverClaimedBy || o.serverNameTaken) return [];
  const ns = ms.metadata.namespace ?? '';
  const plan = resolveNetworking(ms, o, ctx);
  const actions: Action[] = [];
  for (const nad of plan.nads) {
    const name = nad.metadata?.name ?? '';
    const live = o.nads?.[name];
    if (live && !live.metadata?.deletionTimestamp && !needsApply(nad, live)) continue;
    actions.push({
      type: 'apply',
      capability: 'network',
      failureReason: 'ApplyNetworkAttachmentDefinitionFailed',
      log: `Apply NetworkAttachmentDefinition ${ns}/${name}`,
      resource: NETWORK_ATTACHMENT_DEFINITION,
      object: nad,
      // 404: no NetworkAttachmentDefinition CRD (Multus not installed); 400/422: refused by validation.
      refusedWhen: (err) => [400, 404, 422].includes(statusCodeOf(err) ?? 0),
    });
  }
  actions.push(...deleteUnneededNads(ms, o, new Set(plan.nads.map((n) => n.metadata?.name ?? '')), ctx.settings, 'network'));
  if (ctx.settings.multiNetworkPolicy) {
    const policy = buildIdsNetworkPolicy(ms, ctx.settings);
    if (!o.idsNetworkPolicy || needsApply(policy, o.idsNetworkPolicy)) {
      actions.push({
        type: 'apply',
        capability: 'network',
        failureReason: 'ApplyMultiNetworkPolicyFailed',
        log: `Apply MultiNetworkPolicy ${ns}/${policy.metadata?.name}`,
        resource: MULTI_NETWORK_POLICY,
        object: policy,
        // 404: no MultiNetworkPolicy CRD although --ids-network-policy asks for one.
        refusedWhen: (err) => [400, 404, 422].includes(statusCodeOf(err) ?? 0),
      });
    }
  }
  if (plan.claim) {
    const claim = buildAddressClaim(ms, plan.claim, ctx.claimNamespace);
    actions.push({
      type: 'create',
      capability: 'network',
      failureReason: 'ClaimIDSAddressFailed',
      log: `Claim IDS-network address ${plan.claim} (ConfigMap ${ctx.claimNamespace}/${claim.metadata?.name})`,
      resource: CONFIG_MAP,
      object: claim,
      // Another MonitoredServer claimed the same lowest free address a moment earlier: the next plan takes the next one.
      lostRaceWhen: (err) => statusCodeOf(err) === 409,
    });
  }
  return actions;
}

/** Whether a VMI has a NIC on the NAD `name` (of its own namespace). */
function vmiUsesNad(vmi: VirtualMachineInstance | undefined, name: string): boolean {
  return (vmi?.spec?.networks ?? []).some((n) => refersToNad(n.multus?.networkName, vmi?.metadata?.namespace ?? '', name));
}

/**
 * Our NADs that are not in `needed`, deleted (guarded by their UID): this MonitoredServer's own (an
 * older version's per-MonitoredServer ones, ovs-cni's once mirroring is off) once its IDS VMI has no
 * NIC on them; a shared one once no other MonitoredServer of the namespace needs it either (one
 * created a moment later applies it again).
 */
function deleteUnneededNads(ms: MonitoredServer, o: ObservedState, needed: ReadonlySet<string>, settings: NetworkingSettings, capability: 'network' | 'teardown'): Action[] {
  const ns = ms.metadata.namespace ?? '';
  const actions: Action[] = [];
  for (const [name, nad] of Object.entries(o.nads ?? {})) {
    if (needed.has(name) || nad.metadata?.deletionTimestamp || vmiUsesNad(o.idsVmi, name)) continue;
    if (isSharedNad(nad) && (o.namespacePeers ?? []).some((peer) => buildNads(peer, settings).some((n) => n.metadata?.name === name))) continue;
    actions.push({
      type: 'delete',
      capability,
      failureReason: 'DeleteNetworkAttachmentDefinitionFailed',
      log: `Delete NetworkAttachmentDefinition ${ns}/${name}${isSharedNad(nad) ? ' (no other MonitoredServer of the namespace needs it)' : ''}`,
      resource: NETWORK_ATTACHMENT_DEFINITION,
      namespace: ns,
      name,
      ...(nad.metadata?.uid ? { preconditionUid: nad.metadata.uid } : {}),
      tolerate: [404, 409],
    });
  }
  return actions;
}

/** Teardown, once the IDS VM is gone: our NADs (a shared one when no other MonitoredServer needs it) and the address claim (the release). */
export function planNetworkTeardown(ms: MonitoredServer, o: ObservedState, claimNamespace: string | undefined, settings: NetworkingSettings | undefined): Action[] {
  const ns = ms.metadata.namespace ?? '';
  const actions: Action[] = settings ? deleteUnneededNads(ms, o, new Set(), settings, 'teardown') : [];
  const policy = o.idsNetworkPolicy;
  if (policy && !policy.metadata?.deletionTimestamp) {
    actions.push({
      type: 'delete',
      capability: 'teardown',
      failureReason: 'DeleteMultiNetworkPolicyFailed',
      log: `Delete MultiNetworkPolicy ${ns}/${policy.metadata?.name}`,
      resource: MULTI_NETWORK_POLICY,
      namespace: ns,
      name: policy.metadata?.name ?? '',
      tolerate: [404, 409],
    });
  }
  const claim = o.addressClaim;
  if (claim && (claim.metadata?.namespace ?? claimNamespace)) {
    const address = addressOfClaim(claim);
    actions.push({
      type: 'delete',
      capability: 'teardown',
      failureReason: 'ReleaseIDSAddressFailed',
      log: `Release IDS-network address ${address} (ConfigMap ${claimNamespace}/${claim.metadata?.name})`,
      resource: CONFIG_MAP,
      namespace: claim.metadata?.namespace ?? claimNamespace ?? '',
      name: claim.metadata?.name ?? '',
      ...(claim.metadata?.uid ? { preconditionUid: claim.metadata.uid } : {}),
      tolerate: [404, 409],
      event: { type: 'Normal', reason: EventReason.IDSAddressReleased, message: `Released IDS-network address ${address}` },
    });
  }
  return actions;
}
