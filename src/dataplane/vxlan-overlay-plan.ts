// Pure planning of the IDS overlay without OVN-Kubernetes: on every node a Linux bridge that the IDS
// VMs' launcher pods are attached to, joined to the other nodes' bridges by one VXLAN device.
//
// Broadcast, unknown unicast and multicast go to every peer by head-end replication: one all-zero
// FDB entry per peer node (`bridge fdb append 00:00:00:00:00:00 dst <peer>`), so no multicast
// underlay is needed. The VXLAN device does not learn: the only forwarding state is the static
// peer list, which a reconcile keeps equal to the cluster's nodes, so a departed node leaves no
// stale entry behind. Unicast between IDS VMs is therefore replicated to all peers too, which the
// IDS overlay's low volume (alerts, process tables) affords; the receiving bridges drop frames
// that are not for their local ports.
import { bridge, ip, type KernelCommand } from './kernel-commands.ts';
import { assertInterfaceName, isUp, type LinkTable, type ObservedLink } from './links.ts';

export const VXLAN_DEFAULT_PORT = 4789;
const ALL_ZERO_MAC = '00:00:00:00:00:00';

export interface VxlanOverlaySpec {
  /** Bridge the IDS pods' overlay interfaces are attached to (the Multus attachment's bridge). */
  readonly bridge: string;
  readonly vxlan: string;
  readonly vni: number;
  readonly port: number;
  /** This node's address on the underlay (the node's InternalIP). */
  readonly localAddress: string;
  /** The node's interface that holds localAddress; its MTU bounds the overlay's. */
  readonly underlayDevice: string;
  /** The other nodes' underlay addresses (this node's own is ignored if listed). */
  readonly peers: readonly string[];
}

/** Outer Ethernet 14 + IP 20/40 + UDP 8 + VXLAN 8: what encapsulation takes from the underlay MTU. */
export function vxlanOverhead(localAddress: string): number {
  return localAddress.includes(':') ? 70 : 50;
}

export function overlayMtu(underlayMtu: number, localAddress: string): number {
  return underlayMtu - vxlanOverhead(localAddress);
}

export interface ObservedFdbEntry {
  readonly mac: string;
  readonly dst?: string;
}

export function validateOverlaySpec(spec: VxlanOverlaySpec): void {
  assertInterfaceName(spec.bridge, 'the IDS overlay bridge');
  assertInterfaceName(spec.vxlan, 'the IDS overlay VXLAN device');
  if (spec.bridge === spec.vxlan) throw new Error('The IDS overlay bridge and VXLAN device need different names');
  if (!Number.isInteger(spec.vni) || spec.vni < 1 || spec.vni > 0xffffff) throw new Error(`VXLAN id ${spec.vni} is outside 1..16777215`);
  if (!Number.isInteger(spec.port) || spec.port < 1 || spec.port > 65535) throw new Error(`VXLAN port ${spec.port} is invalid`);
}

/** The peers the FDB must hold: unique, never this node. */
export function desiredPeers(spec: VxlanOverlaySpec): string[] {
  return [...new Set(spec.peers)].filter((peer) => peer !== spec.localAddress).sort();
}

function vxlanMatches(link: ObservedLink, spec: VxlanOverlaySpec): boolean {
  const data = link.linkinfo?.info_data ?? {};
  return (
    data.id === spec.vni &&
    (data.local === spec.localAddress || data.local6 === spec.localAddress) &&
    data.port === spec.port &&
    data.link === spec.underlayDevice &&
    data.learning === false
  );
}

function addressSettings(name: string, link: ObservedLink, mtu: number): KernelCommand[] {
  const commands: KernelCommand[] = [];
  if (link.mtu !== mtu) commands.push(ip('link', 'set', 'dev', name, 'mtu', String(mtu)));
  // The node itself takes no part in the overlay: no IPv6 link-local address on it either.
  if (link.inet6_addr_gen_mode !== undefined && link.inet6_addr_gen_mode !== 'none') {
    commands.push(ip('link', 'set', 'dev', name, 'addrgenmode', 'none'));
  }
  return commands;
}

/**
 * One reconcile step of the overlay on one node. Devices created in this step get their settings
 * and FDB entries in the next step, planned from the new observation.
 */
export function planVxlanOverlay(spec: VxlanOverlaySpec, links: LinkTable, fdb: readonly ObservedFdbEntry[]): KernelCommand[] {
  validateOverlaySpec(spec);
  const underlay = links.get(spec.underlayDevice);
  if (!underlay) throw new Error(`Underlay interface ${spec.underlayDevice} of the IDS overlay not found`);
  const mtu = overlayMtu(underlay.mtu, spec.localAddress);
  const commands: KernelCommand[] = [];

  const br = links.get(spec.bridge);
  if (br && br.linkinfo?.info_kind !== 'bridge') throw new Error(`${spec.bridge} exists and is not a bridge`);
  if (!br) {
    commands.push(ip('link', 'add', spec.bridge, 'mtu', String(mtu), 'type', 'bridge'));
  } else {
    commands.push(...addressSettings(spec.bridge, br, mtu));
    if (!isUp(br)) commands.push(ip('link', 'set', 'dev', spec.bridge, 'up'));
  }

  const vx = links.get(spec.vxlan);
  if (vx && vx.linkinfo?.info_kind !== 'vxlan') throw new Error(`${spec.vxlan} exists and is not a VXLAN device`);
  if (!vx || !vxlanMatches(vx, spec)) {
    // VXLAN id, local address, port and underlay cannot be changed on a live device.
    if (vx) commands.push(ip('link', 'del', 'dev', spec.vxlan));
    commands.push(
      ip('link', 'add', spec.vxlan, 'mtu', String(mtu), 'type', 'vxlan', 'id', String(spec.vni), 'local', spec.localAddress,
        'dstport', String(spec.port), 'dev', spec.underlayDevice, 'nolearning'),
    );
    return commands;
  }
  commands.push(...addressSettings(spec.vxlan, vx, mtu));
  if (vx.master !== spec.bridge && br) commands.push(ip('link', 'set', 'dev', spec.vxlan, 'master', spec.bridge));
  if (!isUp(vx)) commands.push(ip('link', 'set', 'dev', spec.vxlan, 'up'));

  const wanted = new Set(desiredPeers(spec));
  const present = new Set(fdb.filter((e) => e.mac === ALL_ZERO_MAC && e.dst !== undefined).map((e) => e.dst!));
  for (const peer of wanted) {
    if (!present.has(peer)) commands.push(bridge('fdb', 'append', ALL_ZERO_MAC, 'dev', spec.vxlan, 'dst', peer));
  }
  for (const stale of [...present].sort()) {
    if (!wanted.has(stale)) commands.push(bridge('fdb', 'del', ALL_ZERO_MAC, 'dev', spec.vxlan, 'dst', stale));
  }
  return commands;
}

/** Removal deletes both devices; attached IDS pod interfaces are released, not deleted. */
export function planVxlanOverlayRemoval(spec: Pick<VxlanOverlaySpec, 'bridge' | 'vxlan'>, links: LinkTable): KernelCommand[] {
  const commands: KernelCommand[] = [];
  if (links.get(spec.vxlan)?.linkinfo?.info_kind === 'vxlan') commands.push(ip('link', 'del', 'dev', spec.vxlan));
  if (links.get(spec.bridge)?.linkinfo?.info_kind === 'bridge') commands.push(ip('link', 'del', 'dev', spec.bridge));
  return commands;
}
