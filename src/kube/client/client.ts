import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { AgentOptions } from 'node:https';
import { type Cluster, KubeConfig } from '@kubernetes/client-node';
import type { Dispatcher } from 'undici';
import { http1Agent } from './http1-agent.ts';
import { NO_KUBECONFIG_MESSAGE, type LoadKubeConfigOptions } from './kubeconfig-sources.ts';
import { type KubeApi, type KubeApiOptions, createKubeApi } from './rest.ts';

export type { LoadKubeConfigOptions };
export { NO_KUBECONFIG_MESSAGE };

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';


/**
 * Loads a KubeConfig the way kubectl and controller-runtime do: an explicit path, else
 * $KUBECONFIG, else the in-cluster service account when running in a pod, else ~/.kube/config.
 * With none of them it refuses (client-node would otherwise try http://localhost:8080 forever).
 */
export function loadKubeConfig(options: LoadKubeConfigOptions = {}): KubeConfig {
  const env = options.env ?? process.env;
  const kc = new KubeConfig();
  const describe = () => options.kubeconfigPath ?? env.KUBECONFIG ?? (env.KUBERNETES_SERVICE_HOST ? 'in-cluster config' : 'default kubeconfig');
  try {
    if (options.kubeconfigPath) {
      kc.loadFromFile(options.kubeconfigPath);
    } else if (env.KUBECONFIG) {
      // A path list is merged, the first file's current-context winning, as kubectl does.
      const files = env.KUBECONFIG.split(delimiter).filter((f) => f !== '');
      if (!files.some((f) => existsSync(f))) throw new Error(`none of the files exist: ${files.join(', ')}`);
      let first = true;
      for (const file of files.filter((f) => existsSync(f))) {
        if (first) kc.loadFromFile(file);
        else {
          const more = new KubeConfig();
          more.loadFromFile(file);
          // The first definition of a name wins; client-node's mergeConfig throws on duplicates instead.
          for (const cluster of more.getClusters()) if (!kc.getCluster(cluster.name)) kc.addCluster(cluster);
          for (const user of more.getUsers()) if (!kc.getUser(user.name)) kc.addUser(user);
          for (const context of more.getContexts()) if (!kc.getContextObject(context.name)) kc.addContext(context);
        }
        first = false;
      }
    } else if (env.KUBERNETES_SERVICE_HOST && existsSync(SERVICE_ACCOUNT_TOKEN)) {
      kc.loadFromCluster();
    } else if (env.HOME && existsSync(join(env.HOME, '.kube', 'config'))) {
      kc.loadFromFile(join(env.HOME, '.kube', 'config'));
    } else {
      throw new NoKubeConfigError();
    }
  } catch (err) {
    if (err instanceof NoKubeConfigError) throw err;
    throw new Error(`Failed to load kubeconfig from ${describe()}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  if (options.context) kc.setCurrentContext(options.context);
  if (!kc.getCurrentCluster()) throw new Error(`Failed to load kubeconfig from ${describe()}: no current cluster`);
  preferHttp1(kc);
  return kc;
}

/**
 * client-node's dispatchers replaced by the operator's HTTP/1.1 agent, as the light kubeconfig's
 * (http1-agent.ts says why). Proxies keep client-node's own dispatchers.
 */
function preferHttp1(kc: KubeConfig): void {
  const original: unknown = Reflect.get(kc, 'createDispatcher');
  if (typeof original !== 'function') return;
  Reflect.set(kc, 'createDispatcher', (cluster: Cluster | null, agentOptions: AgentOptions): Dispatcher | undefined => {
    const options = kc.createDispatcherOptions(cluster, agentOptions);
    if (options.type === 'agent') return http1Agent(options.connect);
    if (options.type === 'none' && cluster?.server.startsWith('https:')) return http1Agent();
    return Reflect.apply(original, kc, [cluster, agentOptions]) as Dispatcher | undefined;
  });
}

class NoKubeConfigError extends Error {
  constructor() {
    super(NO_KUBECONFIG_MESSAGE);
  }
}

export interface KubeClients {
  kubeConfig: KubeConfig;
  /** JSON client for any API path (apply, status, leases, events, lists). */
  api: KubeApi;
  /** Builds one of client-node's typed clients, e.g. `clients.typed(CoreV1Api)`. */
  typed<T>(apiClass: new (...args: never[]) => T): T;
}

export function createKubeClients(kubeConfig: KubeConfig, options: KubeApiOptions = {}): KubeClients {
  return {
    kubeConfig,
    api: createKubeApi(kubeConfig, options),
    typed: <T>(apiClass: new (...args: never[]) => T) => kubeConfig.makeApiClient(apiClass as never) as T,
  };
}
