// A three-node "cluster" made of network namespaces, wired the way KubeVirt and a CNI wire real
// pods and VMs, for the data plane's host tests and the mirroring benchmark:
//
//   underlay ns: bridge "ul" ── veth ── node ns (eth0 198.18.0.N/24, routes to the other nodes' pod subnets)
//   node ns: bridge "cni0" (198.18.1N.1/24, the pod network gateway) ── veth ── launcher pod ns eth0
//   server launcher pod ns: in-pod bridge k6t-eth0 { eth0, tap0 }; tap0 ── veth ── server VM ns eth0
//   IDS launcher pod ns: k6t-mirror { tap1 } ── IDS VM mirror0;  k6t-ovl { tap2 } ── IDS VM ovl0 (198.19.0.K/24)
//
// A VM is a namespace; its NIC is a veth whose pod-side end stands where KubeVirt's tap would.
// Addresses come from 198.18.0.0/15 (reserved for benchmarking, RFC 2544) and exist only inside
// these namespaces; nothing is routed to the host's own interfaces.
import { TestNetns, deleteNamespaces } from './netns-host.ts';

export const IDS_OVERLAY_SUBNET = '198.19.0.0/24';
export const OVERLAY_MTU = 1450;

export interface NodeNs {
  readonly index: number;
  readonly ns: TestNetns;
  readonly underlayAddress: string;
}

export interface ServerPair {
  readonly id: number;
  readonly node: NodeNs;
  readonly serverPod: TestNetns;
  readonly serverVm: TestNetns;
  readonly serverAddress: string;
  readonly idsPod: TestNetns;
  readonly idsVm: TestNetns;
  readonly idsOverlayAddress: string;
}

export interface NetnsCluster {
  readonly prefix: string;
  readonly underlay: TestNetns;
  readonly nodes: readonly NodeNs[];
  readonly pairs: readonly ServerPair[];
  readonly client: TestNetns;
  readonly clientAddress: string;
  readonly all: readonly TestNetns[];
}

async function veth(a: TestNetns, aName: string, b: TestNetns, bName: string, mtu?: number): Promise<void> {
  const mtuArgs = mtu === undefined ? [] : ['mtu', String(mtu)];
  await a.ip('link', 'add', aName, ...mtuArgs, 'type', 'veth', 'peer', 'name', bName, ...mtuArgs, 'netns', b.name);
}

async function up(ns: TestNetns, ...names: string[]): Promise<void> {
  for (const name of names) await ns.ip('link', 'set', name, 'up');
}

async function inPodBridge(pod: TestNetns, bridgeName: string, ports: string[], mtu?: number): Promise<void> {
  await pod.ip('link', 'add', bridgeName, ...(mtu === undefined ? [] : ['mtu', String(mtu)]), 'type', 'bridge');
  for (const port of ports) await pod.ip('link', 'set', port, 'master', bridgeName);
  await up(pod, bridgeName, ...ports);
}

/** Builds the topology: `serversPerNode[i]` server/IDS pairs on node i. */
export async function buildCluster(prefix: string, serversPerNode: readonly number[]): Promise<NetnsCluster> {
  const all: TestNetns[] = [];
  const make = async (suffix: string) => {
    const ns = await TestNetns.create(`${prefix}-${suffix}`);
    all.push(ns);
    return ns;
  };
  try {
    const underlay = await make('underlay');
    await underlay.ip('link', 'add', 'ul', 'type', 'bridge');
    await up(underlay, 'ul');

    const nodes: NodeNs[] = [];
    for (let i = 0; i < serversPerNode.length; i++) {
      const ns = await make(`node${i}`);
      const node: NodeNs = { index: i, ns, underlayAddress: `198.18.0.${i + 1}` };
      await veth(ns, 'eth0', underlay, `n${i}`);
      await underlay.ip('link', 'set', `n${i}`, 'master', 'ul');
      await up(underlay, `n${i}`);
      await ns.ip('addr', 'add', `${node.underlayAddress}/24`, 'dev', 'eth0');
      await up(ns, 'eth0');
      await ns.ip('link', 'add', 'cni0', 'type', 'bridge');
      await ns.ip('addr', 'add', `198.18.${10 + i}.1/24`, 'dev', 'cni0');
      await up(ns, 'cni0');
      await ns.exec(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      nodes.push(node);
    }
    for (const node of nodes) {
      for (const other of nodes) {
        if (other !== node) await node.ns.ip('route', 'add', `198.18.${10 + other.index}.0/24`, 'via', other.underlayAddress);
      }
    }

    const pairs: ServerPair[] = [];
    let id = 0;
    for (const node of nodes) {
      for (let k = 0; k < serversPerNode[node.index]!; k++, id++) {
        const serverAddress = `198.18.${10 + node.index}.${10 + id}`;
        const serverPod = await make(`srv${id}-pod`);
        const serverVm = await make(`srv${id}-vm`);
        await veth(node.ns, `vs${id}`, serverPod, 'eth0');
        await node.ns.ip('link', 'set', `vs${id}`, 'master', 'cni0');
        await up(node.ns, `vs${id}`);
        await veth(serverPod, 'tap0', serverVm, 'eth0');
        await inPodBridge(serverPod, 'k6t-eth0', ['eth0', 'tap0']);
        await serverVm.ip('addr', 'add', `${serverAddress}/24`, 'dev', 'eth0');
        await up(serverVm, 'eth0');
        await serverVm.ip('route', 'add', 'default', 'via', `198.18.${10 + node.index}.1`);

        const idsOverlayAddress = `198.19.0.${id + 1}`;
        const idsPod = await make(`ids${id}-pod`);
        const idsVm = await make(`ids${id}-vm`);
        await veth(idsPod, 'tap1', idsVm, 'mirror0');
        await inPodBridge(idsPod, 'k6t-mirror', ['tap1']);
        await up(idsVm, 'mirror0');
        await veth(idsPod, 'tap2', idsVm, 'ovl0', OVERLAY_MTU);
        await inPodBridge(idsPod, 'k6t-ovl', ['tap2'], OVERLAY_MTU);
        await idsVm.ip('addr', 'add', `${idsOverlayAddress}/24`, 'dev', 'ovl0');
        await up(idsVm, 'ovl0');
        pairs.push({ id, node, serverPod, serverVm, serverAddress, idsPod, idsVm, idsOverlayAddress });
      }
    }

    const client = await make('client');
    const clientAddress = '198.18.10.200';
    await veth(nodes[0]!.ns, 'vc0', client, 'eth0');
    await nodes[0]!.ns.ip('link', 'set', 'vc0', 'master', 'cni0');
    await up(nodes[0]!.ns, 'vc0');
    await client.ip('addr', 'add', `${clientAddress}/24`, 'dev', 'eth0');
    await up(client, 'eth0');
    await client.ip('route', 'add', 'default', 'via', '198.18.10.1');

    return { prefix, underlay, nodes, pairs, client, clientAddress, all };
  } catch (err) {
    await deleteNamespaces(prefix);
    throw err;
  }
}

/**
 * What Multus + a bridge CNI would do for an IDS pod's overlay attachment: a veth from the node's
 * overlay bridge into the pod, joined there to the in-pod bridge of the IDS VM's overlay NIC.
 */
export async function attachIdsToOverlay(pair: ServerPair, overlayBridge: string): Promise<void> {
  const nodeSide = `vi${pair.id}`;
  await veth(pair.node.ns, nodeSide, pair.idsPod, 'net1', OVERLAY_MTU);
  await pair.node.ns.ip('link', 'set', nodeSide, 'master', overlayBridge);
  await up(pair.node.ns, nodeSide);
  await pair.idsPod.ip('link', 'set', 'net1', 'master', 'k6t-ovl');
  await up(pair.idsPod, 'net1');
}

/** The CNI DEL of the attachment above. */
export async function detachIdsFromOverlay(pair: ServerPair): Promise<void> {
  await pair.node.ns.ip('link', 'del', `vi${pair.id}`);
}
