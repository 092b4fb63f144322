// Wires the node agent together: caches of what concerns this node, one work queue with one worker
// (a node's mirrors and overlay are changed by one reconcile at a time, so a sweep never races an
// install), MirrorAttached through the agent's own server-side-apply field manager, Events,
// /metrics and health.
import type { KubeConfig } from '@kubernetes/client-node';
import type { MonitoredServer } from '../api/v1alpha1/monitoredserver-types.ts';
import { API_VERSION, KIND } from '../api/v1alpha1/monitoredserver-types.ts';
import { MONITORED_SERVER } from '../api/v1alpha1/resource.ts';
import { idsVmName, LABEL_ROLE, serverVmName } from '../builders/names.ts';
import type { KernelCommands, NetnsRef } from '../dataplane/index.ts';
import { NsenterKernelCommands } from '../dataplane/index.ts';
import { applyStatus, statusNeedsApply } from '../kube/client/apply.ts';
import { setCondition, type Condition } from '../kube/client/conditions.ts';
import { EventRecorder, type ObjectReference } from '../kube/runtime/events.ts';
import { enqueueMapped, type KeySink } from '../kube/runtime/handlers.ts';
import { HealthServer, informersSyncedCheck } from '../kube/runtime/health-server.ts';
import { Informer } from '../kube/runtime/informer.ts';
import { apiListWatch } from '../kube/runtime/list-watch.ts';
import { type Logger, silentLogger } from '../kube/util/logger.ts';
import { OperatorMetrics } from '../kube/runtime/metrics.ts';
import type { KubeObject, Pod, VirtualMachineInstance } from '../kube/client/objects.ts';
import { collectionPath, NODE, POD, VIRTUAL_MACHINE_INSTANCE, type ResourceType } from '../kube/client/resources.ts';
import type { KubeApi } from '../kube/client/rest.ts';
import { WorkerPool } from '../kube/runtime/workers.ts';
import { WorkQueue } from '../kube/runtime/workqueue.ts';
import type { AgentConfig } from './config.ts';
import { LAUNCHER_POD_LABEL } from './desired-mirrors.ts';
import { AgentMetrics } from './metrics.ts';
import { NETWORK_ISOLATED } from './desired-isolation.ts';
import { MIRROR_ATTACHED, mirrorKey, NodeReconciler, OVERLAY_KEY, SWEEP_KEY, type AgentCache, type AgentEvents, type MirrorStatusWriter } from './node-reconciler.ts';
import type { Node } from './overlay.ts';
import { PodProcessFinder } from './pod-processes.ts';

export const AGENT_NAME = 'hyperspector-agent';
const VMI_NAME_LABEL = 'vm.kubevirt.io/name';

/** The agent's field manager on MonitoredServer status: one per node, so agents never take each other's fields. */
export function agentFieldManager(nodeName: string): string {
  return `${AGENT_NAME}-${nodeName}`;
}

/** The agent's field manager of NetworkIsolated: its own, so that applying one condition never drops the other's. */
export function agentIsolationFieldManager(nodeName: string): string {
  return `${agentFieldManager(nodeName)}-isolation`;
}

/** True when `manager` owns the condition `type` (default MirrorAttached) of `ms` (per managedFields). */
export function ownsMirrorCondition(ms: MonitoredServer, manager: string, type: string = MIRROR_ATTACHED): boolean {
  return (ms.metadata.managedFields ?? []).some((entry) => {
    if (entry.manager !== manager || entry.subresource !== 'status') return false;
    const fields = entry.fieldsV1 as Record<string, Record<string, Record<string, unknown>>> | undefined;
    return fields?.['f:status']?.['f:conditions']?.[`k:{"type":"${type}"}`] !== undefined;
  });
}

/** Server-side apply of MirrorAttached (or `type`) alone, under the agent's field manager; no request when unchanged. */
export class ApiMirrorStatusWriter implements MirrorStatusWriter {
  constructor(
    private readonly api: KubeApi,
    private readonly fieldManager: string,
    private readonly now: () => Date = () => new Date(),
    private readonly type: string = MIRROR_ATTACHED,
  ) {}

  private target(ms: MonitoredServer): Pick<KubeObject, 'apiVersion' | 'kind' | 'metadata'> {
    return { apiVersion: API_VERSION, kind: KIND, metadata: { name: ms.metadata.name, namespace: ms.metadata.namespace } };
  }

  async set(ms: MonitoredServer, update: Omit<Condition, 'type' | 'lastTransitionTime'>): Promise<void> {
    const live = (ms.status?.conditions ?? []) as Condition[];
    const condition = setCondition(live, { type: this.type, ...update }, this.now()).find((c) => c.type === this.type)!;
    const status = { conditions: [condition] };
    if (!statusNeedsApply({ ...ms, apiVersion: API_VERSION, kind: KIND }, status, this.fieldManager)) return;
    await applyStatus(this.api, MONITORED_SERVER, this.target(ms), status, { fieldManager: this.fieldManager });
  }

  async release(ms: MonitoredServer): Promise<void> {
    if (!ownsMirrorCondition(ms, this.fieldManager, this.type)) return;
    // An apply without the condition drops this manager's fields; another manager's stay.
    await applyStatus(this.api, MONITORED_SERVER, this.target(ms), {}, { fieldManager: this.fieldManager });
  }
}

export interface NodeAgentOptions {
  kubeConfig: KubeConfig;
  api: KubeApi;
  config: Pick<AgentConfig, 'nodeName' | 'procRoot' | 'nodeNetns' | 'idsMirrorNetwork' | 'idsNetwork' | 'underlayInterface' | 'vni' | 'vxlanPort' | 'overlayBridge' | 'overlayVxlan' | 'resyncPeriodMs'> & Partial<Pick<AgentConfig, 'mirroringProvider'>>;
  logger?: Logger;
  metrics?: OperatorMetrics;
  kernel?: KernelCommands;
  /** Informer relist period (ms); default the informer's. */
  informerResyncMs?: number;
}

export class NodeAgent {
  readonly queue: WorkQueue<string>;
  readonly reconciler: NodeReconciler;
  readonly fieldManager: string;
  private readonly monitoredServers: Informer<MonitoredServer>;
  private readonly localVmis: Informer<VirtualMachineInstance>;
  private readonly idsVmis: Informer<VirtualMachineInstance>;
  private readonly launcherPods: Informer<Pod>;
  private readonly nodes: Informer<Node>;
  private readonly recorder: EventRecorder;
  private readonly log: Logger;
  private pool: WorkerPool | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: NodeAgentOptions) {
    const { config, api, kubeConfig } = options;
    this.log = options.logger ?? silentLogger();
    this.fieldManager = agentFieldManager(config.nodeName);
    const informer = <T extends KubeObject>(name: string, type: ResourceType, selectors: { labelSelector?: string; fieldSelector?: string } = {}) =>
      new Informer<T>({
        name,
        source: apiListWatch<T>(kubeConfig, api, { path: collectionPath(type), ...selectors }),
        logger: this.log,
        ...(options.informerResyncMs !== undefined ? { resyncPeriodMs: options.informerResyncMs } : {}),
      });
    this.monitoredServers = informer<MonitoredServer>('monitoredservers', MONITORED_SERVER);
    // KubeVirt labels a VMI with its node; the IDS VMIs of every node are needed for the overlay's peers.
    this.localVmis = informer<VirtualMachineInstance>('virtualmachineinstances/local', VIRTUAL_MACHINE_INSTANCE, { labelSelector: `kubevirt.io/nodeName=${config.nodeName}` });
    this.idsVmis = informer<VirtualMachineInstance>('virtualmachineinstances/ids', VIRTUAL_MACHINE_INSTANCE, { labelSelector: `${LABEL_ROLE}=ids` });
    this.launcherPods = informer<Pod>('pods/launchers', POD, { labelSelector: LAUNCHER_POD_LABEL, fieldSelector: `spec.nodeName=${config.nodeName}` });
    this.nodes = informer<Node>('nodes', NODE);

    const metrics = options.metrics;
    this.queue = new WorkQueue<string>({ name: AGENT_NAME, ...(metrics ? { metrics: metrics.workQueue(AGENT_NAME) } : {}) });
    this.recorder = new EventRecorder({ api, reportingController: AGENT_NAME, reportingInstance: this.fieldManager, logger: this.log });
    const nodeRef = (): ObjectReference => ({ apiVersion: 'v1', kind: 'Node', name: config.nodeName, ...(this.nodes.get(undefined, config.nodeName)?.metadata?.uid ? { uid: this.nodes.get(undefined, config.nodeName)!.metadata!.uid! } : {}) });
    const events: AgentEvents = {
      onMonitoredServer: (ms, type, reason, message) =>
        this.recorder.event({ apiVersion: API_VERSION, kind: KIND, name: ms.metadata.name ?? '', namespace: ms.metadata.namespace ?? '', ...(ms.metadata.uid ? { uid: ms.metadata.uid } : {}) }, type, reason, 'Mirror', message),
      onNode: (type, reason, message) => this.recorder.event(nodeRef(), type, reason, 'Reconcile', message),
    };
    const cache: AgentCache = {
      monitoredServer: (ns, name) => this.monitoredServers.get(ns, name),
      monitoredServers: () => this.monitoredServers.list(),
      vmi: (ns, name) => this.localVmis.get(ns, name) ?? this.idsVmis.get(ns, name),
      launcherPods: () => this.launcherPods.list(),
      idsVmis: () => this.idsVmis.list(),
      node: (name) => this.nodes.get(undefined, name),
      nodes: () => this.nodes.list(),
    };
    const nodeNetns: NetnsRef = { path: config.nodeNetns, label: `node:${config.nodeName}`, ipNetnsArg: '1' };
    this.reconciler = new NodeReconciler({
      cache,
      kernel: options.kernel ?? new NsenterKernelCommands(),
      processes: new PodProcessFinder({ procRoot: config.procRoot }),
      status: new ApiMirrorStatusWriter(api, this.fieldManager),
      isolationStatus: new ApiMirrorStatusWriter(api, agentIsolationFieldManager(config.nodeName), undefined, NETWORK_ISOLATED),
      events,
      ...(metrics ? { metrics: new AgentMetrics(metrics.registry) } : {}),
      logger: this.log,
      mirror: { nodeName: config.nodeName, idsMirrorNetwork: config.idsMirrorNetwork, ...(config.mirroringProvider ? { mirroringProvider: config.mirroringProvider } : {}) },
      ...(config.idsNetwork === 'vxlan'
        ? {
            overlay: {
              nodeName: config.nodeName,
              bridge: config.overlayBridge,
              vxlan: config.overlayVxlan,
              vni: config.vni,
              port: config.vxlanPort,
              ...(config.underlayInterface ? { underlayInterface: config.underlayInterface } : {}),
            },
          }
        : {}),
      nodeNetns,
    });

    const sink: KeySink = { add: (key) => this.queue.add(key) };
    // Any change may create or end a mirror elsewhere on the node: the sweep follows every one.
    this.monitoredServers.addEventHandler(enqueueMapped<MonitoredServer>(sink, (ms) => [mirrorKey(ms.metadata.namespace ?? '', ms.metadata.name ?? ''), SWEEP_KEY]));
    const byVmiName = (namespace: string | undefined, vmiName: string | undefined): string[] => {
      if (!namespace || !vmiName) return [];
      return this.monitoredServers
        .listByNamespace(namespace)
        .filter((ms) => serverVmName(ms) === vmiName || idsVmName(ms) === vmiName)
        .map((ms) => mirrorKey(namespace, ms.metadata.name ?? ''));
    };
    const vmiKeys = (vmi: VirtualMachineInstance) => [...byVmiName(vmi.metadata?.namespace, vmi.metadata?.name), SWEEP_KEY];
    this.localVmis.addEventHandler(enqueueMapped(sink, vmiKeys));
    this.idsVmis.addEventHandler(enqueueMapped(sink, (vmi: VirtualMachineInstance) => [...vmiKeys(vmi), OVERLAY_KEY]));
    this.launcherPods.addEventHandler(enqueueMapped(sink, (pod: Pod) => [...byVmiName(pod.metadata?.namespace, pod.metadata?.labels?.[VMI_NAME_LABEL]), SWEEP_KEY]));
    this.nodes.addEventHandler(enqueueMapped(sink, () => [OVERLAY_KEY]));
  }

  private informers(): Informer<KubeObject>[] {
    return [this.monitoredServers, this.localVmis, this.idsVmis, this.launcherPods, this.nodes] as Informer<KubeObject>[];
  }

  startInformers(): void {
    for (const i of this.informers()) i.start();
  }

  hasSynced(): boolean {
    return this.informers().every((i) => i.hasSynced());
  }

  async waitForSync(timeoutMs?: number): Promise<void> {
    await Promise.all(this.informers().map((i) => i.waitForSync(timeoutMs)));
  }

  /** Starts the one worker; every key is reconciled once now and again each resync period. */
  startWorkers(): void {
    if (this.pool) return;
    const metrics = this.options.metrics;
    this.pool = new WorkerPool({
      name: AGENT_NAME,
      queue: this.queue,
      concurrency: 1,
      logger: this.log,
      ...(metrics ? { metrics: metrics.controller(AGENT_NAME) } : {}),
      reconcile: (key, ctx) => this.reconciler.reconcile(key, ctx.log),
    });
    const addAll = () => {
      for (const key of this.reconciler.allKeys()) this.queue.add(key);
    };
    addAll();
    this.resyncTimer = setInterval(addAll, this.options.config.resyncPeriodMs);
    this.pool.start();
  }

  async stop(): Promise<void> {
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    if (this.pool) await this.pool.stop();
    else await this.queue.shutDownWithDrain();
    await Promise.all(this.informers().map((i) => i.stop()));
    await this.recorder.flush().catch(() => {});
  }
}

export interface RunningAgent {
  agent: NodeAgent;
  httpPort: number;
  stop(): Promise<void>;
}

/** Starts caches, health and metrics, then the worker once the caches are in sync. */
export async function startAgent(options: NodeAgentOptions & { httpPort: number; httpHost: string }): Promise<RunningAgent> {
  const metrics = options.metrics ?? new OperatorMetrics();
  const log = options.logger ?? silentLogger();
  const agent = new NodeAgent({ ...options, metrics });
  const health = new HealthServer({ port: options.httpPort, host: options.httpHost, metrics, logger: log });
  health.addLivenessCheck('ping', () => true);
  health.addReadinessCheck('informers', informersSyncedCheck([{ name: 'caches', hasSynced: () => agent.hasSynced() }]));
  const httpPort = await health.start();
  agent.startInformers();
  let stopped = false;
  void agent.waitForSync().then(() => {
    if (stopped) return;
    log.info('Started reconciling', { node: options.config.nodeName, fieldManager: agent.fieldManager });
    agent.startWorkers();
  });
  return {
    agent,
    httpPort,
    async stop() {
      stopped = true;
      await agent.stop();
      await health.close();
    },
  };
}
