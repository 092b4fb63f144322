// A kubelet for selected pods — a TEST DOUBLE: on nodes that run real guests, the pods the operator
// creates (process mapper, later the node agent; chosen by a label selector) run as real processes
// of this machine (pod-process.ts says how a container becomes a process), each in a cgroup named
// after its pod UID (pod-cgroup.ts), never outliving the harness (ManagedProcess). Like a kubelet it
// restarts a container that exits (restartPolicy Always, with back-off), runs the HTTP readiness
// probe, reports all of it in the pod's status, and stops the process when the pod is deleted.
//
// kwok also manages these nodes: its pod-ready stage writes a Running/Ready status once, to pods
// without status.podIP, and its pod-delete stage empties the finalizers of a deleted pod and
// removes it at once. So the status written here always carries a podIP (kwok then never matches
// the pod again), every change of the pod is compared with what the process really does and
// rewritten when it differs (which also undoes a kwok write that raced ours), and a deleted pod's
// process is stopped as soon as the deletion (or the pod's disappearance) is seen, not before.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { createKubeApi, statusCodeOf, type KubeApi } from '../../src/kube/client/rest.ts';
import { freePort } from '../free-port.ts';
import { REPO_ROOT } from '../repo-root.ts';
import { WatchCache } from '../kubevirt/watch-cache.ts';
import { ManagedProcess } from '../managed-process.ts';
import { PodCgroup, type QosClass } from './pod-cgroup.ts';
import { podProcessSpec, UnsupportedPodError, type ProcessSpec } from './pod-process.ts';

type Pod = k8s.V1Pod & { [key: string]: unknown };

export const PROCESS_MAPPER_SELECTOR = 'hyperspector.io/role=process-mapper';
/** The pods' IP and the nodes' IP: processes listen on the host's loopback (see pod-process.ts). */
export const LOOPBACK = '127.0.0.1';
/** Where client libraries look for the pod's service-account token (/var/run is /run). */
const SERVICE_ACCOUNT_DIR = '/run/secrets/kubernetes.io/serviceaccount';
const MAX_BACKOFF_MS = 10_000;

export interface PodRunnerOptions {
  /** Which pods run for real (default: the process mapper's). */
  labelSelector?: string;
  /** Nodes that run real guests (default: every node). */
  nodes?: string[];
  /** Where container logs go (default: the pod's temporary directory, removed with it). */
  logDir?: string;
  log?: (line: string) => void;
}

interface Termination {
  exitCode: number | null;
  startedAt: string;
  finishedAt: string;
}

/** One pod this runner runs: its container's process and what a kubelet would remember of it. */
export interface RunningPod {
  readonly key: string;
  readonly uid: string;
  readonly nodeName: string;
  readonly container: string;
  readonly dir: string;
  readonly cgroup: PodCgroup;
  readonly hostPorts: Map<number, number>;
  readonly createdAt: string;
  readonly logFile: string;
  process?: ManagedProcess;
  spec?: ProcessSpec;
  startedAt?: string;
  ready: boolean;
  readyChangedAt: string;
  restartCount: number;
  lastTermination?: Termination;
  notBefore: number;
  waiting?: { reason: string; message: string };
  stopping: boolean;
  probeTimer?: NodeJS.Timeout;
}

function qosClassOf(pod: Pod): QosClass {
  const qos = pod.status?.qosClass;
  return qos === 'Guaranteed' || qos === 'Burstable' ? qos : 'BestEffort';
}

export class RealPodRunner {
  private readonly pods: WatchCache<Pod>;
  private readonly api: KubeApi;
  private readonly core: k8s.CoreV1Api;
  private readonly kubeConfig: k8s.KubeConfig;
  private readonly records = new Map<string, RunningPod>();
  private readonly chains = new Map<string, Promise<void>>();
  private readonly log: (line: string) => void;
  private stopped = false;
  errors = 0;
  lastError?: string;

  private constructor(
    kubeConfig: k8s.KubeConfig,
    private readonly options: PodRunnerOptions,
  ) {
    this.api = createKubeApi(kubeConfig);
    this.kubeConfig = kubeConfig;
    this.core = kubeConfig.makeApiClient(k8s.CoreV1Api);
    this.log = options.log ?? (() => {});
    this.pods = new WatchCache<Pod>(kubeConfig, '/api/v1/pods', (pod) => this.enqueue(WatchCache.key(pod)), options.labelSelector ?? PROCESS_MAPPER_SELECTOR);
  }

  static start(kubeConfig: k8s.KubeConfig, options: PodRunnerOptions = {}): RealPodRunner {
    const runner = new RealPodRunner(kubeConfig, options);
    runner.pods.start();
    return runner;
  }

  /** The pods running (or restarting) here. */
  list(): RunningPod[] {
    return [...this.records.values()];
  }

  get(namespace: string, name: string): RunningPod | undefined {
    return this.records.get(`${namespace}/${name}`);
  }

  /** host:port where a pod's containerPort is reachable from this machine. */
  address(namespace: string, name: string, containerPort: number): string | undefined {
    const port = this.get(namespace, name)?.hostPorts.get(containerPort);
    return port === undefined ? undefined : `${LOOPBACK}:${port}`;
  }

  /** Process ids of every container process still running. */
  pids(): number[] {
    return this.list().flatMap((r) => (r.process?.running ? [r.process.pid] : []));
  }

  private enqueue(key: string): void {
    if (this.stopped) return;
    const previous = this.chains.get(key) ?? Promise.resolve();
    const next = previous
      .then(() => this.sync(key))
      .catch((err: Error) => {
        this.errors++;
        this.lastError = `${key}: ${err.message}`;
        this.log(`pod ${key}: ${err.message}`);
        setTimeout(() => this.enqueue(key), 1000).unref();
      })
      .finally(() => {
        if (this.chains.get(key) === next) this.chains.delete(key);
      });
    this.chains.set(key, next);
  }

  private isRealNode(node: string | undefined): node is string {
    return !!node && (!this.options.nodes || this.options.nodes.includes(node));
  }

  private async sync(key: string): Promise<void> {
    if (this.stopped) return;
    const pod = this.pods.get(key);
    let record = this.records.get(key);
    if (record && (!pod || pod.metadata?.deletionTimestamp || pod.metadata?.uid !== record.uid)) {
      await this.remove(record);
      record = undefined;
    }
    if (!pod || pod.metadata?.deletionTimestamp || !this.isRealNode(pod.spec?.nodeName)) return;
    const container = pod.spec?.containers[0];
    if (!container) return;
    if (!record) {
      const hostPorts = new Map<number, number>();
      for (const p of container.ports ?? []) hostPorts.set(p.containerPort, await freePort());
      const dir = mkdtempSync(join(tmpdir(), `hs-pod-${process.pid}-${pod.metadata?.name}-`)); // the pid: see leftovers.ts
      const now = new Date().toISOString();
      record = {
        key,
        uid: pod.metadata!.uid!,
        nodeName: pod.spec!.nodeName!,
        container: container.name,
        dir,
        cgroup: new PodCgroup(pod.metadata!.uid!, qosClassOf(pod), randomBytes(32).toString('hex')),
        hostPorts,
        createdAt: now,
        logFile: join(this.options.logDir ?? dir, `pod-${pod.metadata?.namespace}-${pod.metadata?.name}-${container.name}.log`),
        ready: false,
        readyChangedAt: now,
        restartCount: 0,
        notBefore: 0,
        stopping: false,
      };
      this.records.set(key, record);
    }
    if (!record.process?.running && Date.now() >= record.notBefore) await this.startContainer(pod, container, record);
    await this.writeStatus(pod, record);
  }

  private async configMapsOf(pod: Pod): Promise<Map<string, Record<string, string>>> {
    const names = new Set<string>();
    for (const v of pod.spec?.volumes ?? []) if (v.configMap?.name) names.add(v.configMap.name);
    for (const c of pod.spec?.containers ?? []) for (const e of c.env ?? []) if (e.valueFrom?.configMapKeyRef?.name) names.add(e.valueFrom.configMapKeyRef.name);
    const out = new Map<string, Record<string, string>>();
    for (const name of names) {
      try {
        const cm = await this.core.readNamespacedConfigMap({ namespace: pod.metadata!.namespace!, name });
        out.set(name, cm.data ?? {});
      } catch (err) {
        if ((err as { code?: number }).code !== 404) throw err;
      }
    }
    return out;
  }

  /** The Secrets the pod's env names (secretKeyRef), data decoded; a missing one is left out (the container waits). */
  private async secretsOf(pod: Pod): Promise<Map<string, Record<string, string>>> {
    const names = new Set<string>();
    for (const c of pod.spec?.containers ?? []) for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef?.name) names.add(e.valueFrom.secretKeyRef.name);
    const out = new Map<string, Record<string, string>>();
    for (const name of names) {
      try {
        const secret = await this.core.readNamespacedSecret({ namespace: pod.metadata!.namespace!, name });
        out.set(name, Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')])));
      } catch (err) {
        if ((err as { code?: number }).code !== 404) throw err;
      }
    }
    return out;
  }

  private async startContainer(pod: Pod, container: k8s.V1Container, record: RunningPod): Promise<void> {
    try {
      record.spec = podProcessSpec(pod, container, {
        repoRoot: REPO_ROOT,
        volumesDir: join(record.dir, 'volumes'),
        configMaps: await this.configMapsOf(pod),
        secrets: await this.secretsOf(pod),
        hostPorts: record.hostPorts,
        nodeIp: LOOPBACK,
      });
    } catch (err) {
      if (!(err instanceof UnsupportedPodError)) throw err;
      // As kubelet: the container waits (a missing ConfigMap may come), retried shortly.
      record.waiting = { reason: 'CreateContainerConfigError', message: err.message };
      record.notBefore = Date.now() + 2000;
      setTimeout(() => this.enqueue(record.key), 2000).unref();
      return;
    }
    for (const [path, content] of record.spec.files) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, content);
    }
    let identity: string[] = [];
    if (pod.spec?.automountServiceAccountToken === true) {
      // As kubelet's projected kube-api-access volume: a token bound to this pod, the cluster CA and
      // the namespace at the in-cluster path, in a mount namespace of the container's own.
      const saDir = join(record.dir, 'serviceaccount');
      await this.writeServiceAccountFiles(pod, saDir);
      const server = new URL(this.kubeConfig.getCurrentCluster()!.server);
      record.spec.env.KUBERNETES_SERVICE_HOST = server.hostname;
      record.spec.env.KUBERNETES_SERVICE_PORT = server.port || '443';
      identity = ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', `mount -t tmpfs tmpfs /run && mkdir -p ${SERVICE_ACCOUNT_DIR} && mount --bind "$0" ${SERVICE_ACCOUNT_DIR} && exec "$@"`, saDir];
    }
    record.cgroup.create();
    const [sh, ...joinArgs] = record.cgroup.joinCommand();
    const proc = new ManagedProcess(`pod ${record.key}`, sh!, [...joinArgs, ...identity, record.spec.command, ...record.spec.args], record.logFile, record.spec.env, record.spec.cwd);
    record.process = proc;
    record.startedAt = new Date().toISOString();
    record.waiting = undefined;
    this.log(`pod ${record.key} started on ${record.nodeName} (pid ${proc.pid}, log ${record.logFile})`);
    const startedAt = record.startedAt;
    void proc.exited.then((code) => {
      if (record.stopping || this.stopped) return;
      record.lastTermination = { exitCode: code, startedAt, finishedAt: new Date().toISOString() };
      record.restartCount++;
      this.setReady(record, false);
      const backoff = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.min(record.restartCount - 1, 4));
      record.notBefore = Date.now() + backoff;
      record.waiting = { reason: 'CrashLoopBackOff', message: `back-off ${backoff / 1000}s restarting failed container=${record.container} pod=${record.key}` };
      this.log(`pod ${record.key} exited with ${code}; restarting in ${backoff} ms`);
      this.enqueue(record.key);
      setTimeout(() => this.enqueue(record.key), backoff).unref();
    });
    this.startProbe(record);
  }

  private async writeServiceAccountFiles(pod: Pod, dir: string): Promise<void> {
    const namespace = pod.metadata!.namespace!;
    const serviceAccount = pod.spec?.serviceAccountName || 'default';
    const token = await this.core.createNamespacedServiceAccountToken({
      namespace,
      name: serviceAccount,
      body: { spec: { audiences: [], expirationSeconds: 3600, boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata!.name!, uid: pod.metadata!.uid! } } },
    });
    const cluster = this.kubeConfig.getCurrentCluster()!;
    const ca = cluster.caData ? Buffer.from(cluster.caData, 'base64').toString('utf8') : readFileSync(cluster.caFile!, 'utf8');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'token'), token.status?.token ?? '', { mode: 0o600 });
    writeFileSync(join(dir, 'ca.crt'), ca);
    writeFileSync(join(dir, 'namespace'), namespace);
  }

  private startProbe(record: RunningPod): void {
    clearInterval(record.probeTimer);
    const url = record.spec?.readinessUrl;
    if (!url) {
      this.setReady(record, true);
      return;
    }
    record.probeTimer = setInterval(() => {
      const proc = record.process;
      if (!proc?.running) return;
      void fetch(url, { signal: AbortSignal.timeout(900) }).then(
        (res) => this.setReady(record, proc.running && res.status >= 200 && res.status < 400),
        () => this.setReady(record, false),
      );
    }, 1000);
    record.probeTimer.unref();
  }

  private setReady(record: RunningPod, ready: boolean): void {
    if (record.ready === ready) return;
    record.ready = ready;
    record.readyChangedAt = new Date().toISOString();
    this.enqueue(record.key);
  }

  /** The status a kubelet would write for this pod now. */
  private desiredStatus(record: RunningPod): k8s.V1PodStatus {
    const running = !!record.process?.running;
    const containerStatus: k8s.V1ContainerStatus = {
      name: record.container,
      image: this.pods.get(record.key)?.spec?.containers[0]?.image ?? '',
      imageID: '',
      containerID: `containerd://${record.cgroup.segments.at(-1)!.replace(/^cri-containerd-|\.scope$/g, '')}`,
      ready: running && record.ready,
      started: running,
      restartCount: record.restartCount,
      state: running
        ? { running: { startedAt: new Date(record.startedAt!) } }
        : { waiting: record.waiting ?? { reason: 'ContainerCreating', message: '' } },
      ...(record.lastTermination
        ? {
            lastState: {
              terminated: {
                exitCode: record.lastTermination.exitCode ?? 137,
                reason: record.lastTermination.exitCode === 0 ? 'Completed' : 'Error',
                startedAt: new Date(record.lastTermination.startedAt),
                finishedAt: new Date(record.lastTermination.finishedAt),
              },
            },
          }
        : {}),
    };
    const ready = containerStatus.ready ? 'True' : 'False';
    const at = new Date(record.createdAt);
    return {
      phase: record.startedAt ? 'Running' : 'Pending',
      hostIP: LOOPBACK,
      hostIPs: [{ ip: LOOPBACK }],
      podIP: LOOPBACK,
      podIPs: [{ ip: LOOPBACK }],
      startTime: at,
      qosClass: this.pods.get(record.key)?.status?.qosClass ?? 'BestEffort',
      conditions: [
        { type: 'PodReadyToStartContainers', status: 'True', lastTransitionTime: at },
        { type: 'Initialized', status: 'True', lastTransitionTime: at },
        { type: 'Ready', status: ready, lastTransitionTime: new Date(record.readyChangedAt), ...(ready === 'False' ? { reason: 'ContainersNotReady', message: `containers with unready status: [${record.container}]` } : {}) },
        { type: 'ContainersReady', status: ready, lastTransitionTime: new Date(record.readyChangedAt), ...(ready === 'False' ? { reason: 'ContainersNotReady', message: `containers with unready status: [${record.container}]` } : {}) },
        { type: 'PodScheduled', status: 'True', lastTransitionTime: at },
      ],
      containerStatuses: [containerStatus],
    };
  }

  private async writeStatus(pod: Pod, record: RunningPod): Promise<void> {
    const desired = this.desiredStatus(record);
    const summary = (s: k8s.V1PodStatus | undefined) =>
      JSON.stringify({
        phase: s?.phase,
        podIP: s?.podIP,
        ready: s?.conditions?.find((c) => c.type === 'Ready')?.status,
        containers: (s?.containerStatuses ?? []).map((c) => [c.name, c.containerID, c.ready, c.restartCount, Object.keys(c.state ?? {})[0], c.state?.waiting?.reason]),
      });
    if (summary(pod.status) === summary(desired)) return;
    await this.api
      .request({
        method: 'PATCH',
        path: `/api/v1/namespaces/${pod.metadata?.namespace}/pods/${pod.metadata?.name}/status`,
        contentType: 'application/merge-patch+json',
        body: { metadata: { uid: record.uid }, status: JSON.parse(JSON.stringify(desired)) as unknown },
      })
      .catch((err: unknown) => {
        if (statusCodeOf(err) !== 404 && statusCodeOf(err) !== 409) throw err;
      });
  }

  private async remove(record: RunningPod): Promise<void> {
    record.stopping = true;
    clearInterval(record.probeTimer);
    this.records.delete(record.key);
    const pod = this.pods.get(record.key);
    const grace = Math.min(10, pod?.spec?.terminationGracePeriodSeconds ?? 10) * 1000;
    await record.process?.stop(grace);
    await record.cgroup.remove();
    rmSync(record.dir, { recursive: true, force: true });
    this.log(`pod ${record.key} stopped`);
  }

  /** Stops every container process and removes their cgroups and directories. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.pods.stop();
    await Promise.allSettled(this.chains.values());
    for (const record of [...this.records.values()]) await this.remove(record);
  }
}
