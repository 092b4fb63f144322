// A real, local Kubernetes control plane for integration tests, the demo and benchmarks:
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (fake nodes that run pods),
// on loopback with free ports and a temporary directory. Everything is torn down by stop(), and
// can never outlive the process that started it (see managed-process.ts).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'node:https';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { controlPlaneBinaries, REPO_ROOT } from './control-plane-binaries.ts';
import { ManagedProcess } from './managed-process.ts';
import { createKubeApi, statusCodeOf } from '../../src/kube/rest.ts';
import { waitFor } from './wait.ts';
import { createCertificateAuthority, issueCertificate } from './kubevirt/certs.ts';
import { KubeVirtWorld, type KubeVirtWorldOptions } from './kubevirt/kubevirt-world.ts';
import { RealGuestNodes, type RealGuestNodesOptions } from './real-guests/real-guest-nodes.ts';

export const THIRD_PARTY_CRDS_ENV = 'HYPERSPECTOR_THIRD_PARTY_CRDS';

export interface StartClusterOptions {
  /** Number of kwok nodes (default 3). */
  nodes?: number;
  /** Directory of third-party CRDs; default $HYPERSPECTOR_THIRD_PARTY_CRDS, else the project's stand-ins. */
  thirdPartyCrdDir?: string;
  /** Progress lines (default: silent). */
  log?: (line: string) => void;
  /** Allocatable resources of each kwok node (default 64 CPUs, 512Gi, 2000 pods). */
  nodeCapacity?: { cpu: string; memory: string; pods: string };
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

export interface ClusterUser {
  name: string;
  token: string;
  groups: string[];
}

function kubevirtServiceAccount(name: string, token: string): ClusterUser {
  return { name: `system:serviceaccount:kubevirt:${name}`, token, groups: ['system:serviceaccounts', 'system:serviceaccounts:kubevirt'] };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function yamlFilesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...yamlFilesUnder(path));
    else if (/\.ya?ml$/.test(entry)) out.push(path);
  }
  return out;
}

const crdsByDir = new Map<string, k8s.V1CustomResourceDefinition[]>();

/** Reads every CustomResourceDefinition document in the YAML files under dir (parsed once per process). */
export function readCrds(dir: string): k8s.V1CustomResourceDefinition[] {
  const known = crdsByDir.get(dir);
  if (known) return structuredClone(known);
  const crds: k8s.V1CustomResourceDefinition[] = [];
  for (const file of yamlFilesUnder(dir)) {
    for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
      const obj = doc.toJS() as k8s.V1CustomResourceDefinition | null;
      if (obj?.kind === 'CustomResourceDefinition') crds.push(obj);
    }
  }
  crdsByDir.set(dir, crds);
  return structuredClone(crds);
}

export type ClusterUserName = 'admin' | 'operator' | 'operatorB' | 'user' | 'virtController' | 'virtApi' | 'virtHandler';

export class LocalCluster {
  readonly processes = new Map<string, ManagedProcess>();
  kubeConfig!: k8s.KubeConfig;
  kubeconfigPath!: string;
  apiServerUrl!: string;
  nodeNames: string[] = [];
  /** KubeVirt's controllers and the virt-handler stand-in, when started with `kubevirt`. */
  kubevirt?: KubeVirtWorld;
  /** Real guests and real pod processes, when started with `realGuests`. */
  realGuests?: RealGuestNodes;
  readonly users: Record<ClusterUserName, ClusterUser>;
  private apiServerArgs: string[] = [];
  private stopped = false;

  constructor(
    readonly dir: string,
    private readonly log: (line: string) => void,
  ) {
    const token = () => randomBytes(16).toString('hex');
    this.users = {
      admin: { name: 'admin', token: token(), groups: ['system:masters'] },
      // The operator and a plain user get only what RBAC grants them (tests apply the chart's roles).
      operator: { name: 'system:serviceaccount:hyperspector-system:hyperspector-operator', token: token(), groups: ['system:serviceaccounts', 'system:serviceaccounts:hyperspector-system'] },
      // A second replica's identity, so tests can tell the replicas' requests apart in the audit log.
      operatorB: { name: 'system:serviceaccount:hyperspector-system:hyperspector-operator-b', token: token(), groups: ['system:serviceaccounts', 'system:serviceaccounts:hyperspector-system'] },
      user: { name: 'jane', token: token(), groups: [] },
      // KubeVirt's components act as their service accounts: KubeVirt's webhooks and RBAC decide by
      // these names (e.g. only kubevirt-controller and kubevirt-handler may change a VMI's status).
      virtController: kubevirtServiceAccount('kubevirt-controller', token()),
      virtApi: kubevirtServiceAccount('kubevirt-apiserver', token()),
      virtHandler: kubevirtServiceAccount('kubevirt-handler', token()),
    };
  }

  get auditLogPath(): string {
    return join(this.dir, 'audit.log');
  }

  logOf(component: string): string {
    return join(this.dir, `${component}.log`);
  }

  /** Process ids of every component still running. */
  pids(): number[] {
    return [...this.processes.values()].filter((p) => p.running).map((p) => p.pid);
  }

  /** A kubeconfig (object and file) authenticating as one of the cluster's users. */
  kubeConfigFor(user: keyof LocalCluster['users']): { kubeConfig: k8s.KubeConfig; path: string } {
    const path = join(this.dir, `kubeconfig-${user}`);
    const ca = readFileSync(join(this.dir, 'certs', 'apiserver.crt')).toString('base64');
    const yaml = [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      `- name: local\n  cluster:\n    server: ${this.apiServerUrl}\n    certificate-authority-data: ${ca}`,
      'users:',
      `- name: ${user}\n  user:\n    token: ${this.users[user].token}`,
      'contexts:',
      `- name: ${user}@local\n  context:\n    cluster: local\n    user: ${user}\n    namespace: default`,
      `current-context: ${user}@local`,
      '',
    ].join('\n');
    writeFileSync(path, yaml, { mode: 0o600 });
    const kubeConfig = new k8s.KubeConfig();
    kubeConfig.loadFromFile(path);
    return { kubeConfig, path };
  }

  api<T extends k8s.ApiType>(apiClass: new (config: k8s.Configuration) => T): T {
    return this.kubeConfig.makeApiClient(apiClass);
  }

  /** A raw GET with the admin token (health, /metrics, ...), to the API server or another one. */
  async rawGet(path: string, server = { url: this.apiServerUrl, certDir: join(this.dir, 'certs') }): Promise<{ status: number; body: string }> {
    const ca = readFileSync(join(server.certDir, 'apiserver.crt'));
    return new Promise((resolve, reject) => {
      const req = request(
        `${server.url}${path}`,
        { agent: new Agent({ ca }), headers: { authorization: `Bearer ${this.users.admin.token}` }, timeout: 5000 },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (body += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
      req.on('error', reject);
      req.end();
    });
  }

  async startEtcd(): Promise<string> {
    const bins = controlPlaneBinaries();
    const [client, peer] = [await freePort(), await freePort()];
    const url = `http://127.0.0.1:${client}`;
    const etcd = new ManagedProcess('etcd', bins.etcd, [
      '--name=default',
      `--data-dir=${join(this.dir, 'etcd')}`,
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-cluster=default=http://127.0.0.1:${peer}`,
      '--unsafe-no-fsync=true',
      '--log-level=warn',
    ], this.logOf('etcd'));
    this.processes.set('etcd', etcd);
    await waitFor(async () => (await fetch(`${url}/health`).then((r) => r.ok, () => false)) || undefined, {
      timeoutMs: 30_000,
      description: 'etcd to be healthy',
    });
    return url;
  }

  async startApiServer(etcdUrl: string): Promise<void> {
    const port = await freePort();
    this.apiServerUrl = `https://127.0.0.1:${port}`;
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(join(this.dir, 'sa.key'), privateKey.export({ type: 'pkcs1', format: 'pem' }));
    writeFileSync(join(this.dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
    writeFileSync(
      join(this.dir, 'tokens.csv'),
      Object.values(this.users)
        .map((u) => `${u.token},${u.name},${u.name},"${u.groups.join(',')}"`)
        .join('\n') + '\n',
    );
    writeFileSync(
      join(this.dir, 'audit-policy.yaml'),
      [
        'apiVersion: audit.k8s.io/v1',
        'kind: Policy',
        'omitStages: [RequestReceived]',
        'rules:',
        '- level: None',
        '  nonResourceURLs: ["/healthz*", "/readyz*", "/livez*", "/version", "/metrics", "/openapi*", "/api", "/apis", "/apis/*"]',
        // Bodies of writes to our own resources: a test that finds an unexpected write can show it.
        '- level: Request',
        '  verbs: [create, update, patch]',
        '  resources: [{group: hyperspector.io}]',
        '- level: Metadata',
        '',
      ].join('\n'),
    );
    // The aggregation layer (KubeVirt's subresources.kubevirt.io API is served by virt-api behind it):
    // a front-proxy CA that aggregated servers trust, and the client certificate the proxy presents.
    const frontProxyCa = createCertificateAuthority(join(this.dir, 'front-proxy'), 'front-proxy');
    const frontProxyClient = issueCertificate(frontProxyCa, join(this.dir, 'front-proxy'), 'front-proxy-client', {
      commonName: 'front-proxy-client',
      usage: 'client',
    });
    this.apiServerArgs = [
      `--etcd-servers=${etcdUrl}`,
      `--secure-port=${port}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--cert-dir=${join(this.dir, 'certs')}`,
      `--token-auth-file=${join(this.dir, 'tokens.csv')}`,
      '--authorization-mode=RBAC',
      `--service-account-key-file=${join(this.dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(this.dir, 'sa.key')}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      '--service-cluster-ip-range=10.96.0.0/16',
      '--allow-privileged=true',
      `--requestheader-client-ca-file=${frontProxyCa.cert}`,
      '--requestheader-allowed-names=front-proxy-client',
      '--requestheader-username-headers=X-Remote-User',
      '--requestheader-group-headers=X-Remote-Group',
      '--requestheader-extra-headers-prefix=X-Remote-Extra-',
      `--proxy-client-cert-file=${frontProxyClient.cert}`,
      `--proxy-client-key-file=${frontProxyClient.key}`,
      // No --enable-aggregator-routing: the service resolver then reaches aggregated APIs and
      // webhooks by the Service's cluster IP, or for an ExternalName Service by its name, which is
      // how the test world points them at loopback (Endpoints may not name loopback addresses).
      `--audit-policy-file=${join(this.dir, 'audit-policy.yaml')}`,
      `--audit-log-path=${this.auditLogPath}`,
      '--audit-log-format=json',
      '--audit-log-mode=blocking',
      '--profiling=false',
      '--v=1',
    ];
    await this.launchApiServer();
  }

  private async launchApiServer(): Promise<void> {
    const bins = controlPlaneBinaries();
    const server = new ManagedProcess('kube-apiserver', bins.kubeApiserver, this.apiServerArgs, this.logOf('kube-apiserver'));
    this.processes.set('kube-apiserver', server);
    await waitFor(
      async () => {
        if (!server.running) throw new Error(`kube-apiserver exited; see ${this.logOf('kube-apiserver')}`);
        if (!existsSync(join(this.dir, 'certs', 'apiserver.crt'))) return false;
        const res = await this.rawGet('/readyz');
        return res.status === 200 || undefined;
      },
      { timeoutMs: 90_000, intervalMs: 200, description: 'kube-apiserver /readyz' },
    );
  }

  /**
   * A second kube-apiserver on the same etcd, on its own port: lets a test change the cluster while
   * the first one (the one the operator talks to) is down.
   */
  async startSecondApiServer(): Promise<{ kubeConfig: k8s.KubeConfig; stop: () => Promise<void> }> {
    const bins = controlPlaneBinaries();
    const port = await freePort();
    const certDir = join(this.dir, 'certs-2');
    const args = this.apiServerArgs
      .filter((a) => !/^--(secure-port|cert-dir|audit-log-path)=/.test(a))
      .concat([`--secure-port=${port}`, `--cert-dir=${certDir}`, `--audit-log-path=${join(this.dir, 'audit-2.log')}`]);
    const server = new ManagedProcess('kube-apiserver-2', bins.kubeApiserver, args, this.logOf('kube-apiserver-2'));
    this.processes.set('kube-apiserver-2', server);
    const url = `https://127.0.0.1:${port}`;
    await waitFor(
      async () => {
        if (!server.running) throw new Error(`the second kube-apiserver exited; see ${this.logOf('kube-apiserver-2')}`);
        if (!existsSync(join(certDir, 'apiserver.crt'))) return false;
        return (await this.rawGet('/readyz', { url, certDir })).status === 200 || undefined;
      },
      { timeoutMs: 90_000, intervalMs: 200, description: 'the second kube-apiserver /readyz' },
    );
    const kubeConfig = new k8s.KubeConfig();
    kubeConfig.loadFromOptions({
      clusters: [{ name: 'second', server: url, caData: readFileSync(join(certDir, 'apiserver.crt')).toString('base64') }],
      users: [{ name: 'admin', token: this.users.admin.token }],
      contexts: [{ name: 'admin@second', cluster: 'second', user: 'admin' }],
      currentContext: 'admin@second',
    });
    return { kubeConfig, stop: () => server.stop() };
  }

  /** Stops kube-apiserver and starts it again on the same port and etcd (an API outage). */
  async restartApiServer(options: { downtimeProbe?: () => Promise<void> } = {}): Promise<void> {
    await this.stopApiServer();
    await options.downtimeProbe?.();
    await this.launchApiServer();
  }

  async stopApiServer(): Promise<void> {
    await this.processes.get('kube-apiserver')?.stop();
  }

  async startApiServerAgain(): Promise<void> {
    await this.launchApiServer();
  }

  private async startComponent(name: 'kube-controller-manager' | 'kube-scheduler' | 'kwok', args: string[]): Promise<void> {
    const bins = controlPlaneBinaries();
    const binary = { 'kube-controller-manager': bins.kubeControllerManager, 'kube-scheduler': bins.kubeScheduler, kwok: bins.kwok }[name];
    const proc = new ManagedProcess(name, binary, args, this.logOf(name));
    this.processes.set(name, proc);
  }

  async startControllers(): Promise<void> {
    const admin = this.kubeConfigFor('admin').path;
    // Flags kube-controller-manager and kube-scheduler share: credentials, no leader election,
    // their own secure port on loopback.
    const common = async () => [
      `--kubeconfig=${admin}`,
      `--authentication-kubeconfig=${admin}`,
      `--authorization-kubeconfig=${admin}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${await freePort()}`,
      '--v=1',
    ];
    await this.startComponent('kube-controller-manager', [
      ...(await common()),
      `--service-account-private-key-file=${join(this.dir, 'sa.key')}`,
      `--root-ca-file=${join(this.dir, 'certs', 'apiserver.crt')}`,
      '--use-service-account-credentials=false',
      '--controllers=*',
    ]);
    await this.startComponent('kube-scheduler', await common());
    const stages = this.kwokPodStages();
    await this.startComponent('kwok', [
      `--kubeconfig=${admin}`,
      ...(stages ? [`--config=${stages}`] : []),
      '--manage-all-nodes=false',
      '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
      '--manage-nodes-with-label-selector=',
      '--cidr=10.128.0.1/12',
      '--node-ip=127.0.0.1',
      // kwok renews a Lease per node (as kubelet does); without it the node lifecycle controller
      // marks the nodes Unknown after the grace period and every pod on them NotReady.
      '--node-lease-duration-seconds=40',
      `--server-address=127.0.0.1:${await freePort()}`,
      '--v=WARN',
    ]);
  }

  /**
   * kwok's own default pod stages, except that deleting a pod no longer strips its finalizers: a
   * kubelet deletes a pod's containers, never its finalizers, so a pod held by a finalizer (the
   * virt-handler stand-in holds launcher pods until the domain stopped) stays Terminating as it would.
   * Returns the config file, or undefined where the stages were not copied (kwok's defaults apply).
   */
  private kwokPodStages(): string | undefined {
    const dir = join(controlPlaneBinaries().dir, 'kwok-stages');
    if (!existsSync(join(dir, 'pod-delete.yaml'))) return undefined;
    const docs = ['pod-ready.yaml', 'pod-complete.yaml', 'pod-delete.yaml'].map((f) => readFileSync(join(dir, f), 'utf8'));
    const podDelete = docs[2]!.replace(/\n {4}finalizers:\n {6}empty: true\n/, '\n');
    if (podDelete === docs[2]) throw new Error(`kwok's pod-delete stage changed shape (${dir}); update the harness`);
    const path = join(this.dir, 'kwok-stages.yaml');
    writeFileSync(path, [docs[0] ?? '', docs[1] ?? '', podDelete].map((d) => d.trim()).join('\n---\n') + '\n');
    return path;
  }

  async createNodes(count: number, capacity = { cpu: '64', memory: '512Gi', pods: '2000' }): Promise<void> {
    const core = this.api(k8s.CoreV1Api);
    const names = Array.from({ length: count }, (_, i) => `node-${String.fromCharCode(97 + i)}`);
    for (const name of names) {
      await core.createNode({
        body: {
          apiVersion: 'v1',
          kind: 'Node',
          metadata: {
            name,
            annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
            labels: {
              'kubernetes.io/hostname': name,
              'kubernetes.io/os': 'linux',
              'kubernetes.io/arch': 'amd64',
              type: 'kwok',
              // virt-handler labels the nodes it runs on; virt-launcher pods select it.
              'kubevirt.io/schedulable': 'true',
            },
          },
          spec: {},
          status: {
            allocatable: capacity,
            capacity,
          },
        },
      });
    }
    this.nodeNames = names;
    await waitFor(
      async () => {
        const nodes = await core.listNode();
        const ready = nodes.items.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
        return ready.length >= count || undefined;
      },
      { timeoutMs: 60_000, description: `${count} kwok nodes to be Ready` },
    );
  }

  async installCrds(crds: k8s.V1CustomResourceDefinition[]): Promise<void> {
    const ext = this.api(k8s.ApiextensionsV1Api);
    // Raw JSON: client-node's typed serializer would drop the x-kubernetes-* schema extensions.
    const api = createKubeApi(this.kubeConfig);
    for (const crd of crds) {
      try {
        await api.request({ method: 'POST', path: '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', body: crd });
      } catch (err) {
        if (statusCodeOf(err) !== 409) throw new Error(`installing CRD ${crd.metadata?.name}: ${String(err)}`);
      }
    }
    await waitFor(
      async () => {
        const list = await ext.listCustomResourceDefinition();
        const established = new Set(
          list.items.filter((c) => c.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True')).map((c) => c.metadata?.name),
        );
        return crds.every((c) => established.has(c.metadata?.name)) || undefined;
      },
      { timeoutMs: 60_000, description: 'CRDs to be Established' },
    );
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

/** API groups whose CRDs KubeVirt itself installs (CDI's are a separate project). */
export function isKubeVirtGroup(group: string | undefined): boolean {
  return group === 'kubevirt.io' || (!!group?.endsWith('.kubevirt.io') && group !== 'cdi.kubevirt.io');
}

/**
 * The project's CRDs plus the third-party ones (real ones from the env var's directory, else
 * stand-ins); without KubeVirt's own when the cluster runs KubeVirt (it installs them itself).
 */
export function clusterCrds(thirdPartyCrdDir = process.env[THIRD_PARTY_CRDS_ENV], options: { withoutKubeVirt?: boolean } = {}): k8s.V1CustomResourceDefinition[] {
  const own = readCrds(join(REPO_ROOT, 'crds'));
  const thirdParty = readCrds(thirdPartyCrdDir || join(REPO_ROOT, 'test', 'support', 'fallback-crds')).filter(
    (crd) => !options.withoutKubeVirt || !isKubeVirtGroup(crd.spec?.group),
  );
  return [...own, ...thirdParty];
}

export async function startCluster(options: StartClusterOptions = {}): Promise<LocalCluster> {
  const log = options.log ?? (() => {});
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'hyperspector-cluster-'));
  const cluster = new LocalCluster(dir, log);
  try {
    controlPlaneBinaries();
    log(`starting etcd (${dir})`);
    const etcdUrl = await cluster.startEtcd();
    log('starting kube-apiserver');
    await cluster.startApiServer(etcdUrl);
    const admin = cluster.kubeConfigFor('admin');
    cluster.kubeConfig = admin.kubeConfig;
    cluster.kubeconfigPath = admin.path;
    log('starting kube-controller-manager, kube-scheduler, kwok');
    await cluster.startControllers();
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
