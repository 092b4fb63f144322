// Pure: the ovs-cni provider's limit of mirrors per OVS bridge. Open vSwitch keeps at most 32 port
// mirrors per bridge (MAX_MIRRORS in ofproto); a 33rd Mirror row is stored but never applied, so the
// IDS VM would silently get nothing. Every MonitoredServer with mirroring on has one mirror
// (builders/networking.ts ovsMirrorName) on the bridge of the node its server runs on, so the
// operator counts them from the MonitoredServers whose server VMI is placed on that node.
//
// Who gets a slot when there are more than 32: those whose mirror already works keep it (their
// MirrorAttached is True: moving them would break a working mirror), then the oldest MonitoredServer
// (creationTimestamp, then namespace/name). The others say MirrorBridgeFull, naming the node, the
// bridge and what to do; a slot freed on the node wakes them.

import type { MonitoredServer } from '../../api/v1alpha1/monitoredserver-types.ts';

/** Open vSwitch's MAX_MIRRORS: port mirrors one bridge applies. */
export const OVS_MAX_MIRRORS_PER_BRIDGE = 32;

/** A MonitoredServer with a mirror on the node's bridge. */
export interface MirrorPeer {
  /** namespace/name */
  key: string;
  creationTimestamp?: string;
  /** Its MirrorAttached is True now (its mirror is applied). */
  attached: boolean;
}

/** A MonitoredServer as a peer on its node's bridge (attached: its MirrorAttached is True). */
export function mirrorPeer(ms: MonitoredServer): MirrorPeer {
  const conditions = (ms.status?.conditions ?? []) as Array<{ type: string; status: string }>;
  return {
    key: `${ms.metadata.namespace}/${ms.metadata.name}`,
    ...(ms.metadata.creationTimestamp ? { creationTimestamp: ms.metadata.creationTimestamp } : {}),
    attached: conditions.some((c) => c.type === 'MirrorAttached' && c.status === 'True'),
  };
}

function rank(a: MirrorPeer, b: MirrorPeer): number {
  if (a.attached !== b.attached) return a.attached ? -1 : 1;
  const ta = Date.parse(a.creationTimestamp ?? '') || 0;
  const tb = Date.parse(b.creationTimestamp ?? '') || 0;
  return ta - tb || a.key.localeCompare(b.key);
}

export interface BridgeSlot {
  /** True: this MonitoredServer's mirror is among those the bridge applies. */
  fits: boolean;
  /** Mirrors on the node's bridge, this one included. */
  mirrors: number;
  /** Those ahead of it that hold the slots (when it does not fit). */
  holders: string[];
}

/** Whether `self` gets one of the bridge's `limit` slots among `peers` (self may or may not be among them). */
export function bridgeSlot(self: MirrorPeer, peers: readonly MirrorPeer[], limit = OVS_MAX_MIRRORS_PER_BRIDGE): BridgeSlot {
  const all = [self, ...peers.filter((p) => p.key !== self.key)].sort(rank);
  const position = all.findIndex((p) => p.key === self.key);
  return { fits: position < limit, mirrors: all.length, holders: position < limit ? [] : all.slice(0, limit).map((p) => p.key) };
}
