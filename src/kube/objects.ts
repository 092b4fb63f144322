// The one object model: what the API server sends and accepts, as JSON. KubeVirt kinds come from
// @kubevirt-ui-ext/kubevirt-api, core kinds from @kubernetes/client-node. Timestamps travel as
// RFC 3339 strings, so metadata is KubeVirt's generated ObjectMeta (strings), never client-node's
// (Dates it would only have after its own deserializer, which the JSON client does not run).
import type { V1Pod } from '@kubernetes/client-node';
import type {
  K8sIoApimachineryPkgApisMetaV1ManagedFieldsEntry,
  K8sIoApimachineryPkgApisMetaV1ObjectMeta,
  V1VirtualMachine,
  V1VirtualMachineCondition,
  V1VirtualMachineInstance,
  V1VirtualMachineInstanceCondition,
} from '@kubevirt-ui-ext/kubevirt-api/kubevirt';

export type ObjectMeta = K8sIoApimachineryPkgApisMetaV1ObjectMeta;
export type ManagedFieldsEntry = K8sIoApimachineryPkgApisMetaV1ManagedFieldsEntry;

/** Any Kubernetes object as JSON: what the generic client, caches and apply helpers handle. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
}

export type VirtualMachine = V1VirtualMachine;
export type VirtualMachineInstance = V1VirtualMachineInstance;
export type VirtualMachineCondition = V1VirtualMachineCondition;
export type VirtualMachineInstanceCondition = V1VirtualMachineInstanceCondition;

/** A core/v1 Pod with the wire-format metadata. */
export type Pod = Omit<V1Pod, 'metadata'> & { metadata?: ObjectMeta };

export function nameOf(object: KubeObject): string {
  return object.metadata?.name ?? '';
}

export function namespaceOf(object: KubeObject): string {
  return object.metadata?.namespace ?? '';
}

export function isDeleting(object: KubeObject | undefined): boolean {
  return Boolean(object?.metadata?.deletionTimestamp);
}
