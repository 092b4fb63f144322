// The IDS VM's cloud-init network data (pure): its IDS-network address on the NIC with our stable
// MAC, and the mirror NIC up without any address (no DHCP, no router advertisements, no link-local
// address: the IDS only listens there). Merged into the network data of the IDS template, never
// replacing it; the result goes into the Secret `<name>-ids-cloud-init` beside the user data
// (KubeVirt reads its `networkdata` key through networkDataSecretRef).
//
// Without network data of the user's, cloud-init would configure the first NIC by DHCP (its
// fallback); network data of ours switches that fallback off, so ours then also asks DHCP on the
// template's first interface, matched by its MAC (given a stable one when the template has none).
import { LRUCache } from 'lru-cache';
import { isMap, isSeq, parseDocument, stringify, type Document } from 'yaml';
import type { MonitoredServer } from '../api/v1alpha1/monitoredserver-types.ts';
import type { VirtualMachine } from '../kube/client/objects.ts';
import { IDS_NETWORK, MIRROR_NETWORK, stableMac } from './networking.ts';

type VmiSpec = NonNullable<NonNullable<VirtualMachine['spec']['template']>['spec']>;

/** Guest interface names cloud-init gives our NICs (set-name / name). */
export const GUEST_IDS_NIC = 'hsids0';
export const GUEST_MIRROR_NIC = 'hsmirror0';

export interface IdsNetworkData {
  /** CIDR notation, e.g. 10.99.0.7/16. */
  address: string;
  mtu: number;
  mirrorMtu: number;
  /** The IDS VM has a mirror NIC. */
  mirror: boolean;
}

function cloudInitSource(volume: NonNullable<VmiSpec['volumes']>[number]) {
  return volume.cloudInitNoCloud ?? volume.cloudInitConfigDrive;
}

/** The network data of the IDS template's cloud-init volume, or why it cannot be read. */
export function templateNetworkData(ms: MonitoredServer): { networkData: string | undefined } | { error: string } {
  const source = (ms.spec.ids.template.spec?.template?.spec?.volumes ?? []).map(cloudInitSource).find(Boolean);
  if (!source) return { networkData: undefined };
  if (source.networkDataSecretRef?.name) {
    return {
      error: `the IDS template's cloud-init takes its network data from Secret ${source.networkDataSecretRef.name}, which HyperSpector does not read: put it inline (networkData or networkDataBase64); HyperSpector moves the merged network data into a Secret of its own`,
    };
  }
  if (source.networkDataBase64) return { networkData: Buffer.from(source.networkDataBase64, 'base64').toString('utf8') };
  return { networkData: source.networkData };
}

/** The MAC of the template's first interface (ours if it has none: withFirstNicMac sets it). */
export function firstNicMac(ms: MonitoredServer, vmiSpec: VmiSpec): { name: string; mac: string } | undefined {
  const first = vmiSpec.domain.devices.interfaces?.find((i) => i.name !== MIRROR_NETWORK && i.name !== IDS_NETWORK);
  if (!first) return undefined;
  return { name: first.name, mac: first.macAddress ?? stableMac(ms, first.name) };
}

/** Gives the template's first interface its stable MAC when our network data must name it. */
export function withFirstNicMac(ms: MonitoredServer, vmiSpec: VmiSpec): VmiSpec {
  const first = firstNicMac(ms, vmiSpec);
  if (!first) return vmiSpec;
  const interfaces = (vmiSpec.domain.devices.interfaces ?? []).map((i) => (i.name === first.name ? { ...i, macAddress: first.mac } : i));
  return { ...vmiSpec, domain: { ...vmiSpec.domain, devices: { ...vmiSpec.domain.devices, interfaces } } };
}

function v2Ethernets(ms: MonitoredServer, input: IdsNetworkData): Record<string, unknown> {
  const quiet = { dhcp4: false, dhcp6: false, 'accept-ra': false };
  return {
    [GUEST_IDS_NIC]: { match: { macaddress: stableMac(ms, IDS_NETWORK) }, 'set-name': GUEST_IDS_NIC, ...quiet, addresses: [input.address], mtu: input.mtu },
    ...(input.mirror
      ? { [GUEST_MIRROR_NIC]: { match: { macaddress: stableMac(ms, MIRROR_NETWORK) }, 'set-name': GUEST_MIRROR_NIC, ...quiet, 'link-local': [], mtu: input.mirrorMtu } }
      : {}),
  };
}

function v1Config(ms: MonitoredServer, input: IdsNetworkData): Record<string, unknown>[] {
  return [
    { type: 'physical', name: GUEST_IDS_NIC, mac_address: stableMac(ms, IDS_NETWORK), mtu: input.mtu, subnets: [{ type: 'static', address: input.address }] },
    ...(input.mirror ? [{ type: 'physical', name: GUEST_MIRROR_NIC, mac_address: stableMac(ms, MIRROR_NETWORK), mtu: input.mirrorMtu, subnets: [{ type: 'manual' }] }] : []),
  ];
}

/**
 * The IDS VM's network data: the template's (cloud-init network config version 1 or 2, inline) with
 * our NICs added, or, when the template has none, ours plus DHCP on its first interface. Throws with
 * the reason when the template's cannot take ours.
 */
export function buildIdsNetworkData(ms: MonitoredServer, vmiSpec: VmiSpec, input: IdsNetworkData): string {
  const user = templateNetworkData(ms);
  if ('error' in user) throw new Error(user.error);
  // Everything the result depends on: the planner and the status both build it on every reconcile,
  // and YAML is slow (at N=300 a quarter of the operator's reconcile CPU before this memo).
  const memo = JSON.stringify([user.networkData, firstNicMac(ms, vmiSpec), ms.metadata.uid ?? ms.metadata.name, input]);
  const known = recentNetworkData.get(memo);
  if (known !== undefined) return known;
  const built = mergedNetworkData(ms, vmiSpec, input, user.networkData);
  recentNetworkData.set(memo, built);
  return built;
}

/** Network data built lately, by everything it was built from (buildIdsNetworkData). */
const recentNetworkData = new LRUCache<string, string>({ max: 4096 });

/** The template's network data (inline) with ours merged in; throws when it cannot take ours. */
function mergedNetworkData(ms: MonitoredServer, vmiSpec: VmiSpec, input: IdsNetworkData, userNetworkData: string | undefined): string {
  if (userNetworkData === undefined || userNetworkData.trim() === '') {
    const first = firstNicMac(ms, vmiSpec);
    const primary = first ? { [first.name.replace(/[^A-Za-z0-9_-]/g, '') || 'primary']: { match: { macaddress: first.mac }, dhcp4: true } } : {};
    return stringify({ version: 2, ethernets: { ...primary, ...v2Ethernets(ms, input) } }, { lineWidth: 0 });
  }
  const doc: Document = parseDocument(userNetworkData, { version: '1.1' });
  if (doc.errors.length > 0) throw new Error(`the IDS template's network data is not valid YAML: ${doc.errors[0]!.message}`);
  const root = isMap(doc.contents) && doc.contents.has('network') ? doc.get('network') : doc.contents;
  if (!isMap(root)) throw new Error("the IDS template's network data is not a YAML mapping");
  const version = Number(root.get('version'));
  if (version === 2) {
    let ethernets = root.get('ethernets');
    if (ethernets === undefined || ethernets === null) {
      root.set('ethernets', doc.createNode({}));
      ethernets = root.get('ethernets');
    }
    if (!isMap(ethernets)) throw new Error("the IDS template's network data has ethernets that are not a mapping");
    for (const [name, value] of Object.entries(v2Ethernets(ms, input))) {
      if (ethernets.has(name)) throw new Error(`the IDS template's network data already configures ${name}, which HyperSpector needs`);
      ethernets.set(name, doc.createNode(value));
    }
  } else if (version === 1) {
    const config = root.get('config');
    if (!isSeq(config)) throw new Error("the IDS template's network data (version 1) has no config list");
    for (const entry of v1Config(ms, input)) config.items.push(doc.createNode(entry));
  } else {
    throw new Error(`the IDS template's network data has version ${String(root.get('version'))}; cloud-init network config version 1 or 2 is expected`);
  }
  return doc.toString({ lineWidth: 0 });
}
