// The MonitoredServer controller: level-triggered. A key goes into the queue from any watched
// change; reconcile reads the whole current state from the caches, computes the desired children
// with the pure builders, applies what differs, and writes status only when it changed.
import type { KubeAuth } from '../../kube/client/light-kubeconfig.ts';
import type { MonitoredServer, MonitoredServerStatus } from '../../api/v1alpha1/monitoredserver-types.ts';
import { MONITORED_SERVER } from '../../api/v1alpha1/resource.ts';
import { LABEL_MANAGED_BY, LABEL_MONITORED_SERVER, LABEL_ROLE, MANAGED_BY } from '../../builders/names.ts';
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
import { collectionPath, objectPath, CONFIG_MAP, KUBEVIRT, MULTI_NETWORK_POLICY, NETWORK_POLICY, NODE, NETWORK_ATTACHMENT_DEFINITION, PERSISTENT_VOLUME_CLAIM, POD, SECRET, SERVICE, VIRTUAL_MACHINE, VIRTUAL_MACHINE_INSTANCE, type ResourceType } from '../../kube/client/resources.ts';
import { statusCodeOf, type KubeApi } from '../../kube/client/rest.ts';
import { WorkerPool, type ReconcileContext, type ReconcileResult } from '../../kube/runtime/workers.ts';
import { WorkQueue } from '../../kube/runtime/workqueue.ts';
import { Outcomes, type Action, type CreateAction, type Outcome } from './actions.ts';
import { transformMetadataOnly, transformMonitoredServer, transformNode, transformProcessMapperPod, transformVirtualMachine, transformVirtualMachineInstance } from './cache-transforms.ts';
import { noEvents, type EventSink } from './events.ts';
import { execute } from './execute.ts';
import { observe, type CacheReader } from './observe.ts';
import type { ObservedState, VirtualMachineInstanceMigration } from './observed-state.ts';
import { planFinalizer } from './planners/finalizer.ts';
import { hotplugsMissingFromVmi, planDiskHotplug, planIdsCloudInit, resolveDiskInspection } from './planners/disk-inspection.ts';
import { LostHotplugs } from './lost-hotplugs.ts';
import { planSnapshotMode } from './planners/disk-snapshot.ts';
import { VOLUME_SNAPSHOT, type VolumeSnapshot } from '../../builders/disk-snapshot.ts';
import { planIdsVm } from './planners/ids-vm.ts';
import { planResponse } from './planners/response.ts';
import { deleteProcessBaseline, orphanedMapperPodDeletion, planProcessMapper, processMapperOwnerKeys } from './planners/process-mapper.ts';
import { deleteIntakeObject, planIdsIntake } from './planners/ids-intake.ts';
import { intakeEnabled, intakeRecheckMs } from '../../builders/ids-intake.ts';
import { DEFAULT_ROTATION_MS } from '../../sidecar/intake-credential.ts';
import { randomBytes } from 'node:crypto';
import { isOurEvacuation, migrationIsFinal, planEvacuation, VIRTUAL_MACHINE_INSTANCE_MIGRATION, type EvacuationLimits } from './planners/evacuation.ts';
import { closedGap, monitoringGapEvents, monitoringGapHistogram } from './monitoring-gap.ts';
import { planIdsNetworkData, planNetworking, type NetworkingContext } from './planners/networking.ts';
import { AGENT_OWNED_CONDITIONS } from './networking-status.ts';
import { claimOf, LABEL_CLAIM_UID } from '../../builders/ids-address.ts';
import { claimOwnerKey, orphanedClaimDeletion, orphanedClaims } from './planners/orphaned-address-claims.ts';
import { Counter } from 'prom-client';
import type { NetworkPolicy } from '../../builders/isolation-policy.ts';
import { planServerVm } from './planners/server-vm.ts';
import { planTeardown } from './planners/teardown.ts';
import { ConditionType, EventReason, Reason } from './reasons.ts';
import { vmiNode } from './observed-state.ts';
import { serverVmName } from '../../builders/names.ts';
import { isUrgentStatusChange, statusEvents } from './status-events.ts';
import { ProgressWriteBudget, progressWindow } from './status-write-pacing.ts';
import { computeStatus, deletingStatus, statusEqual } from './status.ts';
import { UnseenCreations } from './unseen-creations.ts';
import { NotReadyRecheck } from './not-ready-recheck.ts';
import { UnseenDeletions } from './unseen-deletions.ts';
import { ADOPTED_VM_INDEX, adoptedVmIndex, monitoredServerKeysFor, NAMESPACE_INDEX, namespaceIndex } from './watch-mapping.ts';

export { isRefusedTemplate } from './planners/owned-vm.ts';

export const CONTROLLER_NAME = 'monitoredserver';

/** Index of migrations by the VMI they move: `namespace/vmiName`. */
const MIGRATION_VMI_INDEX = 'migrationVmi';
/** Index of VMIs by the node they are placed on (ovs-cni: the mirrors sharing a node's bridge). */
const VMI_NODE_INDEX = 'vmiNode';
/** Index of IDS-network address claims by the MonitoredServer key they were made for. */
const CLAIM_OWNER_INDEX = 'claimOwner';
/** Address claims by the UID of the MonitoredServer they belong to (its label). */
const CLAIM_UID_INDEX = 'claimUid';

export const DEFAULT_PROCESS_MAPPER: ProcessMapperSettings = {
  image: 'hyperspector/operator:0.1.0',
  defaultKernelProfilesConfigMap: 'hyperspector-kernel-profiles',
  namespace: 'hyperspector-system',
  serviceAccountName: 'hyperspector-process-mapper',
  serviceName: 'hyperspector-process-mappers',
};

export interface ControllerOptions {
  kubeConfig: KubeAuth;
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
  /** The IDS VM's mirror and IDS-network NICs, NADs and addresses (undefined: none, MirrorAttached unavailable). */
  networking?: NetworkingContext;
  /** How long one minute of spec.diskInspection.snapshot lasts (ms; default 60 s; tests shorten it). */
  snapshotMinuteMs?: number;
  /** How soon a MonitoredServer that is not Ready is looked at again without any change, after its status changed (ms; default 60 s). */
  notReadyRecheckMs?: number;
  /** The longest the not-Ready recheck backs off to while the status does not change (not-ready-recheck.ts); default 5 min. */
  notReadyRecheckMaxMs?: number;
  /** Progress-only status changes this soon after a status write are coalesced (ms; 0 writes every change; default 30 s). */
  statusCoalesceMs?: number;
  resyncPeriodMs?: number;
  now?: () => Date;
}

/** Progress-only status changes this soon after a status write are coalesced, the window doubling (status-write-pacing.ts). */
const DEFAULT_STATUS_COALESCE_MS = 30_000;
/** The longest a progress-only status change waits for its own window (the doubling stops here). */
const MAX_STATUS_COALESCE_MS = 300_000;
/** Progress-only status writes of all MonitoredServers together: a burst of 10, then one per 2 s (30 a minute). */
const PROGRESS_WRITE_INTERVAL_MS = 2_000;
const PROGRESS_WRITE_BURST = 10;
/** A child created but not yet shown by its cache is trusted this long (its watch events may both have been missed). */
const UNSEEN_CREATION_TTL_MS = 60_000;
/** An action that lost a race to another writer (an address claimed a moment earlier) is planned again after this. */
const LOST_RACE_RETRY_MS = 500;
/** How long a child's change waits for the rest of its burst before its owner is reconciled. */
const CHILD_EVENT_COALESCE_MS = 1_000;
/** How long a hot-plugged volume may stand in the IDS VM spec but not in its running VMI before it is plugged again (lost-hotplugs.ts). */
const LOST_HOTPLUG_GRACE_MS = 30_000;
/** A deletion that waits on a child looks again this often. */
const TEARDOWN_RECHECK_MS = 2_000;

/** The create of an IDS-network address claim (planners/networking.ts). */
function isAddressClaim(action: Action): action is CreateAction {
  return action.type === 'create' && action.resource.kind === CONFIG_MAP.kind && action.object.metadata?.labels?.[LABEL_ROLE] === 'ids-address';
}

/** Our last written status, with what other writers own taken from the object: status.alerts and the node agent's conditions. */
function withOthersFields(written: MonitoredServerStatus, live: MonitoredServerStatus | undefined): MonitoredServerStatus {
  const theirs = ((live?.conditions ?? []) as Condition[]).filter((c) => AGENT_OWNED_CONDITIONS.includes(c.type) && !(written.conditions ?? []).some((w) => w.type === c.type));
  return {
    ...written,
    ...(live?.alerts ? { alerts: live.alerts } : {}),
    ...(theirs.length > 0 ? { conditions: [...((written.conditions ?? []) as Condition[]), ...theirs] } : {}),
  };
}

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
  private readonly processBaselines: MultiNamespaceInformer<KubeObject>;
  /** The IDS alert intake's signing keys (with their data) and Services, in the operator's namespace. */
  private readonly intakeKeySecrets: MultiNamespaceInformer<Secret>;
  private readonly intakeServices: MultiNamespaceInformer<KubeObject>;
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
   * Our VolumeSnapshots (Snapshot mode), by label. Not part of hasSynced: a cluster without the
   * snapshot CRDs only loses Snapshot mode (DiskAttached says so).
   */
  private readonly volumeSnapshots: MultiNamespaceInformer<VolumeSnapshot & KubeObject>;
  /** Nodes, name and UID only: the process-mapper pod's controller reference (kubectl drain evicts only controlled pods). */
  private readonly nodes: Informer<KubeObject>;
  /** Live migrations (any, not only ours): a server VMI that starts to migrate moves its pair. */
  private readonly migrations: MultiNamespaceInformer<VirtualMachineInstanceMigration>;
  /**
   * Evacuation migrations created but maybe not yet in the cache (namespace/name → until when they
   * count), so that concurrent reconciles never start more than the limit.
   */
  private readonly reservedMigrations = new Map<string, number>();
  private readonly lostHotplugs = new LostHotplugs(LOST_HOTPLUG_GRACE_MS);
  private readonly gapSeconds: ReturnType<typeof monitoringGapHistogram> | undefined;
  /** Networking only: our NADs (by label) and the IDS-network address claims (in the operator's namespace). */
  private readonly nads: MultiNamespaceInformer<KubeObject> | undefined;
  private readonly addressClaims: Informer<KubeObject> | undefined;
  private readonly networkPolicies: MultiNamespaceInformer<KubeObject> | undefined;
  /** Address claims of MonitoredServers that no longer exist, deleted (hyperspector_ids_address_orphaned_claims_released_total). */
  private readonly orphanedClaimsReleased: Counter | undefined;
  /** Only our own NetworkPolicies (label hyperspector.io/role=response): the Isolate response's. */
  private readonly isolationPolicies: MultiNamespaceInformer<NetworkPolicy>;
  /**
   * The status last written per key: when (progress writes are coalesced after it), and over which
   * resourceVersion (while the cache still shows that version it has not seen our write yet, and the
   * same status is not written twice); the status itself only until the cache shows a later version.
   */
  private readonly writtenStatus = new Map<string, { at: number; over: string | undefined; status: MonitoredServerStatus | undefined; progressWrites: number }>();
  private readonly statusCoalesceMs: number;
  /** Slots for progress-only status writes, shared by every MonitoredServer (status-write-pacing.ts). */
  private readonly progressWrites: ProgressWriteBudget;
  /** Children created by this controller that the caches have not shown yet: not created twice. */
  private readonly unseen: UnseenCreations;
  /** IDS VMIs this controller deleted (restarts) that its cache still shows running. */
  private readonly unseenDeletions: UnseenDeletions;
  /** IDS-network address claims being created (reserved when planned, before the request): no two reconciles claim one address. */
  private readonly reservedClaims: UnseenCreations;
  /** How each child kind this controller creates is kept in its cache (a remembered creation is kept the same way). */
  private readonly childTransforms: ReadonlyMap<string, CacheTransform<KubeObject>> = new Map<string, CacheTransform<KubeObject>>([
    [VIRTUAL_MACHINE.kind, (vm) => transformVirtualMachine(vm as VirtualMachine)],
    [POD.kind, (pod) => transformProcessMapperPod(pod as Pod)],
    [SECRET.kind, stripManagedFields<KubeObject>()],
    [NETWORK_POLICY.kind, stripManagedFields<KubeObject>()],
    // A namespace's shared NAD: the first MonitoredServer to apply it makes it; the others of a burst
    // see it as made instead of applying it again while the cache catches up.
    [NETWORK_ATTACHMENT_DEFINITION.kind, stripManagedFields<KubeObject>()],
  ]);
  private pool: WorkerPool | undefined;
  /** Settles when the pools stopped so far have drained; a new pool starts only after it. */
  private draining: Promise<void> = Promise.resolve();
  private readonly api: KubeApi;
  private readonly log: Logger;
  private readonly events: EventSink;
  private readonly now: () => Date;
  /** The safety-net recheck of a MonitoredServer that is not Ready, backing off while nothing changes. */
  private readonly notReadyRecheck: NotReadyRecheck;

  constructor(private readonly options: ControllerOptions) {
    this.api = options.api;
    this.log = options.logger ?? silentLogger();
    this.events = options.events ?? noEvents;
    this.now = options.now ?? (() => new Date());
    this.notReadyRecheck = new NotReadyRecheck({ baseMs: options.notReadyRecheckMs ?? 60_000, maxMs: options.notReadyRecheckMaxMs ?? 300_000 });
    this.statusCoalesceMs = options.statusCoalesceMs ?? DEFAULT_STATUS_COALESCE_MS;
    this.progressWrites = new ProgressWriteBudget(PROGRESS_WRITE_INTERVAL_MS, PROGRESS_WRITE_BURST);
    this.unseen = new UnseenCreations({ ttlMs: UNSEEN_CREATION_TTL_MS, now: () => this.now().getTime() });
    this.unseenDeletions = new UnseenDeletions({ ttlMs: UNSEEN_CREATION_TTL_MS, now: () => this.now().getTime() });
    this.reservedClaims = new UnseenCreations({ ttlMs: UNSEEN_CREATION_TTL_MS, now: () => this.now().getTime() });
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
    // The process baselines the mappers stored beside them (metadata only: deleted with their MonitoredServer).
    this.processBaselines = new MultiNamespaceInformer(informer<KubeObject>('process-baselines', CONFIG_MAP, transformMetadataOnly, `${LABEL_ROLE}=process-baseline,${LABEL_MANAGED_BY}=${MANAGED_BY}`), [this.mapperSettings.namespace]);
    this.claims = new MultiNamespaceInformer(informer<PersistentVolumeClaim>('persistentvolumeclaims', PERSISTENT_VOLUME_CLAIM, stripManagedFields<PersistentVolumeClaim>()), options.namespaces);
    this.intakeKeySecrets = new MultiNamespaceInformer(informer<Secret>('ids-intake-keys', SECRET, stripManagedFields<Secret>(), `${LABEL_ROLE}=ids-intake-key,${LABEL_MANAGED_BY}=${MANAGED_BY}`), [this.mapperSettings.namespace]);
    this.intakeServices = new MultiNamespaceInformer(informer<KubeObject>('ids-intake-services', SERVICE, stripManagedFields<KubeObject>(), `${LABEL_ROLE}=ids-intake,${LABEL_MANAGED_BY}=${MANAGED_BY}`), [this.mapperSettings.namespace]);
    // Our Secrets in the tenants' namespaces: the IDS VMs' merged user data and their intake tokens.
    this.cloudInitSecrets = new MultiNamespaceInformer(informer<Secret>('secrets', SECRET, stripManagedFields<Secret>(), `${LABEL_ROLE} in (ids-cloud-init,ids-intake)`), options.namespaces);
    this.isolationPolicies = new MultiNamespaceInformer(informer<NetworkPolicy>('networkpolicies', NETWORK_POLICY, stripManagedFields<NetworkPolicy>(), `${LABEL_ROLE}=response,${LABEL_MANAGED_BY}=${MANAGED_BY}`), options.namespaces);
    this.kubevirts = informer<KubeVirt>('kubevirts', KUBEVIRT, stripManagedFields<KubeVirt>())(options.kubevirtNamespace ?? 'kubevirt');
    this.nodes = informer<KubeObject>('nodes', NODE, transformNode)();
    this.volumeSnapshots = new MultiNamespaceInformer(
      informer<VolumeSnapshot & KubeObject>('volumesnapshots', VOLUME_SNAPSHOT, stripManagedFields<VolumeSnapshot & KubeObject>(), `${LABEL_ROLE}=disk-snapshot,${LABEL_MANAGED_BY}=${MANAGED_BY}`),
      options.namespaces,
    );
    this.migrations = new MultiNamespaceInformer(
      informer<VirtualMachineInstanceMigration & KubeObject>('virtualmachineinstancemigrations', VIRTUAL_MACHINE_INSTANCE_MIGRATION, stripManagedFields<VirtualMachineInstanceMigration & KubeObject>()),
      options.namespaces,
    );
    this.gapSeconds = options.metrics ? monitoringGapHistogram(options.metrics.registry) : undefined;
    if (options.networking) {
      this.nads = new MultiNamespaceInformer(informer<KubeObject>('network-attachment-definitions', NETWORK_ATTACHMENT_DEFINITION, stripManagedFields<KubeObject>(), `${LABEL_ROLE}=network,${LABEL_MANAGED_BY}=${MANAGED_BY}`), options.namespaces);
      if (options.networking.settings.multiNetworkPolicy) {
        this.networkPolicies = new MultiNamespaceInformer(informer<KubeObject>('multi-networkpolicies', MULTI_NETWORK_POLICY, stripManagedFields<KubeObject>(), `${LABEL_ROLE}=network,${LABEL_MANAGED_BY}=${MANAGED_BY}`), options.namespaces);
      }
      this.addressClaims = informer<KubeObject>('ids-address-claims', CONFIG_MAP, stripManagedFields<KubeObject>(), `${LABEL_ROLE}=ids-address,${LABEL_MANAGED_BY}=${MANAGED_BY}`)(options.networking.claimNamespace);
      this.addressClaims.addIndex(CLAIM_OWNER_INDEX, (c) => {
        const owner = claimOwnerKey(c);
        return owner ? [owner] : [];
      });
      this.addressClaims.addIndex(CLAIM_UID_INDEX, (c) => {
        const uid = c.metadata?.labels?.[LABEL_CLAIM_UID];
        return uid ? [uid] : [];
      });
      if (options.metrics) {
        this.orphanedClaimsReleased = new Counter({
          name: 'hyperspector_ids_address_orphaned_claims_released_total',
          help: 'IDS-network address claims deleted because their MonitoredServer no longer exists (its finalizer was removed by hand)',
          registers: [options.metrics.registry],
        });
      }
    }
    // The queue is replaced each leadership term; handlers always feed the current one.
    const sink: KeySink = { add: (key) => this.queue.add(key) };
    // A child's changes come in bursts (virt-controller moves a starting VMI through several versions
    // within a second): its owner is reconciled once, CHILD_EVENT_COALESCE_MS after the first of them.
    // The MonitoredServer's own changes (a user's edit) are reconciled at once.
    const coalescingSink: KeySink = { add: (key) => this.queue.addAfter(key, CHILD_EVENT_COALESCE_MS) };
    for (const i of this.monitoredServers.informers) {
      i.addIndex(ADOPTED_VM_INDEX, adoptedVmIndex);
      i.addIndex(NAMESPACE_INDEX, namespaceIndex);
      i.addEventHandler(enqueueObject<MonitoredServer>(sink));
    }
    // On update both the old and the new object are mapped: a VM relabelled from A to B wakes both.
    const children = enqueueMapped<KubeObject>(coalescingSink, (obj) =>
      monitoredServerKeysFor(
        obj,
        (k) => this.monitoredServers.byIndex(ADOPTED_VM_INDEX, k).map((m) => objectKey(m)),
        (ns) => this.monitoredServers.byIndex(NAMESPACE_INDEX, ns).map((m) => objectKey(m)),
      ),
    );
    for (const i of [...this.virtualMachines.informers, ...this.virtualMachineInstances.informers, ...this.cloudInitSecrets.informers, ...this.volumeSnapshots.informers, ...this.isolationPolicies.informers, ...(this.nads?.informers ?? []), ...(this.networkPolicies?.informers ?? [])] as Informer<KubeObject>[]) {
      i.addEventHandler(children);
    }
    // A process-mapper pod names its MonitoredServer in two labels (it runs in another namespace).
    for (const i of [...this.processMapperPods.informers, ...this.processBaselines.informers, ...this.intakeKeySecrets.informers, ...this.intakeServices.informers] as Informer<Pod>[]) i.addEventHandler(enqueueMapped<Pod>(coalescingSink, (obj) => processMapperOwnerKeys(obj)));
    // Once a cache shows a child this controller created (or its deletion), the cache is right again.
    for (const [kind, informers] of [
      [VIRTUAL_MACHINE.kind, this.virtualMachines.informers],
      [POD.kind, this.processMapperPods.informers],
      [SECRET.kind, [...this.cloudInitSecrets.informers, ...this.intakeKeySecrets.informers]],
      [NETWORK_POLICY.kind, this.isolationPolicies.informers],
      [NETWORK_ATTACHMENT_DEFINITION.kind, this.nads?.informers ?? []],
    ] as Array<[string, Informer<KubeObject>[]]>) {
      const seen = (o: KubeObject) => this.unseen.seen(kind, o);
      for (const i of informers) i.addEventHandler({ onAdd: seen, onUpdate: (_old, o) => seen(o), onDelete: seen });
    }
    for (const i of this.virtualMachineInstances.informers) {
      const seen = (o: KubeObject, gone = false) => this.unseenDeletions.seen(VIRTUAL_MACHINE_INSTANCE.kind, o, gone);
      i.addEventHandler({ onAdd: (o) => seen(o), onUpdate: (_old, o) => seen(o), onDelete: (o) => seen(o, true) });
    }
    // A claim wakes its MonitoredServer (by the UID on it; by the key in its annotation, which also
    // finds a claim whose MonitoredServer is gone: reconcile sweeps it); a released one wakes those
    // still waiting for an address.
    // Only a release can free an address for those waiting: a new claim wakes its owner alone (at N
    // MonitoredServers, waking every waiting one on each claim made N² reconciles).
    const claimOwnerKeys = (claim: KubeObject) => {
      const uid = claim.metadata?.labels?.[LABEL_CLAIM_UID];
      const named = claimOwnerKey(claim);
      return this.monitoredServers.list().filter((m) => m.metadata.uid === uid).map((m) => objectKey(m)).concat(named ? [named] : []);
    };
    const waitingForAddress = () => this.monitoredServers.list().filter((m) => !claimOf(m.metadata.uid ? (this.addressClaims?.byIndex(CLAIM_UID_INDEX, m.metadata.uid) ?? []) : [], m.metadata.uid)).map((m) => objectKey(m));
    const wake = (keys: string[]) => {
      for (const k of new Set(keys)) sink.add(k);
    };
    this.addressClaims?.addEventHandler({
      onAdd: (claim) => {
        this.reservedClaims.seen(CONFIG_MAP.kind, claim);
        wake(claimOwnerKeys(claim));
      },
      onUpdate: (old, claim) => {
        this.reservedClaims.seen(CONFIG_MAP.kind, claim);
        wake([...claimOwnerKeys(old), ...claimOwnerKeys(claim)]);
      },
      onDelete: (claim) => {
        this.reservedClaims.seen(CONFIG_MAP.kind, claim);
        wake([...claimOwnerKeys(claim), ...waitingForAddress()]);
      },
    });
    // A claim or the KubeVirt CR matters to the MonitoredServers with disks (in the claim's namespace).
    const withDisks = (namespace?: string) =>
      this.monitoredServers.list().filter((m) => (m.spec.server.disks?.length ?? 0) > 0 && (namespace === undefined || m.metadata.namespace === namespace)).map((m) => objectKey(m));
    // A migration wakes the MonitoredServers of its VMI (ours carry the monitored-server label too).
    for (const i of this.migrations.informers) {
      i.addIndex(MIGRATION_VMI_INDEX, (m) => (m.spec?.vmiName ? [`${m.metadata?.namespace}/${m.spec.vmiName}`] : []));
      i.addEventHandler(
        enqueueMapped<VirtualMachineInstanceMigration & KubeObject>(sink, (m) =>
          monitoredServerKeysFor(
            { metadata: { namespace: m.metadata?.namespace ?? '', name: m.spec?.vmiName ?? '', labels: m.metadata?.labels ?? {} } },
            (k) => this.monitoredServers.byIndex(ADOPTED_VM_INDEX, k).map((x) => objectKey(x)),
          ),
        ),
      );
    }
    for (const i of this.claims.informers) i.addEventHandler(enqueueMapped<PersistentVolumeClaim>(sink, (pvc) => withDisks(pvc.metadata?.namespace ?? '')));
    if (options.networking?.settings.mirroring === 'ovs-cni') {
      // ovs-cni: mirrors share their node's OVS bridge (ovs-mirror-slots.ts). A VMI placed on or
      // leaving a node wakes the MonitoredServers there that wait for a slot.
      for (const i of this.virtualMachineInstances.informers) {
        i.addIndex(VMI_NODE_INDEX, (vmi) => (vmi.status?.nodeName ? [vmi.status.nodeName] : []));
        i.addEventHandler(
          enqueueMapped<VirtualMachineInstance>(sink, (vmi) => {
            const node = vmi.status?.nodeName;
            if (!node) return [];
            return this.monitoredServersOnNode(node)
              .filter((m) => (m.status?.conditions as Condition[] | undefined)?.some((c) => c.type === ConditionType.MirrorAttached && c.reason === Reason.MirrorBridgeFull))
              .map((m) => objectKey(m));
          }),
        );
      }
    }
    this.kubevirts.addEventHandler(enqueueMapped<KubeVirt>(sink, () => withDisks()));
  }

  /** The MonitoredServers whose server VMI is placed on `node` (ovs-cni mirroring only). */
  private monitoredServersOnNode(node: string): MonitoredServer[] {
    const out = new Map<string, MonitoredServer>();
    for (const vmi of this.virtualMachineInstances.byIndex(VMI_NODE_INDEX, node)) {
      if (vmiNode(vmi) !== node) continue;
      for (const key of monitoredServerKeysFor(vmi, (k) => this.monitoredServers.byIndex(ADOPTED_VM_INDEX, k).map((m) => objectKey(m)))) {
        const [ns = '', name = ''] = key.split('/');
        const ms = this.monitoredServers.get(ns, name);
        if (ms && ns === vmi.metadata?.namespace && serverVmName(ms) === vmi.metadata?.name) out.set(key, ms);
      }
    }
    return [...out.values()];
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
      this.nodes,
      ...this.monitoredServers.informers,
      ...this.virtualMachines.informers,
      ...this.virtualMachineInstances.informers,
      ...this.processMapperPods.informers,
      ...this.processBaselines.informers,
      ...this.intakeKeySecrets.informers,
      ...this.intakeServices.informers,
      ...this.claims.informers,
      ...this.cloudInitSecrets.informers,
      ...this.isolationPolicies.informers,
      ...this.migrations.informers,
      ...(this.nads?.informers ?? []),
      ...(this.networkPolicies?.informers ?? []),
      ...(this.addressClaims ? [this.addressClaims] : []),
    ] as Informer<KubeObject>[];
  }

  /** Starts the caches (also on standby replicas, so a new leader starts warm). */
  startInformers(): void {
    for (const i of this.allInformers()) i.start();
    this.kubevirts.start();
    for (const i of this.volumeSnapshots.informers) i.start();
  }

  hasSynced(): boolean {
    return this.allInformers().every((i) => i.hasSynced());
  }

  async waitForSync(timeoutMs?: number): Promise<void> {
    await Promise.all(this.allInformers().map((i) => i.waitForSync(timeoutMs)));
  }

  informerHealth() {
    return [...this.allInformers(), this.kubevirts as Informer<KubeObject>, ...(this.volumeSnapshots.informers as Informer<KubeObject>[])].map((i) => ({ name: i.name, ...i.health() }));
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
    // Claims whose MonitoredServer is gone (deleted while no operator led): their keys sweep them.
    for (const claim of this.addressClaims?.list() ?? []) {
      const owner = claimOwnerKey(claim);
      if (owner) this.queue.add(owner);
    }
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
    this.unseen.clear();
    this.unseenDeletions.clear();
    this.reservedClaims.clear();
    this.notReadyRecheck.clear();
    this.draining = this.draining.then(() => pool?.stop());
    return this.draining;
  }

  async stop(): Promise<void> {
    await this.stopWorkers();
    await Promise.all([...this.allInformers(), this.kubevirts, ...this.volumeSnapshots.informers].map((i) => i.stop()));
  }

  /** The caches, with what this replica did that they do not show yet; `trusted` hears when such a belief runs out. */
  private cacheReader(trusted?: (untilMs: number) => void): CacheReader {
    return {
      monitoredServer: (ns, name) => this.monitoredServers.get(ns, name),
      adoptersOf: (ns, vm) => this.monitoredServers.byIndex(ADOPTED_VM_INDEX, `${ns}/${vm}`),
      virtualMachine: (ns, name) => this.unseen.read(VIRTUAL_MACHINE.kind, ns, name, this.virtualMachines.get(ns, name), trusted),
      // An IDS VMI this controller just deleted (a restart) is read as being deleted: never deleted twice.
      virtualMachineInstance: (ns, name) => this.unseenDeletions.read(VIRTUAL_MACHINE_INSTANCE.kind, ns, name, this.virtualMachineInstances.get(ns, name), trusted),
      processBaseline: (name) => this.processBaselines.get(this.mapperSettings.namespace, name),
      // A key created a moment ago is read as created: never a second, different key.
      intakeKeySecret: (name) => this.unseen.read(SECRET.kind, this.mapperSettings.namespace, name, this.intakeKeySecrets.get(this.mapperSettings.namespace, name), trusted),
      intakeService: (name) => this.intakeServices.get(this.mapperSettings.namespace, name),
      processMapperPod: (name) => this.unseen.read(POD.kind, this.mapperSettings.namespace, name, this.processMapperPods.get(this.mapperSettings.namespace, name), trusted),
      persistentVolumeClaim: (ns, name) => this.claims.get(ns, name),
      kubevirt: () => this.kubevirts.list().find((k) => !k.metadata?.deletionTimestamp),
      nodeUid: (name) => this.nodes.get(undefined, name)?.metadata?.uid,
      idsCloudInitSecret: (ns, name) => this.unseen.read(SECRET.kind, ns, name, this.cloudInitSecrets.get(ns, name), trusted),
      isolationPolicy: (ns, name) => this.unseen.read(NETWORK_POLICY.kind, ns, name, this.isolationPolicies.get(ns, name), trusted),
      migrationsOf: (ns, vmiName) => this.migrations.byIndex(MIGRATION_VMI_INDEX, `${ns}/${vmiName}`),
      diskSnapshots: (ns, msName) => this.diskSnapshotsOf(ns, msName),
      snapshotCopyClaims: (ns, msName) =>
        this.claims.list().filter((c) => c.metadata?.namespace === ns && c.metadata?.labels?.[LABEL_ROLE] === 'disk-snapshot' && c.metadata?.labels?.[LABEL_MONITORED_SERVER] === msName),
      ...(this.nads && this.addressClaims
        ? {
            networkAttachmentDefinition: (ns: string, name: string) => this.unseen.read(NETWORK_ATTACHMENT_DEFINITION.kind, ns, name, this.nads?.get(ns, name), trusted),
            monitoredServersIn: (ns: string) => this.monitoredServers.byIndex(NAMESPACE_INDEX, ns),
            // With the claims this replica is making right now: a concurrent reconcile picks the next free address.
            idsAddressClaims: () => [...(this.addressClaims?.list() ?? []), ...this.reservedClaims.list<KubeObject>(CONFIG_MAP.kind)],
            idsAddressClaimsOf: (uid: string) => [
              ...(this.addressClaims?.byIndex(CLAIM_UID_INDEX, uid) ?? []),
              ...this.reservedClaims.list<KubeObject>(CONFIG_MAP.kind).filter((c) => c.metadata?.labels?.[LABEL_CLAIM_UID] === uid),
            ],
            ...(this.networkPolicies ? { multiNetworkPolicy: (ns: string, name: string) => this.networkPolicies?.get(ns, name) } : {}),
            ...(this.options.networking?.settings.mirroring === 'ovs-cni' ? { monitoredServersOnNode: (node: string) => this.monitoredServersOnNode(node) } : {}),
          }
        : {}),
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
    await this.releaseOrphanedClaims(key, ms, ctx);
    if (!ms) {
      this.writtenStatus.delete(key);
      this.progressWrites.release(key);
      this.lostHotplugs.forget(key);
      this.notReadyRecheck.forget(key);
      // Deleted: owned children are garbage-collected through their owner references; the
      // process-mapper pod (another namespace, no owner reference) is deleted here if teardown
      // could not (the finalizer was removed by hand, or the MonitoredServer left the watched set).
      return this.deleteOrphans(namespace, name, ctx);
    }
    // Read as created (or deleted) though the cache does not show it yet: planned again when that runs out.
    let trustedUntil: number | undefined;
    const observed = observe(ms, this.cacheReader((until) => (trustedUntil = Math.min(until, trustedUntil ?? until))));
    if (!ms.metadata.deletionTimestamp) return this.converge(key, ms, observed, ctx, trustedUntil);
    this.progressWrites.release(key);
    this.notReadyRecheck.forget(key);
    return this.tearDown(ms, observed, ctx);
  }

  /** Our VolumeSnapshots of a MonitoredServer; why they cannot be read (the CRD missing: the list fails); undefined before the first list. */
  private diskSnapshotsOf(ns: string, msName: string): VolumeSnapshot[] | { unavailable: string } | undefined {
    const informers = this.volumeSnapshots.informers;
    const failing = informers.find((i) => !i.hasSynced() && i.health().consecutiveFailures > 0);
    if (failing) return { unavailable: `listing VolumeSnapshots failed: ${failing.health().lastError ?? 'unknown error'}` };
    if (!informers.every((i) => i.hasSynced())) return undefined;
    return this.volumeSnapshots.list().filter((v) => v.metadata?.namespace === ns && v.metadata?.labels?.[LABEL_MONITORED_SERVER] === msName);
  }

  /**
   * Deletes the address claims made for `key` that no existing MonitoredServer holds (planners/
   * orphaned-address-claims.ts). The cache proposes; a live GET of the key decides, so a cache that
   * lags behind a new MonitoredServer, or one in a namespace this operator does not watch, never
   * loses its address.
   */
  private async releaseOrphanedClaims(key: string, ms: MonitoredServer | undefined, ctx: ReconcileContext): Promise<void> {
    if (!this.addressClaims) return;
    const candidates = orphanedClaims(this.addressClaims.byIndex(CLAIM_OWNER_INDEX, key), key, ms?.metadata.uid);
    if (candidates.length === 0) return;
    const [namespace = '', name = ''] = key.split('/');
    let liveUid: string | undefined;
    try {
      liveUid = (await this.api.request<MonitoredServer>({ method: 'GET', path: objectPath(MONITORED_SERVER, namespace, name), signal: ctx.signal })).metadata.uid;
    } catch (err) {
      if (statusCodeOf(err) !== 404) throw err;
    }
    const orphans = orphanedClaims(candidates, key, liveUid);
    if (orphans.length === 0) return;
    const outcomes = await execute(orphans.map(orphanedClaimDeletion), {
      api: this.api,
      log: ctx.log,
      signal: ctx.signal,
      onEvent: (action: Action) => {
        const claim = orphans.find((c) => action.type === 'delete' && c.metadata?.name === action.name);
        if (!claim || !action.event) return;
        // Deleted by this request (a claim already gone is not counted).
        this.orphanedClaimsReleased?.inc();
        this.events.record({ apiVersion: 'v1', kind: 'ConfigMap', metadata: claim.metadata }, action.event.type, action.event.reason, action.event.message);
      },
    });
    const failed = outcomes.find((o) => o.kind === 'failed');
    if (failed) throw new ActionFailedError(failed);
  }

  private get mapperSettings(): ProcessMapperSettings {
    return this.options.processMapper ?? DEFAULT_PROCESS_MAPPER;
  }

  private get intakeSettings() {
    return { operatorNamespace: this.mapperSettings.namespace, mapperService: this.mapperSettings.serviceName, rotationMs: this.mapperSettings.idsCredentialRotationMs ?? DEFAULT_ROTATION_MS, newKey: () => randomBytes(32) };
  }

  /** What a deleted MonitoredServer left in the operator's namespace: its process-mapper pod and its stored baseline. */
  private async deleteOrphans(namespace: string, name: string, ctx: ReconcileContext): Promise<ReconcileResult> {
    const mine = (o: KubeObject) => processMapperOwnerKeys(o as Pod)[0] === `${namespace}/${name}` && !o.metadata?.deletionTimestamp;
    const pod = this.processMapperPods.list().find(mine);
    const baseline = this.processBaselines.list().find(mine);
    const key = this.intakeKeySecrets.list().find(mine);
    const service = this.intakeServices.list().find(mine);
    const actions = [
      ...(pod ? [orphanedMapperPodDeletion(pod)] : []),
      ...(baseline ? [deleteProcessBaseline(baseline, 'processMapper')] : []),
      ...(key ? [deleteIntakeObject(key, 'key', 'processMapper')] : []),
      ...(service ? [deleteIntakeObject(service, 'service', 'processMapper')] : []),
    ];
    if (actions.length === 0) return;
    const outcomes = await execute(actions, { api: this.api, log: ctx.log, signal: ctx.signal, onEvent: () => undefined });
    const failed = outcomes.find((o) => o.kind === 'failed');
    if (failed) throw new ActionFailedError(failed);
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

  /** Evacuation migrations of this operator in flight, cluster-wide, and the limit (--concurrency). */
  private evacuationLimits(): EvacuationLimits {
    const now = this.now().getTime();
    const inCache = new Set(this.migrations.list().filter((m) => isOurEvacuation(m) && !migrationIsFinal(m)).map((m) => `${m.metadata?.namespace}/${m.metadata?.name}`));
    for (const [key, until] of this.reservedMigrations) {
      if (until < now || this.migrations.list().some((m) => `${m.metadata?.namespace}/${m.metadata?.name}` === key)) this.reservedMigrations.delete(key);
    }
    const reserved = [...this.reservedMigrations.keys()].filter((k) => !inCache.has(k)).length;
    return { inFlight: inCache.size + reserved, max: this.options.concurrency ?? 4 };
  }

  private async converge(key: string, cached: MonitoredServer, observed: ObservedState, ctx: ReconcileContext, trustedUntil?: number): Promise<ReconcileResult> {
    // While the cache still shows the version our last status write went over, that write is the
    // status the object has: the planners decide on it (a reconcile woken before the write's watch
    // event would otherwise respond to an alert burst a second time: a second pause and Event), a
    // follow-up is progress, not the first status again, and conditions keep their transition
    // times. What other writers own (status.alerts, the node agent's MirrorAttached) is always the
    // object's own.
    const written = this.writtenStatus.get(key);
    const current = written?.status !== undefined && written.over === cached.metadata.resourceVersion ? withOthersFields(written.status, cached.status) : cached.status;
    // Once the cache shows a later version, the written status is the object's: only when it was written is kept.
    if (written?.status !== undefined && written.over !== cached.metadata.resourceVersion) this.writtenStatus.set(key, { ...written, status: undefined });
    const ms = current === cached.status ? cached : { ...cached, status: current };
    const networking = this.options.networking;
    const networkData = networking ? planIdsNetworkData(ms, observed, networking) : undefined;
    // The pair moves together (planners/evacuation.ts): while it moves, the IDS side is held back.
    const evacuation = planEvacuation(ms, observed, this.now(), this.evacuationLimits());
    const isMigration = (a: Action) => a.type === 'apply' && a.object.kind === VIRTUAL_MACHINE_INSTANCE_MIGRATION.kind;
    const migrationKey = (a: Action) => (a.type === 'apply' ? `${a.object.metadata?.namespace}/${a.object.metadata?.name}` : '');
    // A migration created a moment ago that the cache does not show yet is not created twice.
    const evacuationActions = evacuation.actions.filter((a) => !isMigration(a) || !this.reservedMigrations.has(migrationKey(a)));
    for (const action of evacuationActions) {
      // Counted at once (synchronously, before any other reconcile plans), until the cache shows it.
      if (isMigration(action)) this.reservedMigrations.set(migrationKey(action), this.now().getTime() + 30_000);
    }
    const snapshots = planSnapshotMode(ms, observed, resolveDiskInspection(ms, observed), { now: this.now(), minuteMs: this.options.snapshotMinuteMs ?? 60_000 });
    const hotplugs = this.lostHotplugs.judge(key, hotplugsMissingFromVmi(ms, observed), this.now().getTime());
    const pairPlans = evacuation.move
      ? []
      : [...planIdsVm(ms, observed, networkData), ...planDiskHotplug(ms, observed, hotplugs.lost), ...planProcessMapper(ms, observed, this.mapperSettings)];
    // The intake's key comes before the mapper pod can start; its token data, in the IDS VM's
    // Secret, before the IDS VM's start reads it. That Secret is written once the IDS VM's address
    // is known (networking), with everything in it.
    const intake = planIdsIntake(ms, observed, this.intakeSettings, this.now().getTime());
    const waitForNetwork = networking !== undefined && networkData?.networkData === undefined;
    const actions = [
      ...planFinalizer(ms),
      ...planServerVm(ms, observed),
      ...(networking ? planNetworking(ms, observed, networking) : []),
      ...intake.actions,
      ...planIdsCloudInit(ms, observed, networkData?.networkData, intake.secretData, waitForNetwork),
      ...evacuationActions,
      ...pairPlans,
      ...snapshots.actions,
      ...planResponse(ms, observed),
    ];
    // Reserved synchronously, before any other reconcile plans; a claim not made is forgotten.
    const claims = actions.filter(isAddressClaim);
    for (const claim of claims) this.reservedClaims.remember(CONFIG_MAP.kind, claim.object);
    const outcomes = new Outcomes(await execute(actions, this.executeContext(ms, ctx)));
    for (const o of outcomes.all) if (isAddressClaim(o.action) && o.kind !== 'done') this.reservedClaims.forget(CONFIG_MAP.kind, o.action.object);
    // A migration that was not created frees its slot at once.
    for (const o of outcomes.of('evacuation')) if (isMigration(o.action) && o.kind !== 'done') this.reservedMigrations.delete(migrationKey(o.action));
    this.rememberCreations(outcomes);
    this.rememberDeletions(outcomes);
    // The term ended (lost lease): its outcomes are moot and nothing more may be written.
    ctx.signal.throwIfAborted();
    const next = computeStatus(ms, observed, outcomes, this.now(), evacuation.move, networking, snapshots);
    const failure = outcomes.firstFailure();
    let deferredMs: number | undefined;
    if (!statusEqual(current, next)) {
      // A monitoring gap that opens or closes is written at once (its Events and the metric go with it),
      // so is each step of a move (evacuating → migrating → failed ...): a migration may last a second.
      const gapChanged = monitoringGapEvents(current?.lastMonitoringGap, next.lastMonitoringGap).length > 0;
      const moveStepChanged = evacuation.move !== undefined && findCondition(current?.conditions as Condition[] | undefined, ConditionType.Colocated)?.reason !== evacuation.move.reason;
      const urgent = failure !== undefined || gapChanged || moveStepChanged || isUrgentStatusChange(current, next);
      // Progress waits for its window after the last write (never written by this replica: after
      // the object's creation), then for a slot of the operator's progress-write budget.
      const since = written?.at ?? (Date.parse(ms.metadata.creationTimestamp ?? '') || 0);
      const now = this.now().getTime();
      const { windowMs, progressWrites } = progressWindow(now - since, written?.progressWrites ?? 0, this.statusCoalesceMs, MAX_STATUS_COALESCE_MS);
      // A slot is asked for only once the window has passed: slots are handed out in time order.
      const slot = urgent ? now : now < since + windowMs ? since + windowMs : this.progressWrites.slotFor(key, now);
      if (slot > now) {
        deferredMs = slot - now;
      } else {
        await this.writeStatus(key, ms, current, next, urgent ? 0 : progressWrites + 1, ctx);
      }
    } else {
      this.progressWrites.release(key);
    }
    if (failure) throw this.retriedFailure(ms, failure);
    // Another writer got there first: plan again once the cache has had a moment to show it.
    if (outcomes.lostRace()) return { requeueAfter: Math.min(LOST_RACE_RETRY_MS, deferredMs ?? LOST_RACE_RETRY_MS) };
    const ready = findCondition(next.conditions as Condition[], ConditionType.Ready);
    let notReadyRecheck: number | undefined;
    if (ready?.status === 'True') this.notReadyRecheck.forget(key);
    else notReadyRecheck = earliest(this.notReadyRecheck.after(key, next), evacuation.recheckAfterMs);
    // The intake token Secret is rewritten at the next rotation epoch's start.
    const intakeRecheck = intakeEnabled(ms) ? intakeRecheckMs(this.now().getTime(), this.intakeSettings.rotationMs) : undefined;
    const recheckMs = earliest(
      notReadyRecheck,
      // Snapshot mode: the next rotation or readiness deadline comes back on its own, Ready or not.
      snapshots.recheckAfterMs,
      intakeRecheck,
      // A hot-plugged volume missing from the running IDS VMI is judged lost at its grace period's end.
      hotplugs.recheckAfterMs,
      // A child read as created though the cache never showed it is planned from the cache alone then.
      trustedUntil === undefined ? undefined : Math.max(0, trustedUntil - this.now().getTime()),
    );
    // A deferred progress write comes back at the window's end, or sooner for the not-Ready recheck.
    if (deferredMs !== undefined) return { requeueAfter: Math.min(deferredMs, recheckMs ?? deferredMs) };
    return recheckMs === undefined ? undefined : { requeueAfter: recheckMs };
  }

  /** Children this reconcile created (applied while the cache had none): seen as created until the cache shows them. */
  private rememberCreations(outcomes: Outcomes): void {
    for (const o of outcomes.all) {
      if (o.kind !== 'done' || o.action.type !== 'apply' || !o.object) continue;
      const kind = o.action.resource.kind;
      const transform = this.childTransforms.get(kind);
      const { namespace = '', name = '' } = o.object.metadata ?? {};
      if (!transform || this.cachedChild(kind, namespace, name)) continue;
      this.unseen.remember(kind, transform(o.object));
    }
  }

  /** VMIs this reconcile deleted (restarts): seen as being deleted until the cache shows it. */
  private rememberDeletions(outcomes: Outcomes): void {
    for (const o of outcomes.all) {
      const a = o.action;
      if (o.kind !== 'done' || a.type !== 'delete' || a.resource.kind !== VIRTUAL_MACHINE_INSTANCE.kind || !a.preconditionUid) continue;
      this.unseenDeletions.remember(a.resource.kind, a.namespace, a.name, a.preconditionUid);
    }
  }

  private cachedChild(kind: string, namespace: string, name: string): KubeObject | undefined {
    if (kind === VIRTUAL_MACHINE.kind) return this.virtualMachines.get(namespace, name);
    if (kind === POD.kind) return this.processMapperPods.get(namespace, name);
    if (kind === NETWORK_POLICY.kind) return this.isolationPolicies.get(namespace, name);
    if (kind === NETWORK_ATTACHMENT_DEFINITION.kind) return this.nads?.get(namespace, name);
    return this.cloudInitSecrets.get(namespace, name) ?? this.intakeKeySecrets.get(namespace, name);
  }

  private async writeStatus(key: string, ms: MonitoredServer, current: MonitoredServerStatus | undefined, next: MonitoredServerStatus, progressWrites: number, ctx: ReconcileContext): Promise<void> {
    await applyStatus(this.api, MONITORED_SERVER, ms, next, { signal: ctx.signal });
    // Written: a progress slot it held is used up.
    this.progressWrites.release(key);
    this.writtenStatus.set(key, { at: this.now().getTime(), over: ms.metadata.resourceVersion, status: next, progressWrites });
    for (const event of statusEvents(current, next)) this.events.record(ms, event.type, event.reason, event.message);
    for (const event of monitoringGapEvents(current?.lastMonitoringGap, next.lastMonitoringGap)) this.events.record(ms, event.type, event.reason, event.message);
    const closed = closedGap(current?.lastMonitoringGap, next.lastMonitoringGap);
    if (closed) this.gapSeconds?.observe({ cause: closed.cause }, closed.durationSeconds ?? 0);
    const ready = findCondition(next.conditions as Condition[], ConditionType.Ready);
    const before = findCondition(current?.conditions as Condition[] | undefined, ConditionType.Ready);
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
    const plan = planTeardown(ms, observed, this.now(), this.options.networking);
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

/** The soonest of the rechecks that are set. */
function earliest(...delays: Array<number | undefined>): number | undefined {
  const set = delays.filter((d): d is number => d !== undefined);
  return set.length === 0 ? undefined : Math.min(...set);
}
