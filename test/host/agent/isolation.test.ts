// The node agent's half of the Isolate response on real Linux networking, in namespaces shaped like
// KubeVirt's launcher pods (as in agent.test.ts): with the mirror installed, a MonitoredServer whose
// status.response says Isolate makes the agent drop every frame at the server's tap, both ways —
// while the IDS VM still receives what the server sends and what is sent to it — and report
// NetworkIsolated; a second pass and a restarted agent change nothing; the release puts the node's
// tc state back exactly as it was with the mirror alone; a deleted MonitoredServer's isolation is
// swept.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MonitoredServer } from '../../../src/api/v1alpha1/monitoredserver-types.ts';
import { NETWORK_ISOLATED } from '../../../src/agent/desired-isolation.ts';
import { hashedPodInterfaceName } from '../../../src/agent/kubevirt-names.ts';
import { MIRROR_ATTACHED, mirrorKey, NodeReconciler, SWEEP_KEY } from '../../../src/agent/node-reconciler.ts';
import { PodProcessFinder } from '../../../src/agent/pod-processes.ts';
import { NsenterKernelCommands, type KernelCommands } from '../../../src/dataplane/index.ts';
import { IDS_MIRROR_NETWORK, IDS_SHAPE, SERVER_SHAPE, launcherPod, mirroredServer, vmi } from '../../../testenv/fixtures/agent.ts';
import { readFrames, startCapture, stopCapture } from '../../../testenv/netns/capture.ts';
import { ProcessGroup, TestNetns, deleteNamespaces, runPrefix } from '../../../testenv/netns/netns-host.ts';
import { snapshotAll, type NetnsSnapshot } from '../../../testenv/netns/snapshot.ts';
import { waitUntil } from '../../../testenv/netns/wait.ts';
import { CountingKernel, FixedCache, RecordedCondition, createLauncherShapedNode, startLauncherProcess } from '../../../testenv/netns/launcher-shaped-node.ts';
import { PodCgroup } from '../../../testenv/real-guests/pod-cgroup.ts';

const NODE = 'iso-node-0';
const MS_UID = 'c0ffee00-1234-4abc-8def-0000000000aa';
const SERVER_POD_UID = '5e7e7000-0000-4000-8000-0000000000aa';
const IDS_POD_UID = '1d5d5000-0000-4000-8000-0000000000ab';
const IDS_HASH = hashedPodInterfaceName(IDS_MIRROR_NETWORK).slice(3);
const IDS_BRIDGE = `k6t-${IDS_HASH}`;
const IDS_TAP = `tap${IDS_HASH}`;
const SERVER_ADDRESS = '198.18.30.10';
const CLIENT_ADDRESS = '198.18.30.1';

describe('node agent: the Isolate response on the server’s tap (launcher-pod-shaped namespaces)', function () {
  this.timeout(300_000);
  const prefix = runPrefix('is');
  const processes = new ProcessGroup();
  const cgroups: PodCgroup[] = [];
  const kernel = new NsenterKernelCommands();
  const cache = new FixedCache();
  const mirrorStatus = new RecordedCondition(MIRROR_ATTACHED);
  const isolationStatus = new RecordedCondition(NETWORK_ISOLATED);
  let nodeNs: TestNetns, serverPod: TestNetns, serverVm: TestNetns, idsPod: TestNetns, idsVm: TestNetns, client: TestNetns;
  let initial: Map<string, NetnsSnapshot>;
  let mirroredOnly: Map<string, NetnsSnapshot>;
  let captureDir: string;
  let ms: MonitoredServer;
  const all = () => [nodeNs, serverPod, serverVm, idsPod, idsVm, client];

  function startAgent(k: KernelCommands = kernel): NodeReconciler {
    return new NodeReconciler({
      cache,
      kernel: k,
      processes: new PodProcessFinder(),
      status: mirrorStatus,
      isolationStatus,
      mirror: { nodeName: NODE, idsMirrorNetwork: IDS_MIRROR_NETWORK },
      nodeNetns: nodeNs.ref,
      waitingRecheckMs: 100,
    });
  }
  async function reconcile(agent: NodeReconciler): Promise<void> {
    await agent.reconcile(mirrorKey('shop', 'web'));
    await agent.reconcile(SWEEP_KEY);
  }
  const isolate = () => {
    ms.status = { response: { action: 'Isolate', alertTime: '2026-12-02T00:00:00Z', isolatedAt: '2026-12-02T00:00:01Z' } };
  };
  const release = () => {
    ms.status = { response: { action: 'Isolate', alertTime: '2026-12-02T00:00:00Z', isolatedAt: '2026-12-02T00:00:01Z', releasedAt: '2026-12-02T00:00:05Z' } };
  };
  const pings = (from: TestNetns, to: string) =>
    from.exec(['ping', '-c', '2', '-i', '0.2', '-W', '1', to]).then(
      () => true,
      () => false,
    );
  async function assertSnapshot(expected: Map<string, NetnsSnapshot>, what: string): Promise<void> {
    const now = await snapshotAll(all());
    for (const [name, snapshot] of now) assert.deepEqual(snapshot, expected.get(name), `namespace ${name}: ${what}`);
  }

  before(async () => {
    await deleteNamespaces(prefix);
    captureDir = await mkdtemp(join(tmpdir(), 'hs-isolate-'));
    ({ nodeNs, serverPod, serverVm, idsPod, idsVm, client } = await createLauncherShapedNode(prefix, { serverAddress: SERVER_ADDRESS, clientAddress: CLIENT_ADDRESS, idsBridge: IDS_BRIDGE, idsTap: IDS_TAP }));
    initial = await snapshotAll(all());

    await startLauncherProcess(serverPod, SERVER_POD_UID, processes, cgroups);
    await startLauncherProcess(idsPod, IDS_POD_UID, processes, cgroups);
    ms = mirroredServer('web', 'shop', MS_UID);
    const serverVmi = vmi('shop', 'web-server', 'vmi-web-server', NODE, SERVER_SHAPE);
    const idsVmi = vmi('shop', 'web-ids', 'vmi-web-ids', NODE, IDS_SHAPE);
    cache.servers = [ms];
    cache.vmis = [serverVmi, idsVmi];
    cache.pods = [launcherPod(serverVmi, SERVER_POD_UID, NODE), launcherPod(idsVmi, IDS_POD_UID, NODE)];
    await reconcile(startAgent());
    assert.equal(mirrorStatus.conditions.get('shop/web')?.status, 'True', 'the mirror is attached before the isolation');
    mirroredOnly = await snapshotAll(all());
  });

  after(async () => {
    await processes.stopAll();
    for (const cgroup of cgroups) await cgroup.remove().catch(() => undefined);
    await deleteNamespaces(prefix);
    if (captureDir) await rm(captureDir, { recursive: true, force: true });
  });

  it('isolates the tap both ways while the IDS VM still receives what the server sends and what is sent to it; reports NetworkIsolated', async () => {
    assert.equal(await pings(client, SERVER_ADDRESS), true, 'the server is reachable before the isolation');
    isolate();
    const counting = new CountingKernel(kernel);
    await reconcile(startAgent(counting));
    assert.ok(counting.changes > 0);
    const condition = isolationStatus.conditions.get('shop/web');
    assert.equal(condition?.status, 'True', JSON.stringify(condition));
    assert.equal(condition?.reason, 'Isolated');
    assert.match(condition!.message, /tap0 of launcher pod shop\//);

    const ids = await startCapture(idsVm, 'mirror0', join(captureDir, 'ids.pcap'), processes);
    const server = await startCapture(serverVm, 'eth0', join(captureDir, 'server.pcap'), processes);
    const outside = await startCapture(client, 'eth0', join(captureDir, 'client.pcap'), processes);
    assert.equal(await pings(client, SERVER_ADDRESS), false, 'nothing reaches the isolated server');
    assert.equal(await pings(serverVm, CLIENT_ADDRESS), false, 'nothing leaves the isolated server');
    const marker = Buffer.from(`hs-isolate-marker-${process.pid}`);
    // The server knows the client's MAC (ARP replies cannot reach it any more): the marker leaves its NIC.
    const clientMac = (await client.json<{ address: string }[]>(['ip', '-j', 'link', 'show', 'dev', 'eth0']))[0]!.address;
    await serverVm.ip('neigh', 'replace', CLIENT_ADDRESS, 'lladdr', clientMac, 'dev', 'eth0', 'nud', 'permanent');
    await serverVm.exec(['sh', '-c', `printf %s ${marker} | ncat -u --send-only ${CLIENT_ADDRESS} 5009`]).catch(() => undefined);
    await waitUntil('the server’s marker at the IDS VM', async () => (await readFrames(ids.file)).some((f) => f.includes(marker)));
    await Promise.all([ids, server, outside].map((c) => stopCapture(c, processes)));
    await serverVm.ip('neigh', 'del', CLIENT_ADDRESS, 'dev', 'eth0');
    const idsFrames = await readFrames(ids.file);
    const icmp = (frames: Buffer[], type: number) => frames.filter((f) => f.readUInt16BE(12) === 0x0800 && f[23] === 1 && f[34] === type);
    assert.ok(icmp(idsFrames, 8).length >= 4, 'the IDS VM saw the echo requests both ways (to the server and from it)');
    assert.equal(icmp(await readFrames(server.file), 0).length, 0, 'the server got no echo reply');
    // From the server: IPv4 with its source address, or ARP with it as the sender.
    const serverIp = Buffer.from(SERVER_ADDRESS.split('.').map(Number));
    const fromServer = (f: Buffer) => (f.readUInt16BE(12) === 0x0800 && f.subarray(26, 30).equals(serverIp)) || (f.readUInt16BE(12) === 0x0806 && f.subarray(28, 32).equals(serverIp));
    const outsideFrames = await readFrames(outside.file);
    assert.ok(icmp(outsideFrames, 8).length >= 2, 'the capture outside works: it saw the client’s own echo requests');
    assert.equal(outsideFrames.filter((f) => fromServer(f) || f.includes(marker)).length, 0, 'nothing of the server reached the outside');
    assert.ok(idsFrames.some(fromServer), 'the IDS VM saw what the server sent');

    const again = new CountingKernel(kernel);
    await reconcile(startAgent(again));
    assert.equal(again.changes, 0, 'an isolated node takes no kernel command: a second pass and a restarted agent change nothing');
  });

  it('the release restores the node’s tc state exactly (the mirror alone) and the traffic; the condition is given up', async () => {
    release();
    await reconcile(startAgent());
    await assertSnapshot(mirroredOnly, 'back to the mirror alone');
    assert.equal(isolationStatus.conditions.has('shop/web'), false);
    assert.equal(await pings(client, SERVER_ADDRESS), true, 'the server is reachable again');
  });

  it('the isolation of a deleted MonitoredServer is swept with its mirror: the node is as it was', async () => {
    isolate();
    await reconcile(startAgent());
    assert.equal(isolationStatus.conditions.get('shop/web')?.status, 'True');
    cache.servers = [];
    await reconcile(startAgent());
    await assertSnapshot(initial, 'back to the initial state');
  });
});
