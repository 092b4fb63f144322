// Pure planning of the mirror link: a veth pair from the server VM's launcher pod namespace (the tc
// mirror destination) into the IDS VM's launcher pod namespace, where it joins the in-pod bridge of
// the IDS VM's mirror NIC (KubeVirt's bridge binding).
//
// The link is one-way in effect: the server-side end has no address, no ARP and no IPv6 link-local,
// and is no bridge port, so what the IDS side sends into it is dropped there and the server VM
// never sees anything of the IDS side.
import { bridge, ip, type KernelCommand } from './kernel-commands.ts';
import { assertInterfaceName, isUp, type LinkTable, type ObservedLink } from './links.ts';
import type { NetnsRef } from './netns.ts';

export interface MirrorLinkSpec {
  readonly serverNetns: NetnsRef;
  readonly idsNetns: NetnsRef;
  /** End in the server's launcher pod: the tc mirror destination. */
  readonly serverSideName: string;
  /** End in the IDS VM's launcher pod. */
  readonly idsSideName: string;
  /** In-pod bridge of the IDS VM's mirror NIC (absent: the IDS reads the veth end directly). */
  readonly idsBridge?: string;
  /** At least the mirrored interface's MTU, or full-size copies are dropped on the way. */
  readonly mtu: number;
}

export interface MirrorLinkPlan {
  readonly server: KernelCommand[];
  readonly ids: KernelCommand[];
}

function kindOf(link: ObservedLink | undefined): string | undefined {
  return link?.linkinfo?.info_kind;
}

function assertVethOrAbsent(link: ObservedLink | undefined, where: string): void {
  if (link && kindOf(link) !== 'veth') {
    throw new Error(`Interface ${link.ifname} in ${where} exists and is a ${kindOf(link) ?? 'device of unknown kind'}, not our mirror veth`);
  }
}

/** Settings every end needs: no addresses of its own, no ARP, the right MTU, up. */
function planEndSettings(name: string, link: ObservedLink, mtu: number): KernelCommand[] {
  const commands: KernelCommand[] = [];
  if (link.mtu !== mtu) commands.push(ip('link', 'set', 'dev', name, 'mtu', String(mtu)));
  if (link.inet6_addr_gen_mode !== undefined && link.inet6_addr_gen_mode !== 'none') {
    commands.push(ip('link', 'set', 'dev', name, 'addrgenmode', 'none'));
  }
  if (!link.flags.includes('NOARP')) commands.push(ip('link', 'set', 'dev', name, 'arp', 'off'));
  return commands;
}

/**
 * One reconcile step. When the pair is missing (or half of it is) the step creates it and the
 * executor plans again on the new observation, so settings are always planned from what is there.
 */
export function planMirrorLink(spec: MirrorLinkSpec, serverLinks: LinkTable, idsLinks: LinkTable): MirrorLinkPlan {
  assertInterfaceName(spec.serverSideName, 'the server side of the mirror link');
  assertInterfaceName(spec.idsSideName, 'the IDS side of the mirror link');
  const serverEnd = serverLinks.get(spec.serverSideName);
  const idsEnd = idsLinks.get(spec.idsSideName);
  assertVethOrAbsent(serverEnd, spec.serverNetns.label);
  assertVethOrAbsent(idsEnd, spec.idsNetns.label);
  if (spec.idsBridge !== undefined && kindOf(idsLinks.get(spec.idsBridge)) !== 'bridge') {
    throw new Error(`Bridge ${spec.idsBridge} of the IDS mirror NIC is missing in ${spec.idsNetns.label}`);
  }

  if (!serverEnd || !idsEnd) {
    // A half pair is a leftover of an interrupted run: deleting one end of a veth deletes both.
    return {
      server: [
        ...(serverEnd ? [ip('link', 'del', 'dev', spec.serverSideName)] : []),
        ip('link', 'add', spec.serverSideName, 'mtu', String(spec.mtu), 'type', 'veth',
          'peer', 'name', spec.idsSideName, 'mtu', String(spec.mtu), 'netns', spec.idsNetns.ipNetnsArg),
      ],
      ids: idsEnd ? [ip('link', 'del', 'dev', spec.idsSideName)] : [],
    };
  }

  const server = planEndSettings(spec.serverSideName, serverEnd, spec.mtu);
  // A bridge port would forward copies back towards the server VM or the pod network.
  if (serverEnd.master !== undefined) server.push(ip('link', 'set', 'dev', spec.serverSideName, 'nomaster'));
  if (!isUp(serverEnd)) server.push(ip('link', 'set', 'dev', spec.serverSideName, 'up'));

  const ids = planEndSettings(spec.idsSideName, idsEnd, spec.mtu);
  if (spec.idsBridge !== undefined) {
    if (idsEnd.master !== spec.idsBridge) ids.push(ip('link', 'set', 'dev', spec.idsSideName, 'master', spec.idsBridge));
    // Mirrored frames carry both the server's and its peers' MACs; a learning port would learn
    // them all on itself and the bridge would then drop the frames addressed to them (same-port
    // rule). Without learning every copy is unknown unicast and flooded to the IDS VM's tap.
    const port = idsEnd.master === spec.idsBridge ? idsEnd.linkinfo?.info_slave_data : undefined;
    if (port?.learning !== false || port?.flood !== true) {
      ids.push(bridge('link', 'set', 'dev', spec.idsSideName, 'learning', 'off', 'flood', 'on'));
    }
  } else if (idsEnd.master !== undefined) {
    ids.push(ip('link', 'set', 'dev', spec.idsSideName, 'nomaster'));
  }
  if (!isUp(idsEnd)) ids.push(ip('link', 'set', 'dev', spec.idsSideName, 'up'));
  return { server, ids };
}

export function planMirrorLinkRemoval(spec: MirrorLinkSpec, serverLinks: LinkTable, idsLinks: LinkTable): MirrorLinkPlan {
  const serverEnd = serverLinks.get(spec.serverSideName);
  const idsEnd = idsLinks.get(spec.idsSideName);
  if (serverEnd && kindOf(serverEnd) === 'veth') return { server: [ip('link', 'del', 'dev', spec.serverSideName)], ids: [] };
  if (idsEnd && kindOf(idsEnd) === 'veth') return { server: [], ids: [ip('link', 'del', 'dev', spec.idsSideName)] };
  return { server: [], ids: [] };
}
