// The node agent's reconcile on real Linux networking: two namespaces shaped like KubeVirt's
// launcher pods (server: in-pod bridge k6t-eth0 with tap0; IDS: the in-pod bridge and tap of its
// mirror network, named as virt-launcher names them), each with a process in a cgroup named after
// its pod UID, as a kubelet lays it out. The agent is given the cluster's objects (MonitoredServer,
// VMIs, launcher pods, Nodes) and finds everything else itself: the pods' processes in /proc, their
// namespaces, what is installed in the kernel.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MonitoredServer } from '../../../src/api/v1alpha1/monitoredserver-types.ts';
import { mirrorLinkNames } from '../../../src/agent/desired-mirrors.ts';
import { hashedPodInterfaceName } from '../../../src/agent/kubevirt-names.ts';
import { MIRROR_ATTACHED, mirrorKey, NodeReconciler, OVERLAY_KEY, SWEEP_KEY } from '../../../src/agent/node-reconciler.ts';
import { PodProcessFinder } from '../../../src/agent/pod-processes.ts';
import { NsenterKernelCommands, removeVxlanOverlay, type KernelCommands } from '../../../src/dataplane/index.ts';
import { MIRROR_COOKIE } from '../../../src/dataplane/tc-mirror-plan.ts';
import { IDS_MIRROR_NETWORK, IDS_SHAPE, SERVER_SHAPE, launcherPod, mirroredServer, vmi } from '../../../testenv/fixtures/agent.ts';
import { frameMultiset, readFrames, startCapture, stopCapture, type Capture } from '../../../testenv/netns/capture.ts';
import { ProcessGroup, TestNetns, deleteNamespaces, runPrefix, waitForOutput } from '../../../testenv/netns/netns-host.ts';
import { snapshotAll, type NetnsSnapshot } from '../../../testenv/netns/snapshot.ts';
import { waitUntil } from '../../../testenv/netns/wait.ts';
import { CountingKernel, FixedCache, RecordedCondition, createLauncherShapedNode, startLauncherProcess } from '../../../testenv/netns/launcher-shaped-node.ts';
import { PodCgroup } from '../../../testenv/real-guests/pod-cgroup.ts';

const NODE = 'agent-node-0';
const PEER_NODE = 'agent-node-1';
const MS_UID = 'c0ffee00-1234-4abc-8def-000000000001';
const SERVER_POD_UID = '5e7e7000-0000-4000-8000-00000000000a';
const IDS_POD_UID = '1d5d5000-0000-4000-8000-00000000000b';
const IDS_HASH = hashedPodInterfaceName(IDS_MIRROR_NETWORK).slice(3);
const IDS_BRIDGE = `k6t-${IDS_HASH}`;
const IDS_TAP = `tap${IDS_HASH}`;
const LINKS = mirrorLinkNames(MS_UID);
const SERVER_ADDRESS = '198.18.20.10';
const CLIENT_ADDRESS = '198.18.20.1';

describe('node agent on launcher-pod-shaped namespaces (tc mirror and IDS overlay from the cluster state)', function () {
  this.timeout(300_000);
  const prefix = runPrefix('ag');
  const processes = new ProcessGroup();
  const cgroups: PodCgroup[] = [];
  const kernel = new NsenterKernelCommands();
  const cache = new FixedCache();
  let status: RecordedCondition;
  let nodeNs: TestNetns, serverPod: TestNetns, serverVm: TestNetns, idsPod: TestNetns, idsVm: TestNetns, client: TestNetns;
  let initial: Map<string, NetnsSnapshot>;
  let captureDir: string;
  let ms: MonitoredServer;

  /** A freshly started agent: nothing in memory, everything read from the kernel and /proc. */
  function startAgent(k: KernelCommands = kernel): NodeReconciler {
    return new NodeReconciler({
      cache,
      kernel: k,
      processes: new PodProcessFinder(),
      status,
      mirror: { nodeName: NODE, idsMirrorNetwork: IDS_MIRROR_NETWORK },
      overlay: { nodeName: NODE, bridge: 'hsids0', vxlan: 'hsids0-vx', vni: 4343, port: 4789 },
      nodeNetns: nodeNs.ref,
      waitingRecheckMs: 100,
    });
  }

  /** What the workers do after a change: the MonitoredServer's key, then the sweep. */
  async function reconcileMirrors(agent: NodeReconciler): Promise<void> {
    await agent.reconcile(mirrorKey('shop', 'web'));
    await agent.reconcile(SWEEP_KEY);
  }

  async function ourFilters(): Promise<{ hook: string; pref: number; toDev?: string }[]> {
    const out: { hook: string; pref: number; toDev?: string }[] = [];
    for (const hook of ['ingress', 'egress']) {
      const rows = await serverPod.json<{ pref?: number; options?: { actions?: { cookie?: string; to_dev?: string }[] } }[]>(['tc', '-j', 'filter', 'show', 'dev', 'tap0', hook]).catch(() => []);
      for (const row of rows) {
        const action = row.options?.actions?.find((a) => a.cookie === MIRROR_COOKIE);
        if (row.pref !== undefined && action) out.push({ hook, pref: row.pref, ...(action.to_dev ? { toDev: action.to_dev } : {}) });
      }
    }
    return out;
  }

  async function linksNamed(ns: TestNetns, pattern: RegExp): Promise<string[]> {
    return (await ns.json<{ ifname: string }[]>(['ip', '-j', 'link', 'show'])).map((l) => l.ifname).filter((n) => pattern.test(n));
  }

  async function assertInstalledOnce(): Promise<void> {
    assert.deepEqual(await ourFilters(), [
      { hook: 'ingress', pref: 10, toDev: LINKS.server },
      { hook: 'egress', pref: 11, toDev: LINKS.server },
    ]);
    assert.deepEqual(await linksNamed(serverPod, /^hs[mi]/), [LINKS.server]);
    assert.deepEqual(await linksNamed(idsPod, /^hs[mi]/), [LINKS.ids]);
  }

  async function assertInitialState(): Promise<void> {
    const now = await snapshotAll([nodeNs, serverPod, serverVm, idsPod, idsVm, client]);
    for (const [name, snapshot] of now) assert.deepEqual(snapshot, initial.get(name), `namespace ${name} is back to its initial state`);
  }

  before(async () => {
    await deleteNamespaces(prefix);
    captureDir = await mkdtemp(join(tmpdir(), 'hs-agent-'));
    ({ nodeNs, serverPod, serverVm, idsPod, idsVm, client } = await createLauncherShapedNode(prefix, { serverAddress: SERVER_ADDRESS, clientAddress: CLIENT_ADDRESS, idsBridge: IDS_BRIDGE, idsTap: IDS_TAP }));
    // The node: its underlay interface holds the node's InternalIP.
    // A port-less bridge holds the address (this kernel may have no dummy driver).
    await nodeNs.ip('link', 'add', 'ens3', 'type', 'bridge');
    await nodeNs.ip('addr', 'add', '198.18.0.1/24', 'dev', 'ens3');
    await nodeNs.ip('link', 'set', 'ens3', 'up');
    initial = await snapshotAll([nodeNs, serverPod, serverVm, idsPod, idsVm, client]);

    await startLauncherProcess(serverPod, SERVER_POD_UID, processes, cgroups);
    await startLauncherProcess(idsPod, IDS_POD_UID, processes, cgroups);
    ms = mirroredServer('web', 'shop', MS_UID);
    const serverVmi = vmi('shop', 'web-server', 'vmi-web-server', NODE, SERVER_SHAPE);
    const idsVmi = vmi('shop', 'web-ids', 'vmi-web-ids', NODE, IDS_SHAPE);
    cache.servers = [ms];
    cache.vmis = [serverVmi, idsVmi];
    cache.pods = [launcherPod(serverVmi, SERVER_POD_UID, NODE), launcherPod(idsVmi, IDS_POD_UID, NODE)];
    cache.nodeList = [
      { metadata: { name: NODE }, status: { addresses: [{ type: 'InternalIP', address: '198.18.0.1' }] } },
      { metadata: { name: PEER_NODE }, status: { addresses: [{ type: 'InternalIP', address: '198.18.0.2' }] } },
    ];
    status = new RecordedCondition(MIRROR_ATTACHED);
  });

  after(async () => {
    await processes.stopAll();
    for (const cgroup of cgroups) await cgroup.remove().catch(() => undefined);
    await deleteNamespaces(prefix);
    if (captureDir) await rm(captureDir, { recursive: true, force: true });
  });

  it('installs the mirror of a MonitoredServer from the cluster state and reports MirrorAttached; a second pass changes nothing', async () => {
    const counting = new CountingKernel(kernel);
    const agent = startAgent(counting);
    await reconcileMirrors(agent);
    assert.ok(counting.changes > 0);
    await assertInstalledOnce();
    const condition = status.conditions.get('shop/web');
    assert.equal(condition?.status, 'True', JSON.stringify(condition));
    assert.equal(condition?.reason, 'Attached');
    assert.match(condition!.message, new RegExp(`tap0 .*${LINKS.server} into ${IDS_BRIDGE}`));

    const again = new CountingKernel(kernel);
    const writes = status.writes;
    await reconcileMirrors(startAgent(again));
    assert.equal(again.changes, 0, 'a converged node takes no kernel command');
    assert.equal(status.writes, writes, 'and no status write');
  });

  it('delivers every frame the server sends and receives (ICMP, TCP, UDP) to the IDS VM exactly once', async () => {
    const sink = processes.add(serverVm.spawn(['ncat', '-v', '-l', '-k', '5000', '--recv-only']));
    const udp = processes.add(serverVm.spawn(['ncat', '-v', '-u', '-l', '5001', '--recv-only']));
    for (const [child, what] of [[sink, 'TCP sink'], [udp, 'UDP sink']] as const) await waitForOutput(child, 'Listening on', what);
    const captures: Capture[] = [
      await startCapture(serverVm, 'eth0', join(captureDir, 'server.pcap'), processes),
      await startCapture(idsVm, 'mirror0', join(captureDir, 'ids.pcap'), processes),
    ];
    await client.exec(['ping', '-c', '3', '-i', '0.2', '-W', '2', SERVER_ADDRESS]);
    await client.exec(['sh', '-c', `head -c 200000 /dev/zero | ncat --send-only ${SERVER_ADDRESS} 5000`]);
    await client.exec(['sh', '-c', `echo to-server | ncat -u --send-only ${SERVER_ADDRESS} 5001`]);
    const marker = Buffer.from(`hs-agent-marker-${process.pid}`);
    await serverVm.exec(['sh', '-c', `printf %s ${marker} | ncat -u --send-only ${CLIENT_ADDRESS} 5009`]);
    const upToMarker = async (c: Capture) => {
      const frames = await readFrames(c.file);
      const end = frames.findIndex((f) => f.includes(marker));
      return end < 0 ? undefined : frames.slice(0, end + 1);
    };
    await waitUntil('the end marker in both captures', async () => (await upToMarker(captures[0]!)) && (await upToMarker(captures[1]!)));
    await Promise.all(captures.map((c) => stopCapture(c, processes)));
    await processes.stop(sink);
    await processes.stop(udp);
    const sent = (await upToMarker(captures[0]!))!;
    const mirrored = (await upToMarker(captures[1]!))!;
    const protocols = new Set(sent.filter((f) => f.readUInt16BE(12) === 0x0800).map((f) => f[23]));
    assert.deepEqual([...protocols].sort((a, b) => a! - b!), [1, 6, 17], 'ICMP, TCP and UDP crossed the server NIC');
    assert.ok(sent.length > 30, `${sent.length} frames`);
    assert.deepEqual(frameMultiset(mirrored), frameMultiset(sent), 'the IDS got exactly the server frames, each once');
  });

  it('follows spec.mirroring.direction', async () => {
    const agent = startAgent();
    ms.spec.mirroring = { enabled: true, direction: 'Egress' };
    await reconcileMirrors(agent);
    assert.deepEqual(await ourFilters(), [{ hook: 'ingress', pref: 10, toDev: LINKS.server }], 'what the VM sends enters the pod at tap0 ingress');
    ms.spec.mirroring = { enabled: true, direction: 'Ingress' };
    await reconcileMirrors(agent);
    assert.deepEqual(await ourFilters(), [{ hook: 'egress', pref: 11, toDev: LINKS.server }]);
    ms.spec.mirroring = { enabled: true };
    await reconcileMirrors(agent);
    await assertInstalledOnce();
  });

  it('disabling mirroring restores the node (no filter, no veth) and gives the condition up', async () => {
    ms.spec.mirroring = { enabled: false };
    await reconcileMirrors(startAgent());
    await assertInitialState();
    assert.equal(status.conditions.has('shop/web'), false);
    ms.spec.mirroring = { enabled: true };
    await reconcileMirrors(startAgent());
    await assertInstalledOnce();
  });

  it('deleting the MonitoredServer restores the node', async () => {
    cache.servers = [];
    await reconcileMirrors(startAgent());
    await assertInitialState();
    cache.servers = [ms];
  });

  it('an agent killed after any number of kernel changes is restarted and converges, with no duplicate filter or veth', async function () {
    this.timeout(1_200_000);
    /** No filter, no clsact and no veth of ours left (the full snapshot comparison follows at the end). */
    const assertRemoved = async (what: string) => {
      assert.deepEqual(await ourFilters(), [], `${what}: no filter`);
      const qdiscs = await serverPod.json<{ dev: string; kind: string }[]>(['tc', '-j', 'qdisc', 'show', 'dev', 'tap0']);
      assert.deepEqual(qdiscs.filter((q) => q.kind === 'clsact'), [], `${what}: no clsact`);
      assert.deepEqual([...(await linksNamed(serverPod, /^hs[mi]/)), ...(await linksNamed(idsPod, /^hs[mi]/))], [], `${what}: no veth`);
    };
    cache.servers = [];
    await reconcileMirrors(startAgent());
    cache.servers = [ms];
    const full = new CountingKernel(kernel);
    await reconcileMirrors(startAgent(full));
    const installSteps = full.changes;
    assert.ok(installSteps >= 8, `an install takes ${installSteps} changes`);
    cache.servers = [];
    const removal = new CountingKernel(kernel);
    await reconcileMirrors(startAgent(removal));
    const removalSteps = removal.changes;
    assert.ok(removalSteps >= 3, `a removal takes ${removalSteps} changes`);

    // Kill an installing agent after 1, 2, ... changes, restart it: one mirror, nothing twice.
    cache.servers = [ms];
    for (let killAfter = 1; killAfter < installSteps; killAfter++) {
      await assert.rejects(reconcileMirrors(startAgent(new CountingKernel(kernel, killAfter))), /agent killed/);
      await reconcileMirrors(startAgent());
      await assertInstalledOnce();
      assert.equal(status.conditions.get('shop/web')?.status, 'True');
      const idle = new CountingKernel(kernel);
      await reconcileMirrors(startAgent(idle));
      assert.equal(idle.changes, 0, `converged after a kill at change ${killAfter} of ${installSteps}`);
      // Back to nothing for the next round (a removal without interruption).
      cache.servers = [];
      await reconcileMirrors(startAgent());
      cache.servers = [ms];
    }
    // Kill a removing agent after 1, 2, ... changes, restart it: nothing of ours is left.
    for (let killAfter = 1; killAfter < removalSteps; killAfter++) {
      cache.servers = [ms];
      await reconcileMirrors(startAgent());
      cache.servers = [];
      await assert.rejects(reconcileMirrors(startAgent(new CountingKernel(kernel, killAfter))), /agent killed/);
      await reconcileMirrors(startAgent());
      await assertRemoved(`removal killed at change ${killAfter} of ${removalSteps}`);
    }
    await assertInitialState();
    cache.servers = [ms];
    await reconcileMirrors(startAgent());
    await assertInstalledOnce();
  });

  it('keeps the IDS overlay on the node: underlay found by the InternalIP, peers from the nodes that run IDS VMIs', async () => {
    const agent = startAgent();
    // Only this node runs an IDS VMI: no peer yet.
    await agent.reconcile(OVERLAY_KEY);
    const fdbPeers = async () =>
      (await nodeNs.json<{ mac: string; dst?: string }[]>(['bridge', '-j', 'fdb', 'show', 'dev', 'hsids0-vx'])).filter((e) => e.mac === '00:00:00:00:00:00').map((e) => e.dst);
    const vx = (await nodeNs.json<{ linkinfo?: { info_data?: { id?: number; link?: string; local?: string } } }[]>(['ip', '-j', '-d', 'link', 'show', 'hsids0-vx']))[0]!;
    assert.deepEqual([vx.linkinfo?.info_data?.id, vx.linkinfo?.info_data?.link, vx.linkinfo?.info_data?.local], [4343, 'ens3', '198.18.0.1']);
    assert.deepEqual(await fdbPeers(), []);
    // An IDS VMI lands on the other node: it becomes a peer, in the FDB and in the underlay guard.
    cache.vmis.push(vmi('other', 'db-ids', 'vmi-db-ids', PEER_NODE, IDS_SHAPE));
    const counting = new CountingKernel(kernel);
    await startAgent(counting).reconcile(OVERLAY_KEY);
    assert.ok(counting.changes > 0);
    assert.deepEqual(await fdbPeers(), ['198.18.0.2']);
    assert.match(await nodeNs.exec(['nft', 'list', 'table', 'inet', 'hyperspector_hsids0_vx']), /198\.18\.0\.2/);
    const idle = new CountingKernel(kernel);
    await startAgent(idle).reconcile(OVERLAY_KEY);
    assert.equal(idle.changes, 0);
    cache.vmis.pop();
    await startAgent().reconcile(OVERLAY_KEY);
    assert.deepEqual(await fdbPeers(), [], 'a node without IDS VMIs leaves the peer set');
    await removeVxlanOverlay(kernel, nodeNs.ref, { bridge: 'hsids0', vxlan: 'hsids0-vx' });
    cache.servers = [];
    await reconcileMirrors(startAgent());
    await assertInitialState();
  });
});
