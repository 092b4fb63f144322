// End to end on a node that runs real guests: the mirror from `kubectl apply` to the packets. The
// user's server VM runs a real QEMU guest (virtio NIC on its launcher pod's tap, KubeVirt's bridge
// binding); the node agent runs as a real process on the node (its host network namespace, the
// host's /proc); the IDS VM's launcher pod gets its secondary networks as Multus and the NADs the
// operator created would make them (testenv/real-guests/multus-attachments.ts). Then:
// - kubectl apply of a MonitoredServer adopting the VM → the agent's MirrorAttached=True;
// - every frame the server guest sends and receives (ICMP, TCP, UDP) reaches the IDS VM's mirror
//   bridge in its launcher pod exactly once (captured there: the guest image is busybox);
// - a second MonitoredServer's server on another node: its IDS gets none of the first's frames, and
//   the two IDS guests, on different nodes, ping each other on the IDS network (the agents' VXLAN
//   overlay over the nodes' underlay; each guest's address from status.idsNetwork);
// - the agent killed (SIGKILL) and restarted changes nothing; deleting the MonitoredServers, one
//   with its node's agent killed mid-way and restarted, leaves the nodes' and the server pods'
//   ip/tc/nft state exactly as before the MonitoredServers existed.
// kwok reports every node's InternalIP as 127.0.0.1; the test gives each Node the address its host
// namespace has on the underlay, as a kubelet reports the node's own. Not covered here: Table 2
// (nmap from the server side; the busybox guests have no nmap), GSO super-frames.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { hashedPodInterfaceName } from '../../src/agent/kubevirt-names.ts';
import { MIRROR_COOKIE } from '../../src/dataplane/tc-mirror-plan.ts';
import { IDS_NETWORK, MIRROR_NETWORK } from '../../src/builders/networking.ts';
import { controlPlaneBinaries } from '../../testenv/cluster/binaries.ts';
import { monitoredServer, vmTemplate } from '../../testenv/fixtures/monitoredservers.ts';
import { configureGuestNic, NET_MODULES_FAILED_MARKER, networkGuestAssets } from '../../testenv/guest/network-guest.ts';
import { frameMultiset, readFrames, startCapture, stopCapture, type Capture } from '../../testenv/netns/capture.ts';
import { ProcessGroup, type TestNetns } from '../../testenv/netns/netns-host.ts';
import { snapshotAll, type NetnsSnapshot } from '../../testenv/netns/snapshot.ts';
import { OperatorTestEnv, MS, VM, VMI } from '../../testenv/operator/operator-env.ts';
import { startOperatorProcess, type OperatorProcess } from '../../testenv/operator/operator-process.ts';
import { startAgentProcess, type AgentProcess } from '../../testenv/real-guests/agent-process.ts';
import { ourNamespaces, podCgroups } from '../../testenv/real-guests/host-leftovers.ts';
import type { RealGuest } from '../../testenv/real-guests/real-guest-backend.ts';
import { RealGuestNodes } from '../../testenv/real-guests/real-guest-nodes.ts';
import type { NodeHost } from '../../testenv/real-guests/node-network.ts';
import { waitFor } from '../../testenv/wait.ts';

const run = promisify(execFile);
const NS = 'shop';
const NODE = 'node-a';
const OTHER_NODE = 'node-b';
const VM_NAME = 'web';
const MS_NAME = 'web-watch';
/** A second monitored server on the same node: its IDS must get none of web's frames. */
const OTHER_VM = 'db';
const OTHER_MS = 'db-watch';
const MIRROR_BRIDGE = `k6t-${hashedPodInterfaceName(MIRROR_NETWORK).slice(3)}`;
const log = (line: string) => process.stderr.write(`[e2e] ${line}\n`);

describe('end to end on a real-guest node: the mirror from kubectl apply to the IDS launcher pod', function () {
  this.timeout(900_000);
  let nodes: RealGuestNodes;
  let backend: RealGuestNodes['backend'];
  let env: OperatorTestEnv;
  let operator: OperatorProcess;
  let agent: AgentProcess | undefined;
  let otherAgent: AgentProcess | undefined;
  let node: NodeHost;
  let otherNode: NodeHost;
  let server: RealGuest;
  let other: RealGuest;
  let initial: Map<string, NetnsSnapshot>;
  let captureDir: string;
  const processes = new ProcessGroup();
  const podUids = new Set<string>();

  const agentOn = (host: NodeHost) => startAgentProcess(host, { kubeconfigPath: env.cluster.kubeConfigFor('admin').path, logFile: env.cluster.logOf(`agent-${host.nodeName}`) });
  const startAgent = async () => {
    agent = await agentOn(node);
  };
  const kubectlApply = async (object: object) => {
    const file = join(env.cluster.dir, `apply-${Date.now()}.yaml`);
    await writeFile(file, JSON.stringify(object));
    await run(controlPlaneBinaries().kubectl, ['--kubeconfig', env.cluster.kubeConfigFor('admin').path, 'apply', '-f', file]);
  };
  /** Our tc filters on the server's tap (the mirror's, by cookie). */
  const mirrorFilters = async (pod: TestNetns) => {
    let n = 0;
    for (const hook of ['ingress', 'egress']) {
      const rows = await pod.json<{ options?: { actions?: { cookie?: string }[] } }[]>(['tc', '-j', 'filter', 'show', 'dev', 'tap0', hook]).catch(() => []);
      n += rows.filter((r) => r.options?.actions?.some((a) => a.cookie === MIRROR_COOKIE)).length;
    }
    return n;
  };
  /**
   * The nodes' and server pods' ip/tc/nft state. nftables numbers every table, chain, set and rule
   * with a handle from a counter: the overlay's guard, rewritten while peers come and go, ends with
   * the same ruleset under new handles, so handles are left out of the comparison (nothing else).
   */
  const stateNow = async () => {
    const state = await snapshotAll([node.ns, otherNode.ns, server.launcher.ns, other.launcher.ns]);
    const dropHandles = (v: unknown): unknown =>
      Array.isArray(v) ? v.map(dropHandles) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).filter(([k]) => k !== 'handle').map(([k, x]) => [k, dropHandles(x)])) : v;
    for (const snapshot of state.values()) snapshot.nftables = dropHandles(snapshot.nftables);
    return state;
  };
  /** A user's VM (bridge binding) on `host`, running as a real guest with the pod's IP on its NIC. */
  const userVm = async (name: string, host: NodeHost): Promise<RealGuest> => {
    const vm = vmTemplate({ app: name }, '256Mi');
    vm.spec.template!.spec!.domain.devices.interfaces = [{ name: 'default', bridge: {} }];
    vm.spec.template!.spec!.nodeSelector = { 'kubernetes.io/hostname': host.nodeName };
    await env.create(VM, NS, { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name, namespace: NS }, spec: vm.spec });
    const guest = await waitFor(() => backend.guest(NS, name), { timeoutMs: 300_000, intervalMs: 500, description: `VM ${name} to be a real guest` });
    podUids.add(guest.podUid);
    await guest.waitForBoot();
    const nicUp = await guest.console.run(configureGuestNic(guest.launcher.podIp));
    assert.ok(!nicUp.includes(NET_MODULES_FAILED_MARKER) && nicUp.includes('@@NIC-UP'), `the NIC of guest ${name}: ${nicUp}`);
    // The node reaches the guest through the pod's veth and the in-pod bridge.
    await waitFor(async () => host.ns.exec(['ping', '-c', '1', '-W', '1', guest.launcher.podIp]).then(() => true, () => undefined), { timeoutMs: 30_000, description: `the node pings guest ${name}` });
    return guest;
  };
  /** The guest's interface with this MAC, given `address`; prints @@IDS-UP. */
  const idsNicUp = (mac: string, address: string) =>
    `for d in /sys/class/net/*; do [ "$(cat $d/address)" = "${mac}" ] && n=\${d##*/}; done; ip link set $n up && ip addr add ${address} dev $n && echo @@IDS-UP`;

  before(async function () {
    const assets = networkGuestAssets();
    // Every VMI a real guest with a virtio NIC; the operator's other pods stay kwok pods.
    nodes = new RealGuestNodes({ log, kernel: assets.kernel.vmlinuz, initrd: assets.initrd, podSelector: 'hyperspector.io/role=none' });
    backend = nodes.backend;
    env = await OperatorTestEnv.start(2, undefined, { guestBackend: backend, log });
    nodes.attach(env.cluster.kubeConfig, env.cluster.dir);
    await env.namespace(NS);
    captureDir = await mkdtemp(join(tmpdir(), 'hs-e2e-net-'));
    node = await backend.network.node(NODE);
    otherNode = await backend.network.node(OTHER_NODE);
    // Each Node reports the address its host namespace has on the underlay (see the file comment).
    for (const host of [node, otherNode]) {
      await env.core.patchNodeStatus(
        { name: host.nodeName, body: { status: { addresses: [{ type: 'InternalIP', address: host.underlayAddress }, { type: 'Hostname', address: host.nodeName }] } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      );
    }
    operator = await startOperatorProcess(env.cluster, { user: 'operator' });
  });

  after(async function () {
    await processes.stopAll();
    await agent?.stop();
    await otherAgent?.stop();
    await operator?.stop();
    await env?.stop();
    await nodes?.stop();
    if (captureDir) await rm(captureDir, { recursive: true, force: true });
  });

  it('kubectl apply → MirrorAttached=True from the node agent; every frame of the server reaches its IDS launcher pod exactly once', async function () {
    // The users' VMs, running before anyone monitors them.
    [server, other] = await Promise.all([userVm(VM_NAME, node), userVm(OTHER_VM, otherNode)]);
    await startAgent();
    otherAgent = await agentOn(otherNode);
    // Both agents keep the overlay (bridge, VXLAN device on the underlay, guard) before any IDS VM.
    for (const host of [node, otherNode]) {
      await waitFor(async () => (await host.ns.json<unknown[]>(['ip', '-j', 'link', 'show', 'dev', 'hsids0-vx']).catch(() => [])).length > 0 || undefined, { timeoutMs: 60_000, description: `the overlay on ${host.nodeName}` });
    }
    initial = await stateNow();

    const applied = Date.now();
    await kubectlApply(monitoredServer(MS_NAME, NS, { server: { virtualMachineName: VM_NAME }, mirroring: { enabled: true }, processMapping: { enabled: false } }));
    await kubectlApply(monitoredServer(OTHER_MS, NS, { server: { virtualMachineName: OTHER_VM }, mirroring: { enabled: true }, processMapping: { enabled: false } }));
    for (const name of [MS_NAME, OTHER_MS]) {
      await env.waitForCondition(NS, name, 'MirrorAttached', 'True', 'Attached', 300_000);
      log(`MirrorAttached=True on ${name} ${((Date.now() - applied) / 1000).toFixed(1)} s after kubectl apply`);
    }
    const ids = backend.guest(NS, `${MS_NAME}-ids`);
    const otherIds = backend.guest(NS, `${OTHER_MS}-ids`);
    assert.ok(ids && otherIds, 'the IDS VMIs run as real guests');
    podUids.add(ids.podUid);
    podUids.add(otherIds.podUid);
    assert.deepEqual([ids.nodeName, otherIds.nodeName], [NODE, OTHER_NODE], 'each IDS VM beside its server');
    assert.equal(await mirrorFilters(server.launcher.ns), 2, 'one ingress and one egress mirror filter');
    assert.equal(await mirrorFilters(other.launcher.ns), 2);

    // Captures on the server's tap (what the guest sends and receives) and on the IDS VM's mirror
    // bridge in its launcher pod; start and end markers bound what is compared.
    const captures: Capture[] = [
      await startCapture(server.launcher.ns, 'tap0', join(captureDir, 'server.pcap'), processes),
      await startCapture(ids.launcher.ns, MIRROR_BRIDGE, join(captureDir, 'ids.pcap'), processes),
      await startCapture(otherIds.launcher.ns, MIRROR_BRIDGE, join(captureDir, 'other-ids.pcap'), processes),
    ];
    const podIp = server.launcher.podIp;
    const start = `hs-start-${process.pid}`;
    const end = `hs-end-${process.pid}`;
    await node.ns.exec(['sh', '-c', `printf %s ${start} | ncat -u --send-only ${podIp} 5009`]);
    await node.ns.exec(['ping', '-c', '3', '-i', '0.2', '-W', '2', podIp]);
    await otherNode.ns.exec(['ping', '-c', '3', '-i', '0.2', '-W', '2', other.launcher.podIp]);
    await server.console.run('nc -l -p 5000 > /dev/null 2>&1 &');
    await waitFor(async () => node.ns.exec(['sh', '-c', `head -c 100000 /dev/zero | ncat --send-only ${podIp} 5000`]).then(() => true, () => undefined), { timeoutMs: 30_000, description: 'a TCP transfer to the guest' });
    await node.ns.exec(['sh', '-c', `echo to-server | ncat -u --send-only ${podIp} 5001`]);
    await node.ns.exec(['sh', '-c', `printf %s ${end} | ncat -u --send-only ${podIp} 5009`]);
    const between = async (c: Capture) => {
      const frames = await readFrames(c.file);
      const from = frames.findIndex((f) => f.includes(start));
      const to = frames.findIndex((f) => f.includes(end));
      return from < 0 || to < 0 ? undefined : frames.slice(from, to + 1);
    };
    await waitFor(async () => ((await between(captures[0]!)) && (await between(captures[1]!))) || undefined, { timeoutMs: 30_000, intervalMs: 200, description: 'both markers in both captures' });
    await Promise.all(captures.map((c) => stopCapture(c, processes)));
    const seen = (await between(captures[0]!))!;
    const mirrored = (await between(captures[1]!))!;
    const guestMac = seen.find((f) => f.includes(start))!.subarray(0, 6).toString('hex');
    const ipv4 = seen.filter((f) => f.readUInt16BE(12) === 0x0800);
    const protocols = (fromGuest: boolean) => new Set(ipv4.filter((f) => (f.subarray(6, 12).toString('hex') === guestMac) === fromGuest).map((f) => f[23]));
    assert.deepEqual([...protocols(false)].sort(), [1, 17, 6].sort(), 'the guest received ICMP, TCP and UDP');
    assert.ok(protocols(true).has(1) && protocols(true).has(6), 'the guest sent ICMP (replies, port unreachable) and TCP');
    log(`${seen.length} frames on the server's tap between the markers, ${mirrored.length} on the IDS mirror bridge`);
    assert.deepEqual(frameMultiset(mirrored), frameMultiset(seen), 'the IDS got exactly the server frames, each once');
    // The other IDS: its own server's frames (the pings to db), none of web's.
    const otherMirrored = await readFrames(captures[2]!.file);
    const webFrames = new Set([...frameMultiset(seen).keys()]);
    assert.deepEqual([...frameMultiset(otherMirrored).keys()].filter((k) => webFrames.has(k)), [], "db's IDS got none of web's frames");
    const otherIp = Buffer.from(other.launcher.podIp.split('.').map(Number));
    assert.ok(
      otherMirrored.some((f) => f.readUInt16BE(12) === 0x0800 && f[23] === 1 && f.subarray(30, 34).equals(otherIp)),
      "db's IDS got the pings to its own server",
    );
    log(`db's IDS: ${otherMirrored.length} frames, none of web's`);

    // The two IDS guests, on different nodes, reach each other on the IDS network.
    const idsAddress = async (msName: string, vmiName: string, guest: RealGuest) => {
      const address = (await env.get(MS, NS, msName))?.status?.idsNetwork?.address as string;
      const vmi = await env.get(VMI, NS, vmiName);
      const mac = (vmi?.spec?.domain?.devices?.interfaces as Array<{ name: string; macAddress?: string }>).find((i) => i.name === IDS_NETWORK)!.macAddress!;
      await guest.waitForBoot();
      const up = await guest.console.run(idsNicUp(mac, address));
      assert.match(up, /@@IDS-UP/, `the IDS-network NIC of ${vmiName}: ${up}`);
      return address.split('/')[0]!;
    };
    const webIdsAddress = await idsAddress(MS_NAME, `${MS_NAME}-ids`, ids);
    const dbIdsAddress = await idsAddress(OTHER_MS, `${OTHER_MS}-ids`, otherIds);
    const pinged = await waitFor(
      async () => {
        const out = await ids.console.run(`ping -c 3 -W 3 ${dbIdsAddress}`, 30_000);
        return /[1-9]\d* packets received/.test(out) ? out : undefined;
      },
      { timeoutMs: 90_000, description: `IDS ${webIdsAddress} on ${NODE} pings IDS ${dbIdsAddress} on ${OTHER_NODE}` },
    );
    log(`IDS ${webIdsAddress} (${NODE}) → IDS ${dbIdsAddress} (${OTHER_NODE}): ${/\d+ packets transmitted, \d+ packets received/.exec(pinged)?.[0]}`);
  });

  it('a killed and restarted agent changes nothing; deleting the MonitoredServer with the agent killed mid-way restores the node exactly', async function () {
    await agent!.kill();
    await startAgent();
    await env.waitForCondition(NS, MS_NAME, 'MirrorAttached', 'True', 'Attached', 60_000);
    assert.equal(await mirrorFilters(server.launcher.ns), 2, 'no duplicate filter after the restart');

    // db's MonitoredServer goes with the agent running; web's with the agent killed mid-way.
    await env.delete(MS, NS, OTHER_MS);
    await env.waitGone(MS, NS, OTHER_MS, 180_000);
    await waitFor(async () => ((await mirrorFilters(other.launcher.ns)) === 0 && !backend.guest(NS, `${OTHER_MS}-ids`)) || undefined, { timeoutMs: 180_000, intervalMs: 500, description: "db's mirror removed and its IDS guest stopped" });
    assert.equal(await mirrorFilters(server.launcher.ns), 2, "web's mirror stays");
    await env.delete(MS, NS, MS_NAME);
    await agent!.kill(); // mid-way: the MonitoredServer is being deleted, the mirror still installed
    await env.waitGone(MS, NS, MS_NAME, 180_000);
    await waitFor(() => !backend.guest(NS, `${MS_NAME}-ids`) || undefined, { timeoutMs: 180_000, intervalMs: 500, description: "web's IDS guest to stop" });
    await startAgent();
    const restored = Date.now();
    let last: Map<string, NetnsSnapshot> | undefined;
    await waitFor(
      async () => {
        last = await stateNow();
        return JSON.stringify([...last]) === JSON.stringify([...initial]) || undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, description: "the node's and the server pod's ip/tc/nft state as before the MonitoredServer" },
    ).catch((err: Error) => {
      for (const [name, snapshot] of last ?? []) assert.deepEqual(snapshot, initial.get(name), `namespace ${name}`);
      throw err;
    });
    log(`node state restored ${((Date.now() - restored) / 1000).toFixed(1)} s after the agent restarted`);
    assert.equal(await mirrorFilters(server.launcher.ns), 0);
    assert.ok(backend.guest(NS, VM_NAME)?.qemu.running && backend.guest(NS, OTHER_VM)?.qemu.running, "the users' VMs keep running");
  });

  it('leaves no namespace or pod cgroup once the world is stopped', async function () {
    await processes.stopAll();
    await agent?.stop();
    agent = undefined;
    await otherAgent?.stop();
    otherAgent = undefined;
    await operator.stop();
    await env.stop();
    await nodes.stop();
    assert.deepEqual(ourNamespaces(backend.network.prefix), []);
    assert.deepEqual(podCgroups([...podUids]), []);
  });
});
