// The kubevirt.io/v1 VirtualMachine shape the builders produce: KubeVirt's own type with the
// identity fields a builder always sets.
import type { ObjectMeta, VirtualMachine } from '../kube/client/objects.ts';

export type BuiltVirtualMachine = VirtualMachine & {
  apiVersion: 'kubevirt.io/v1';
  kind: 'VirtualMachine';
  metadata: ObjectMeta;
};
