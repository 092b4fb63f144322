/**
 * Which REST collection a kind lives in. The plural and scope are fixed by each API, so callers
 * declare them once (see the constants below) instead of running discovery.
 */
export interface ResourceType {
  apiVersion: string;
  kind: string;
  plural: string;
  namespaced: boolean;
}

/** `/api/v1/...` for the core group, `/apis/<group>/<version>/...` otherwise. */
function groupVersionPath(apiVersion: string): string {
  return apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
}

/** Collection path, across all namespaces when `namespace` is omitted for a namespaced type. */
export function collectionPath(type: ResourceType, namespace?: string): string {
  const base = groupVersionPath(type.apiVersion);
  if (type.namespaced && namespace) return `${base}/namespaces/${encodeURIComponent(namespace)}/${type.plural}`;
  return `${base}/${type.plural}`;
}

export function objectPath(type: ResourceType, namespace: string | undefined, name: string, subresource?: string): string {
  if (type.namespaced && !namespace) throw new Error(`${type.kind} ${name}: a namespace is required for this namespaced kind`);
  const path = `${collectionPath(type, namespace)}/${encodeURIComponent(name)}`;
  return subresource ? `${path}/${subresource}` : path;
}

export const LEASE: ResourceType = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', plural: 'leases', namespaced: true };
export const EVENT: ResourceType = { apiVersion: 'events.k8s.io/v1', kind: 'Event', plural: 'events', namespaced: true };
export const CORE_EVENT: ResourceType = { apiVersion: 'v1', kind: 'Event', plural: 'events', namespaced: true };
export const POD: ResourceType = { apiVersion: 'v1', kind: 'Pod', plural: 'pods', namespaced: true };
export const CONFIG_MAP: ResourceType = { apiVersion: 'v1', kind: 'ConfigMap', plural: 'configmaps', namespaced: true };
export const NAMESPACE: ResourceType = { apiVersion: 'v1', kind: 'Namespace', plural: 'namespaces', namespaced: false };
export const SERVICE: ResourceType = { apiVersion: 'v1', kind: 'Service', plural: 'services', namespaced: true };
export const SECRET: ResourceType = { apiVersion: 'v1', kind: 'Secret', plural: 'secrets', namespaced: true };
export const PERSISTENT_VOLUME_CLAIM: ResourceType = { apiVersion: 'v1', kind: 'PersistentVolumeClaim', plural: 'persistentvolumeclaims', namespaced: true };
export const KUBEVIRT: ResourceType = { apiVersion: 'kubevirt.io/v1', kind: 'KubeVirt', plural: 'kubevirts', namespaced: true };
export const VIRTUAL_MACHINE: ResourceType = { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', plural: 'virtualmachines', namespaced: true };
export const VIRTUAL_MACHINE_INSTANCE: ResourceType = { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstance', plural: 'virtualmachineinstances', namespaced: true };
export const NETWORK_ATTACHMENT_DEFINITION: ResourceType = { apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', plural: 'network-attachment-definitions', namespaced: true };
export const MULTI_NETWORK_POLICY: ResourceType = { apiVersion: 'k8s.cni.cncf.io/v1beta1', kind: 'MultiNetworkPolicy', plural: 'multi-networkpolicies', namespaced: true };
export const NETWORK_POLICY: ResourceType = { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', plural: 'networkpolicies', namespaced: true };
export const NODE: ResourceType = { apiVersion: 'v1', kind: 'Node', plural: 'nodes', namespaced: false };
