// Pure: the IDS overlay spec of this node from the cluster's Nodes and IDS VMIs. Every node the
// agent runs on keeps the overlay (bridge, VXLAN device, underlay guard), so an IDS VM can land
// anywhere; its head-end-replication peers are the InternalIPs of the other nodes that run an IDS
// VMI now, and the guard admits VXLAN of our VNI from exactly those.
import type { V1Node } from '@kubernetes/client-node';
import type { VxlanOverlaySpec } from '../dataplane/vxlan-overlay-plan.ts';
import type { ObjectMeta, VirtualMachineInstance } from '../kube/client/objects.ts';

export type Node = Omit<V1Node, 'metadata'> & { metadata?: ObjectMeta };

export interface OverlaySettings {
  readonly nodeName: string;
  readonly bridge: string;
  readonly vxlan: string;
  readonly vni: number;
  readonly port: number;
  /** The underlay interface; undefined: the interface that holds the node's InternalIP. */
  readonly underlayInterface?: string;
}

export function internalIp(node: Node | undefined): string | undefined {
  return node?.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
}

/** InternalIPs of the nodes (other than this one) that run at least one IDS VMI, sorted. */
export function overlayPeers(nodes: readonly Node[], idsVmis: readonly VirtualMachineInstance[], self: string): string[] {
  const hosting = new Set(idsVmis.filter((v) => !v.metadata?.deletionTimestamp).map((v) => v.status?.nodeName).filter((n): n is string => Boolean(n)));
  hosting.delete(self);
  const byName = new Map(nodes.map((n) => [n.metadata?.name ?? '', n]));
  return [...new Set([...hosting].map((name) => internalIp(byName.get(name))).filter((a): a is string => Boolean(a)))].sort();
}

/** The interface of `ip -j addr show` output that holds `address`. */
export function interfaceHolding(addrs: readonly { ifname?: string; addr_info?: { local?: string }[] }[], address: string): string | undefined {
  return addrs.find((l) => (l.addr_info ?? []).some((a) => a.local === address))?.ifname;
}

export type OverlayDecision = { spec: VxlanOverlaySpec } | { waiting: string };

export function overlaySpec(settings: OverlaySettings, self: Node | undefined, peers: readonly string[], underlayInterface: string | undefined): OverlayDecision {
  const local = internalIp(self);
  if (!self) return { waiting: `Node ${settings.nodeName} is not in the cache yet` };
  if (!local) return { waiting: `Node ${settings.nodeName} reports no InternalIP for the overlay's underlay` };
  const device = settings.underlayInterface ?? underlayInterface;
  if (!device) return { waiting: `no interface of node ${settings.nodeName} holds its InternalIP ${local}; set --underlay-interface` };
  return {
    spec: { bridge: settings.bridge, vxlan: settings.vxlan, vni: settings.vni, port: settings.port, localAddress: local, underlayDevice: device, peers: [...peers] },
  };
}
