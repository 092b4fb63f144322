// Reads a NetworkAttachmentDefinition's spec.config as Multus does when it sets up a pod.
import * as k8s from '@kubernetes/client-node';

export async function readNadConfig(kubeConfig: k8s.KubeConfig, namespace: string, name: string): Promise<string | undefined> {
  const api = kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  try {
    const nad = (await api.getNamespacedCustomObject({ group: 'k8s.cni.cncf.io', version: 'v1', namespace, plural: 'network-attachment-definitions', name })) as { spec?: { config?: string } };
    return nad.spec?.config ?? '{}';
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
}
