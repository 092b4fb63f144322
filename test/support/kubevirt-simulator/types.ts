// The parts of KubeVirt's objects the simulator reads and writes (kubevirt.io/v1).
import type { V1VirtualMachine, V1VirtualMachineInstance } from '@kubevirt-ui-ext/kubevirt-api/kubevirt';
import type * as k8s from '@kubernetes/client-node';

export type VirtualMachine = Omit<V1VirtualMachine, 'metadata'> & { metadata: k8s.V1ObjectMeta; [key: string]: unknown };
export type VirtualMachineInstance = Omit<V1VirtualMachineInstance, 'metadata'> & { metadata: k8s.V1ObjectMeta; [key: string]: unknown };
export type Pod = k8s.V1Pod & { [key: string]: unknown };

// Labels and annotations KubeVirt uses (kubevirt.io/api/core/v1 types.go).
export const APP_LABEL = 'kubevirt.io';
export const CREATED_BY_LABEL = 'kubevirt.io/created-by';
export const VM_NAME_LABEL = 'vm.kubevirt.io/name';
export const NODE_NAME_LABEL = 'kubevirt.io/nodeName';
export const NODE_SCHEDULABLE_LABEL = 'kubevirt.io/schedulable';
export const DOMAIN_ANNOTATION = 'kubevirt.io/domain';
export const MULTUS_NETWORKS_ANNOTATION = 'k8s.v1.cni.cncf.io/networks';
export const LAUNCHER_IMAGE = 'quay.io/kubevirt/virt-launcher:v1.9.0';
