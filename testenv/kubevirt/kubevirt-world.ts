// KubeVirt's own control plane in the test world: virt-controller and virt-api (built from the Go
// module proxy at the version in hack/kubevirt-version.env) run against the local control plane,
// installed the way virt-operator installs them (its own install strategy: CRDs, RBAC, webhooks,
// APIServices, admission policies). Only what virt-handler does on a node is a stand-in
// (virt-handler-standin.ts).
//
// Differences from a real installation, each because of this machine:
// - virt-api listens on loopback; its Service is an ExternalName Service for `localhost` (the API
//   server's cluster service resolver takes an ExternalName as the host to dial), on a free port
//   instead of 443 so several test clusters can run at once.
// - Components authenticate with static tokens as their service accounts; their RBAC is KubeVirt's.
// - A process that exits is restarted, as its Deployment would restart it.
import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { freePort } from '../free-port.ts';
import { type LocalCluster } from '../cluster/local-cluster.ts';
import { ManagedProcess } from '../managed-process.ts';
import { ensureNamespace } from '../cluster/namespaces.ts';
import { waitFor } from '../wait.ts';
import { createKubeApi, statusCodeOf } from '../../src/kube/client/rest.ts';
import { createCertificateAuthority, issueCertificate, type CertificateAuthority, type CertificateFiles } from '../cluster/certs.ts';
import { kubevirtBinaries } from './kubevirt-binaries.ts';
import { VirtHandlerStandIn, type GuestBackend } from './virt-handler-standin.ts';

export const KUBEVIRT_NAMESPACE = 'kubevirt';
const FIELD_MANAGER = 'hyperspector-test-world';

export interface KubeVirtWorldOptions {
  /** Feature gates in the KubeVirt CR (developerConfiguration.featureGates). */
  featureGates?: string[];
  log?: (line: string) => void;
  /** What backs a VMI on a node (real guests); default: nothing runs. */
  guestBackend?: GuestBackend;
  /**
   * virt-controller's `--vm-controller-threads` (KubeVirt's default 3). Each VM start waits on
   * virt-api's admission webhooks, so with 3 the test world starts about one VM a second on a
   * loaded 2-core machine; a benchmark that starts thousands of VMs raises it.
   */
  vmControllerThreads?: number;
}

export const DEFAULT_FEATURE_GATES = ['HotplugVolumes', 'DeclarativeHotplugVolumes'];

/** VMIs a node runs at most: KubeVirt's device plugins offer 1000 tun, kvm and vhost-net devices per node. */
export const NODE_VMI_CAPACITY = 1000;

type Obj = k8s.KubernetesObject & Record<string, unknown>;

export interface KubeVirtCertificates {
  ca: CertificateAuthority;
  virtApi: CertificateFiles;
  virtController: CertificateFiles;
  /** virt-api's client certificate towards virt-handler. */
  handlerClient: CertificateFiles;
  /** The (stand-in) virt-handler's server certificate. */
  handlerServer: CertificateFiles;
}

let parsedInstallObjects: Obj[] | undefined;

/** Objects of virt-operator's install strategy (a fresh copy each call: the installer edits them). */
function installObjects(): Obj[] {
  parsedInstallObjects ??= readFileSync(kubevirtBinaries().installManifests, 'utf8')
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as Obj)
    .filter((o) => !!o.kind);
  return structuredClone(parsedInstallObjects);
}

/** KubeVirt's CRDs at the version the test world runs (replacing any third-party copy). */
export function kubevirtCrds(): k8s.V1CustomResourceDefinition[] {
  return installObjects().filter((o) => o.kind === 'CustomResourceDefinition') as unknown as k8s.V1CustomResourceDefinition[];
}

/**
 * With CDI's DataVolume API present, virt-controller also watches CDI's cluster-wide objects (the CDI
 * resource, CDIConfig, StorageProfiles) and waits for those caches before it runs its VMI
 * controller. CDI's operator installs these CRDs; the shared CRDs hold only DataVolume and
 * DataSource, so the test world adds permissive stand-ins for the others (nothing creates objects
 * of them here).
 */
export function cdiCompanionCrds(): k8s.V1CustomResourceDefinition[] {
  const crd = (plural: string, kind: string, scope = 'Cluster'): k8s.V1CustomResourceDefinition => ({
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.cdi.kubevirt.io`, labels: { 'hyperspector.io/test-stand-in': 'true' } },
    spec: {
      group: 'cdi.kubevirt.io',
      scope,
      names: { plural, singular: kind.toLowerCase(), kind, listKind: `${kind}List` },
      versions: [{ name: 'v1beta1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } as unknown as k8s.V1JSONSchemaProps } }],
    },
  });
  // DataSource too, for clusters given only DataVolume (the project's fallback CRDs); where the real
  // CRD is installed already, installing this one is skipped (409).
  return [crd('cdis', 'CDI'), crd('cdiconfigs', 'CDIConfig'), crd('storageprofiles', 'StorageProfile'), crd('datasources', 'DataSource', 'Namespaced')];
}

export class KubeVirtWorld {
  readonly processes = new Map<string, ManagedProcess>();
  private stopping = false;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  virtApiPort = 0;
  handlerPort = 0;
  controllerPort = 0;
  restarts: Record<string, number> = { 'virt-controller': 0, 'virt-api': 0 };
  handler!: VirtHandlerStandIn;
  readonly version = kubevirtBinaries().version;

  private constructor(
    readonly cluster: LocalCluster,
    readonly certs: KubeVirtCertificates,
    private readonly log: (line: string) => void,
  ) {}

  static async start(cluster: LocalCluster, options: KubeVirtWorldOptions = {}): Promise<KubeVirtWorld> {
    const log = options.log ?? (() => {});
    const bins = kubevirtBinaries();
    const dir = join(cluster.dir, 'kubevirt');
    mkdirSync(dir, { recursive: true });
    const ca = createCertificateAuthority(dir, 'kubevirt');
    const service = `virt-api.${KUBEVIRT_NAMESPACE}.svc`;
    const certs: KubeVirtCertificates = {
      ca,
      virtApi: issueCertificate(ca, dir, 'virt-api', { commonName: 'virt-api', subjectAltNames: [service, `${service}.cluster.local`, 'localhost', '127.0.0.1'], usage: 'server' }),
      virtController: issueCertificate(ca, dir, 'virt-controller', { commonName: 'virt-controller', subjectAltNames: ['localhost', '127.0.0.1'], usage: 'server' }),
      handlerClient: issueCertificate(ca, dir, 'virt-handler-client', { commonName: 'kubevirt.io:system:client:virt-handler', usage: 'client' }),
      handlerServer: issueCertificate(ca, dir, 'virt-handler-server', { commonName: 'kubevirt.io:system:node:virt-handler', subjectAltNames: ['localhost', '127.0.0.1'], usage: 'server' }),
    };
    const world = new KubeVirtWorld(cluster, certs, log);
    world.virtApiPort = await freePort();
    world.handlerPort = await freePort();
    world.controllerPort = await freePort();
    log(`installing KubeVirt ${bins.version} (virt-operator's install strategy)`);
    await world.install(options.featureGates ?? DEFAULT_FEATURE_GATES);
    log('starting the virt-handler stand-in on every node');
    await world.prepareNodes();
    world.handler = new VirtHandlerStandIn(cluster, certs, world.handlerPort, options.guestBackend);
    await world.handler.start();
    log('starting virt-api');
    world.startVirtApi();
    await world.waitForVirtApi();
    log('starting virt-controller');
    world.startVirtController(options.vmControllerThreads);
    await world.waitForVirtControllerLeader();
    return world;
  }

  private client(): k8s.KubernetesObjectApi {
    return k8s.KubernetesObjectApi.makeApiClient(this.cluster.kubeConfig);
  }

  private async apply(obj: Obj): Promise<void> {
    await this.client().patch(obj, undefined, undefined, FIELD_MANAGER, true, k8s.PatchStrategy.ServerSideApply);
  }

  private async install(featureGates: string[]): Promise<void> {
    await ensureNamespace(this.cluster, KUBEVIRT_NAMESPACE);
    const objects = installObjects();
    const caBundle = Buffer.from(this.certs.ca.pem).toString('base64');
    const byKind = (...kinds: string[]) => objects.filter((o) => kinds.includes(o.kind ?? ''));
    await this.cluster.installCrds([...kubevirtCrds(), ...cdiCompanionCrds()]);
    for (const obj of byKind('ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding')) await this.apply(obj);
    await this.apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'kubevirt-ca', namespace: KUBEVIRT_NAMESPACE },
      data: { 'ca-bundle': this.certs.ca.pem },
    });
    await this.applyKubeVirtCr(featureGates);
    // virt-api's Service: an ExternalName for localhost on virt-api's port (see the file comment).
    await this.apply({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'virt-api', namespace: KUBEVIRT_NAMESPACE, labels: { 'kubevirt.io': 'virt-api' } },
      spec: { type: 'ExternalName', externalName: 'localhost', ports: [{ name: 'https', port: this.virtApiPort, protocol: 'TCP' }] },
    });
    for (const obj of byKind('ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding')) await this.apply(obj);
    // virt-api's webhooks and APIServices, pointed at the port and CA of this world. Only virt-api's:
    // virt-operator's own webhook guards the KubeVirt CR against a virt-operator that is not here.
    for (const obj of byKind('ValidatingWebhookConfiguration', 'MutatingWebhookConfiguration')) {
      const webhooks = (obj.webhooks as { clientConfig: { service?: { name: string; port?: number }; caBundle?: string } }[]) ?? [];
      if (!webhooks.every((w) => w.clientConfig.service?.name === 'virt-api')) continue;
      // virt-operator creates this one only with the ContainerPath feature gate.
      if (obj.metadata?.name === 'virt-launcher-pod-mutator') continue;
      for (const w of webhooks) {
        w.clientConfig.service!.port = this.virtApiPort;
        w.clientConfig.caBundle = caBundle;
      }
      await this.apply(obj);
    }
    for (const obj of byKind('APIService')) {
      const spec = obj.spec as { service: { port?: number }; caBundle?: string; insecureSkipTLSVerify?: boolean };
      spec.service.port = this.virtApiPort;
      spec.caBundle = caBundle;
      await this.apply(obj);
    }
  }

  /** The KubeVirt CR as virt-operator leaves it once deployed (virt-controller and virt-api read it). */
  async applyKubeVirtCr(featureGates: string[]): Promise<void> {
    const api = createKubeApi(this.cluster.kubeConfig);
    const base = `/apis/kubevirt.io/v1/namespaces/${KUBEVIRT_NAMESPACE}/kubevirts`;
    const spec = {
      configuration: {
        developerConfiguration: { useEmulation: true, featureGates },
        // As a hardened cluster configures it: launcher pods get the runtime's default seccomp
        // profile, which the restricted Pod Security level requires (tenants may keep restricted).
        seccompConfiguration: { virtualMachineInstanceProfile: { customProfile: { runtimeDefaultProfile: true } } },
      },
    };
    try {
      await api.request({ method: 'POST', path: base, body: { apiVersion: 'kubevirt.io/v1', kind: 'KubeVirt', metadata: { name: 'kubevirt', namespace: KUBEVIRT_NAMESPACE }, spec } });
    } catch (err) {
      if (statusCodeOf(err) !== 409) throw err;
      await api.request({ method: 'PATCH', path: `${base}/kubevirt`, body: { spec }, contentType: 'application/merge-patch+json' });
    }
    const version = kubevirtBinaries().version;
    await api.request({
      method: 'PATCH',
      path: `${base}/kubevirt/status`,
      contentType: 'application/merge-patch+json',
      body: {
        status: {
          phase: 'Deployed',
          defaultArchitecture: 'amd64',
          observedKubeVirtVersion: version,
          targetKubeVirtVersion: version,
          observedKubeVirtRegistry: 'local',
          targetKubeVirtRegistry: 'local',
          conditions: [
            { type: 'Available', status: 'True', reason: 'AllComponentsReady', message: 'All components are ready.' },
            { type: 'Progressing', status: 'False', reason: 'AllComponentsReady', message: 'All components are ready.' },
            { type: 'Degraded', status: 'False', reason: 'AllComponentsReady', message: 'All components are ready.' },
          ],
        },
      },
    });
  }

  private spawn(name: 'virt-api' | 'virt-controller', binary: string, args: string[], user: 'virtApi' | 'virtController'): void {
    const kubeconfig = this.cluster.kubeConfigFor(user).path;
    const proc = new ManagedProcess(name, binary, [`--kubeconfig=${kubeconfig}`, ...args], this.cluster.logOf(name), {
      ...process.env,
      // virt-controller and virt-api take their namespace from the pod's service-account mount,
      // else `kubevirt`; their own name for leader election from the host name.
      HOSTNAME: `${name}-0`,
    });
    this.processes.set(name, proc);
    // Restarted as its Deployment would restart it (virt-controller exits when it loses its lease).
    void proc.exited.then((code) => {
      if (this.stopping) return;
      this.restarts[name] = (this.restarts[name] ?? 0) + 1;
      this.log(`${name} exited (${code}); restarting it`);
      setTimeout(() => {
        if (!this.stopping) this.spawn(name, binary, args, user);
      }, 1000).unref();
    });
  }

  private startVirtApi(): void {
    const bins = kubevirtBinaries();
    this.spawn(
      'virt-api',
      bins.virtApi,
      [
        '--listen=127.0.0.1',
        `--port=${this.virtApiPort}`,
        `--console-server-port=${this.handlerPort}`,
        '--subresources-only',
        `--tls-cert-file=${this.certs.virtApi.cert}`,
        `--tls-key-file=${this.certs.virtApi.key}`,
        `--handler-cert-file=${this.certs.handlerClient.cert}`,
        `--handler-key-file=${this.certs.handlerClient.key}`,
        '-v=2',
      ],
      'virtApi',
    );
  }

  private startVirtController(vmControllerThreads?: number): void {
    const bins = kubevirtBinaries();
    this.spawn(
      'virt-controller',
      bins.virtController,
      [
        '--launcher-image=quay.io/kubevirt/virt-launcher:' + bins.version,
        '--exporter-image=quay.io/kubevirt/virt-exportserver:' + bins.version,
        '--listen=127.0.0.1',
        `--port=${this.controllerPort}`,
        `--prom-cert-file=${this.certs.virtController.cert}`,
        `--prom-key-file=${this.certs.virtController.key}`,
        '-v=2',
        ...(vmControllerThreads ? [`--vm-controller-threads=${vmControllerThreads}`] : []),
      ],
      'virtController',
    );
  }

  private async waitForVirtApi(): Promise<void> {
    // Ready once the aggregated API answers through kube-apiserver and the mutating webhook defaults
    // a VirtualMachine (a server-side dry run, so nothing is created).
    await waitFor(
      async () => {
        const res = await this.cluster.rawGet('/apis/subresources.kubevirt.io/v1/healthz');
        return res.status === 200 || undefined;
      },
      { timeoutMs: 120_000, intervalMs: 250, description: `virt-api to serve subresources.kubevirt.io (see ${this.cluster.logOf('virt-api')})` },
    );
  }

  private async waitForVirtControllerLeader(): Promise<void> {
    const coordination = this.cluster.api(k8s.CoordinationV1Api);
    await waitFor(
      async () => {
        const lease = await coordination.readNamespacedLease({ namespace: KUBEVIRT_NAMESPACE, name: 'virt-controller' });
        return !!lease.spec?.holderIdentity || undefined;
      },
      { timeoutMs: 120_000, intervalMs: 250, description: `virt-controller to lead (see ${this.cluster.logOf('virt-controller')})` },
    );
  }

  /**
   * What virt-handler's node components publish: the node labeller's labels for the default machine
   * type and the host CPU model, the device plugins' resources (kvm, tun, vhost-net), the heartbeat;
   * and a `virt-handler` pod per node (a DaemonSet on the host network) where virt-api looks for it.
   */
  private async prepareNodes(): Promise<void> {
    const core = this.cluster.api(k8s.CoreV1Api);
    const api = createKubeApi(this.cluster.kubeConfig);
    // The device plugins' resources (KubeVirt's virt-handler offers 1000 of each per node, so a node
    // runs at most 1000 VMIs: NODE_VMI_CAPACITY), and the node's ephemeral storage (launcher pods request some).
    const perNode = String(NODE_VMI_CAPACITY);
    const devices = { 'devices.kubevirt.io/kvm': perNode, 'devices.kubevirt.io/tun': perNode, 'devices.kubevirt.io/vhost-net': perNode, 'ephemeral-storage': '1Ti' };
    for (const name of this.cluster.nodeNames) {
      const node = await core.readNode({ name });
      await api.request({
        method: 'PATCH',
        path: `/api/v1/nodes/${name}`,
        contentType: 'application/merge-patch+json',
        body: {
          metadata: {
            labels: {
              'machine-type.node.kubevirt.io/q35': 'true',
              'machine-type.node.kubevirt.io/pc-q35-rhel9.6.0': 'true',
              'cpu-model.node.kubevirt.io/Haswell-noTSX': 'true',
              'cpu-model-migration.node.kubevirt.io/Haswell-noTSX': 'true',
              'host-model-cpu.node.kubevirt.io/Haswell-noTSX': 'true',
              'cpu-vendor.node.kubevirt.io/Intel': 'true',
              'kubevirt.io/ksm-enabled': 'false',
            },
          },
        },
      });
      await api.request({
        method: 'PATCH',
        path: `/api/v1/nodes/${name}/status`,
        contentType: 'application/merge-patch+json',
        body: { status: { capacity: { ...node.status?.capacity, ...devices }, allocatable: { ...node.status?.allocatable, ...devices } } },
      });
    }
    await this.heartbeat();
    // As virt-handler does every minute: virt-controller marks a node whose heartbeat is older than
    // 5 minutes unschedulable for VMIs, which would end every test world after 5 minutes.
    this.heartbeatTimer = setInterval(() => void this.heartbeat().catch(() => {}), 60_000);
    this.heartbeatTimer.unref();
    await this.apply({
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'virt-handler', namespace: KUBEVIRT_NAMESPACE, labels: { 'kubevirt.io': 'virt-handler' } },
      spec: {
        selector: { matchLabels: { 'kubevirt.io': 'virt-handler' } },
        template: {
          metadata: { labels: { 'kubevirt.io': 'virt-handler' } },
          spec: {
            serviceAccountName: 'kubevirt-handler',
            hostNetwork: true,
            tolerations: [{ operator: 'Exists' }],
            containers: [{ name: 'virt-handler', image: `quay.io/kubevirt/virt-handler:${kubevirtBinaries().version}` }],
          },
        },
      },
    });
    await waitFor(
      async () => {
        const pods = await core.listNamespacedPod({ namespace: KUBEVIRT_NAMESPACE, labelSelector: 'kubevirt.io=virt-handler' });
        const running = pods.items.filter((p) => p.status?.phase === 'Running' && p.status.podIP);
        if (running.length >= this.cluster.nodeNames.length) return true;
        // What a timeout reports: where each pod stands (none yet: the DaemonSet controller has not run).
        throw new Error(pods.items.map((p) => `${p.metadata?.name} on ${p.spec?.nodeName ?? '(unscheduled)'}: ${p.status?.phase ?? 'no phase'}${p.status?.podIP ? '' : ', no IP'}`).join('; ') || 'no virt-handler pod yet');
      },
      // On a loaded machine kube-controller-manager may take a while to start its DaemonSet controller.
      { timeoutMs: 180_000, description: 'a running virt-handler pod on every node' },
    );
  }

  /** virt-handler's heartbeat: the node is schedulable for VMIs and its handler alive as of now. */
  private async heartbeat(): Promise<void> {
    const api = createKubeApi(this.cluster.kubeConfig);
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    for (const name of this.cluster.nodeNames) {
      await api.request({
        method: 'PATCH',
        path: `/api/v1/nodes/${name}`,
        contentType: 'application/merge-patch+json',
        body: { metadata: { labels: { 'kubevirt.io/schedulable': 'true' }, annotations: { 'kubevirt.io/heartbeat': now } } },
      });
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.heartbeatTimer);
    await this.handler?.stop();
    for (const name of ['virt-controller', 'virt-api']) await this.processes.get(name)?.stop();
  }
}
