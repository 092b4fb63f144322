// Namespaces of the local cluster, ready for pods.
import * as k8s from '@kubernetes/client-node';
import type { LocalCluster } from './local-cluster.ts';
import { waitFor } from '../wait.ts';

/**
 * Creates the namespace if needed and waits for its `default` ServiceAccount: with the
 * ServiceAccount admission plugin on (as in every real cluster), a pod created before the service
 * account controller made it is refused.
 */
export async function ensureNamespace(cluster: LocalCluster, name: string): Promise<void> {
  const core = cluster.api(k8s.CoreV1Api);
  try {
    await core.createNamespace({ body: { metadata: { name } } });
  } catch (err) {
    if ((err as { code?: number }).code !== 409) throw err;
  }
  await waitFor(() => core.readNamespacedServiceAccount({ namespace: name, name: 'default' }).then(() => true), {
    timeoutMs: 30_000,
    description: `the default ServiceAccount of namespace ${name}`,
  });
}
