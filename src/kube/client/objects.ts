// The one object model: what the API server sends and accepts, as JSON. KubeVirt kinds come from
// @kubevirt-ui-ext/kubevirt-api, core kinds from @kubernetes/client-node. Timestamps travel as
// RFC 3339 strings, so metadata is KubeVirt's generated ObjectMeta (strings), never client-node's
// (Dates it would only have after its own deserializer, which the JSON client does not run).
import type { V1PersistentVolumeClaim, V1Pod, V1Secret } from '@kubernetes/client-node';
import type {
  K8sIoApimachineryPkgApisMetaV1ManagedFieldsEntry,
  K8sIoApimachineryPkgApisMetaV1ObjectMeta,
  V1Disk,
  V1VirtualMachine,
  V1VirtualMachineCondition,
  V1VirtualMachineInstance,
  V1VirtualMachineInstanceCondition,
  V1Volume,
  V1VolumeStatus,
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

/**
 * The KubeVirt CR, as far as HyperSpector reads it (the generated V1KubeVirtSpec misnames
 * `configuration`): feature gates and version.
 */
export interface KubeVirt extends KubeObject {
  spec?: { configuration?: { developerConfiguration?: { featureGates?: string[]; disabledFeatureGates?: string[] } } };
  status?: { phase?: string; observedKubeVirtVersion?: string; targetKubeVirtVersion?: string };
}
export type VirtualMachineDisk = V1Disk;
export type VirtualMachineVolume = V1Volume;
export type VolumeStatus = V1VolumeStatus;

/** A core/v1 Pod with the wire-format metadata. */
export type Pod = Omit<V1Pod, 'metadata'> & { metadata?: ObjectMeta };
/** A core/v1 Secret with the wire-format metadata. */
export type Secret = Omit<V1Secret, 'metadata'> & { metadata?: ObjectMeta };
/** A core/v1 PersistentVolumeClaim with the wire-format metadata. */
export type PersistentVolumeClaim = Omit<V1PersistentVolumeClaim, 'metadata'> & { metadata?: ObjectMeta };

export function nameOf(object: KubeObject): string {
  return object.metadata?.name ?? '';
}

export function namespaceOf(object: KubeObject): string {
  return object.metadata?.namespace ?? '';
}

export function isDeleting(object: KubeObject | undefined): boolean {
  return Boolean(object?.metadata?.deletionTimestamp);
}
