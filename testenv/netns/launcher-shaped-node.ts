// One node's KubeVirt launcher pods as network namespaces, for the node agent's host tests
// (test/host/agent/): a node namespace; the server launcher pod with KubeVirt's bridge binding
// (in-pod bridge k6t-eth0 with tap0, the guest's end in its own namespace) and a client standing
// for the pod network; the IDS launcher pod with the in-pod bridge and tap of its mirror network,
// named as virt-launcher names them; and, per pod, a process in a cgroup named after its UID, as a
// kubelet lays it out (what the agent looks for in /proc).
import { spawn } from 'node:child_process';
import type { MonitoredServer } from '../../src/api/v1alpha1/monitoredserver-types.ts';
import type { AgentCache, MirrorStatusWriter } from '../../src/agent/node-reconciler.ts';
import type { Node } from '../../src/agent/overlay.ts';
import type { KernelCommand, KernelCommands, NetnsRef } from '../../src/dataplane/index.ts';
import { setCondition, type Condition, type ConditionUpdate } from '../../src/kube/client/conditions.ts';
import type { Pod, VirtualMachineInstance } from '../../src/kube/client/objects.ts';
import { PodCgroup } from '../real-guests/pod-cgroup.ts';
import { ProcessGroup, TestNetns } from './netns-host.ts';
import { waitUntil } from './wait.ts';

/** Counts the commands that change the kernel (queries go through `query`) and can fail after N of them, as a killed agent stops. */
export class CountingKernel implements KernelCommands {
  changes = 0;
  constructor(
    private readonly inner: KernelCommands,
    private readonly killAfter = Infinity,
  ) {}
  async run(netns: NetnsRef, command: KernelCommand): Promise<string> {
    if (this.changes >= this.killAfter) throw new Error(`agent killed after ${this.killAfter} kernel changes`);
    this.changes++;
    return this.inner.run(netns, command);
  }
  query<T>(netns: NetnsRef, command: KernelCommand): Promise<T> {
    return this.inner.query<T>(netns, command);
  }
}

/** One condition type as an agent field manager would leave it on each MonitoredServer; counts the writes that change it. */
export class RecordedCondition implements MirrorStatusWriter {
  readonly conditions = new Map<string, Condition>();
  writes = 0;
  constructor(private readonly type: string) {}
  async set(ms: MonitoredServer, update: Omit<ConditionUpdate, 'type'>): Promise<void> {
    const key = `${ms.metadata.namespace}/${ms.metadata.name}`;
    const before = this.conditions.get(key);
    const next = setCondition(before ? [before] : [], { type: this.type, ...update })[0]!;
    if (JSON.stringify(before) === JSON.stringify(next)) return;
    this.conditions.set(key, next);
    this.writes++;
  }
  async release(ms: MonitoredServer): Promise<void> {
    if (this.conditions.delete(`${ms.metadata.namespace}/${ms.metadata.name}`)) this.writes++;
  }
}

/** The cluster as the agent's caches would hold it. */
export class FixedCache implements AgentCache {
  servers: MonitoredServer[] = [];
  vmis: VirtualMachineInstance[] = [];
  pods: Pod[] = [];
  nodeList: Node[] = [];
  monitoredServer(ns: string, name: string) {
    return this.servers.find((m) => m.metadata.namespace === ns && m.metadata.name === name);
  }
  monitoredServers() {
    return this.servers;
  }
  vmi(ns: string, name: string) {
    return this.vmis.find((v) => v.metadata?.namespace === ns && v.metadata?.name === name);
  }
  launcherPods() {
    return this.pods;
  }
  idsVmis() {
    return this.vmis.filter((v) => v.metadata?.name?.endsWith('-ids'));
  }
  node(name: string) {
    return this.nodeList.find((n) => n.metadata?.name === name);
  }
  nodes() {
    return this.nodeList;
  }
}

export interface LauncherShapedNode {
  nodeNs: TestNetns;
  serverPod: TestNetns;
  serverVm: TestNetns;
  idsPod: TestNetns;
  idsVm: TestNetns;
  client: TestNetns;
  all(): TestNetns[];
}

export interface LauncherShapedNodeOptions {
  serverAddress: string;
  clientAddress: string;
  /** The IDS pod's in-pod bridge and tap of its mirror network. */
  idsBridge: string;
  idsTap: string;
}

/** The namespaces `<prefix>-node`, `-srv-pod`, `-srv-vm`, `-ids-pod`, `-ids-vm` and `-client`, wired. */
export async function createLauncherShapedNode(prefix: string, o: LauncherShapedNodeOptions): Promise<LauncherShapedNode> {
  const make = (suffix: string) => TestNetns.create(`${prefix}-${suffix}`);
  const nodeNs = await make('node');
  const serverPod = await make('srv-pod');
  const serverVm = await make('srv-vm');
  const idsPod = await make('ids-pod');
  const idsVm = await make('ids-vm');
  const client = await make('client');
  // Server launcher pod: KubeVirt's bridge binding; the client stands for the pod network.
  await client.ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', serverPod.name);
  await serverPod.ip('link', 'add', 'tap0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', serverVm.name);
  await serverPod.ip('link', 'add', 'k6t-eth0', 'type', 'bridge');
  for (const dev of ['eth0', 'tap0']) await serverPod.ip('link', 'set', dev, 'master', 'k6t-eth0');
  for (const dev of ['k6t-eth0', 'eth0', 'tap0']) await serverPod.ip('link', 'set', dev, 'up');
  await serverVm.ip('addr', 'add', `${o.serverAddress}/24`, 'dev', 'eth0');
  await serverVm.ip('link', 'set', 'eth0', 'up');
  await client.ip('addr', 'add', `${o.clientAddress}/24`, 'dev', 'eth0');
  await client.ip('link', 'set', 'eth0', 'up');
  // IDS launcher pod: the in-pod bridge and tap of its mirror network, as virt-launcher names them.
  await idsPod.ip('link', 'add', o.idsTap, 'type', 'veth', 'peer', 'name', 'mirror0', 'netns', idsVm.name);
  await idsPod.ip('link', 'add', o.idsBridge, 'type', 'bridge');
  await idsPod.ip('link', 'set', o.idsTap, 'master', o.idsBridge);
  for (const dev of [o.idsBridge, o.idsTap]) await idsPod.ip('link', 'set', dev, 'up');
  await idsVm.ip('link', 'set', 'mirror0', 'up');
  return { nodeNs, serverPod, serverVm, idsPod, idsVm, client, all: () => [nodeNs, serverPod, serverVm, idsPod, idsVm, client] };
}

/** A launcher pod's process: `sleep` in the pod's network namespace and in a cgroup named after its UID (kept in `cgroups` for removal). */
export async function startLauncherProcess(pod: TestNetns, uid: string, processes: ProcessGroup, cgroups: PodCgroup[]): Promise<void> {
  const cgroup = new PodCgroup(uid, 'BestEffort', `${uid.slice(0, 8)}c0n7a1n3r`);
  cgroup.create();
  cgroups.push(cgroup);
  processes.add(spawn(cgroup.joinCommand()[0]!, [...cgroup.joinCommand().slice(1), 'ip', 'netns', 'exec', pod.name, 'sleep', '3600'], { stdio: 'ignore' }));
  await waitUntil(`a process of pod ${uid} in its cgroup`, () => cgroup.pids().length > 0);
}
