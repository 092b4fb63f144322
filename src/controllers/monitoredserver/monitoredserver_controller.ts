// The MonitoredServer controller: level-triggered. A key goes into the queue from any watched
// change; reconcile reads the whole current state from the caches, computes the desired children
// with the pure builders, applies what differs, and writes status only when it changed.
import type { KubeConfig } from '@kubernetes/client-node';
import type { MonitoredServer } from '../../api/v1alpha1/monitoredserver-types.ts';
import { MONITORED_SERVER } from '../../api/v1alpha1/resource.ts';
import { buildIdsVirtualMachine, serverPodLabels } from '../../builders/ids-vm.ts';
import {
  ANNOTATION_MONITORED_BY,
  FINALIZER,
  idsVmName,
  isAdopting,
  LABEL_MANAGED_BY,
  LABEL_MONITORED_SERVER,
  LABEL_ROLE,
  MANAGED_BY,
  processMapperPodName,
  roleLabels,
  serverVmName,
} from '../../builders/names.ts';
import { buildAdoptionMarks, buildServerVirtualMachine } from '../../builders/server-vm.ts';
import { ANNOTATION_SPEC_HASH, buildProcessMapperPod, type ProcessMapperSettings } from '../../builders/process-mapper-pod.ts';
import type { VirtualMachine } from '../../builders/virtual-machine.ts';
import { applyIfChanged, applyStatus, type KubeObject } from '../../kube/apply.ts';
import { findCondition, setCondition, type Condition } from '../../kube/conditions.ts';
import { Informer, objectKey, type CacheTransform } from '../../kube/informer.ts';
import { apiListWatch } from '../../kube/list-watch.ts';
import { silentLogger, type Logger } from '../../kube/logger.ts';
import type { OperatorMetrics } from '../../kube/metrics.ts';
import { collectionPath, objectPath, POD, VIRTUAL_MACHINE, VIRTUAL_MACHINE_INSTANCE } from '../../kube/resources.ts';
import { isNotFound, isConflict, statusCodeOf, type KubeApi } from '../../kube/rest.ts';
import { WorkerPool, type ReconcileContext, type ReconcileResult } from '../../kube/workers.ts';
import { WorkQueue } from '../../kube/workqueue.ts';
import { transformMonitoredServer, transformProcessMapperPod, transformVirtualMachine, transformVirtualMachineInstance } from './cache-transforms.ts';
import { noEvents, type EventSink } from './events.ts';
import { observe, type CacheReader } from './observe.ts';
import { vmiNeedsRestart, vmiNode, type ObservedPod, type ObservedState, type VirtualMachineInstance } from './observed-state.ts';
import { ConditionType, EventReason, WARNING_REASONS } from './reasons.ts';
import { computeStatus, deletingStatus, statusEqual } from './status.ts';
import { ADOPTED_VM_INDEX, adoptedVmIndex, monitoredServerKeysFor } from './watch-mapping.ts';

export const CONTROLLER_NAME = 'monitoredserver';

export const DEFAULT_PROCESS_MAPPER: ProcessMapperSettings = {
  image: 'hyperspector/operator:0.1.0',
  defaultKernelProfilesConfigMap: 'hyperspector-kernel-profiles',
};

export interface ControllerOptions {
  kubeConfig: KubeConfig;
  api: KubeApi;
  /** Namespaces to watch; empty or undefined watches all. */
  namespaces?: string[];
  concurrency?: number;
  logger?: Logger;
  metrics?: OperatorMetrics;
  events?: EventSink;
  /** Image and default kernel profiles of the process-mapper sidecar. */
  processMapper?: ProcessMapperSettings;
  /** How often a MonitoredServer that is not Ready is looked at again without any change (ms). */
  notReadyRecheckMs?: number;
  resyncPeriodMs?: number;
  now?: () => Date;
}

const MERGE_PATCH = 'application/merge-patch+json';
/** How long a child may take to finish deleting before the teardown says it is stuck. */
const TEARDOWN_STALL_MS = 30_000;
const JSON_PATCH = 'application/json-patch+json';

function isUnprocessable(err: unknown): boolean {
  return statusCodeOf(err) === 422;
}

/**
 * The API server refused an object built from the user's template: 422 (schema, CEL, an admission
 * webhook such as KubeVirt's), 400, or the 500 that server-side apply answers for a field the
 * schema does not declare or a value of the wrong type ("failed to create typed patch object").
 * Retrying cannot help; the user must change the template.
 */
export function isRefusedTemplate(err: unknown): boolean {
  const code = statusCodeOf(err);
  if (code === 422 || code === 400) return true;
  return code === 500 && /failed to create typed patch object|field not declared in schema|expected (numeric|string|map|list|bool)/i.test((err as Error).message ?? '');
}

/** An informer per watched namespace (or one for all), read as one cache. */
class MultiNamespaceInformer<T extends KubeObject> {
  readonly informers: Informer<T>[];

  constructor(make: (namespace?: string) => Informer<T>, namespaces: string[] | undefined) {
    this.informers = namespaces && namespaces.length > 0 ? namespaces.map((ns) => make(ns)) : [make()];
  }

  get(namespace: string, name: string): T | undefined {
    for (const informer of this.informers) {
      const found = informer.get(namespace, name);
      if (found) return found;
    }
    return undefined;
  }

  byIndex(index: string, value: string): T[] {
    return this.informers.flatMap((i) => i.byIndex(index, value));
  }

  list(): T[] {
    return this.informers.flatMap((i) => i.list());
  }
}

export class MonitoredServerController {
  /** Replaced by a fresh queue each time the workers stop (a lost leadership term). */
  queue: WorkQueue<string>;
  private readonly monitoredServers: MultiNamespaceInformer<MonitoredServer & KubeObject>;
  private readonly virtualMachines: MultiNamespaceInformer<VirtualMachine & KubeObject>;
  private readonly virtualMachineInstances: MultiNamespaceInformer<VirtualMachineInstance & KubeObject>;
  private readonly processMapperPods: MultiNamespaceInformer<ObservedPod & KubeObject>;
  private pool: WorkerPool | undefined;
  private readonly api: KubeApi;
  private readonly log: Logger;
  private readonly events: EventSink;
  private readonly now: () => Date;
  private readonly notReadyRecheckMs: number;

  constructor(private readonly options: ControllerOptions) {
    this.api = options.api;
    this.log = options.logger ?? silentLogger();
    this.events = options.events ?? noEvents;
    this.now = options.now ?? (() => new Date());
    this.notReadyRecheckMs = options.notReadyRecheckMs ?? 60_000;
    this.queue = this.newQueue();
    // Each cache keeps only what the controller reads (cache-transforms.ts).
    const informer = <T extends KubeObject>(name: string, type: typeof VIRTUAL_MACHINE, transform: CacheTransform<T>, labelSelector?: string) => (namespace?: string) =>
      new Informer<T>({
        name: namespace ? `${name}/${namespace}` : name,
        source: apiListWatch<T>(options.kubeConfig, options.api, { path: collectionPath(type, namespace), ...(labelSelector ? { labelSelector } : {}) }),
        transform,
        logger: this.log,
        ...(options.resyncPeriodMs !== undefined ? { resyncPeriodMs: options.resyncPeriodMs } : {}),
      });
    this.monitoredServers = new MultiNamespaceInformer(informer<MonitoredServer & KubeObject>('monitoredservers', MONITORED_SERVER, transformMonitoredServer), options.namespaces);
    this.virtualMachines = new MultiNamespaceInformer(informer<VirtualMachine & KubeObject>('virtualmachines', VIRTUAL_MACHINE, transformVirtualMachine), options.namespaces);
    this.virtualMachineInstances = new MultiNamespaceInformer(
      informer<VirtualMachineInstance & KubeObject>('virtualmachineinstances', VIRTUAL_MACHINE_INSTANCE, transformVirtualMachineInstance),
      options.namespaces,
    );
    // Only our own pods: the process mappers, by label.
    this.processMapperPods = new MultiNamespaceInformer(informer<ObservedPod & KubeObject>('pods', POD, transformProcessMapperPod, `${LABEL_ROLE}=process-mapper,${LABEL_MANAGED_BY}=${MANAGED_BY}`), options.namespaces);
    for (const i of this.monitoredServers.informers) {
      i.addIndex(ADOPTED_VM_INDEX, adoptedVmIndex);
      i.addEventHandler({
        onAdd: (ms) => this.queue.add(objectKey(ms)),
        onUpdate: (_old, ms) => this.queue.add(objectKey(ms)),
        onDelete: (ms) => this.queue.add(objectKey(ms)),
      });
    }
    const enqueueFor = (obj: KubeObject) => {
      for (const key of monitoredServerKeysFor(obj, (k) => this.monitoredServers.byIndex(ADOPTED_VM_INDEX, k).map((m) => objectKey(m)))) {
        this.queue.add(key);
      }
    };
    for (const i of [...this.virtualMachines.informers, ...this.virtualMachineInstances.informers, ...this.processMapperPods.informers] as Informer<KubeObject>[]) {
      i.addEventHandler({ onAdd: enqueueFor, onUpdate: (_o, n) => enqueueFor(n), onDelete: enqueueFor });
    }
  }

  private newQueue(): WorkQueue<string> {
    return new WorkQueue<string>({ name: CONTROLLER_NAME, metrics: this.queueMetrics() });
  }

  private queueMetricsHooks: ReturnType<OperatorMetrics['workQueue']> | undefined;
  private queueMetrics() {
    if (!this.options.metrics) return undefined;
    this.queueMetricsHooks ??= this.options.metrics.workQueue(CONTROLLER_NAME);
    return this.queueMetricsHooks;
  }

  private controllerMetricsHooks: ReturnType<OperatorMetrics['controller']> | undefined;

  private allInformers(): Informer<KubeObject>[] {
    return [
      ...this.monitoredServers.informers,
      ...this.virtualMachines.informers,
      ...this.virtualMachineInstances.informers,
      ...this.processMapperPods.informers,
    ] as Informer<KubeObject>[];
  }

  /** Starts the caches (also on standby replicas, so a new leader starts warm). */
  startInformers(): void {
    for (const i of this.allInformers()) i.start();
  }

  hasSynced(): boolean {
    return this.allInformers().every((i) => i.hasSynced());
  }

  async waitForSync(timeoutMs?: number): Promise<void> {
    await Promise.all(this.allInformers().map((i) => i.waitForSync(timeoutMs)));
  }

  informerHealth() {
    return this.allInformers().map((i) => ({ name: i.name, ...i.health() }));
  }

  /** Starts reconciling (on the leader only; again after each new leadership term). */
  startWorkers(): void {
    if (this.pool) return;
    if (this.queue.isShuttingDown()) this.queue = this.newQueue();
    for (const ms of this.monitoredServers.list()) this.queue.add(objectKey(ms));
    if (this.options.metrics) this.controllerMetricsHooks ??= this.options.metrics.controller(CONTROLLER_NAME);
    this.pool = new WorkerPool({
      name: CONTROLLER_NAME,
      queue: this.queue,
      reconcile: (key, ctx) => this.reconcile(key, ctx),
      concurrency: this.options.concurrency ?? 4,
      logger: this.log,
      ...(this.controllerMetricsHooks ? { metrics: this.controllerMetricsHooks } : {}),
    });
    this.pool.start();
  }

  /**
   * Stops reconciling at once: no key is handed out any more; reconciles in flight finish their
   * current request. The caches keep running, so a new term starts warm.
   */
  async stopWorkers(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    this.queue.shutDown();
    await pool?.stop();
  }

  async stop(): Promise<void> {
    await this.stopWorkers();
    await Promise.all(this.allInformers().map((i) => i.stop()));
  }

  private cacheReader(): CacheReader {
    return {
      monitoredServer: (ns, name) => this.monitoredServers.get(ns, name),
      adoptersOf: (ns, vm) => this.monitoredServers.byIndex(ADOPTED_VM_INDEX, `${ns}/${vm}`),
      virtualMachine: (ns, name) => this.virtualMachines.get(ns, name),
      virtualMachineInstance: (ns, name) => this.virtualMachineInstances.get(ns, name),
      processMapperPod: (ns, name) => this.processMapperPods.get(ns, name),
    };
  }

  async reconcile(key: string, ctx: ReconcileContext): Promise<ReconcileResult> {
    const [namespace = '', name = ''] = key.split('/');
    const ms = this.monitoredServers.get(namespace, name);
    if (!ms) return; // deleted: owned children are garbage-collected through their owner references
    try {
      return await this.reconcileObject(ms, ctx);
    } catch (err) {
      // Retried with the queue's backoff; meanwhile the user sees it, whatever the HTTP status.
      await this.reportFailure(ms, err, ctx);
      throw err;
    }
  }

  /**
   * A failed reconcile shows as `Synced=False` (reason ReconcileFailed, the API server's message)
   * and a Warning Event (aggregated by the recorder into a series); the condition goes away with the
   * next successful reconcile.
   */
  private async reportFailure(ms: MonitoredServer, err: unknown, ctx: ReconcileContext): Promise<void> {
    const message = `reconcile failed and is retried with backoff: ${(err as Error).message ?? String(err)}`.slice(0, 2000);
    this.events.record(ms, 'Warning', EventReason.ReconcileFailed, message);
    const conditions = setCondition(
      (ms.status?.conditions as Condition[] | undefined) ?? [],
      { type: ConditionType.Synced, status: 'False', reason: EventReason.ReconcileFailed, message, observedGeneration: ms.metadata.generation ?? 0 },
      this.now(),
    );
    const next = { ...(ms.status ?? {}), conditions };
    if (statusEqual(ms.status, next)) return;
    try {
      await applyStatus(this.api, MONITORED_SERVER, ms as unknown as KubeObject, next as unknown as Record<string, unknown>);
    } catch (statusErr) {
      ctx.log.info('Could not report the failure in status', { error: (statusErr as Error).message });
    }
  }

  private async reconcileObject(ms: MonitoredServer, ctx: ReconcileContext): Promise<ReconcileResult> {
    const observed = observe(ms, this.cacheReader());
    if (ms.metadata.deletionTimestamp) return this.finalize(ms, observed, ctx);
    if (!ms.metadata.finalizers?.includes(FINALIZER)) await this.addFinalizer(ms);

    await this.reconcileServer(ms, observed, ctx);
    await this.reconcileIds(ms, observed, ctx);
    await this.reconcileProcessMapper(ms, observed, ctx);
    return this.writeStatus(ms, observed, ctx);
  }

  private async addFinalizer(ms: MonitoredServer): Promise<void> {
    await this.api.request({
      method: 'PATCH',
      path: objectPath(MONITORED_SERVER, ms.metadata.namespace, ms.metadata.name ?? ''),
      // resourceVersion makes this an optimistic update: a concurrent change fails it (409, retried).
      body: { metadata: { finalizers: [...(ms.metadata.finalizers ?? []), FINALIZER], resourceVersion: ms.metadata.resourceVersion } },
      contentType: MERGE_PATCH,
    });
  }

  private async reconcileServer(ms: MonitoredServer, o: ObservedState, ctx: ReconcileContext): Promise<void> {
    if (o.serverClaimedBy || o.serverNameTaken) return;
    const vmName = serverVmName(ms);
    if (isAdopting(ms)) {
      if (!o.serverVm) return;
      const marks = buildAdoptionMarks(ms);
      const labels = o.serverVm.metadata.labels ?? {};
      const annotations = o.serverVm.metadata.annotations ?? {};
      const marked =
        Object.entries(marks.metadata.labels ?? {}).every(([k, v]) => labels[k] === v) &&
        Object.entries(marks.metadata.annotations ?? {}).every(([k, v]) => annotations[k] === v);
      if (marked) return;
      // A merge patch of exactly our label and annotation: nothing of the owner's VM changes.
      await this.api.request({
        method: 'PATCH',
        path: objectPath(VIRTUAL_MACHINE, ms.metadata.namespace, vmName),
        body: { metadata: { labels: marks.metadata.labels, annotations: marks.metadata.annotations } },
        contentType: MERGE_PATCH,
      });
      ctx.log.info('Adopted server VM', { vm: `${ms.metadata.namespace}/${vmName}` });
      this.events.record(ms, 'Normal', EventReason.ServerVMAdopted, `Adopted VirtualMachine ${vmName} as the monitored server`);
      return;
    }
    try {
      const created = !o.serverVm;
      const result = await applyIfChanged(this.api, VIRTUAL_MACHINE, buildServerVirtualMachine(ms) as unknown as KubeObject, o.serverVm as KubeObject | undefined);
      if (result.applied) {
        o.serverVm = result.object as unknown as VirtualMachine;
        ctx.log.info(created ? 'Applied server VM' : 'Updated server VM', { vm: `${ms.metadata.namespace}/${vmName}` });
        this.events.record(ms, 'Normal', created ? EventReason.ServerVMCreated : EventReason.ServerVMUpdated, `Applied VirtualMachine ${vmName}`);
      }
    } catch (err) {
      if (!isRefusedTemplate(err)) throw err;
      o.serverApplyError = (err as Error).message;
    }
  }

  private async reconcileIds(ms: MonitoredServer, o: ObservedState, ctx: ReconcileContext): Promise<void> {
    if (o.idsNameTaken || o.serverClaimedBy || o.serverNameTaken) return;
    const serverNode = vmiNode(o.serverVmi);
    if (!serverNode || !o.serverVmi) return; // Colocated=False WaitingForServerPlacement until the server has a node
    const vmName = idsVmName(ms);
    const hostname = (o.serverVmi.spec?.hostname as string | undefined) ?? o.serverVmi.metadata.name ?? '';
    const desired = buildIdsVirtualMachine(ms, {
      nodeName: serverNode,
      serverVmiUid: o.serverVmi.metadata.uid ?? '',
      serverPodLabels: serverPodLabels(isAdopting(ms), roleLabels(ms, 'server'), hostname),
    });
    try {
      const existed = Boolean(o.idsVm);
      const result = await applyIfChanged(this.api, VIRTUAL_MACHINE, desired as unknown as KubeObject, o.idsVm as KubeObject | undefined);
      if (result.applied) {
        o.idsVm = result.object as unknown as VirtualMachine;
        ctx.log.info(existed ? 'Updated IDS VM' : 'Created IDS VM', { vm: `${ms.metadata.namespace}/${vmName}`, node: serverNode });
        this.events.record(
          ms,
          'Normal',
          existed ? EventReason.IDSVMUpdated : EventReason.IDSVMCreated,
          `${existed ? 'Updated' : 'Created'} IDS VirtualMachine ${vmName} pinned to node ${serverNode}`,
        );
      }
    } catch (err) {
      if (!isRefusedTemplate(err)) throw err;
      o.idsApplyError = (err as Error).message;
      return;
    }
    // A running IDS VMI on another node, or started from an older template, is restarted: its VM
    // then starts it again from the current template, on the server's node.
    const idsVmi = o.idsVmi;
    if (!idsVmi || idsVmi.metadata.deletionTimestamp) return;
    const idsNode = vmiNode(idsVmi);
    const wrongNode = idsNode !== undefined && idsNode !== serverNode;
    const stale = vmiNeedsRestart(o.idsVm, idsVmi);
    if (!wrongNode && !stale) return;
    try {
      await this.api.request({
        method: 'DELETE',
        path: objectPath(VIRTUAL_MACHINE_INSTANCE, ms.metadata.namespace, vmName),
        body: { preconditions: { uid: idsVmi.metadata.uid } },
      });
    } catch (err) {
      if (isNotFound(err) || isConflict(err)) return;
      throw err;
    }
    const why = wrongNode ? `it ran on node ${idsNode} but the server VM runs on node ${serverNode}` : 'its template changed';
    ctx.log.info('Restarted IDS VM', { vm: `${ms.metadata.namespace}/${vmName}`, reason: why });
    this.events.record(ms, 'Normal', EventReason.IDSVMRestarted, `Restarted IDS VirtualMachine ${vmName}: ${why}`);
    o.idsVmi = { ...idsVmi, metadata: { ...idsVmi.metadata, deletionTimestamp: this.now().toISOString() } };
  }

  /**
   * The process-mapper Pod beside the server VM. A Pod's spec cannot change, so a pod built for
   * another node, VMI or setting (its spec hash differs) is deleted and created anew.
   */
  private async reconcileProcessMapper(ms: MonitoredServer, o: ObservedState, ctx: ReconcileContext): Promise<void> {
    const ns = ms.metadata.namespace ?? '';
    const name = processMapperPodName(ms);
    const pod = o.processMapperPod;
    const enabled = ms.spec.processMapping?.enabled !== false && !o.serverClaimedBy && !o.serverNameTaken;
    const serverNode = vmiNode(o.serverVmi);
    const desired =
      enabled && serverNode && o.serverVmi
        ? buildProcessMapperPod(ms, { nodeName: serverNode, name: o.serverVmi.metadata.name ?? '', uid: o.serverVmi.metadata.uid ?? '' }, this.options.processMapper ?? DEFAULT_PROCESS_MAPPER)
        : undefined;
    if (pod) {
      if (pod.metadata.deletionTimestamp) return;
      if (desired && pod.metadata.annotations?.[ANNOTATION_SPEC_HASH] === desired.metadata.annotations[ANNOTATION_SPEC_HASH]) return;
      if (enabled && !desired) return; // server not placed: keep the pod until we know where it goes
      await this.deletePod(ns, name, pod.metadata.uid);
      o.processMapperPod = { ...pod, metadata: { ...pod.metadata, deletionTimestamp: this.now().toISOString() } };
      const why = enabled ? `the server VM is now ${o.serverVmi?.metadata.uid} on node ${serverNode}` : 'process mapping is disabled';
      ctx.log.info('Deleted process-mapper pod', { pod: `${ns}/${name}`, reason: why });
      this.events.record(ms, 'Normal', enabled ? EventReason.ProcessMapperReplaced : EventReason.ProcessMapperDeleted, `Deleted process-mapper pod ${name}: ${why}`);
      return;
    }
    if (!desired) return;
    let created;
    try {
      created = await applyIfChanged(this.api, POD, desired as unknown as KubeObject, undefined);
    } catch (err) {
      // Refused (e.g. Pod Security admission forbids privileged pods in this namespace): a
      // condition the user can act on, not a retry loop.
      if (statusCodeOf(err) !== 403 && !isUnprocessable(err)) throw err;
      // A namespace created a moment ago has no default ServiceAccount yet: ServiceAccount admission
      // refuses the pod (403) until the service account controller made it. Retried, not reported.
      if (/error looking up service account/.test((err as Error).message)) throw err;
      o.processMapperError = (err as Error).message;
      return;
    }
    o.processMapperPod = created.object as unknown as ObservedPod;
    ctx.log.info('Created process-mapper pod', { pod: `${ns}/${name}`, node: serverNode });
    this.events.record(ms, 'Normal', EventReason.ProcessMapperCreated, `Created process-mapper pod ${name} on node ${serverNode}`);
  }

  private async deletePod(namespace: string, name: string, uid: string | undefined): Promise<void> {
    try {
      await this.api.request({ method: 'DELETE', path: objectPath(POD, namespace, name), body: uid ? { preconditions: { uid } } : {} });
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }

  private async writeStatus(ms: MonitoredServer, o: ObservedState, ctx: ReconcileContext): Promise<ReconcileResult> {
    const next = computeStatus(ms, o, this.now());
    const ready = findCondition(next.conditions as Condition[], ConditionType.Ready);
    if (!statusEqual(ms.status, next)) {
      await applyStatus(this.api, MONITORED_SERVER, ms as unknown as KubeObject, next as unknown as Record<string, unknown>);
      // A problem the user must act on is also a Warning Event, once per change of reason.
      for (const type of [ConditionType.ServerRunning, ConditionType.IDSRunning, ConditionType.Colocated, ConditionType.ProcessMapping, ConditionType.MirrorAttached, ConditionType.DiskAttached, ConditionType.ResponseReady, ConditionType.ServerRestartRequired]) {
        const now = findCondition(next.conditions as Condition[], type);
        const was = findCondition(ms.status?.conditions as Condition[] | undefined, type);
        if (now && WARNING_REASONS.has(now.reason) && (was?.reason !== now.reason || was.message !== now.message)) {
          this.events.record(ms, 'Warning', now.reason, now.message);
        }
      }
      const before = findCondition(ms.status?.conditions as Condition[] | undefined, ConditionType.Ready);
      if (ready && before?.status !== ready.status) {
        ctx.log.info(ready.status === 'True' ? 'MonitoredServer became Ready' : 'MonitoredServer is not Ready', { reason: ready.reason });
        if (ready.status === 'True') this.events.record(ms, 'Normal', EventReason.MonitoringStarted, ready.message);
        else if (before?.status === 'True') this.events.record(ms, 'Warning', EventReason.MonitoringDegraded, ready.message);
      }
    }
    return ready?.status === 'True' ? undefined : { requeueAfter: this.notReadyRecheckMs };
  }

  private async finalize(ms: MonitoredServer, o: ObservedState, ctx: ReconcileContext): Promise<ReconcileResult> {
    if (!ms.metadata.finalizers?.includes(FINALIZER)) return;
    const ns = ms.metadata.namespace ?? '';
    // 1. The process mapper and the IDS VM (ours): delete them, wait until the VM is gone.
    if (o.processMapperPod && !o.processMapperPod.metadata.deletionTimestamp) {
      await this.deletePod(ns, processMapperPodName(ms), o.processMapperPod.metadata.uid);
      this.events.record(ms, 'Normal', EventReason.ProcessMapperDeleted, `Deleted process-mapper pod ${processMapperPodName(ms)}`);
    }
    if (o.idsVm) {
      if (!o.idsVm.metadata.deletionTimestamp) {
        await this.deleteVm(ns, idsVmName(ms));
        ctx.log.info('Deleted IDS VM', { vm: `${ns}/${idsVmName(ms)}` });
        this.events.record(ms, 'Normal', EventReason.IDSVMDeleted, `Deleted IDS VirtualMachine ${idsVmName(ms)}`);
      }
      await this.reportTeardown(ms, this.idsTeardownWait(ms, o));
      return { requeueAfter: 2000 };
    }
    // 2. The server VM: release an adopted one, retain or delete an owned one per deletionPolicy.
    const vm = o.serverVm;
    const ours = vm && !o.serverClaimedBy && !o.serverNameTaken && vm.metadata.labels?.[LABEL_MONITORED_SERVER] === ms.metadata.name;
    if (vm && ours) {
      if (!isAdopting(ms) && ms.spec.server.deletionPolicy === 'Delete') {
        if (!vm.metadata.deletionTimestamp) {
          await this.deleteVm(ns, vm.metadata.name ?? '');
          this.events.record(ms, 'Normal', EventReason.ServerVMDeleted, `Deleted server VirtualMachine ${vm.metadata.name} (deletionPolicy Delete)`);
        }
        await this.reportTeardown(ms, `waiting for server VirtualMachine ${ns}/${vm.metadata.name} to be deleted (deletionPolicy Delete)`);
        return { requeueAfter: 2000 };
      }
      await this.removeMarks(ns, vm);
      const adopted = isAdopting(ms);
      ctx.log.info(adopted ? 'Released adopted server VM' : 'Retained server VM', { vm: `${ns}/${vm.metadata.name}` });
      this.events.record(
        ms,
        'Normal',
        adopted ? EventReason.ServerVMReleased : EventReason.ServerVMRetained,
        adopted
          ? `Released VirtualMachine ${vm.metadata.name}: removed HyperSpector's label and annotation`
          : `Kept server VirtualMachine ${vm.metadata.name} (deletionPolicy Retain)`,
      );
    }
    // 3. Release the MonitoredServer.
    await this.removeFinalizer(ms);
    ctx.log.info('Removed finalizer', {});
    return;
  }

  /** What the IDS side's teardown waits on, naming the node whose virt-handler must act. */
  private idsTeardownWait(ms: MonitoredServer, o: ObservedState): string {
    const ns = ms.metadata.namespace ?? '';
    const vmi = o.idsVmi;
    if (!vmi) return `waiting for IDS VirtualMachine ${ns}/${idsVmName(ms)} to be deleted`;
    const since = vmi.metadata.deletionTimestamp ? new Date(vmi.metadata.deletionTimestamp).getTime() : undefined;
    const node = vmi.status?.nodeName;
    const finalizers = (vmi.metadata as { finalizers?: string[] }).finalizers ?? [];
    const stalled = since !== undefined && this.now().getTime() - since > TEARDOWN_STALL_MS;
    const what = `IDS VMI ${ns}/${vmi.metadata.name} (phase ${vmi.status?.phase ?? 'unknown'}${finalizers.length ? `, finalizers ${finalizers.join(', ')}` : ''})`;
    if (!stalled) return `waiting for ${what} to stop`;
    return `${what} has not finished deleting for more than ${TEARDOWN_STALL_MS / 1000} s${node ? `: is virt-handler running on node ${node}?` : ''}`;
  }

  /** A deletion in progress is never Ready: Ready=False, reason Deleting, with what it waits on. */
  private async reportTeardown(ms: MonitoredServer, waitingOn: string): Promise<void> {
    const next = deletingStatus(ms, waitingOn, this.now());
    if (statusEqual(ms.status, next)) return;
    const before = findCondition(ms.status?.conditions as Condition[] | undefined, ConditionType.Ready);
    await applyStatus(this.api, MONITORED_SERVER, ms as unknown as KubeObject, next as unknown as Record<string, unknown>);
    if (/has not finished deleting/.test(waitingOn) && !/has not finished deleting/.test(before?.message ?? '')) {
      this.events.record(ms, 'Warning', EventReason.TeardownStalled, waitingOn);
    }
  }

  /**
   * Foreground: the VM stays (deleting) until its VMI is gone, so the teardown waits for the guest to
   * have stopped — and can say so when KubeVirt cannot finish — instead of for the VM object only.
   */
  private async deleteVm(namespace: string, name: string): Promise<void> {
    try {
      await this.api.request({ method: 'DELETE', path: objectPath(VIRTUAL_MACHINE, namespace, name), body: { propagationPolicy: 'Foreground' } });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /**
   * Removes exactly HyperSpector's label keys and annotation from a VM it does not delete: from the
   * VM and from its VMI template. Template labels are not part of the template spec, so KubeVirt
   * restarts nothing; a VMI already running (and its launcher pod) keeps them until its next start.
   */
  private async removeMarks(namespace: string, vm: VirtualMachine): Promise<void> {
    const ours = (present: Record<string, string> | undefined) => {
      const out: Record<string, null> = {};
      for (const key of [LABEL_MONITORED_SERVER, LABEL_ROLE, LABEL_MANAGED_BY]) if (present?.[key] !== undefined) out[key] = null;
      return out;
    };
    const templateLabels = ours(vm.spec.template?.metadata?.labels as Record<string, string> | undefined);
    try {
      await this.api.request({
        method: 'PATCH',
        path: objectPath(VIRTUAL_MACHINE, namespace, vm.metadata.name ?? ''),
        body: {
          metadata: { labels: ours(vm.metadata.labels), annotations: { [ANNOTATION_MONITORED_BY]: null } },
          ...(Object.keys(templateLabels).length > 0 ? { spec: { template: { metadata: { labels: templateLabels } } } } : {}),
        },
        contentType: MERGE_PATCH,
      });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  private async removeFinalizer(ms: MonitoredServer): Promise<void> {
    const index = ms.metadata.finalizers?.indexOf(FINALIZER) ?? -1;
    if (index < 0) return;
    try {
      await this.api.request({
        method: 'PATCH',
        path: objectPath(MONITORED_SERVER, ms.metadata.namespace, ms.metadata.name ?? ''),
        // test+remove: fails (422) instead of removing someone else's finalizer if the list moved.
        body: [
          { op: 'test', path: `/metadata/finalizers/${index}`, value: FINALIZER },
          { op: 'remove', path: `/metadata/finalizers/${index}` },
        ],
        contentType: JSON_PATCH,
      });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}
