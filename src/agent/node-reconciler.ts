// The node agent's reconciles, independent of where the objects come from (informer caches in the
// agent, plain objects in tests) and of how status is written. Three kinds of key:
//   mirror/<namespace>/<name>  one MonitoredServer: install or repair its mirror, report MirrorAttached
//   sweep                      every launcher pod on the node: remove mirrors nobody wants any more
//   overlay                    the node's IDS overlay devices, FDB peers and underlay guard
// Each reads the desired state from the cache and the actual state from the kernel; nothing the
// kernel holds is remembered between calls.
import type { MonitoredServer } from '../api/v1alpha1/monitoredserver-types.ts';
import { reconcileVxlanOverlay, type KernelCommands, type NetnsRef } from '../dataplane/index.ts';
import { ip } from '../dataplane/kernel-commands.ts';
import type { ConditionUpdate } from '../kube/client/conditions.ts';
import { type Logger, errorField, silentLogger } from '../kube/util/logger.ts';
import type { Pod, VirtualMachineInstance } from '../kube/client/objects.ts';
import type { ReconcileResult } from '../kube/runtime/workers.ts';
import { decideIsolation, IsolationReason } from './desired-isolation.ts';
import { ensureTapIsolation, removeTapIsolation } from '../dataplane/tc-isolation.ts';
import { decideMirror, MirrorReason, type ClusterView, type DesiredMirror, type MirrorDecision, type MirrorSettings } from './desired-mirrors.ts';
import type { AgentMetrics } from './metrics.ts';
import { MirrorReconciler, MirrorWaitingError } from './mirror-reconciler.ts';
import { interfaceHolding, overlayPeers, overlaySpec, type Node, type OverlaySettings } from './overlay.ts';
import type { PodProcessFinder } from './pod-processes.ts';

export const SWEEP_KEY = 'sweep';
export const OVERLAY_KEY = 'overlay';
const MIRROR_PREFIX = 'mirror/';
export const MIRROR_ATTACHED = 'MirrorAttached';

export function mirrorKey(namespace: string, name: string): string {
  return `${MIRROR_PREFIX}${namespace}/${name}`;
}

/** What the node reconciler reads: the agent's caches, or fixed objects in tests. */
export interface AgentCache extends ClusterView {
  monitoredServer(namespace: string, name: string): MonitoredServer | undefined;
  monitoredServers(): readonly MonitoredServer[];
  idsVmis(): readonly VirtualMachineInstance[];
  node(name: string): Node | undefined;
  nodes(): readonly Node[];
}

/** Where MirrorAttached goes: the MonitoredServer's status, under the agent's own field manager. */
export interface MirrorStatusWriter {
  /** Sets the condition (no write when it already says this). */
  set(ms: MonitoredServer, update: Omit<ConditionUpdate, 'type'>): Promise<void>;
  /** Gives up this agent's MirrorAttached (no write when it owns none). */
  release(ms: MonitoredServer): Promise<void>;
}

export type AgentEventType = 'Normal' | 'Warning';
export interface AgentEvents {
  onMonitoredServer(ms: MonitoredServer, type: AgentEventType, reason: string, message: string): void;
  onNode(type: AgentEventType, reason: string, message: string): void;
}

export const AgentEventReason = {
  MirrorAttached: 'MirrorAttached',
  MirrorFailed: 'MirrorFailed',
  MirrorRemoved: 'MirrorRemoved',
  SweepFailed: 'MirrorSweepFailed',
  OverlayReconciled: 'OverlayReconciled',
  OverlayFailed: 'OverlayFailed',
  /** The Isolate response: the server's taps drop every frame (after the mirror copy), and when released. */
  NetworkIsolated: 'NetworkIsolated',
  NetworkIsolationRemoved: 'NetworkIsolationRemoved',
  IsolationFailed: 'IsolationFailed',
} as const;

export interface NodeReconcilerOptions {
  cache: AgentCache;
  kernel: KernelCommands;
  processes: PodProcessFinder;
  status: MirrorStatusWriter;
  /** Where NetworkIsolated goes (the same contract as MirrorAttached's writer, its own field manager); absent: not reported. */
  isolationStatus?: MirrorStatusWriter;
  events?: AgentEvents;
  metrics?: AgentMetrics;
  logger?: Logger;
  mirror: MirrorSettings;
  /** Undefined: the agent keeps no overlay (another IDS network provider). */
  overlay?: OverlaySettings;
  nodeNetns: NetnsRef;
  /** A mirror that waits on a launcher pod's process is looked at again after this long (ms). */
  waitingRecheckMs?: number;
  /** A node whose overlay cannot be built yet (no InternalIP, ...) is looked at again after this long (ms). */
  overlayRecheckMs?: number;
}

const noEvents: AgentEvents = { onMonitoredServer: () => {}, onNode: () => {} };

export class NodeReconciler {
  private readonly mirrors: MirrorReconciler;
  private readonly log: Logger;
  private readonly events: AgentEvents;
  /** Last outcome per MonitoredServer on this node, for the metrics only. */
  private readonly outcomes = new Map<string, 'attached' | 'waiting' | 'failed'>();

  constructor(private readonly options: NodeReconcilerOptions) {
    this.mirrors = new MirrorReconciler(options.kernel, options.processes);
    this.log = options.logger ?? silentLogger();
    this.events = options.events ?? noEvents;
  }

  /** Every key there is now: for the first pass and periodic resyncs. */
  allKeys(): string[] {
    const keys = this.options.cache.monitoredServers().map((ms) => mirrorKey(ms.metadata.namespace ?? '', ms.metadata.name ?? ''));
    return [...keys, SWEEP_KEY, ...(this.options.overlay ? [OVERLAY_KEY] : [])];
  }

  async reconcile(key: string, log: Logger = this.log): Promise<ReconcileResult> {
    if (key === SWEEP_KEY) return this.sweep(log);
    if (key === OVERLAY_KEY) return this.reconcileOverlay(log);
    if (key.startsWith(MIRROR_PREFIX)) {
      const rest = key.slice(MIRROR_PREFIX.length);
      const slash = rest.indexOf('/');
      const [namespace, name] = [rest.slice(0, slash), rest.slice(slash + 1)];
      // The isolation is enforced even when the mirror fails: the mirror's error is rethrown after it.
      let mirrorError: unknown;
      const mirrored = await this.reconcileMirror(namespace, name, log).catch((err: unknown) => {
        mirrorError = err ?? new Error('mirror reconcile failed');
        return undefined;
      });
      const isolated = await this.reconcileIsolation(namespace, name, log);
      if (mirrorError !== undefined) throw mirrorError;
      const after = [mirrored?.requeueAfter, isolated?.requeueAfter].filter((ms): ms is number => ms !== undefined);
      return after.length > 0 ? { requeueAfter: Math.min(...after) } : mirrored;
    }
    throw new Error(`Unknown agent key ${key}`);
  }

  /** The decision for every MonitoredServer in the cache. */
  decisions(): MirrorDecision[] {
    return this.options.cache.monitoredServers().map((ms) => decideMirror(ms, this.options.cache, this.options.mirror));
  }

  desiredMirrors(): DesiredMirror[] {
    return this.decisions().flatMap((d) => (d.kind === 'mirror' ? [d.mirror] : []));
  }

  async reconcileMirror(namespace: string, name: string, log: Logger): Promise<ReconcileResult> {
    const key = `${namespace}/${name}`;
    const ms = this.options.cache.monitoredServer(namespace, name);
    if (!ms) {
      // Deleted: the sweep removes whatever of it is left in the kernel.
      this.setOutcome(key, undefined);
      return;
    }
    const decision = decideMirror(ms, this.options.cache, this.options.mirror);
    if (decision.kind === 'none') {
      this.setOutcome(key, undefined);
      if (!ms.metadata.deletionTimestamp) await this.options.status.release(ms);
      return;
    }
    const generation = ms.metadata.generation;
    const gen = generation === undefined ? {} : { observedGeneration: generation };
    if (decision.kind === 'waiting') {
      this.setOutcome(key, 'waiting');
      await this.options.status.set(ms, { status: 'False', reason: decision.reason, message: decision.message, ...gen });
      return;
    }
    const { mirror } = decision;
    try {
      const { commandsRun } = await this.mirrors.ensure(mirror);
      this.options.metrics?.commandsRun('mirror', commandsRun);
      this.setOutcome(key, 'attached');
      const message = `the ${mirror.direction === 'Both' ? 'traffic' : mirror.direction === 'Ingress' ? 'received traffic' : 'sent traffic'} of ${mirror.serverTap} in launcher pod ${mirror.serverPod} is mirrored over ${mirror.linkName} into ${mirror.idsBridge} of IDS launcher pod ${mirror.idsPod} on node ${this.options.mirror.nodeName}`;
      await this.options.status.set(ms, { status: 'True', reason: MirrorReason.Attached, message, ...gen });
      if (commandsRun > 0) {
        log.info('Attached mirror', { monitoredServer: key, serverPod: mirror.serverPod, idsPod: mirror.idsPod, link: mirror.linkName, commandsRun });
        this.events.onMonitoredServer(ms, 'Normal', AgentEventReason.MirrorAttached, message);
      }
      return;
    } catch (err) {
      if (err instanceof MirrorWaitingError) {
        this.setOutcome(key, 'waiting');
        await this.options.status.set(ms, { status: 'False', reason: err.reason, message: err.message, ...gen });
        // A process appearing in /proc is no API event: look again soon.
        return { requeueAfter: this.options.waitingRecheckMs ?? 2_000 };
      }
      this.setOutcome(key, 'failed');
      this.options.metrics?.reconcileError('mirror');
      const message = `mirroring ${mirror.serverTap} of ${mirror.serverPod} into ${mirror.idsPod} failed: ${errorField(err)}`.slice(0, 2000);
      this.events.onMonitoredServer(ms, 'Warning', AgentEventReason.MirrorFailed, message.slice(0, 1024));
      await this.options.status.set(ms, { status: 'False', reason: MirrorReason.MirrorFailed, message, ...gen });
      throw err;
    }
  }

  /**
   * Enforces or removes the Isolate response on the server's taps (desired-isolation.ts), and
   * reports NetworkIsolated. Level-triggered: the kernel is read every time.
   */
  async reconcileIsolation(namespace: string, name: string, log: Logger): Promise<ReconcileResult> {
    const ms = this.options.cache.monitoredServer(namespace, name);
    if (!ms) return; // deleted: the sweep removes what is left
    const writer = this.options.isolationStatus;
    const decision = decideIsolation(ms, this.options.cache, this.options.mirror.nodeName, decideMirror(ms, this.options.cache, this.options.mirror));
    const generation = ms.metadata.generation;
    const gen = generation === undefined ? {} : { observedGeneration: generation };
    const key = decision.key;
    if (decision.kind === 'none') {
      const netns = decision.serverPodUid ? await this.options.processes.netnsOfPod(decision.serverPodUid) : undefined;
      if (netns) {
        const { commandsRun } = await removeTapIsolation(this.options.kernel, netns);
        this.options.metrics?.commandsRun('isolation', commandsRun);
        if (commandsRun > 0) {
          log.info('Removed the isolation of the server taps', { monitoredServer: key, commandsRun });
          this.events.onMonitoredServer(ms, 'Normal', AgentEventReason.NetworkIsolationRemoved, `the server's taps pass traffic again: the isolation was released (${commandsRun} commands)`);
        }
      }
      if (!ms.metadata.deletionTimestamp) await writer?.release(ms);
      return;
    }
    if (decision.kind === 'waiting') {
      await writer?.set(ms, { status: 'False', reason: decision.reason, message: decision.message, ...gen });
      return decision.reason === IsolationReason.WaitingForServerPod ? { requeueAfter: this.options.waitingRecheckMs ?? 2_000 } : undefined;
    }
    const netns = await this.options.processes.netnsOfPod(decision.serverPodUid);
    if (!netns) {
      await writer?.set(ms, { status: 'False', reason: IsolationReason.WaitingForServerPod, message: `no process of launcher pod ${decision.serverPod} runs on this node yet`, ...gen });
      return { requeueAfter: this.options.waitingRecheckMs ?? 2_000 };
    }
    const taps = decision.taps.map((t) => t.tap).join(', ');
    try {
      const { commandsRun } = await ensureTapIsolation(this.options.kernel, netns, decision.taps);
      this.options.metrics?.commandsRun('isolation', commandsRun);
      const message = `the node agent drops every frame to and from ${taps} of launcher pod ${decision.serverPod} on node ${this.options.mirror.nodeName}, after the mirror's copy to the IDS VM`;
      await writer?.set(ms, { status: 'True', reason: IsolationReason.Isolated, message, ...gen });
      if (commandsRun > 0) {
        log.info('Isolated the server taps', { monitoredServer: key, serverPod: decision.serverPod, taps, commandsRun });
        this.events.onMonitoredServer(ms, 'Warning', AgentEventReason.NetworkIsolated, message);
      }
      return;
    } catch (err) {
      this.options.metrics?.reconcileError('isolation');
      const message = `isolating ${taps} of ${decision.serverPod} failed: ${errorField(err)}`.slice(0, 2000);
      this.events.onMonitoredServer(ms, 'Warning', AgentEventReason.IsolationFailed, message.slice(0, 1024));
      await writer?.set(ms, { status: 'False', reason: IsolationReason.IsolationFailed, message, ...gen });
      throw err;
    }
  }

  async sweep(log: Logger): Promise<ReconcileResult> {
    const pods = this.options.cache.launcherPods().filter((p): p is Pod & { metadata: { uid: string } } => Boolean(p.metadata?.uid));
    this.options.processes.retainOnly(pods.map((p) => p.metadata.uid));
    await this.sweepIsolation(pods, log);
    const result = await this.mirrors.sweep(
      pods.map((p) => ({ uid: p.metadata.uid, name: `${p.metadata.namespace}/${p.metadata.name}` })),
      this.desiredMirrors(),
    );
    this.options.metrics?.commandsRun('sweep', result.commandsRun);
    if (result.commandsRun > 0) {
      log.info('Removed mirrors no MonitoredServer wants', { commandsRun: result.commandsRun });
      this.events.onNode('Normal', AgentEventReason.MirrorRemoved, `removed mirror filters and links no MonitoredServer wants (${result.commandsRun} commands)`);
    }
    if (result.errors.length > 0) {
      this.options.metrics?.reconcileError('sweep');
      const message = result.errors.map((e) => `${e.pod}: ${e.message}`).join('; ').slice(0, 1024);
      this.events.onNode('Warning', AgentEventReason.SweepFailed, message);
      throw new Error(`Sweeping mirrors failed in ${result.errors.length} launcher pod(s): ${message}`);
    }
  }

  /** Removes isolation filters and sinks of ours from launcher pods no isolation holds for (a deleted MonitoredServer). */
  private async sweepIsolation(pods: ReadonlyArray<Pod & { metadata: { uid: string } }>, log: Logger): Promise<void> {
    const { cache, mirror } = this.options;
    const claimed = new Set(
      cache.monitoredServers().flatMap((ms) => {
        const d = decideIsolation(ms, cache, mirror.nodeName, decideMirror(ms, cache, mirror));
        return d.kind === 'isolate' ? [d.serverPodUid] : [];
      }),
    );
    const errors: string[] = [];
    let commandsRun = 0;
    for (const pod of pods) {
      if (claimed.has(pod.metadata.uid)) continue;
      try {
        const netns = await this.options.processes.netnsOfPod(pod.metadata.uid);
        if (netns) commandsRun += (await removeTapIsolation(this.options.kernel, netns)).commandsRun;
      } catch (err) {
        errors.push(`${pod.metadata.namespace}/${pod.metadata.name}: ${errorField(err)}`);
      }
    }
    this.options.metrics?.commandsRun('sweep', commandsRun);
    if (commandsRun > 0) log.info('Removed isolations no MonitoredServer holds', { commandsRun });
    if (errors.length > 0) {
      this.events.onNode('Warning', AgentEventReason.SweepFailed, errors.join('; ').slice(0, 1024));
      throw new Error(`Sweeping isolations failed in ${errors.length} launcher pod(s): ${errors.join('; ')}`);
    }
  }

  async reconcileOverlay(log: Logger): Promise<ReconcileResult> {
    const settings = this.options.overlay;
    if (!settings) return;
    const { cache, kernel, nodeNetns } = this.options;
    const self = cache.node(settings.nodeName);
    const peers = overlayPeers(cache.nodes(), cache.idsVmis(), settings.nodeName);
    let detected: string | undefined;
    const local = self?.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
    if (!settings.underlayInterface && local) {
      detected = interfaceHolding(await kernel.query(nodeNetns, ip('addr', 'show')), local);
    }
    const decision = overlaySpec(settings, self, peers, detected);
    if ('waiting' in decision) {
      log.info('Waiting to build the IDS overlay', { reason: decision.waiting });
      return { requeueAfter: this.options.overlayRecheckMs ?? 30_000 };
    }
    try {
      const { commandsRun } = await reconcileVxlanOverlay(kernel, nodeNetns, decision.spec);
      this.options.metrics?.commandsRun('overlay', commandsRun);
      this.options.metrics?.setOverlayPeers(peers.length);
      if (commandsRun > 0) {
        log.info('Reconciled IDS overlay', { bridge: settings.bridge, vxlan: settings.vxlan, peers, commandsRun });
        this.events.onNode('Normal', AgentEventReason.OverlayReconciled, `IDS overlay ${settings.vxlan} (VNI ${settings.vni}) on ${decision.spec.underlayDevice}: ${peers.length} peer(s) ${peers.join(', ') || '-'}; ${commandsRun} command(s) run`);
      }
    } catch (err) {
      this.options.metrics?.reconcileError('overlay');
      this.events.onNode('Warning', AgentEventReason.OverlayFailed, `IDS overlay ${settings.vxlan}: ${errorField(err)}`.slice(0, 1024));
      throw err;
    }
  }

  private setOutcome(key: string, outcome: 'attached' | 'waiting' | 'failed' | undefined): void {
    if (outcome === undefined) this.outcomes.delete(key);
    else this.outcomes.set(key, outcome);
    const count = (o: string) => [...this.outcomes.values()].filter((v) => v === o).length;
    this.options.metrics?.setMirrors({ attached: count('attached'), waiting: count('waiting'), failed: count('failed') });
  }
}
