// virt-handler stand-in — a TEST DOUBLE, not part of the product.
//
// In the test world KubeVirt's own virt-controller and virt-api run; nodes are kwok nodes, so no
// virt-handler can run on them. This stands in for virt-handler on every node, doing what it does as
// far as the API shows it (the pure part is virt-handler-status.ts):
// - reports a VMI Running once virt-controller scheduled it and its launcher pod runs, and Succeeded
//   once it is deleted (Failed if its launcher pod goes away under it once it ran, or is deleted);
// - holds each launcher pod (a finalizer) until the domain has stopped, as the real pod lives until
//   its QEMU exits — otherwise kwok removes the pod at once and virt-controller sees a crash;
// - serves virt-handler's REST API (pause, unpause, freeze, ...) over mutual TLS where virt-api looks
//   for it: the `virt-handler` pod of the node (host network, so its IP is the node's: 127.0.0.1);
// - completes hotplug volume phases (Ready only once the backend, if it has guests, attached the
//   volume to the domain; a refused attach stays MountedToPod with the error) and drives live
//   migrations to completion or failure.
// It writes VMIs as virt-handler's service account (KubeVirt's webhooks decide by that name) and
// pods as the node would (admin credentials, standing in for the kubelet).
import { createServer, type Server } from 'node:https';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createKubeApi, statusCodeOf, type KubeApi } from '../../src/kube/client/rest.ts';
import type { LocalCluster } from '../cluster/local-cluster.ts';
import type { KubeVirtCertificates } from './kubevirt-world.ts';
import { WatchCache } from './watch-cache.ts';
import { FINAL_PHASES, hotplugStatus, migrationStep, pausedStatus, runningStatus, stoppedStatus, volumesToAttach, type Pod, type Vmi } from './virt-handler-status.ts';

export const LAUNCHER_FINALIZER = 'test.hyperspector.io/virt-handler-standin';
const VMI_PATH = '/apis/kubevirt.io/v1/virtualmachineinstances';
const CREATED_BY = 'kubevirt.io/created-by';

/** What a node that runs real guests adds (a later harness option); the default does nothing. */
export interface GuestBackend {
  start?(vmi: Vmi, pod: Pod): Promise<void>;
  stop?(vmi: Vmi): Promise<void>;
  pause?(vmi: Vmi, paused: boolean): Promise<void>;
  /** Attaches a hot-plugged volume to the running domain; rejects when the domain refuses it. Idempotent. */
  attachVolume?(vmi: Vmi, volumeName: string): Promise<void>;
  /** Detaches from the domain every hot-plugged volume that is gone from the VMI spec. */
  detachRemovedVolumes?(vmi: Vmi): Promise<void>;
}

/** Retry delays of a refused attach: doubling from 1 s up to 30 s (no hot loop on a domain that keeps refusing). */
const ATTACH_RETRY_MIN_MS = 1000;
const ATTACH_RETRY_MAX_MS = 30_000;

export class VirtHandlerStandIn {
  private readonly vmis: WatchCache<Vmi & { [key: string]: unknown }>;
  private readonly pods: WatchCache<Pod & { [key: string]: unknown }>;
  private readonly handlerApi: KubeApi;
  private readonly nodeApi: KubeApi;
  private readonly pending = new Set<string>();
  private readonly active = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly paused = new Set<string>();
  private readonly failMigration = new Map<string, string>();
  private readonly unresponsiveNodes = new Set<string>();
  /** Refused attaches by `<vmi uid>/<volume>`: the error, the next try and the current delay. */
  private readonly attachRetries = new Map<string, { error: string; due: number; delayMs: number }>();
  private running = false;
  private podWatchLagMs = 0;
  private wake?: () => void;
  private loop?: Promise<void>;
  private server?: Server;
  private heartbeatTimer?: NodeJS.Timeout;
  errors = 0;
  lastError?: string;
  /** Handler REST calls received (for tests): `PUT /v1/namespaces/ns/virtualmachineinstances/name/pause`. */
  readonly calls: string[] = [];

  constructor(
    private readonly cluster: LocalCluster,
    private readonly certs: KubeVirtCertificates,
    private readonly port: number,
    private readonly backend: GuestBackend = {},
  ) {
    this.handlerApi = createKubeApi(cluster.kubeConfigFor('virtHandler').kubeConfig);
    this.nodeApi = createKubeApi(cluster.kubeConfig);
    this.vmis = new WatchCache(cluster.kubeConfig, VMI_PATH, (vmi, type) => {
      if (type === 'DELETED') void this.stopDeleted(vmi);
      this.enqueue(WatchCache.key(vmi));
    });
    this.pods = new WatchCache(
      cluster.kubeConfig,
      '/api/v1/pods',
      (pod) => {
        const vmiName = pod.metadata?.ownerReferences?.find((o) => o.kind === 'VirtualMachineInstance')?.name;
        if (vmiName) this.enqueue(`${pod.metadata?.namespace}/${vmiName}`);
      },
      'kubevirt.io=virt-launcher',
    );
  }

  async start(): Promise<void> {
    this.running = true;
    this.vmis.start();
    this.pods.start();
    this.loop = this.run();
    // virt-handler's heartbeat (pkg/virt-handler/heartbeat): every minute; virt-controller's node
    // controller marks a node whose heartbeat is older than five minutes unschedulable.
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), 60_000);
    await this.listen();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.heartbeatTimer);
    this.vmis.stop();
    this.pods.stop();
    this.wake?.();
    await this.loop;
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** Renews every responsive node's heartbeat and marks it schedulable, as virt-handler does. */
  private async heartbeat(): Promise<void> {
    for (const node of this.cluster.nodeNames) {
      if (!this.running || this.unresponsiveNodes.has(node)) continue;
      try {
        await this.nodeApi.request({
          method: 'PATCH',
          path: `/api/v1/nodes/${node}`,
          contentType: 'application/merge-patch+json',
          body: { metadata: { labels: { 'kubevirt.io/schedulable': 'true' }, annotations: { 'kubevirt.io/heartbeat': new Date().toISOString().replace(/\.\d+Z$/, 'Z') } } },
        });
      } catch (err) {
        this.errors++;
        this.lastError = `heartbeat of node ${node}: ${(err as Error).message}`;
      }
    }
  }

  /** Makes the next live migration of the VMI `namespace/name` fail with this reason (test knob). */
  failNextMigration(namespace: string, name: string, reason: string): void {
    this.failMigration.set(`${namespace}/${name}`, reason);
  }

  /**
   * Test knob: the stand-in's pod cache lags its VMI cache by this long (as it does under load): a
   * launcher pod younger than this is not seen yet. 0 turns it off.
   */
  setPodWatchLag(ms: number): void {
    this.podWatchLagMs = ms;
  }

  /** Test knob: virt-handler on this node stops acting (as if it crashed), or acts again. */
  setNodeResponsive(node: string, responsive: boolean): void {
    if (responsive) {
      this.unresponsiveNodes.delete(node);
      for (const vmi of this.vmis.list()) if (vmi.status?.nodeName === node) this.enqueue(WatchCache.key(vmi));
    } else {
      this.unresponsiveNodes.add(node);
    }
  }

  isPaused(namespace: string, name: string): boolean {
    return this.paused.has(`${namespace}/${name}`);
  }

  // --- virt-handler's REST API (pkg/virt-handler/rest), reached by virt-api over mutual TLS.
  private async listen(): Promise<void> {
    this.server = createServer(
      {
        key: readFileSync(this.certs.handlerServer.key),
        cert: readFileSync(this.certs.handlerServer.cert),
        ca: readFileSync(this.certs.ca.cert),
        requestCert: true,
        rejectUnauthorized: true,
      },
      (req, res) => {
        const match = /^\/v1\/namespaces\/([^/]+)\/virtualmachineinstances\/([^/]+)\/([a-z]+)$/.exec(req.url ?? '');
        this.calls.push(`${req.method} ${req.url}`);
        req.resume();
        if (!match || req.method !== 'PUT') {
          res.writeHead(404).end();
          return;
        }
        const [, ns = '', name = '', action = ''] = match;
        const key = `${ns}/${name}`;
        const vmi = this.vmis.get(key);
        if (!vmi) {
          res.writeHead(404).end(`VMI ${key} is not on this node`);
          return;
        }
        void this.act(vmi, action).then(
          () => res.writeHead(202).end(),
          (err: Error) => res.writeHead(500).end(err.message),
        );
      },
    );
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.port, '127.0.0.1', () => resolve());
    });
  }

  private async act(vmi: Vmi, action: string): Promise<void> {
    const key = WatchCache.key(vmi);
    switch (action) {
      case 'pause':
        await this.backend.pause?.(vmi, true);
        this.paused.add(key);
        break;
      case 'unpause':
        await this.backend.pause?.(vmi, false);
        this.paused.delete(key);
        break;
      case 'freeze':
      case 'unfreeze':
      case 'softreboot':
      case 'reset':
        break; // accepted; nothing a test reads changes
      default:
        throw new Error(`unknown action ${action}`);
    }
    this.enqueue(key);
  }

  // --- the sync loop: one worker per VMI key, like virt-handler's queue.
  hasSynced(): boolean {
    return this.vmis.hasSynced() && this.pods.hasSynced();
  }

  private enqueue(key: string): void {
    if (this.active.has(key)) this.dirty.add(key);
    else this.pending.add(key);
    this.wake?.();
  }

  private async run(): Promise<void> {
    const workers = new Set<Promise<void>>();
    while (this.running) {
      if (!this.hasSynced() || this.pending.size === 0 || workers.size >= 4) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          setTimeout(resolve, 200);
        });
        continue;
      }
      const key = this.pending.values().next().value as string;
      this.pending.delete(key);
      this.active.add(key);
      const work = this.sync(key)
        .catch((err: Error) => {
          this.errors++;
          this.lastError = `${key}: ${err.message}`;
          setTimeout(() => this.enqueue(key), 500).unref();
        })
        .finally(() => {
          this.active.delete(key);
          workers.delete(work);
          if (this.dirty.delete(key)) this.pending.add(key);
          this.wake?.();
        });
      workers.add(work);
    }
    await Promise.allSettled(workers);
  }

  private launcherPods(vmi: Vmi): Pod[] {
    const pods = this.pods.list().filter((p) => p.metadata?.namespace === vmi.metadata.namespace && p.metadata?.labels?.[CREATED_BY] === vmi.metadata.uid);
    if (this.podWatchLagMs === 0) return pods;
    const now = Date.now();
    const seen = pods.filter((p) => now - new Date(p.metadata?.creationTimestamp ?? 0).getTime() >= this.podWatchLagMs);
    // The lagging pod's event comes once the lag is over.
    if (seen.length < pods.length) setTimeout(() => this.enqueue(WatchCache.key(vmi)), this.podWatchLagMs).unref();
    return seen;
  }

  private async sync(key: string): Promise<void> {
    const vmi = this.vmis.get(key);
    if (!vmi) return;
    if (this.unresponsiveNodes.has(vmi.status?.nodeName ?? '')) return;
    const pods = this.launcherPods(vmi);
    const phase: string = vmi.status?.phase ?? '';
    const now = kubeTime();
    const activePod = pods.find((p) => !p.metadata?.deletionTimestamp && p.spec?.nodeName === vmi.status?.nodeName && p.status?.phase === 'Running');

    if (FINAL_PHASES.has(phase)) {
      await this.backend.stop?.(vmi);
      for (const pod of pods) await this.releasePod(pod);
      return;
    }
    // Hold every launcher pod until the domain stopped (see the file comment), and report the image
    // digests a kubelet reports (virt-controller needs them to render a migration target).
    for (const pod of pods) {
      if (pod.metadata?.deletionTimestamp || pod.status?.phase === 'Succeeded') continue;
      await this.holdPod(pod);
      await this.reportImageDigests(pod);
    }

    if (!vmi.status?.nodeName || (phase !== 'Scheduled' && phase !== 'Running')) return;
    // The pod whose launcher holds the domain: on the VMI's node and not exited. After a migration
    // that is the target's pod (it carries the migration's label); the exited source pod, which a
    // drain then deletes, no longer counts.
    const live = pods.filter((p) => p.spec?.nodeName === vmi.status?.nodeName && p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed');
    const sourcePod = live.find((p) => !p.metadata?.labels?.['kubevirt.io/migrationJobUID']) ?? live[0] ?? pods.find((p) => p.spec?.nodeName === vmi.status?.nodeName) ?? pods[0];
    // No pod in this cache for a Scheduled VMI is a pod not seen yet (the pod watch lags the VMI
    // watch under load), not a pod gone: wait for it (its event wakes this VMI); virt-controller,
    // the real one, fails a VMI whose pod really vanished before it ran. Failing it here instead
    // failed 633 of 1000 server VMIs at N=1000 beside 2000 VMs (KubeVirt then holds a Failed VMI's
    // restart back for minutes).
    const podGone = sourcePod ? !!sourcePod.metadata?.deletionTimestamp : phase === 'Running';
    if (vmi.metadata.deletionTimestamp || podGone) {
      // The domain is shut down: Succeeded for a deletion; Failed when its pod went away under it.
      await this.backend.stop?.(vmi);
      const status = vmi.metadata.deletionTimestamp ? stoppedStatus(vmi, now) : { ...stoppedStatus(vmi, now), phase: 'Failed', reason: 'PodDeleted' };
      if (!vmi.metadata.deletionTimestamp) status.phaseTransitionTimestamps[status.phaseTransitionTimestamps.length - 1].phase = 'Failed';
      await this.writeVmi(vmi, status);
      return;
    }
    if (phase === 'Scheduled') {
      if (!activePod || !podIsRunning(activePod)) return;
      await this.backend.start?.(vmi, activePod);
      await this.writeVmi(vmi, runningStatus(vmi, activePod, now));
      return;
    }
    // Running: pause state, hotplug, migration — one write per step, each from the fresh cache.
    const paused = pausedStatus(vmi, this.paused.has(key), now);
    if (paused) return this.writeVmi(vmi, paused);
    await this.backend.detachRemovedVolumes?.(vmi);
    const failures = await this.attachVolumes(vmi);
    const hotplug = hotplugStatus(vmi, failures);
    if (hotplug) return this.writeVmi(vmi, hotplug);
    const step = migrationStep(vmi, now, this.failMigration.get(key));
    if (step) {
      if (step.status.migrationState?.failed) this.failMigration.delete(key);
      await this.writeVmi(vmi, step.status, step.labels);
      const state = step.status.migrationState;
      // The launcher that no longer holds the domain exits: the source's after a migration, the
      // target's after a failed one (virt-handler on the target tears the domain down), so its pod
      // no longer counts as one of the VMI's active pods and the next migration may start.
      if (state?.completed && !state.failed) await this.completeLauncherPod(vmi, state.sourcePod as string | undefined);
      if (state?.failed) await this.completeLauncherPod(vmi, state.targetPod as string | undefined);
      return;
    }
  }

  /**
   * Attaches the volumes due (MountedToPod) to the domain through the backend, before the status
   * says Ready: what the domain refuses is returned (volume → error) and tried again later, with a
   * growing delay.
   */
  private async attachVolumes(vmi: Vmi): Promise<Map<string, string>> {
    const failures = new Map<string, string>();
    if (!this.backend.attachVolume) return failures;
    const key = WatchCache.key(vmi);
    for (const volume of volumesToAttach(vmi)) {
      const retryKey = `${vmi.metadata.uid}/${volume}`;
      const retry = this.attachRetries.get(retryKey);
      if (retry && Date.now() < retry.due) {
        failures.set(volume, retry.error);
        continue;
      }
      try {
        await this.backend.attachVolume(vmi, volume);
        this.attachRetries.delete(retryKey);
      } catch (err) {
        const delayMs = retry ? Math.min(retry.delayMs * 2, ATTACH_RETRY_MAX_MS) : ATTACH_RETRY_MIN_MS;
        const error = (err as Error).message;
        this.attachRetries.set(retryKey, { error, due: Date.now() + delayMs, delayMs });
        failures.set(volume, error);
        this.errors++;
        this.lastError = `${key}: attach ${volume}: ${error}`;
        setTimeout(() => this.enqueue(key), delayMs).unref();
      }
    }
    return failures;
  }

  /**
   * A VMI gone from the API: its domain is shut down and its launcher pods released. The sync of its
   * key may never see it again (a VMI of the same name can replace it at once, e.g. a VM restart).
   */
  private async stopDeleted(vmi: Vmi): Promise<void> {
    try {
      await this.backend.stop?.(vmi);
      for (const pod of this.launcherPods(vmi)) await this.releasePod(pod);
    } catch (err) {
      this.errors++;
      this.lastError = `${WatchCache.key(vmi)} (deleted, uid ${vmi.metadata.uid}): ${(err as Error).message}`;
    }
  }

  /** A virt-launcher whose domain is gone exits: its pod Succeeds and is released. */
  private async completeLauncherPod(vmi: Vmi, podName: string | undefined): Promise<void> {
    const pod = this.launcherPods(vmi).find((p) => p.metadata?.name === podName);
    if (!pod) return;
    const finishedAt = kubeTime();
    await this.patchPodStatus(pod, {
      status: {
        phase: 'Succeeded',
        containerStatuses: (pod.status?.containerStatuses ?? []).map((c) => ({ ...c, ready: false, started: false, state: { terminated: { exitCode: 0, reason: 'Completed', finishedAt } } })),
      },
    });
    await this.releasePod(pod);
  }

  /** Pod status as the node's kubelet writes it (a merge patch; a vanished pod is fine). */
  private async patchPodStatus(pod: Pod, body: object): Promise<void> {
    await this.nodeApi
      .request({ method: 'PATCH', path: `/api/v1/namespaces/${pod.metadata?.namespace}/pods/${pod.metadata?.name}/status`, contentType: 'application/merge-patch+json', body })
      .catch(ignore(404));
  }

  /** A kubelet fills containerStatuses[].imageID from the runtime; kwok leaves it empty. */
  private async reportImageDigests(pod: Pod): Promise<void> {
    const statuses = [...(pod.status?.containerStatuses ?? []), ...(pod.status?.initContainerStatuses ?? [])];
    if (pod.status?.phase !== 'Running' || statuses.length === 0 || statuses.every((c) => c.imageID)) return;
    const withDigest = (list: typeof statuses | undefined) => list?.map((c) => ({ ...c, imageID: c.imageID || imageDigest(c.image) }));
    // resourceVersion: a conflict fails the sync, which is retried from the fresh cache.
    await this.patchPodStatus(pod, {
      metadata: { resourceVersion: pod.metadata?.resourceVersion },
      status: {
        containerStatuses: withDigest(pod.status?.containerStatuses),
        ...(pod.status?.initContainerStatuses ? { initContainerStatuses: withDigest(pod.status.initContainerStatuses) } : {}),
      },
    });
  }

  private async holdPod(pod: Pod): Promise<void> {
    if (pod.metadata?.finalizers?.includes(LAUNCHER_FINALIZER)) return;
    await this.nodeApi
      .request({
        method: 'PATCH',
        path: `/api/v1/namespaces/${pod.metadata?.namespace}/pods/${pod.metadata?.name}`,
        contentType: 'application/merge-patch+json',
        body: { metadata: { resourceVersion: pod.metadata?.resourceVersion, finalizers: [...(pod.metadata?.finalizers ?? []), LAUNCHER_FINALIZER] } },
      })
      // A conflict is retried (the sync fails and is requeued): an unheld pod would vanish at once.
      .catch(ignore(404));
  }

  private async releasePod(pod: Pod): Promise<void> {
    const finalizers = pod.metadata?.finalizers ?? [];
    const index = finalizers.indexOf(LAUNCHER_FINALIZER);
    if (index < 0) return;
    await this.nodeApi
      .request({
        method: 'PATCH',
        path: `/api/v1/namespaces/${pod.metadata?.namespace}/pods/${pod.metadata?.name}`,
        contentType: 'application/json-patch+json',
        body: [
          { op: 'test', path: `/metadata/finalizers/${index}`, value: LAUNCHER_FINALIZER },
          { op: 'remove', path: `/metadata/finalizers/${index}` },
        ],
      })
      .catch(ignore(404, 409, 422));
  }

  /** virt-handler updates the whole VMI (it has no status subresource), with its resourceVersion. */
  private async writeVmi(vmi: Vmi, status: unknown, labels?: Record<string, string | null>): Promise<void> {
    const metadata = { ...vmi.metadata };
    if (labels) {
      const next = { ...(metadata.labels ?? {}) };
      for (const [k, v] of Object.entries(labels)) {
        if (v === null) delete next[k];
        else next[k] = v;
      }
      metadata.labels = next;
    }
    await this.handlerApi
      .request({
        method: 'PUT',
        path: `/apis/kubevirt.io/v1/namespaces/${vmi.metadata.namespace}/virtualmachineinstances/${vmi.metadata.name}`,
        body: { ...vmi, metadata, status },
      })
      .catch(ignore(404, 409));
  }
}

/** The launcher pod runs: phase Running and its compute container running (controller.IsPodReady). */
function podIsRunning(pod: Pod): boolean {
  return pod.status?.phase === 'Running' && !!pod.status.containerStatuses?.find((c) => c.name === 'compute')?.state?.running;
}

/**
 * Now as Kubernetes serializes a metav1.Time: RFC 3339 in whole seconds. KubeVirt's controllers
 * guard their patches with JSON-patch `test` ops on values they re-serialize from their cache, so
 * a timestamp written with milliseconds would fail every such test.
 */
function kubeTime(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

/** A stable digest reference for an image, in the form a container runtime reports. */
function imageDigest(image: string): string {
  const repository = image.replace(/[:@][^/]*$/, '');
  return `${repository}@sha256:${createHash('sha256').update(image).digest('hex')}`;
}

function ignore(...codes: number[]) {
  return (err: unknown) => {
    if (!codes.includes(statusCodeOf(err) ?? 0)) throw err;
  };
}
