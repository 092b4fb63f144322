// A kubeconfig without @kubernetes/client-node's generated API. client-node's KubeConfig class
// imports every generated model and API class (its config.js imports gen/index.js): about 50 MiB
// of resident memory in a process that never uses them (measured with Node 24: importing
// client-node's config.js 124 MiB RSS, its watch.js plus config_types.js plus yaml 76 MiB).
// The operator needs only what its REST client and client-node's Watch call on a kubeconfig —
// the current cluster and applySecurityAuthentication — for the credentials an operator has: the
// in-cluster service account, or a kubeconfig with a token or a client certificate. Anything else
// (exec plugins, auth providers, proxies) is left to client-node's full KubeConfig
// (`loadKubeAuth` loads it then, and only then pays for it).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, delimiter } from 'node:path';
import { isIPv6 } from 'node:net';
import { newClusters, newContexts, newUsers, type Cluster, type Context, type User } from '@kubernetes/client-node/dist/config_types.js';
import type { RequestContext } from '@kubernetes/client-node/dist/gen/http/http.js';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Agent } from 'undici';
import { http1Agent } from './http1-agent.ts';
import { parse } from 'yaml';
import { NO_KUBECONFIG_MESSAGE, type LoadKubeConfigOptions } from './kubeconfig-sources.ts';

/** What the REST client and client-node's Watch use of a kubeconfig (client-node's KubeConfig has it too). */
export type KubeAuth = Pick<KubeConfig, 'getCurrentCluster' | 'applySecurityAuthentication'>;

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** A projected service-account token is rotated on disk; it is read again this often, as client-go does. */
const TOKEN_FILE_REREAD_MS = 60_000;

interface Credentials {
  cluster: Cluster;
  user: User;
  /** The in-cluster token file, read again from time to time. */
  tokenFile?: string;
}

/** The light kubeconfig: one cluster and one user, a bearer token or a client certificate. */
export class LightKubeConfig implements KubeAuth {
  private dispatcher: Agent | undefined;
  private token: { value: string; readAt: number } | undefined;

  constructor(private readonly credentials: Credentials) {}

  getCurrentCluster(): Cluster {
    return this.credentials.cluster;
  }

  async applySecurityAuthentication(context: RequestContext): Promise<void> {
    const { cluster, user } = this.credentials;
    const token = this.bearerToken();
    if (token) context.setHeaderParam('Authorization', `Bearer ${token}`);
    else if (user.username) context.setHeaderParam('Authorization', `Basic ${Buffer.from(`${user.username}:${user.password ?? ''}`).toString('base64')}`);
    if (user.impersonateUser) context.setHeaderParam('Impersonate-User', user.impersonateUser);
    if (cluster.server.startsWith('http:')) {
      if (!cluster.skipTLSVerify) throw new Error('HTTP protocol is not allowed when skipTLSVerify is not set or false');
      return;
    }
    // HTTP/1.1: see http1-agent.ts.
    this.dispatcher ??= http1Agent({
      ...fileOrData('ca', cluster.caFile, cluster.caData),
      ...fileOrData('cert', user.certFile, user.certData),
      ...fileOrData('key', user.keyFile, user.keyData),
      ...(cluster.skipTLSVerify ? { rejectUnauthorized: false } : {}),
      ...(cluster.tlsServerName ? { servername: cluster.tlsServerName } : {}),
      // As client-node and client-go: a keep-alive probe before cloud load balancers' idle timeouts.
      keepAlive: true,
      keepAliveInitialDelay: 30_000,
    });
    context.setDispatcher(this.dispatcher);
  }

  private bearerToken(): string | undefined {
    const { tokenFile, user } = this.credentials;
    if (!tokenFile) return user.token ?? undefined;
    const now = Date.now();
    if (!this.token || now - this.token.readAt >= TOKEN_FILE_REREAD_MS) this.token = { value: readFileSync(tokenFile, 'utf8').trim(), readAt: now };
    return this.token.value;
  }
}

function fileOrData<K extends string>(key: K, file: string | undefined | null, data: string | undefined | null): Partial<Record<K, Buffer>> {
  if (file) return { [key]: readFileSync(file) } as Record<K, Buffer>;
  if (data) return { [key]: Buffer.from(data, 'base64') } as Record<K, Buffer>;
  return {};
}

interface ParsedFile {
  clusters: Cluster[];
  users: User[];
  contexts: Context[];
  currentContext: string | undefined;
}

function parseFile(file: string): ParsedFile {
  const doc = (parse(readFileSync(file, 'utf8')) ?? {}) as { clusters?: unknown; users?: unknown; contexts?: unknown; 'current-context'?: string };
  const root = dirname(file);
  const absolute = (p: string | undefined | null) => (p && !isAbsolute(p) ? join(root, p) : (p ?? undefined));
  return {
    clusters: newClusters(doc.clusters).map((c) => ({ ...c, caFile: absolute(c.caFile) })),
    users: newUsers(doc.users).map((u) => ({ ...u, certFile: absolute(u.certFile), keyFile: absolute(u.keyFile) })),
    contexts: newContexts(doc.contexts),
    currentContext: doc['current-context'],
  };
}

/** Files merged as kubectl does: the first definition of a name wins, the first file's current-context. */
function merge(files: ParsedFile[]): ParsedFile {
  const firstByName = <T extends { name: string }>(lists: T[][]) => {
    const out = new Map<string, T>();
    for (const item of lists.flat()) if (!out.has(item.name)) out.set(item.name, item);
    return [...out.values()];
  };
  return {
    clusters: firstByName(files.map((f) => f.clusters)),
    users: firstByName(files.map((f) => f.users)),
    contexts: firstByName(files.map((f) => f.contexts)),
    currentContext: files[0]?.currentContext,
  };
}

function inCluster(env: NodeJS.ProcessEnv): Credentials {
  const host = env.KUBERNETES_SERVICE_HOST ?? '';
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  const scheme = port === '80' || port === '8080' || port === '8001' ? 'http' : 'https';
  return {
    cluster: { name: 'inCluster', server: `${scheme}://${isIPv6(host) ? `[${host}]` : host}:${port}`, caFile: join(SERVICE_ACCOUNT_DIR, 'ca.crt'), skipTLSVerify: false },
    user: { name: 'inClusterUser' },
    tokenFile: join(SERVICE_ACCOUNT_DIR, 'token'),
  };
}

/**
 * The kubeconfig the way loadKubeConfig finds it (an explicit path, else $KUBECONFIG, else the
 * in-cluster service account, else ~/.kube/config), as a LightKubeConfig; undefined when its user
 * needs more than a token or a client certificate (exec, auth-provider) or its cluster a proxy.
 * Throws what loadKubeConfig throws when there is no kubeconfig or it cannot be read.
 */
export function loadLightKubeConfig(options: LoadKubeConfigOptions = {}): LightKubeConfig | undefined {
  const env = options.env ?? process.env;
  let files: string[];
  if (options.kubeconfigPath) files = [options.kubeconfigPath];
  else if (env.KUBECONFIG) files = env.KUBECONFIG.split(delimiter).filter((f) => f !== '' && existsSync(f));
  else if (env.KUBERNETES_SERVICE_HOST && existsSync(join(SERVICE_ACCOUNT_DIR, 'token'))) return options.context ? undefined : new LightKubeConfig(inCluster(env));
  else if (env.HOME && existsSync(join(env.HOME, '.kube', 'config'))) files = [join(env.HOME, '.kube', 'config')];
  else throw new Error(NO_KUBECONFIG_MESSAGE);
  if (files.length === 0) return undefined; // loadKubeConfig explains what is missing
  let parsed: ParsedFile;
  try {
    parsed = merge(files.map(parseFile));
  } catch {
    return undefined; // loadKubeConfig reports the error in its words
  }
  const contextName = options.context ?? parsed.currentContext;
  const context = parsed.contexts.find((c) => c.name === contextName);
  const cluster = parsed.clusters.find((c) => c.name === context?.cluster);
  const user = parsed.users.find((u) => u.name === context?.user) ?? { name: '' };
  if (!cluster || user.exec || user.authProvider || cluster.proxyUrl) return undefined;
  return new LightKubeConfig({ cluster, user });
}

/** The light kubeconfig when it serves; else client-node's full KubeConfig (loaded only then). */
export async function loadKubeAuth(options: LoadKubeConfigOptions = {}): Promise<KubeAuth> {
  const light = loadLightKubeConfig(options);
  if (light) return light;
  const { loadKubeConfig } = await import('./client.ts');
  return loadKubeConfig(options);
}
