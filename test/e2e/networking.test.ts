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
// - UDP the guest sends itself (busybox tftp) and a bulk TCP transfer from the guest with the virtio
//   NIC's offloads on: the GSO super-frames on the tap reach the IDS as the same super-frames, the
//   same bytes, once;
// - Table 2 from every server's launcher pod (nmap SYN, UDP, ARP ping and IPv6 neighbour discovery
//   on the pod's in-pod bridge, ping to ff02::1) and from the server guest itself (busybox arping,
//   ping, ping6 to ff02::1): nothing of the IDS side answers — the IDS network's prefix, the IDS
//   VMs' addresses and link-local addresses of every IDS NIC, mirror NIC included — while the same
//   scans find the server guest (the positive control);
// - spec.mirroring.direction: Ingress mirrors only the frames toward the server, Egress only those
//   from it;
// - the agent killed (SIGKILL) and restarted changes nothing; deleting the MonitoredServers, one
//   with its node's agent killed mid-way and restarted, leaves the nodes' and the server pods'
//   ip/tc/nft state exactly as before the MonitoredServers existed.
// The agents run as the Helm chart installs them: the chart's agent ServiceAccount, ClusterRole and
// binding (helm template), a TokenRequest token of that ServiceAccount, the DaemonSet's flags; a
// permission the chart lacks fails the test (and no agent log line may say "forbidden").
// kwok reports every node's InternalIP as 127.0.0.1; the test gives each Node the address its host
// namespace has on the underlay, as a kubelet reports the node's own. The mirror link's end in the
// server's launcher pod has no address and is NOARP (nmap and arping refuse to send on it): it is
// not scanned through.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
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
import { frameMultiset, readFrames, startCapture, stopCapture, tcpFlow, type Capture } from '../../testenv/netns/capture.ts';
import { linkLocalOf } from '../../testenv/netns/ipv6.ts';
import { ProcessGroup, waitForOutput, type TestNetns } from '../../testenv/netns/netns-host.ts';
import { foundOf, nmapScan, type NmapReport } from '../../testenv/netns/nmap.ts';
import { snapshotAll, type NetnsSnapshot } from '../../testenv/netns/snapshot.ts';
import { OperatorTestEnv, MS, VM, VMI } from '../../testenv/operator/operator-env.ts';
import { startOperatorProcess, type OperatorProcess } from '../../testenv/operator/operator-process.ts';
import { startAgentProcess, type AgentProcess } from '../../testenv/real-guests/agent-process.ts';
import { ourNamespaces, podCgroups } from '../../testenv/real-guests/host-leftovers.ts';
import type { RealGuest } from '../../testenv/real-guests/real-guest-backend.ts';
import { RealGuestNodes } from '../../testenv/real-guests/real-guest-nodes.ts';
import { IN_POD_BRIDGE, IN_POD_BRIDGE_ADDRESS, type NodeHost } from '../../testenv/real-guests/node-network.ts';
import { podInterface } from '../../testenv/real-guests/launcher-qemu.ts';
import { generatedMac } from '../../testenv/kubevirt/virt-handler-status.ts';
import { waitFor } from '../../testenv/wait.ts';
import { installChartAgentIdentity, type ChartAgent } from './chart-agent.ts';

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
/** The bulk transfer from the server guest (GSO super-frames with the virtio NIC's offloads). */
const BULK_BYTES = 2_000_000;
const BULK_PORT = 5002;
const SYN_PORTS = '1-1024,5000,7000,9000';
const UDP_PORTS = '53,67,68,69,123,161,4789,5000,5001';

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
  let chartAgent: ChartAgent;
  /** The IDS guests' addresses on the IDS network (from status.idsNetwork), once their NICs are up. */
  let idsAddresses: string[] = [];
  const processes = new ProcessGroup();
  const podUids = new Set<string>();

  const agentOn = (host: NodeHost) =>
    startAgentProcess(host, { kubeconfigPath: chartAgent.kubeconfigPath, extraArgs: chartAgent.args, logFile: env.cluster.logOf(`agent-${host.nodeName}`) });
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
  /** The tc hooks of the server's tap that carry our mirror filter. */
  const mirrorHooks = async (pod: TestNetns) => {
    const hooks: string[] = [];
    for (const hook of ['ingress', 'egress']) {
      const rows = await pod.json<{ options?: { actions?: { cookie?: string }[] } }[]>(['tc', '-j', 'filter', 'show', 'dev', 'tap0', hook]).catch(() => []);
      if (rows.some((r) => r.options?.actions?.some((a) => a.cookie === MIRROR_COOKIE))) hooks.push(hook);
    }
    return hooks;
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
    chartAgent = await installChartAgentIdentity(env.cluster);
    log(`the agents run as the chart's ${chartAgent.applied.join(', ')} with the DaemonSet's flags ${chartAgent.args.join(' ')}`);
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
    // UDP the guest sends itself: a TFTP read request naming a marker (busybox's nc has no UDP; the
    // node answers port unreachable, which tftp ignores, hence the timeout).
    const guestUdp = `hs-guest-udp-${process.pid}`;
    await server.console.run(`timeout 1 tftp -g -r ${guestUdp} -l /dev/null ${node.underlayAddress} 5010; echo @@TFTP-SENT`, 20_000);
    // A bulk TCP transfer from the guest: with the virtio NIC's offloads (QEMU's tap has vnet_hdr)
    // the guest's stack hands the tap GSO super-frames. A node process counts what arrives.
    const sink = processes.add(
      node.ns.spawn([
        process.execPath,
        '-e',
        `require('net').createServer((s) => { let n = 0; s.on('data', (d) => (n += d.length)); s.on('end', () => { console.log('received ' + n); process.exit(0); }); }).listen(${BULK_PORT}, '${node.underlayAddress}', () => console.log('Listening on'));`,
      ]),
    );
    await waitForOutput(sink, 'Listening on', 'the bulk transfer sink on the node');
    let sinkOutput = '';
    sink.stdout!.on('data', (d: Buffer) => (sinkOutput += d.toString()));
    const bulkStarted = Date.now();
    const sent = await server.console.run(`head -c ${BULK_BYTES} /dev/zero | nc ${node.underlayAddress} ${BULK_PORT}; echo @@BULK-rc=$?`, 180_000);
    assert.match(sent, /@@BULK-rc=0/, `the guest's bulk transfer: ${sent}`);
    const received = await waitFor(() => /received (\d+)/.exec(sinkOutput)?.[1], { timeoutMs: 30_000, intervalMs: 100, description: 'the sink to count the bulk transfer' });
    assert.equal(Number(received), BULK_BYTES, 'the node received every byte the guest sent');
    log(`the guest sent ${BULK_BYTES} bytes over TCP in ${((Date.now() - bulkStarted) / 1000).toFixed(1)} s`);
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
    assert.deepEqual([...protocols(true)].sort(), [1, 17, 6].sort(), 'the guest sent ICMP (replies, port unreachable), TCP and UDP');
    assert.ok(
      seen.some((f) => f.subarray(6, 12).toString('hex') === guestMac && f[23] === 17 && f.includes(guestUdp)),
      "the guest's own UDP datagram (the TFTP request) on its tap",
    );
    log(`${seen.length} frames on the server's tap between the markers, ${mirrored.length} on the IDS mirror bridge`);
    assert.deepEqual(frameMultiset(mirrored), frameMultiset(seen), 'the IDS got exactly the server frames, each once');
    // GSO: the guest's bulk transfer as frames on the tap and on the IDS mirror bridge.
    const guestIp = Buffer.from(podIp.split('.').map(Number));
    const onTap = tcpFlow(seen, guestIp, BULK_PORT);
    const onMirror = tcpFlow(mirrored, guestIp, BULK_PORT);
    log(`the guest's bulk TCP: tap ${JSON.stringify(onTap)}, IDS mirror bridge ${JSON.stringify(onMirror)}`);
    assert.ok(onTap.superFrames > 0, `GSO super-frames (above 1514 bytes) from the guest on its tap: ${JSON.stringify(onTap)}`);
    assert.ok(onTap.payloadBytes >= BULK_BYTES, `every byte of the transfer on the tap: ${JSON.stringify(onTap)}`);
    assert.deepEqual(onMirror, onTap, 'the IDS got the same super-frames, segments and bytes');
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
    idsAddresses = [webIdsAddress, dbIdsAddress];
    const pinged = await waitFor(
      async () => {
        const out = await ids.console.run(`ping -c 3 -W 3 ${dbIdsAddress}`, 30_000);
        return /[1-9]\d* packets received/.test(out) ? out : undefined;
      },
      { timeoutMs: 90_000, description: `IDS ${webIdsAddress} on ${NODE} pings IDS ${dbIdsAddress} on ${OTHER_NODE}` },
    );
    log(`IDS ${webIdsAddress} (${NODE}) → IDS ${dbIdsAddress} (${OTHER_NODE}): ${/\d+ packets transmitted, \d+ packets received/.exec(pinged)?.[0]}`);
  });

  it("Table 2: from each server's launcher pod and guest, nmap and ping find nothing of the IDS side, and the same scans find the server guest", async function () {
    assert.equal(idsAddresses.length, 2, 'the IDS guests have their IDS-network addresses (first test)');
    // The IDS side: the IDS network's prefix around the allocated addresses (a /24 of the operator's
    // /16, which nmap's ARP ping covers in seconds), both IDS addresses, and the link-local address
    // of every NIC of both IDS VMs (pod network, mirror, IDS network).
    const idsPrefix = `${idsAddresses[0]!.split('.').slice(0, 3).join('.')}.0/24`;
    const idsLinkLocals: string[] = [];
    for (const name of [`${MS_NAME}-ids`, `${OTHER_MS}-ids`]) {
      const vmi = await env.get(VMI, NS, name);
      // A MAC the VMI does not set is the one the virt-handler stand-in reports (and QEMU gets).
      for (const i of vmi?.spec?.domain?.devices?.interfaces as Array<{ name: string; macAddress?: string }>) idsLinkLocals.push(linkLocalOf(i.macAddress ?? generatedMac(vmi!.metadata!.uid!, i.name)));
    }
    const bridgeAddress = IN_POD_BRIDGE_ADDRESS.split('/')[0]!;
    // nmap sends raw frames on the in-pod bridge from its address; the targets count as on-link. A
    // TCG guest on a loaded machine answers in up to seconds (and rate-limits its ICMP errors):
    // nmap waits up to 2 s per probe and retries twice, for the control and the IDS targets alike.
    const patient = ['--initial-rtt-timeout', '1000ms', '--max-rtt-timeout', '2000ms', '--max-retries', '2'];
    const onBridge = ['-e', IN_POD_BRIDGE, '--send-eth', '-S', bridgeAddress, ...patient];
    const timed = async (what: string, scan: Promise<NmapReport>) => {
      const started = Date.now();
      const report = await scan;
      log(`${what}: ${((Date.now() - started) / 1000).toFixed(1)} s, ${report.exitSummary}`);
      return report;
    };
    /** Hosts in the report with any finding (up for discovery scans, answered ports for port scans). */
    const findings = (report: NmapReport, discovery: boolean) =>
      Object.fromEntries(report.hosts.map((h) => [h.address, foundOf(h, discovery)] as const).filter(([, found]) => found.length > 0));
    const responders = (output: string) => [...new Set([...output.matchAll(/from (fe80::[0-9a-f:]*[0-9a-f])/g)].map((m) => m[1]!))];
    /** The positive control answered from the guest's own NIC (not the pod's own stack). */
    const fromGuest = (report: NmapReport, address: string, mac: string) =>
      assert.equal(report.hosts.find((h) => h.address === address)?.mac, mac, `${address} answered from the guest's MAC ${mac}`);

    for (const guest of [server, other]) {
      const ns = guest.launcher.ns;
      const podIp = guest.launcher.podIp;
      const vmi = await env.get(VMI, NS, guest.name);
      const guestMac = podInterface(vmi as Parameters<typeof podInterface>[0]).mac.toLowerCase();
      const guestLinkLocal = linkLocalOf(guestMac);
      const where = `from the launcher pod of ${guest.name}`;

      const arp = await timed(`ARP ping ${where}`, nmapScan(ns, ['-sn', '-PR', ...onBridge], [podIp, idsPrefix]));
      assert.deepEqual(Object.keys(findings(arp, true)), [podIp], `ARP ping ${where}: only the server guest is up`);
      fromGuest(arp, podIp, guestMac);
      const syn = await timed(`SYN scan ${where}`, nmapScan(ns, ['-Pn', '-sS', '-p', SYN_PORTS, ...onBridge], [podIp, ...idsAddresses]));
      assert.deepEqual(Object.keys(findings(syn, false)), [podIp], `SYN scan ${where}: only the server guest's ports answer (${JSON.stringify(findings(syn, false))})`);
      fromGuest(syn, podIp, guestMac);
      const udp = await timed(`UDP scan ${where}`, nmapScan(ns, ['-Pn', '-sU', '-p', UDP_PORTS, ...onBridge], [podIp, ...idsAddresses]));
      assert.deepEqual(Object.keys(findings(udp, false)), [podIp], `UDP scan ${where}: only the server guest's ports answer (${JSON.stringify(findings(udp, false))})`);
      fromGuest(udp, podIp, guestMac);
      // The guest itself, with what its busybox has.
      const guestConsole = guest.console;
      for (const address of idsAddresses) {
        const arping = await guestConsole.run(`arping -c 1 -w 2 -I eth0 ${address}`, 30_000);
        assert.match(arping, /Received 0 response/, `arping ${address} from guest ${guest.name}: ${arping}`);
        const ping = await guestConsole.run(`ping -c 1 -W 2 ${address}`, 30_000);
        assert.match(ping, / 0 packets received/, `ping ${address} from guest ${guest.name}: ${ping}`);
      }
      // The control: the node, the guest's next hop (the pod's own stack holds the guest's IP on its
      // dummy eth0, so it drops the guest's ARP requests as martian).
      const nodeAddress = guest.launcher.node.underlayAddress;
      const control = await guestConsole.run(`arping -c 1 -w 2 -I eth0 ${nodeAddress}`, 30_000);
      assert.match(control, /Received 1 response/, `arping its node ${nodeAddress} from guest ${guest.name} (the control): ${control}`);

      // IPv6. The test world's namespaces have IPv6 off (testenv/netns: no spontaneous ND/MLD in the
      // captures); a pod's usually has it on. For these scans the in-pod bridge gets it on, as such a
      // pod's would have it, and off again after (leaving no address: the final state check holds).
      await ns.exec(['sysctl', '-qw', `net.ipv6.conf.${IN_POD_BRIDGE}.disable_ipv6=0`]);
      try {
        const bridgeLinkLocal = await waitFor(
          async () => {
            const [link] = await ns.json<{ addr_info: { local: string; scope: string; tentative?: boolean }[] }[]>(['ip', '-j', '-6', 'addr', 'show', 'dev', IN_POD_BRIDGE]);
            return link?.addr_info.find((a) => a.scope === 'link' && !a.tentative)?.local;
          },
          { timeoutMs: 15_000, intervalMs: 200, description: `an IPv6 link-local address on ${IN_POD_BRIDGE} of ${guest.name}` },
        );
        const nd = await timed(`IPv6 neighbour discovery ${where}`, nmapScan(ns, ['-6', '-sn', '-e', IN_POD_BRIDGE, ...patient], [guestLinkLocal, ...idsLinkLocals]));
        assert.deepEqual(Object.keys(findings(nd, true)), [guestLinkLocal], `IPv6 neighbour discovery ${where}: only the server guest is up`);
        fromGuest(nd, guestLinkLocal, guestMac);
        const allNodes = await ns.exec(['ping', '-6', '-n', '-w', '3', '-I', IN_POD_BRIDGE, 'ff02::1']).catch((err: Error) => err.message);
        assert.ok(responders(allNodes).includes(guestLinkLocal), `ping ff02::1 ${where} is answered by the server guest: ${allNodes}`);
        assert.deepEqual(responders(allNodes).filter((a) => idsLinkLocals.includes(a)), [], `ping ff02::1 ${where}: no IDS NIC answers`);
        const ping6 = await guestConsole.run('ping6 -w 3 -I eth0 ff02::1', 30_000);
        assert.ok(responders(ping6).includes(bridgeLinkLocal), `ping6 ff02::1 from guest ${guest.name} is answered by its in-pod bridge (the control): ${ping6}`);
        assert.deepEqual(responders(ping6).filter((a) => idsLinkLocals.includes(a)), [], `ping6 ff02::1 from guest ${guest.name}: no IDS NIC answers`);
        log(`guest ${guest.name}: ff02::1 answered by ${responders(ping6).join(', ')}; no IDS NIC among them`);
      } finally {
        await ns.exec(['sysctl', '-qw', `net.ipv6.conf.${IN_POD_BRIDGE}.disable_ipv6=1`]);
      }
    }
  });

  it('spec.mirroring.direction: Ingress mirrors only the frames toward the server, Egress only those from it', async function () {
    const otherIds = backend.guest(NS, `${OTHER_MS}-ids`)!;
    const vmi = await env.get(VMI, NS, OTHER_VM);
    const guestMac = podInterface(vmi as Parameters<typeof podInterface>[0]).mac.replace(/:/g, '').toLowerCase();
    const podIp = other.launcher.podIp;
    for (const [direction, hook] of [['Ingress', 'egress'], ['Egress', 'ingress']] as const) {
      const applied = Date.now();
      await kubectlApply(monitoredServer(OTHER_MS, NS, { server: { virtualMachineName: OTHER_VM }, mirroring: { enabled: true, direction }, processMapping: { enabled: false } }));
      await waitFor(async () => (JSON.stringify(await mirrorHooks(other.launcher.ns)) === JSON.stringify([hook]) || undefined), {
        timeoutMs: 60_000,
        intervalMs: 200,
        description: `only the ${hook} hook of db's tap mirrors (direction ${direction})`,
      });
      await env.waitForCondition(NS, OTHER_MS, 'MirrorAttached', 'True', 'Attached', 60_000);
      log(`direction ${direction}: the mirror on the ${hook} hook ${((Date.now() - applied) / 1000).toFixed(1)} s after kubectl apply`);

      const captures = [
        await startCapture(other.launcher.ns, 'tap0', join(captureDir, `db-${direction}.pcap`), processes),
        await startCapture(otherIds.launcher.ns, MIRROR_BRIDGE, join(captureDir, `db-ids-${direction}.pcap`), processes),
      ];
      // Markers in the mirrored direction: UDP to the guest for Ingress, a TFTP request from it for Egress.
      const marks = [`hs-${direction}-start-${process.pid}`, `hs-${direction}-end-${process.pid}`];
      const mark = async (text: string) =>
        direction === 'Ingress'
          ? otherNode.ns.exec(['sh', '-c', `printf %s ${text} | ncat -u --send-only ${podIp} 5009`])
          : other.console.run(`timeout 1 tftp -g -r ${text} -l /dev/null ${otherNode.underlayAddress} 5010`, 20_000);
      await mark(marks[0]!);
      await otherNode.ns.exec(['ping', '-c', '3', '-i', '0.2', '-W', '2', podIp]);
      await other.console.run(`ping -c 2 ${otherNode.underlayAddress}`, 30_000);
      await mark(marks[1]!);
      const between = async (c: Capture) => {
        const frames = await readFrames(c.file);
        const from = frames.findIndex((f) => f.includes(marks[0]!));
        const to = frames.findIndex((f) => f.includes(marks[1]!));
        return from < 0 || to < 0 ? undefined : frames.slice(from, to + 1);
      };
      await waitFor(async () => ((await between(captures[0]!)) && (await between(captures[1]!))) || undefined, { timeoutMs: 30_000, intervalMs: 200, description: `both markers in both captures (${direction})` });
      await Promise.all(captures.map((c) => stopCapture(c, processes)));
      const seen = (await between(captures[0]!))!;
      const mirrored = (await between(captures[1]!))!;
      const fromServer = (f: Buffer) => f.subarray(6, 12).toString('hex') === guestMac;
      const wanted = seen.filter((f) => (direction === 'Egress') === fromServer(f));
      const unwanted = seen.filter((f) => (direction === 'Egress') !== fromServer(f));
      log(`direction ${direction}: ${seen.length} frames on db's tap (${wanted.length} ${direction === 'Egress' ? 'from' : 'toward'} the server), ${mirrored.length} on its IDS mirror bridge`);
      assert.ok(wanted.length >= 4 && unwanted.length >= 4, `traffic both ways on the tap (${wanted.length} / ${unwanted.length})`);
      assert.deepEqual(frameMultiset(mirrored), frameMultiset(wanted), `direction ${direction}: the IDS got exactly the frames ${direction === 'Egress' ? 'from' : 'toward'} the server, each once`);
    }
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
    // Everything above ran with the chart's rights only: no request of an agent was refused.
    for (const host of [node, otherNode]) {
      const agentLog = await readFile(env.cluster.logOf(`agent-${host.nodeName}`), 'utf8');
      assert.deepEqual(agentLog.split('\n').filter((l) => /forbidden/i.test(l)), [], `the agent of ${host.nodeName} was refused nothing`);
    }
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
