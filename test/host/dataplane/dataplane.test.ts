// The data plane on real Linux networking: three "nodes" as namespaces on an underlay bridge, server
// and IDS "VMs" as namespaces attached the way KubeVirt's bridge binding attaches a VM, tc port
// mirroring and the VXLAN IDS overlay installed by src/dataplane, real packets, real nmap.
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  NsenterKernelCommands,
  ensureServerMirror,
  netnsOfPid,
  reconcileVxlanOverlay,
  removeServerMirror,
  removeVxlanOverlay,
  type NetnsRef,
  type ServerMirrorSpec,
  type VxlanOverlaySpec,
} from '../../../src/dataplane/index.ts';
import { frameMultiset, readFrames, startCapture, stopCapture, type Capture } from '../../../testenv/netns/capture.ts';
import { IDS_OVERLAY_SUBNET, OVERLAY_MTU, attachIdsToOverlay, buildCluster, detachIdsFromOverlay, type NetnsCluster, type ServerPair } from '../../../testenv/netns/netns-cluster.ts';
import { ProcessGroup, deleteNamespaces, runPrefix, waitForOutput, type TestNetns } from '../../../testenv/netns/netns-host.ts';
import { nmapHostDiscovery, nmapPortScan, portsAccountedFor, reachablePorts } from '../../../testenv/netns/nmap.ts';
import { snapshotAll, type NetnsSnapshot } from '../../../testenv/netns/snapshot.ts';
import { waitUntil } from '../../../testenv/netns/wait.ts';

const kernel = new NsenterKernelCommands();
const IDS_PORT = 7000;
const SCANNED_PORTS = `1-1024,${IDS_PORT}`;

function overlaySpec(cluster: NetnsCluster, nodeIndex: number, peers = cluster.nodes.map((n) => n.underlayAddress)): VxlanOverlaySpec {
  return {
    bridge: 'hsids0',
    vxlan: 'hsids0-vx',
    vni: 4242,
    port: 4789,
    localAddress: cluster.nodes[nodeIndex]!.underlayAddress,
    underlayDevice: 'eth0',
    peers,
  };
}

/** Namespaces of pairs that are entered through a process, as the node agent enters launcher pods. */
const launcherPidNetns = new Map<string, NetnsRef>();

function mirrorSpec(pair: ServerPair): ServerMirrorSpec {
  return {
    server: { netns: launcherPidNetns.get(pair.serverPod.name) ?? pair.serverPod.ref, interface: 'tap0' },
    ids: { netns: launcherPidNetns.get(pair.idsPod.name) ?? pair.idsPod.ref, interface: 'mirror-in', bridge: 'k6t-mirror' },
    linkName: 'hsm0',
    direction: 'Both',
  };
}

async function pingOk(from: TestNetns, to: string, extra: string[] = []): Promise<boolean> {
  return from.exec(['ping', '-c', '1', '-W', '1', ...extra, to]).then(() => true, () => false);
}

/** IP protocol numbers present in captured Ethernet/IPv4 frames. */
function ipProtocols(frames: readonly Buffer[]): Set<number> {
  return new Set(frames.filter((f) => f.length > 23 && f.readUInt16BE(12) === 0x0800).map((f) => f[23]!));
}

describe('data plane on network namespaces (tc mirroring, VXLAN IDS overlay)', function () {
  this.timeout(300_000);
  const prefix = runPrefix('dp');
  const processes = new ProcessGroup();
  /** Stand-ins for launcher pods' processes; they live until the very end. */
  const launchers = new ProcessGroup();
  let cluster: NetnsCluster;
  let initial: Map<string, NetnsSnapshot>;
  let captureDir: string;

  before(async () => {
    await deleteNamespaces(prefix);
    captureDir = await mkdtemp(join(tmpdir(), 'hs-dataplane-'));
    // Two pairs share node 0, so "no other IDS" is tested on one node as well as across nodes.
    cluster = await buildCluster(prefix, [2, 1, 1]);
    initial = await snapshotAll(cluster.all);
    // Pair 0's launcher pods are entered by pid (/proc/<pid>/ns/net, `ip link ... netns <pid>`),
    // the way the node agent finds a virt-launcher pod; the others by name.
    for (const pod of [cluster.pairs[0]!.serverPod, cluster.pairs[0]!.idsPod]) {
      const stand = launchers.add(pod.spawn(['sleep', '3600']));
      const ref = netnsOfPid(stand.pid!);
      const target = (await stat(pod.ref.path)).ino;
      await waitUntil(`pid ${stand.pid} to enter ${pod.name}`, async () => (await stat(ref.path)).ino === target);
      launcherPidNetns.set(pod.name, ref);
    }
  });

  after(async () => {
    await processes.stopAll();
    await launchers.stopAll();
    await deleteNamespaces(prefix);
    if (captureDir) await rm(captureDir, { recursive: true, force: true });
  });

  it('installs the overlay and the mirrors, and a second reconcile changes nothing', async () => {
    for (const node of cluster.nodes) {
      const first = await reconcileVxlanOverlay(kernel, node.ns.ref, overlaySpec(cluster, node.index));
      assert.ok(first.commandsRun > 0);
    }
    for (const pair of cluster.pairs) await attachIdsToOverlay(pair, 'hsids0');
    for (const pair of cluster.pairs) assert.ok((await ensureServerMirror(kernel, mirrorSpec(pair))).commandsRun > 0);

    for (const node of cluster.nodes) {
      assert.equal((await reconcileVxlanOverlay(kernel, node.ns.ref, overlaySpec(cluster, node.index))).commandsRun, 0);
      const vx = (await node.ns.json<{ mtu: number }[]>(['ip', '-j', 'link', 'show', 'hsids0-vx']))[0]!;
      assert.equal(vx.mtu, OVERLAY_MTU, 'VXLAN MTU = underlay 1500 - 50');
      const fdb = await node.ns.json<{ mac: string; dst?: string }[]>(['bridge', '-j', 'fdb', 'show', 'dev', 'hsids0-vx']);
      const peers = fdb.filter((e) => e.mac === '00:00:00:00:00:00').map((e) => e.dst).sort();
      assert.deepEqual(peers, cluster.nodes.filter((n) => n !== node).map((n) => n.underlayAddress).sort());
    }
    for (const pair of cluster.pairs) assert.equal((await ensureServerMirror(kernel, mirrorSpec(pair))).commandsRun, 0);
  });

  it('delivers every packet a server sends and receives (TCP, UDP, ICMP) to its own IDS exactly once, and to no other IDS', async () => {
    const { client, clientAddress, pairs } = cluster;
    for (const pair of pairs) {
      const sink = processes.add(pair.serverVm.spawn(['ncat', '-v', '-l', '-k', '5000', '--recv-only']));
      const source = processes.add(pair.serverVm.spawn(['ncat', '-v', '-l', '-k', '5002', '-c', 'head -c 300000 /dev/zero']));
      const udp = processes.add(pair.serverVm.spawn(['ncat', '-v', '-u', '-l', '5001', '--recv-only']));
      for (const [child, what] of [[sink, 'TCP sink'], [source, 'TCP source'], [udp, 'UDP sink']] as const) {
        await waitForOutput(child, 'Listening on', `${what} in ${pair.serverVm.name}`);
      }
    }
    // The client's UDP sink takes the servers' UDP, including the end markers (no ICMP replies).
    const clientSink = processes.add(client.spawn(['ncat', '-v', '-u', '-l', '-k', '5004', '-c', 'cat > /dev/null']));
    await waitForOutput(clientSink, 'Listening on', 'UDP sink of the client');
    const idsCaptures: Capture[] = [];
    const serverCaptures: Capture[] = [];
    for (const pair of pairs) idsCaptures.push(await startCapture(pair.idsVm, 'mirror0', join(captureDir, `ids${pair.id}.pcap`), processes));
    for (const pair of pairs) serverCaptures.push(await startCapture(pair.serverVm, 'eth0', join(captureDir, `srv${pair.id}.pcap`), processes));

    for (const pair of pairs) {
      const to = pair.serverAddress;
      await client.exec(['ping', '-c', '3', '-i', '0.2', '-W', '2', to]);
      await client.exec(['sh', '-c', `head -c 300000 /dev/zero | ncat --send-only ${to} 5000`]);
      await client.exec(['sh', '-c', `ncat --recv-only ${to} 5002 > /dev/null`]);
      await client.exec(['sh', '-c', `echo to-server-${pair.id} | ncat -u --send-only ${to} 5001`]);
      await pair.serverVm.exec(['sh', '-c', `echo from-server-${pair.id} | ncat -u --send-only ${clientAddress} 5004`]);
    }
    // A capture stopped at once may drop frames tcpdump has not read yet: each server sends a last
    // marker frame, and a capture stops only once it holds the marker (frames are read in order).
    const markers = pairs.map((pair) => Buffer.from(`hs-end-marker-${process.pid}-${pair.id}`));
    for (const pair of pairs) await pair.serverVm.exec(['sh', '-c', `printf %s ${markers[pair.id]} | ncat -u --send-only ${clientAddress} 5004`]);
    const holdsMarker = async (capture: Capture, i: number) => (await readFrames(capture.file)).some((f) => f.includes(markers[i]!));
    const captures = [...serverCaptures.entries(), ...idsCaptures.entries()];
    for (const [i, capture] of captures) await waitUntil(`the end marker in ${capture.file}`, () => holdsMarker(capture, i));
    await Promise.all(captures.map(([, capture]) => stopCapture(capture, processes)));
    // Compare up to the marker: a stray frame after it (an ARP refresh) may reach one capture only.
    const untilMarker = (frames: Buffer[], i: number) => frames.slice(0, frames.findIndex((f) => f.includes(markers[i]!)) + 1);
    const sent = await Promise.all(serverCaptures.map(async (c, i) => untilMarker(await readFrames(c.file), i)));
    const mirrored = await Promise.all(idsCaptures.map(async (c, i) => untilMarker(await readFrames(c.file), i)));

    for (const [i, pair] of pairs.entries()) {
      const protocols = ipProtocols(sent[i]!);
      for (const [proto, name] of [[1, 'ICMP'], [6, 'TCP'], [17, 'UDP']] as const) {
        assert.ok(protocols.has(proto), `server ${pair.id} traffic includes ${name}`);
      }
      assert.ok(sent[i]!.length > 50, `server ${pair.id} saw ${sent[i]!.length} frames`);
      // Segmentation offload: the server's TCP stack hands over frames larger than the MTU, and
      // the IDS must receive exactly the same super-frames (documented in docs/dataplane.md).
      assert.ok(sent[i]!.some((f) => f.length > 1514), `server ${pair.id} traffic has GSO super-frames`);
      assert.deepEqual(frameMultiset(mirrored[i]!), frameMultiset(sent[i]!), `IDS ${pair.id} got exactly server ${pair.id}'s frames, each once`);
    }
    for (const [q, pair] of pairs.entries()) {
      const own = frameMultiset(sent[q]!);
      const idsSeen = frameMultiset(mirrored[q]!);
      for (const [p, other] of pairs.entries()) {
        if (p === q) continue;
        const foreign = [...frameMultiset(sent[p]!).keys()].filter((k) => !own.has(k) && idsSeen.has(k));
        assert.equal(foreign.length, 0, `IDS ${pair.id} saw ${foreign.length} frames of server ${other.id}`);
      }
    }
  });

  for (const direction of ['Egress', 'Ingress'] as const) {
    it(`mirrors only the configured direction (${direction}: what the server ${direction === 'Egress' ? 'sends' : 'receives'})`, async () => {
      const pair = cluster.pairs[1]!;
      assert.ok((await ensureServerMirror(kernel, { ...mirrorSpec(pair), direction })).commandsRun > 0);
      const serverMac = (await pair.serverVm.json<{ address: string }[]>(['ip', '-j', 'link', 'show', 'eth0']))[0]!.address;
      const ids = await startCapture(pair.idsVm, 'mirror0', join(captureDir, `${direction}-ids.pcap`), processes);
      const server = await startCapture(pair.serverVm, 'eth0', join(captureDir, `${direction}-srv.pcap`), processes);
      await cluster.client.exec(['ping', '-c', '3', '-i', '0.2', '-W', '2', pair.serverAddress]);
      // The marker is sent by the server (Egress) or to it (Ingress), so both captures end with it.
      const marker = Buffer.from(`hs-${direction}-marker-${process.pid}`);
      const markerFrom = direction === 'Egress' ? pair.serverVm : cluster.client;
      const markerTo = direction === 'Egress' ? cluster.clientAddress : pair.serverAddress;
      await markerFrom.exec(['sh', '-c', `printf %s ${marker} | ncat -u --send-only ${markerTo} 5009`]);
      const upToMarker = async (capture: Capture) => {
        const frames = await readFrames(capture.file);
        const end = frames.findIndex((f) => f.includes(marker));
        return end < 0 ? undefined : frames.slice(0, end + 1);
      };
      await waitUntil('the marker in both captures', async () => (await upToMarker(server)) && (await upToMarker(ids)));
      await Promise.all([stopCapture(server, processes), stopCapture(ids, processes)]);
      const seen = (await upToMarker(server))!;
      const mirrored = (await upToMarker(ids))!;
      const sourceMac = (f: Buffer) => [...f.subarray(6, 12)].map((b) => b.toString(16).padStart(2, '0')).join(':');
      const expected = seen.filter((f) => (sourceMac(f) === serverMac) === (direction === 'Egress'));
      assert.ok(expected.length >= 4 && expected.length < seen.length, `the server both sent and received (${expected.length} of ${seen.length})`);
      assert.deepEqual(frameMultiset(mirrored), frameMultiset(expected));
      assert.ok((await ensureServerMirror(kernel, mirrorSpec(pair))).commandsRun > 0, 'back to Both');
    });
  }

  it('joins IDS VMs across nodes over the overlay at the overlay MTU, following nodes that leave and come back', async () => {
    const [first, ...others] = cluster.pairs;
    for (const other of others) {
      assert.ok(await pingOk(first!.idsVm, other.idsOverlayAddress), `IDS ${first!.id} reaches IDS ${other.id}`);
      // A full-size overlay frame (1450 bytes: 1422 of ICMP payload) crosses unfragmented.
      assert.ok(await pingOk(first!.idsVm, other.idsOverlayAddress, ['-M', 'do', '-s', String(OVERLAY_MTU - 28)]));
    }
    const remote = cluster.pairs.find((p) => p.node.index === 2)!;
    const withoutNode2 = cluster.nodes.filter((n) => n.index !== 2).map((n) => n.underlayAddress);
    await reconcileVxlanOverlay(kernel, cluster.nodes[0]!.ns.ref, overlaySpec(cluster, 0, withoutNode2));
    await waitUntil('node 2 to be unreachable from node 0 once it left the peer list', async () => !(await pingOk(first!.idsVm, remote.idsOverlayAddress)));
    await reconcileVxlanOverlay(kernel, cluster.nodes[0]!.ns.ref, overlaySpec(cluster, 0));
    await waitUntil('node 2 to be reachable again', () => pingOk(first!.idsVm, remote.idsOverlayAddress));
  });

  it('drops VXLAN that a server VM sends to inject frames into the IDS overlay (the underlay guard, with a control)', async () => {
    const attacker = cluster.pairs[1]!; // a server on node 0, aiming at its own node's VXLAN port
    const victim = cluster.pairs[0]!; // an IDS on node 0
    const peer = cluster.pairs.find((p) => p.node.index === 1)!; // a legitimate IDS on node 1
    const node0 = cluster.nodes[0]!;
    const spec = overlaySpec(cluster, 0);
    // The server VM builds its own VXLAN device with the overlay's VNI towards its node.
    await attacker.serverVm.ip('link', 'add', 'evil', 'type', 'vxlan', 'id', String(spec.vni), 'remote', node0.underlayAddress, 'dstport', String(spec.port), 'dev', 'eth0');
    await attacker.serverVm.ip('addr', 'add', '198.19.0.250/24', 'dev', 'evil');
    await attacker.serverVm.ip('link', 'set', 'evil', 'up');
    const isInjected = (f: Buffer) => f.length >= 42 && f.readUInt16BE(12) === 0x0806 && f.subarray(28, 32).equals(Buffer.from([198, 19, 0, 250]));
    const inject = () => attacker.serverVm.exec(['ping', '-c', '1', '-W', '1', victim.idsOverlayAddress]).catch(() => undefined);
    try {
      // Control: without the guard the injected ARP request does reach the IDS.
      await node0.ns.exec(['nft', 'delete', 'table', 'inet', 'hyperspector_hsids0_vx']);
      const open = await startCapture(victim.idsVm, 'ovl0', join(captureDir, 'inject-open.pcap'), processes);
      await waitUntil('an injected frame at the IDS while unguarded', async () => {
        await inject();
        return (await readFrames(open.file)).some(isInjected);
      });
      await stopCapture(open, processes);

      assert.ok((await reconcileVxlanOverlay(kernel, node0.ns.ref, spec)).commandsRun > 0, 'reconcile restores the guard');
      const guarded = await startCapture(victim.idsVm, 'ovl0', join(captureDir, 'inject-guarded.pcap'), processes);
      await inject();
      await inject();
      // Frames from a real peer take the same path through node 0's VXLAN device: once one that
      // was sent after the injections has arrived, the injected ones would have too.
      const peerMark = Buffer.from(`hs-peer-mark-${process.pid}`);
      await peer.idsVm.exec(['ping', '-c', '1', '-W', '2', '-p', peerMark.subarray(0, 16).toString('hex'), victim.idsOverlayAddress]);
      await waitUntil('the peer\'s frame at the IDS', async () => (await readFrames(guarded.file)).some((f) => f.includes(peerMark.subarray(0, 16))));
      await stopCapture(guarded, processes);
      assert.equal((await readFrames(guarded.file)).filter(isInjected).length, 0, 'no injected frame reached the IDS');
    } finally {
      await attacker.serverVm.ip('link', 'del', 'evil');
    }
  });

  it('Table 2: a port scan from every server finds nothing of the IDS side, while IDS peers answer each other', async () => {
    const idsAddresses = cluster.pairs.map((p) => p.idsOverlayAddress);
    for (const pair of cluster.pairs) {
      const listener = processes.add(pair.idsVm.spawn(['ncat', '-v', '-l', '-k', pair.idsOverlayAddress, String(IDS_PORT)]));
      await waitForOutput(listener, 'Listening on', `IDS listener in ${pair.idsVm.name}`);
    }

    // Positive control first: the scan does find IDS hosts and ports when they are reachable.
    const observer = cluster.pairs[0]!;
    const peersSeen = await nmapHostDiscovery(observer.idsVm, IDS_OVERLAY_SUBNET);
    for (const address of idsAddresses) assert.ok(peersSeen.hosts.some((h) => h.address === address && h.state === 'up'), `${address} found from an IDS`);
    const peersScanned = await nmapPortScan(observer.idsVm, idsAddresses.slice(1), SCANNED_PORTS);
    for (const host of peersScanned.hosts) {
      assert.ok(host.ports.some((p) => p.port === IDS_PORT && p.state === 'open'), `port ${IDS_PORT} open on ${host.address} from an IDS`);
    }

    for (const pair of cluster.pairs) {
      const discovery = await nmapHostDiscovery(pair.serverVm, IDS_OVERLAY_SUBNET);
      assert.equal(discovery.hostsUp, 0, `server ${pair.id} found IDS hosts: ${discovery.hosts.filter((h) => h.state === 'up').map((h) => h.address)}`);
      const scan = await nmapPortScan(pair.serverVm, idsAddresses, SCANNED_PORTS);
      assert.equal(scan.hosts.length, idsAddresses.length);
      for (const host of scan.hosts) {
        assert.equal(host.timedOut, false, `scan of ${host.address} completed`);
        assert.equal(portsAccountedFor(host), 1025, `every scanned port of ${host.address} has a state`);
        assert.deepEqual(reachablePorts(host), [], `server ${pair.id} found ports on ${host.address}`);
      }
    }
  });

  it('removal returns every namespace to its initial state (links, addresses, qdiscs, filters)', async () => {
    await processes.stopAll();
    for (const pair of cluster.pairs) {
      await detachIdsFromOverlay(pair);
      assert.ok((await removeServerMirror(kernel, mirrorSpec(pair))).commandsRun > 0);
      assert.equal((await removeServerMirror(kernel, mirrorSpec(pair))).commandsRun, 0, 'removal is idempotent');
    }
    for (const node of cluster.nodes) {
      await removeVxlanOverlay(kernel, node.ns.ref, overlaySpec(cluster, node.index));
      assert.equal((await removeVxlanOverlay(kernel, node.ns.ref, overlaySpec(cluster, node.index))).commandsRun, 0);
    }
    const final = await snapshotAll(cluster.all);
    for (const ns of cluster.all) assert.deepEqual(final.get(ns.name), initial.get(ns.name), `namespace ${ns.name} is back to its initial state`);
  });
});
