// kube-apiserver for the local control plane: its flags, the files they name (service-account
// keys, token file, audit policy, the aggregation layer's front-proxy certificates), and starting,
// stopping and restarting it on the same port, plus a second one on the same etcd.
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { controlPlaneBinaries } from './binaries.ts';
import type { ClusterProcesses } from './processes.ts';
import { writeTokenAuthFile, type ClusterUser, type ClusterUserName } from './users.ts';
import { freePort } from '../free-port.ts';
import { createCertificateAuthority, issueCertificate } from './certs.ts';
import { waitFor } from '../wait.ts';

/** A GET of `path` with a bearer token to an HTTPS server whose certificate `caFile` holds. */
export async function httpsGet(server: string, path: string, caFile: string, token: string): Promise<{ status: number; body: string }> {
  const ca = readFileSync(caFile);
  return new Promise((resolve, reject) => {
    const req = request(`${server}${path}`, { agent: new Agent({ ca }), headers: { authorization: `Bearer ${token}` }, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

export class KubeApiServer {
  url!: string;
  private args: string[] = [];

  constructor(
    private readonly processes: ClusterProcesses,
    private readonly adminToken: string,
  ) {}

  private get dir(): string {
    return this.processes.dir;
  }

  get auditLogPath(): string {
    return join(this.dir, 'audit.log');
  }

  /** Where kube-apiserver writes its self-signed serving certificate (--cert-dir). */
  get certDir(): string {
    return join(this.dir, 'certs');
  }

  get caFile(): string {
    return join(this.certDir, 'apiserver.crt');
  }

  /** The key service-account tokens are signed with (kube-controller-manager signs them too). */
  get serviceAccountKeyFile(): string {
    return join(this.dir, 'sa.key');
  }

  /** Writes the files the flags name and computes the flags, on a free port. */
  async configure(etcdUrl: string, users: Record<ClusterUserName, ClusterUser>): Promise<void> {
    const port = await freePort();
    this.url = `https://127.0.0.1:${port}`;
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(this.serviceAccountKeyFile, privateKey.export({ type: 'pkcs1', format: 'pem' }));
    writeFileSync(join(this.dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
    writeTokenAuthFile(join(this.dir, 'tokens.csv'), users);
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
    this.args = [
      `--etcd-servers=${etcdUrl}`,
      `--secure-port=${port}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--cert-dir=${this.certDir}`,
      `--token-auth-file=${join(this.dir, 'tokens.csv')}`,
      '--authorization-mode=RBAC',
      `--service-account-key-file=${join(this.dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${this.serviceAccountKeyFile}`,
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
  }

  /** Starts it (again) with the configured flags and waits for /readyz. */
  async start(): Promise<void> {
    const server = this.processes.start('kube-apiserver', controlPlaneBinaries().kubeApiserver, this.args);
    await waitFor(
      async () => {
        if (!server.running) throw new Error(`kube-apiserver exited; see ${this.processes.logOf('kube-apiserver')}`);
        if (!existsSync(this.caFile)) return false;
        const res = await httpsGet(this.url, '/readyz', this.caFile, this.adminToken);
        return res.status === 200 || undefined;
      },
      { timeoutMs: 90_000, intervalMs: 200, description: 'kube-apiserver /readyz' },
    );
  }

  async stop(): Promise<void> {
    await this.processes.get('kube-apiserver')?.stop();
  }

  /**
   * A second kube-apiserver on the same etcd, on its own port: lets a test change the cluster while
   * the first one (the one the operator talks to) is down.
   */
  async startSecond(): Promise<{ kubeConfig: k8s.KubeConfig; stop: () => Promise<void> }> {
    const port = await freePort();
    const certDir = join(this.dir, 'certs-2');
    const caFile = join(certDir, 'apiserver.crt');
    const args = this.args
      .filter((a) => !/^--(secure-port|cert-dir|audit-log-path)=/.test(a))
      .concat([`--secure-port=${port}`, `--cert-dir=${certDir}`, `--audit-log-path=${join(this.dir, 'audit-2.log')}`]);
    const server = this.processes.start('kube-apiserver-2', controlPlaneBinaries().kubeApiserver, args);
    const url = `https://127.0.0.1:${port}`;
    await waitFor(
      async () => {
        if (!server.running) throw new Error(`the second kube-apiserver exited; see ${this.processes.logOf('kube-apiserver-2')}`);
        if (!existsSync(caFile)) return false;
        return (await httpsGet(url, '/readyz', caFile, this.adminToken)).status === 200 || undefined;
      },
      { timeoutMs: 90_000, intervalMs: 200, description: 'the second kube-apiserver /readyz' },
    );
    const kubeConfig = new k8s.KubeConfig();
    kubeConfig.loadFromOptions({
      clusters: [{ name: 'second', server: url, caData: readFileSync(caFile).toString('base64') }],
      users: [{ name: 'admin', token: this.adminToken }],
      contexts: [{ name: 'admin@second', cluster: 'second', user: 'admin' }],
      currentContext: 'admin@second',
    });
    return { kubeConfig, stop: () => server.stop() };
  }
}
