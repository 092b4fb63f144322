// The MonitoredServer controller: level-triggered. A key goes into the queue from any watched
// change; reconcile reads the whole current state from the caches, computes the desired children
// with the pure builders, applies what differs, and writes status only when it changed.
import type { KubeConfig } from '@kubernetes/client-node';
import type { MonitoredServer, MonitoredServerStatus } from '../../api/v1alpha1/monitoredserver-types.ts';
import { MONITORED_SERVER } from '../../api/v1alpha1/resource.ts';
import { LABEL_MANAGED_BY, LABEL_ROLE, MANAGED_BY } from '../../builders/names.ts';
import type { ProcessMapperSettings } from '../../builders/process-mapper-pod.ts';
import { applyStatus } from '../../kube/client/apply.ts';
import { findCondition, type Condition } from '../../kube/client/conditions.ts';
import { enqueueMapped, enqueueObject, type KeySink } from '../../kube/runtime/handlers.ts';
import { stripManagedFields } from '../../kube/runtime/cache-transform.ts';
import { Informer, objectKey, type CacheTransform } from '../../kube/runtime/informer.ts';
import { apiListWatch } from '../../kube/runtime/list-watch.ts';
import { silentLogger, type Logger } from '../../kube/util/logger.ts';
import type { OperatorMetrics } from '../../kube/runtime/metrics.ts';
import { MultiNamespaceInformer } from '../../kube/runtime/multi-namespace-informer.ts';
import type { KubeObject, KubeVirt, PersistentVolumeClaim, Pod, Secret, VirtualMachine, VirtualMachineInstance } from '../../kube/client/objects.ts';
import { collectionPath, KUBEVIRT, PERSISTENT_VOLUME_CLAIM, POD, SECRET, VIRTUAL_MACHINE, VIRTUAL_MACHINE_INSTANCE, type ResourceType } from '../../kube/client/resources.ts';
import type { KubeApi } from '../../kube/client/rest.ts';
import { WorkerPool, type ReconcileContext, type ReconcileResult } from '../../kube/runtime/workers.ts';
import { WorkQueue } from '../../kube/runtime/workqueue.ts';
import { Outcomes, type Action, type Outcome } from './actions.ts';
import { transformMonitoredServer, transformProcessMapperPod, transformVirtualMachine, transformVirtualMachineInstance } from './cache-transforms.ts';
import { noEvents, type EventSink } from './events.ts';
import { execute } from './execute.ts';
import { observe, type CacheReader } from './observe.ts';
import type { ObservedState } from './observed-state.ts';
import { planFinalizer } from './planners/finalizer.ts';
import { planDiskHotplug, planIdsCloudInit } from './planners/disk-inspection.ts';
import { planIdsVm } from './planners/ids-vm.ts';
import { planResponse } from './planners/response.ts';
import { orphanedMapperPodDeletion, planProcessMapper, processMapperOwnerKeys } from './planners/process-mapper.ts';
import { planServerVm } from './planners/server-vm.ts';
import { planTeardown } from './planners/teardown.ts';
import { ConditionType, EventReason } from './reasons.ts';
import { isUrgentStatusChange, statusEvents } from './status-events.ts';
import { computeStatus, deletingStatus, statusEqual } from './status.ts';
import { ADOPTED_VM_INDEX, adoptedVmIndex, monitoredServerKeysFor } from './watch-mapping.ts';

export { isRefusedTemplate } from './planners/owned-vm.ts';

export const CONTROLLER_NAME = 'monitoredserver';

export const DEFAULT_PROCESS_MAPPER: ProcessMapperSettings = {
  image: 'hyperspector/operator:0.1.0',
  defaultKernelProfilesConfigMap: 'hyperspector-kernel-profiles',
  namespace: 'hyperspector-system',
  serviceAccountName: 'hyperspector-process-mapper',
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
  /** Namespace of the KubeVirt CR (default `kubevirt`). */
  kubevirtNamespace?: string;
  /** How often a MonitoredServer that is not Ready is looked at again without any change (ms). */
  notReadyRecheckMs?: number;
  /** Progress-only status changes this soon after a status write are coalesced (ms; 0 writes every change). */
  statusCoalesceMs?: number;
  resyncPeriodMs?: number;
  now?: () => Date;
}

/** Progress-only status changes within this window after a status write are coalesced into one write. */
const DEFAULT_STATUS_COALESCE_MS = 2_000;
/** A deletion that waits on a child looks again this often. */
const TEARDOWN_RECHECK_MS = 2_000;

/** An action failed in a way a retry may fix: the worker retries the key with backoff. */
export class ActionFailedError extends Error {
  constructor(readonly outcome: Outcome) {
    super(`${outcome.action.failureReason}: ${outcome.message ?? 'failed'}`);
    this.name = 'ActionFailedError';
  }
}

export class MonitoredServerController {
  /** Replaced by a fresh queue each time the workers stop (a lost leadership term). */
  queue: WorkQueue<string>;
  private readonly monitoredServers: MultiNamespaceInformer<MonitoredServer>;
  private readonly virtualMachines: MultiNamespaceInformer<VirtualMachine>;
  private readonly virtualMachineInstances: MultiNamespaceInformer<VirtualMachineInstance>;
  private readonly processMapperPods: MultiNamespaceInformer<Pod>;
  /** Claims, stripped of managedFields: disk inspection checks the ones behind spec.server.disks. */
  private readonly claims: MultiNamespaceInformer<PersistentVolumeClaim>;
  /** Only our own Secrets: the IDS VMs' merged user data, by label. */
  private readonly cloudInitSecrets: MultiNamespaceInformer<Secret>;
  /**
   * The KubeVirt CR (in options.kubevirtNamespace): its feature gates decide how disks are hot-plugged. Not part of
   * hasSynced: a cluster without the KubeVirt CRD, or a chart without the read permission, only
   * loses disk inspection (DiskAttached says so), not the rest of the operator.
   */
  private readonly kubevirts: Informer<KubeVirt>;
  /**
   * The status last written per key: when (progress writes are coalesced after it), and over which
   * resourceVersion (while the cache still shows that version it has not seen our write yet, and the
   * same status is not written twice).
   */
  private readonly writtenStatus = new Map<string, { at: number; over: string | undefined; status: MonitoredServerStatus }>();
  private readonly statusCoalesceMs: number;
  private pool: WorkerPool | undefined;
  /** Settles when the pools stopped so far have drained; a new pool starts only after it. */
  private draining: Promise<void> = Promise.resolve();
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
    this.statusCoalesceMs = options.statusCoalesceMs ?? DEFAULT_STATUS_COALESCE_MS;
    this.queue = this.newQueue();
    // Each cache keeps only what the controller reads (cache-transforms.ts).
    const informer = <T extends KubeObject>(name: string, type: ResourceType, transform: CacheTransform<T>, labelSelector?: string) => (namespace?: string) =>
      new Informer<T>({
        name: namespace ? `${name}/${namespace}` : name,
        source: apiListWatch<T>(options.kubeConfig, options.api, { path: collectionPath(type, namespace), ...(labelSelector ? { labelSelector } : {}) }),
        transform,
        logger: this.log,
        ...(options.resyncPeriodMs !== undefined ? { resyncPeriodMs: options.resyncPeriodMs } : {}),
      });
    this.monitoredServers = new MultiNamespaceInformer(informer<MonitoredServer>('monitoredservers', MONITORED_SERVER, transformMonitoredServer), options.namespaces);
    this.virtualMachines = new MultiNamespaceInformer(informer<VirtualMachine>('virtualmachines', VIRTUAL_MACHINE, transformVirtualMachine), options.namespaces);
    this.virtualMachineInstances = new MultiNamespaceInformer(informer<VirtualMachineInstance>('virtualmachineinstances', VIRTUAL_MACHINE_INSTANCE, transformVirtualMachineInstance), options.namespaces);
    // Only our own pods: the process mappers, by label, in the operator's namespace where they run.
    this.processMapperPods = new MultiNamespaceInformer(informer<Pod>('pods', POD, transformProcessMapperPod, `${LABEL_ROLE}=process-mapper,${LABEL_MANAGED_BY}=${MANAGED_BY}`), [this.mapperSettings.namespace]);
    this.claims = new MultiNamespaceInformer(informer<PersistentVolumeClaim>('persistentvolumeclaims', PERSISTENT_VOLUME_CLAIM, stripManagedFields<PersistentVolumeClaim>()), options.namespaces);
    this.cloudInitSecrets = new MultiNamespaceInformer(informer<Secret>('secrets', SECRET, stripManagedFields<Secret>(), `${LABEL_ROLE}=ids-cloud-init`), options.namespaces);
    this.kubevirts = informer<KubeVirt>('kubevirts', KUBEVIRT, stripManagedFields<KubeVirt>())(options.kubevirtNamespace ?? 'kubevirt');
    // The queue is replaced each leadership term; handlers always feed the current one.
    const sink: KeySink = { add: (key) => this.queue.add(key) };
    for (const i of this.monitoredServers.informers) {
      i.addIndex(ADOPTED_VM_INDEX, adoptedVmIndex);
      i.addEventHandler(enqueueObject<MonitoredServer>(sink));
    }
    // On update both the old and the new object are mapped: a VM relabelled from A to B wakes both.
    const children = enqueueMapped<KubeObject>(sink, (obj) =>
      monitoredServerKeysFor(obj, (k) => this.monitoredServers.byIndex(ADOPTED_VM_INDEX, k).map((m) => objectKey(m))),
    );
    for (const i of [...this.virtualMachines.informers, ...this.virtualMachineInstances.informers, ...this.cloudInitSecrets.informers] as Informer<KubeObject>[]) {
      i.addEventHandler(children);
    }
    // A process-mapper pod names its MonitoredServer in two labels (it runs in another namespace).
    for (const i of this.processMapperPods.informers) i.addEventHandler(enqueueMapped<Pod>(sink, (pod) => processMapperOwnerKeys(pod)));
    // A claim or the KubeVirt CR matters to the MonitoredServers with disks (in the claim's namespace).
    const withDisks = (namespace?: string) =>
      this.monitoredServers.list().filter((m) => (m.spec.server.disks?.length ?? 0) > 0 && (namespace === undefined || m.metadata.namespace === namespace)).map((m) => objectKey(m));
    for (const i of this.claims.informers) i.addEventHandler(enqueueMapped<PersistentVolumeClaim>(sink, (pvc) => withDisks(pvc.metadata?.namespace ?? '')));
    this.kubevirts.addEventHandler(enqueueMapped<KubeVirt>(sink, () => withDisks()));
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
      ...this.claims.informers,
      ...this.cloudInitSecrets.informers,
    ] as Informer<KubeObject>[];
  }

  /** Starts the caches (also on standby replicas, so a new leader starts warm). */
  startInformers(): void {
    for (const i of this.allInformers()) i.start();
    this.kubevirts.start();
  }

  hasSynced(): boolean {
    return this.allInformers().every((i) => i.hasSynced());
  }

  async waitForSync(timeoutMs?: number): Promise<void> {
    await Promise.all(this.allInformers().map((i) => i.waitForSync(timeoutMs)));
  }

  informerHealth() {
    return [...this.allInformers(), this.kubevirts as Informer<KubeObject>].map((i) => ({ name: i.name, ...i.health() }));
  }

  /**
   * Starts reconciling for one leadership term (on the leader only; again for each new term);
   * `signal` ends the term. Waits until the previous term's reconciles have all returned, so two
   * pools never work on the same key.
   */
  async startWorkers(signal?: AbortSignal): Promise<void> {
    await this.draining;
    if (this.pool || signal?.aborted) return;
    if (this.queue.isShuttingDown()) this.queue = this.newQueue();
    for (const ms of this.monitoredServers.list()) this.queue.add(objectKey(ms));
    if (this.options.metrics) this.controllerMetricsHooks ??= this.options.metrics.controller(CONTROLLER_NAME);
    this.pool = new WorkerPool({
      name: CONTROLLER_NAME,
      queue: this.queue,
      reconcile: (key, ctx) => this.reconcile(key, ctx),
      concurrency: this.options.concurrency ?? 4,
      logger: this.log,
      signal,
      ...(this.controllerMetricsHooks ? { metrics: this.controllerMetricsHooks } : {}),
    });
    this.pool.start();
  }

  /**
   * Stops reconciling: no key is handed out any more. Resolves when every reconcile of the pool has
   * returned (after a lost term they were aborted, their requests cancelled). The caches keep
   * running, so a new term starts warm.
   */
  stopWorkers(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    this.queue.shutDown();
    this.draining = this.draining.then(() => pool?.stop());
    return this.draining;
  }

  async stop(): Promise<void> {
    await this.stopWorkers();
    await Promise.all([...this.allInformers(), this.kubevirts].map((i) => i.stop()));
  }

  private cacheReader(): CacheReader {
    return {
      monitoredServer: (ns, name) => this.monitoredServers.get(ns, name),
      adoptersOf: (ns, vm) => this.monitoredServers.byIndex(ADOPTED_VM_INDEX, `${ns}/${vm}`),
      virtualMachine: (ns, name) => this.virtualMachines.get(ns, name),
      virtualMachineInstance: (ns, name) => this.virtualMachineInstances.get(ns, name),
      processMapperPod: (name) => this.processMapperPods.get(this.mapperSettings.namespace, name),
      persistentVolumeClaim: (ns, name) => this.claims.get(ns, name),
      kubevirt: () => this.kubevirts.list().find((k) => !k.metadata?.deletionTimestamp),
      idsCloudInitSecret: (ns, name) => this.cloudInitSecrets.get(ns, name),
    };
  }

  /**
   * Level-triggered: observe (caches) → plan (pure planners) → execute (the only writes) →
   * status (pure, from what was observed and what the actions did) → write status if it changed.
   * A failed action is retried with backoff after the user has been told (Synced=False, Event).
   */
  async reconcile(key: string, ctx: ReconcileContext): Promise<ReconcileResult> {
    const [namespace = '', name = ''] = key.split('/');
    const ms = this.monitoredServers.get(namespace, name);
    if (!ms) {
      this.writtenStatus.delete(key);
      // Deleted: owned children are garbage-collected through their owner references; the
      // process-mapper pod (another namespace, no owner reference) is deleted here if teardown
      // could not (the finalizer was removed by hand, or the MonitoredServer left the watched set).
      return this.deleteOrphanedMapperPod(namespace, name, ctx);
    }
    const observed = observe(ms, this.cacheReader());
    return ms.metadata.deletionTimestamp ? this.tearDown(ms, observed, ctx) : this.converge(key, ms, observed, ctx);
  }

  private get mapperSettings(): ProcessMapperSettings {
    return this.options.processMapper ?? DEFAULT_PROCESS_MAPPER;
  }

  private async deleteOrphanedMapperPod(namespace: string, name: string, ctx: ReconcileContext): Promise<ReconcileResult> {
    const pod = this.processMapperPods.list().find((p) => processMapperOwnerKeys(p)[0] === `${namespace}/${name}`);
    if (!pod || pod.metadata?.deletionTimestamp) return;
    const action = orphanedMapperPodDeletion(pod);
    const [outcome] = await execute([action], { api: this.api, log: ctx.log, signal: ctx.signal, onEvent: () => undefined });
    if (outcome?.kind === 'failed') throw new ActionFailedError(outcome);
  }

  private executeContext(ms: MonitoredServer, ctx: ReconcileContext) {
    return {
      api: this.api,
      log: ctx.log,
      signal: ctx.signal,
      onEvent: (action: Action) => {
        if (action.event) this.events.record(ms, action.event.type, action.event.reason, action.event.message);
      },
    };
  }

  private async converge(key: string, ms: MonitoredServer, observed: ObservedState, ctx: ReconcileContext): Promise<ReconcileResult> {
    const actions = [
      ...planFinalizer(ms),
      ...planServerVm(ms, observed),
      ...planIdsCloudInit(ms, observed),
      ...planIdsVm(ms, observed),
      ...planDiskHotplug(ms, observed),
      ...planProcessMapper(ms, observed, this.mapperSettings),
      ...planResponse(ms, observed),
    ];
    const outcomes = new Outcomes(await execute(actions, this.executeContext(ms, ctx)));
    // The term ended (lost lease): its outcomes are moot and nothing more may be written.
    ctx.signal.throwIfAborted();
    const next = computeStatus(ms, observed, outcomes, this.now());
    const failure = outcomes.firstFailure();
    let deferredMs: number | undefined;
    const written = this.writtenStatus.get(key);
    const cacheBehind = written !== undefined && written.over === ms.metadata.resourceVersion;
    if (!statusEqual(ms.status, next) && !(cacheBehind && statusEqual(written.status, next))) {
      const sinceLast = this.now().getTime() - (written?.at ?? 0);
      if (!failure && !isUrgentStatusChange(ms.status, next) && sinceLast < this.statusCoalesceMs) {
        deferredMs = this.statusCoalesceMs - sinceLast;
      } else {
        await this.writeStatus(key, ms, next, ctx);
      }
    }
    if (failure) throw this.retriedFailure(ms, failure);
    if (deferredMs !== undefined) return { requeueAfter: deferredMs };
    const ready = findCondition(next.conditions as Condition[], ConditionType.Ready);
    return ready?.status === 'True' ? undefined : { requeueAfter: this.notReadyRecheckMs };
  }

  private async writeStatus(key: string, ms: MonitoredServer, next: MonitoredServerStatus, ctx: ReconcileContext): Promise<void> {
    await applyStatus(this.api, MONITORED_SERVER, ms, next, { signal: ctx.signal });
    this.writtenStatus.set(key, { at: this.now().getTime(), over: ms.metadata.resourceVersion, status: next });
    for (const event of statusEvents(ms.status, next)) this.events.record(ms, event.type, event.reason, event.message);
    const ready = findCondition(next.conditions as Condition[], ConditionType.Ready);
    const before = findCondition(ms.status?.conditions as Condition[] | undefined, ConditionType.Ready);
    if (ready && before?.status !== ready.status) {
      ctx.log.info(ready.status === 'True' ? 'MonitoredServer became Ready' : 'MonitoredServer is not Ready', { reason: ready.reason });
    }
  }

  /** A failed action, retried with backoff: a Warning Event (rate-limited and aggregated by the recorder; the condition says the same) and the error that makes the worker back off. */
  private retriedFailure(ms: MonitoredServer, failure: Outcome): ActionFailedError {
    this.events.record(ms, 'Warning', EventReason.ReconcileFailed, `${failure.action.failureReason}: ${failure.message ?? ''}`.slice(0, 1024));
    return new ActionFailedError(failure);
  }

  private async tearDown(ms: MonitoredServer, observed: ObservedState, ctx: ReconcileContext): Promise<ReconcileResult> {
    const plan = planTeardown(ms, observed, this.now());
    const outcomes = new Outcomes(await execute(plan.actions, this.executeContext(ms, ctx)));
    ctx.signal.throwIfAborted();
    const failure = outcomes.firstFailure() ?? outcomes.all.find((o) => o.kind === 'refused');
    const waitingOn = failure ? `${failure.action.log} failed: ${failure.message ?? ''}` : plan.waitingOn;
    if (waitingOn !== undefined) {
      // A deletion in progress is never Ready: Ready=False, reason Deleting, with what it waits on.
      const next = deletingStatus(ms, waitingOn, this.now());
      if (!statusEqual(ms.status, next)) {
        const before = findCondition(ms.status?.conditions as Condition[] | undefined, ConditionType.Ready);
        await applyStatus(this.api, MONITORED_SERVER, ms, next, { signal: ctx.signal });
        if (plan.stalled && !/has not finished deleting/.test(before?.message ?? '')) {
          this.events.record(ms, 'Warning', EventReason.TeardownStalled, waitingOn);
        }
      }
    }
    if (failure) throw this.retriedFailure(ms, failure);
    return waitingOn !== undefined ? { requeueAfter: TEARDOWN_RECHECK_MS } : undefined;
  }
}
