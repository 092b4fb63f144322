// A real, local Kubernetes control plane for integration tests, the demo and benchmarks, composed
// of its components: etcd (etcd.ts), kube-apiserver (kube-apiserver.ts), kube-controller-manager
// and kube-scheduler (kube-controllers.ts), kwok nodes (kwok.ts), users and kubeconfigs
// (cluster-users.ts) and CRDs (crds.ts); on loopback with free ports and a temporary directory.
// Everything is torn down by stop(), and can never outlive the process that started it (see
// managed-process.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { controlPlaneBinaries } from './binaries.ts';
import { ClusterProcesses } from './processes.ts';
import { createClusterUsers, writeKubeconfig, type ClusterUser, type ClusterUserName } from './users.ts';
import { clusterCrds, installCrds } from './crds.ts';
import { startEtcd } from './etcd.ts';
import { httpsGet, KubeApiServer } from './kube-apiserver.ts';
import { startKubeControllers } from './kube-controllers.ts';
import { createKwokNodes, startKwok, type NodeCapacity } from './kwok.ts';
import { KubeVirtWorld, type KubeVirtWorldOptions } from '../kubevirt/kubevirt-world.ts';
import { RealGuestNodes, type RealGuestNodesOptions } from '../real-guests/real-guest-nodes.ts';


export interface StartClusterOptions {
  /** Number of kwok nodes (default 3). */
  nodes?: number;
  /** Directory of third-party CRDs; default $HYPERSPECTOR_THIRD_PARTY_CRDS, else the project's stand-ins. */
  thirdPartyCrdDir?: string;
  /** Progress lines (default: silent). */
  log?: (line: string) => void;
  /** Allocatable resources of each kwok node (default 64 CPUs, 512Gi, 2000 pods). */
  nodeCapacity?: NodeCapacity;
  /**
   * Run KubeVirt in the cluster: its own virt-controller and virt-api, its CRDs of the same version
   * (instead of any third-party copy) and the virt-handler stand-in on every node.
   */
  kubevirt?: KubeVirtWorldOptions | boolean;
  /**
   * Nodes that run real guests (implies `kubevirt`; needs root): every VMI a QEMU guest in a
   * launcher-pod-shaped network namespace and cgroup, and the operator's pods as real processes.
   */
  realGuests?: RealGuestNodesOptions | boolean;
}

export class LocalCluster {
  readonly processes: ClusterProcesses;
  readonly apiServer: KubeApiServer;
  kubeConfig!: k8s.KubeConfig;
  kubeconfigPath!: string;
  nodeNames: string[] = [];
  /** KubeVirt's controllers and the virt-handler stand-in, when started with `kubevirt`. */
  kubevirt?: KubeVirtWorld;
  /** Real guests and real pod processes, when started with `realGuests`. */
  realGuests?: RealGuestNodes;
  readonly users: Record<ClusterUserName, ClusterUser>;
  private stopped = false;

  constructor(
    readonly dir: string,
    private readonly log: (line: string) => void,
  ) {
    this.users = createClusterUsers();
    this.processes = new ClusterProcesses(dir);
    this.apiServer = new KubeApiServer(this.processes, this.users.admin.token);
  }

  get apiServerUrl(): string {
    return this.apiServer.url;
  }

  get auditLogPath(): string {
    return this.apiServer.auditLogPath;
  }

  logOf(component: string): string {
    return this.processes.logOf(component);
  }

  /** Process ids of every component still running. */
  pids(): number[] {
    return [...this.processes.values()].filter((p) => p.running).map((p) => p.pid);
  }

  /** A kubeconfig (object and file) authenticating as one of the cluster's users. */
  kubeConfigFor(user: ClusterUserName): { kubeConfig: k8s.KubeConfig; path: string } {
    return writeKubeconfig(join(this.dir, `kubeconfig-${user}`), { url: this.apiServerUrl, caFile: this.apiServer.caFile }, user, this.users[user].token);
  }

  api<T extends k8s.ApiType>(apiClass: new (config: k8s.Configuration) => T): T {
    return this.kubeConfig.makeApiClient(apiClass);
  }

  /** A raw GET with the admin token (health, /metrics, ...), to the API server or another one. */
  async rawGet(path: string, server = { url: this.apiServerUrl, certDir: this.apiServer.certDir }): Promise<{ status: number; body: string }> {
    return httpsGet(server.url, path, join(server.certDir, 'apiserver.crt'), this.users.admin.token);
  }

  /**
   * A second kube-apiserver on the same etcd, on its own port: lets a test change the cluster while
   * the first one (the one the operator talks to) is down.
   */
  async startSecondApiServer(): Promise<{ kubeConfig: k8s.KubeConfig; stop: () => Promise<void> }> {
    return this.apiServer.startSecond();
  }

  /** Stops kube-apiserver and starts it again on the same port and etcd (an API outage). */
  async restartApiServer(options: { downtimeProbe?: () => Promise<void> } = {}): Promise<void> {
    await this.stopApiServer();
    await options.downtimeProbe?.();
    await this.apiServer.start();
  }

  async stopApiServer(): Promise<void> {
    await this.apiServer.stop();
  }

  async startApiServerAgain(): Promise<void> {
    await this.apiServer.start();
  }

  async createNodes(count: number, capacity?: NodeCapacity): Promise<void> {
    this.nodeNames = await createKwokNodes(this.api(k8s.CoreV1Api), count, capacity);
  }

  async installCrds(crds: k8s.V1CustomResourceDefinition[]): Promise<void> {
    await installCrds(this.kubeConfig, crds);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.kubevirt?.stop();
    await this.realGuests?.stop();
    for (const name of ['kwok', 'kube-scheduler', 'kube-controller-manager', 'kube-apiserver-2', 'kube-apiserver', 'etcd']) {
      await this.processes.get(name)?.stop();
    }
    if (!process.env.HYPERSPECTOR_KEEP_CLUSTER_DIR) rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function startCluster(options: StartClusterOptions = {}): Promise<LocalCluster> {
  const log = options.log ?? (() => {});
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'hyperspector-cluster-'));
  const cluster = new LocalCluster(dir, log);
  try {
    controlPlaneBinaries();
    log(`starting etcd (${dir})`);
    const etcdUrl = await startEtcd(cluster.processes);
    log('starting kube-apiserver');
    await cluster.apiServer.configure(etcdUrl, cluster.users);
    await cluster.apiServer.start();
    const admin = cluster.kubeConfigFor('admin');
    cluster.kubeConfig = admin.kubeConfig;
    cluster.kubeconfigPath = admin.path;
    log('starting kube-controller-manager, kube-scheduler, kwok');
    await startKubeControllers(cluster.processes, {
      adminKubeconfig: admin.path,
      serviceAccountKeyFile: cluster.apiServer.serviceAccountKeyFile,
      rootCaFile: cluster.apiServer.caFile,
    });
    await startKwok(cluster.processes, admin.path);
    log('installing CRDs');
    const withKubeVirt = !!options.kubevirt || !!options.realGuests;
    await cluster.installCrds(clusterCrds(options.thirdPartyCrdDir, { withoutKubeVirt: withKubeVirt }));
    log(`creating ${options.nodes ?? 3} nodes`);
    await cluster.createNodes(options.nodes ?? 3, options.nodeCapacity);
    if (options.realGuests) cluster.realGuests = new RealGuestNodes({ log, ...(typeof options.realGuests === 'object' ? options.realGuests : {}) });
    if (withKubeVirt) {
      cluster.kubevirt = await KubeVirtWorld.start(cluster, {
        log,
        ...(typeof options.kubevirt === 'object' ? options.kubevirt : {}),
        ...(cluster.realGuests ? { guestBackend: cluster.realGuests.backend } : {}),
      });
    }
    cluster.realGuests?.attach(cluster.kubeConfig, cluster.dir);
    log(`cluster ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return cluster;
  } catch (err) {
    await cluster.stop().catch(() => {});
    throw err;
  }
}
