// The network of nodes that run real guests, built from network namespaces (testenv/netns):
//
//   <prefix>-underlay: bridge "ul" ─ veth ─ <prefix>-node-<node>: eth0 198.18.0.N/24 (the node's host namespace)
//   node host ns: one veth per launcher pod ("lp<uid>"), a /32 route to the pod's IP through it, proxy ARP
//   launcher pod ns (KubeVirt's bridge binding, as virt-launcher leaves it):
//     eth0-nic (the CNI's veth end, renamed) ─┐
//     tap0 (QEMU's NIC)                       ├─ bridge k6t-eth0 (169.254.75.10/32)
//     eth0: a dummy holding the pod's IP (the guest gets that IP by DHCP from virt-launcher); a
//           port-less bridge where the kernel has no dummy driver
//
// The pod's IP is the one Kubernetes reports (status.podIP, from kwok's pod CIDR): it exists only
// inside these namespaces, so a kwok address is as good as any. The CNI side is Calico-shaped
// (point-to-point veth, host route, proxy ARP), so no pod subnet per node is needed.
import { TestNetns, deleteNamespace, run, runPrefix } from '../netns/netns-host.ts';

export const UNDERLAY_SUBNET_PREFIX = '198.18.0.';
export const IN_POD_BRIDGE = 'k6t-eth0';
export const TAP = 'tap0';
/** The link-local address KubeVirt gives the in-pod bridge. */
export const IN_POD_BRIDGE_ADDRESS = '169.254.75.10/32';
/** The renamed CNI interface: KubeVirt keeps the name eth0 for a dummy carrying the pod's IP. */
export const POD_NIC = 'eth0-nic';

export interface NodeHost {
  readonly nodeName: string;
  readonly ns: TestNetns;
  readonly underlayAddress: string;
}

export interface LauncherNetwork {
  readonly ns: TestNetns;
  readonly podIp: string;
  /** The CNI's end of the pod's veth, in the node's host namespace. */
  readonly nodeSideVeth: string;
  readonly node: NodeHost;
}

/**
 * A dummy interface; on a kernel without the dummy driver (e.g. a Firecracker guest kernel) a bridge
 * without ports stands in: it holds an address and forwards nothing, as a dummy.
 */
async function addDummy(ns: TestNetns, name: string): Promise<void> {
  try {
    await ns.ip('link', 'add', name, 'type', 'dummy');
  } catch (err) {
    if (!/Unknown device type/.test((err as Error).message)) throw err;
    await ns.ip('link', 'add', name, 'type', 'bridge');
  }
}

export async function namespaceExists(name: string): Promise<boolean> {
  const list = JSON.parse((await run(['ip', '-j', 'netns', 'list'])).trim() || '[]') as { name: string }[];
  return list.some((n) => n.name === name);
}

/** The veth name of a launcher pod on the node side: "lp" + 12 hex digits of the pod UID (IFNAMSIZ). */
export function nodeSideVethName(podUid: string): string {
  return `lp${podUid.replace(/-/g, '').slice(0, 12)}`;
}

export class RealGuestNetwork {
  readonly prefix: string;
  private underlay?: Promise<TestNetns>;
  private readonly nodes = new Map<string, Promise<NodeHost>>();
  private nextNodeIndex = 1;

  constructor(prefix = runPrefix('rg')) {
    this.prefix = prefix;
  }

  private ensureUnderlay(): Promise<TestNetns> {
    this.underlay ??= (async () => {
      const ns = await TestNetns.create(`${this.prefix}-underlay`);
      await ns.ip('link', 'add', 'ul', 'type', 'bridge');
      await ns.ip('link', 'set', 'ul', 'up');
      return ns;
    })();
    return this.underlay;
  }

  /** The node's host namespace, created on first use and joined to the underlay bridge. */
  node(nodeName: string): Promise<NodeHost> {
    let node = this.nodes.get(nodeName);
    if (!node) {
      const index = this.nextNodeIndex++;
      node = (async () => {
        const underlay = await this.ensureUnderlay();
        const ns = await TestNetns.create(`${this.prefix}-node-${nodeName}`);
        const underlayAddress = `${UNDERLAY_SUBNET_PREFIX}${index}`;
        await ns.ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `n${index}`, 'netns', underlay.name);
        await underlay.ip('link', 'set', `n${index}`, 'master', 'ul');
        await underlay.ip('link', 'set', `n${index}`, 'up');
        await ns.ip('addr', 'add', `${underlayAddress}/24`, 'dev', 'eth0');
        await ns.ip('link', 'set', 'eth0', 'up');
        await ns.exec(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
        return { nodeName, ns, underlayAddress };
      })();
      this.nodes.set(nodeName, node);
    }
    return node;
  }

  /** Builds the launcher pod's namespace (see the file comment); undone by removeLauncher. */
  async createLauncher(nodeName: string, nsName: string, podUid: string, podIp: string): Promise<LauncherNetwork> {
    const node = await this.node(nodeName);
    await deleteNamespace(nsName); // a leftover of a crashed start of the same pod
    const ns = await TestNetns.create(nsName);
    const nodeSideVeth = nodeSideVethName(podUid);
    try {
      // What the CNI does: a veth into the pod, the pod's IP on it, a host route back.
      await node.ns.ip('link', 'add', nodeSideVeth, 'type', 'veth', 'peer', 'name', POD_NIC, 'netns', ns.name);
      await node.ns.ip('link', 'set', nodeSideVeth, 'up');
      await node.ns.exec(['sysctl', '-qw', `net.ipv4.conf.${nodeSideVeth}.proxy_arp=1`]);
      await node.ns.ip('route', 'add', `${podIp}/32`, 'dev', nodeSideVeth);
      // What virt-launcher does for the bridge binding: the pod's NIC and a tap on an in-pod bridge,
      // the pod's IP kept on a dummy eth0 (the guest receives it by DHCP).
      await ns.ip('link', 'add', IN_POD_BRIDGE, 'type', 'bridge');
      await ns.ip('addr', 'add', IN_POD_BRIDGE_ADDRESS, 'dev', IN_POD_BRIDGE);
      await ns.ip('link', 'set', POD_NIC, 'master', IN_POD_BRIDGE);
      await ns.ip('tuntap', 'add', 'dev', TAP, 'mode', 'tap');
      await ns.ip('link', 'set', TAP, 'master', IN_POD_BRIDGE);
      await addDummy(ns, 'eth0');
      await ns.ip('addr', 'add', `${podIp}/32`, 'dev', 'eth0');
      // The pod's IP is the guest's: the pod's own stack does not answer ARP for it on the in-pod bridge.
      await ns.exec(['sysctl', '-qw', 'net.ipv4.conf.all.arp_ignore=1']);
      for (const link of [POD_NIC, TAP, IN_POD_BRIDGE, 'eth0']) await ns.ip('link', 'set', link, 'up');
    } catch (err) {
      await this.removeLauncher({ ns, podIp, nodeSideVeth, node });
      throw err;
    }
    return { ns, podIp, nodeSideVeth, node };
  }

  /** Deletes the launcher namespace (its veth peer, route and tap go with it). */
  async removeLauncher(launcher: LauncherNetwork): Promise<void> {
    await launcher.node.ns.ip('link', 'del', launcher.nodeSideVeth).catch(() => undefined);
    await deleteNamespace(launcher.ns.name);
  }

  /** Every namespace this network made, by name (for leak checks). */
  namespaceNames(): string[] {
    return [`${this.prefix}-underlay`, ...[...this.nodes.keys()].map((n) => `${this.prefix}-node-${n}`)];
  }

  async close(): Promise<void> {
    for (const node of this.nodes.values()) await deleteNamespace((await node.catch(() => undefined))?.ns.name ?? '');
    if (this.underlay) await deleteNamespace((await this.underlay.catch(() => undefined))?.name ?? '');
    // Names of nodes whose creation failed half-way.
    for (const name of this.namespaceNames()) if (await namespaceExists(name)) await deleteNamespace(name);
    this.nodes.clear();
    this.underlay = undefined;
  }
}
