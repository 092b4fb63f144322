// The kubevirt.io/v1 VirtualMachine shape the builders produce.
import type { V1VirtualMachineSpec } from '@kubevirt-ui-ext/kubevirt-api/kubevirt';
import type { ObjectMeta } from '../api/v1alpha1/monitoredserver-types.ts';

export interface VirtualMachine {
  apiVersion: 'kubevirt.io/v1';
  kind: 'VirtualMachine';
  metadata: ObjectMeta;
  spec: V1VirtualMachineSpec;
  status?: Record<string, unknown>;
}
