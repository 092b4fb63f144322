// Pure logic of KubeVirt's VirtualMachine controller (virt-controller pkg/virt-controller/watch/vm),
// as far as an operator can observe it: whether a VMI should exist, the VMI built from the VM, and
// the VM's status.
import type { VirtualMachine, VirtualMachineInstance } from './types.ts';
import { canonicalJson } from '../../../src/kube/canonical-json.ts';

export type RunStrategy = 'Always' | 'RerunOnFailure' | 'Halted' | 'Manual' | 'Once';

export function runStrategyOf(vm: VirtualMachine): RunStrategy {
  const strategy = vm.spec?.runStrategy as RunStrategy | undefined;
  if (strategy) return strategy;
  // `running` is the deprecated boolean form of runStrategy.
  return vm.spec?.running === true ? 'Always' : 'Halted';
}

export type VmAction = { type: 'none' } | { type: 'create' } | { type: 'delete'; reason: string };

const finished = (vmi?: VirtualMachineInstance) => vmi?.status?.phase === 'Failed' || vmi?.status?.phase === 'Succeeded';

/** What the VM controller does with the VM's VMI next. */
export function nextVmAction(vm: VirtualMachine, vmi: VirtualMachineInstance | undefined): VmAction {
  const deleting = Boolean(vmi?.metadata.deletionTimestamp);
  if (vm.metadata.deletionTimestamp) return vmi && !deleting ? { type: 'delete', reason: 'VM is being deleted' } : { type: 'none' };
  if (deleting) return { type: 'none' }; // wait until the old VMI is gone
  switch (runStrategyOf(vm)) {
    case 'Always':
      if (!vmi) return { type: 'create' };
      return finished(vmi) ? { type: 'delete', reason: `VMI ${vmi.status?.phase}; restarting (runStrategy Always)` } : { type: 'none' };
    case 'RerunOnFailure':
      // A VMI that Succeeded (guest shut down) stays; one that Failed is replaced.
      if (!vmi) return { type: 'create' };
      return vmi.status?.phase === 'Failed' ? { type: 'delete', reason: 'VMI failed; restarting (runStrategy RerunOnFailure)' } : { type: 'none' };
    case 'Halted':
      return vmi ? { type: 'delete', reason: 'runStrategy Halted' } : { type: 'none' };
    case 'Once':
      return !vmi && !hasRunBefore(vm) ? { type: 'create' } : { type: 'none' };
    case 'Manual':
      return { type: 'none' };
  }
}

const RAN_ANNOTATION = 'simulator.hyperspector.io/started';

function hasRunBefore(vm: VirtualMachine): boolean {
  return vm.metadata.annotations?.[RAN_ANNOTATION] === 'true';
}

/** The annotation the simulator leaves on a VM once it started it (for runStrategy Once). */
export const startedAnnotation = { [RAN_ANNOTATION]: 'true' };

/** The VMI the VM controller creates: template metadata and spec, owned by the VM. */
export function buildVmi(vm: VirtualMachine): VirtualMachineInstance {
  const template = vm.spec?.template;
  return {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachineInstance',
    metadata: {
      name: vm.metadata.name,
      namespace: vm.metadata.namespace,
      labels: { ...(template?.metadata?.labels as Record<string, string> | undefined) },
      annotations: {
        ...(template?.metadata?.annotations as Record<string, string> | undefined),
        'kubevirt.io/vm-generation': String(vm.metadata.generation ?? 1),
      },
      ownerReferences: [
        {
          apiVersion: 'kubevirt.io/v1',
          kind: 'VirtualMachine',
          name: vm.metadata.name ?? '',
          uid: vm.metadata.uid ?? '',
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: structuredClone(template?.spec ?? { domain: { devices: {} } }),
  } as VirtualMachineInstance;
}

function conditionTrue(vmi: VirtualMachineInstance | undefined, type: string): boolean {
  return Boolean(vmi?.status?.conditions?.some((c) => c.type === type && c.status === 'True'));
}

/** printableStatus, as virt-controller computes it (the subset the simulator can reach). */
export function printableStatus(vm: VirtualMachine, vmi: VirtualMachineInstance | undefined): string {
  if (vm.metadata.deletionTimestamp) return 'Terminating';
  if (!vmi) return 'Stopped';
  if (vmi.metadata.deletionTimestamp) return 'Stopping';
  switch (vmi.status?.phase) {
    case 'Running':
      return conditionTrue(vmi, 'Paused') ? 'Paused' : 'Running';
    case 'Scheduled':
    case 'Scheduling':
    case 'Pending':
    case undefined:
    case '':
      return vmi.status?.conditions?.some((c) => c.type === 'PodScheduled' && c.status === 'False' && c.reason === 'Unschedulable')
        ? 'ErrorUnschedulable'
        : 'Starting';
    case 'Succeeded':
    case 'Failed':
      return 'Stopped';
    default:
      return 'Unknown';
  }
}

/** The VM status virt-controller would write. */
export function buildVmStatus(vm: VirtualMachine, vmi: VirtualMachineInstance | undefined, now: string): Record<string, unknown> {
  const ready = conditionTrue(vmi, 'Ready') && !vmi?.metadata.deletionTimestamp;
  const previous = (vm.status?.conditions ?? []) as Array<{ type: string; status: string; lastTransitionTime?: string }>;
  const transition = (type: string, status: string) => {
    const old = previous.find((c) => c.type === type);
    return old && old.status === status ? old.lastTransitionTime : now;
  };
  const conditions: Array<Record<string, unknown>> = [
    {
      type: 'Ready',
      status: ready ? 'True' : 'False',
      reason: ready ? '' : vmi ? 'PodNotReady' : 'VMINotExists',
      message: ready ? '' : vmi ? 'VMI is not ready' : 'VMI does not exist',
     
      lastTransitionTime: transition('Ready', ready ? 'True' : 'False'),
    },
  ];
  if (vmi && !vmi.metadata.deletionTimestamp && templateDiffers(vm, vmi)) {
    conditions.push({
      type: 'RestartRequired',
      status: 'True',
      reason: '',
      message: 'a non-live-updatable field was changed in the template spec',
     
      lastTransitionTime: transition('RestartRequired', 'True'),
    });
  }
  return {
    created: Boolean(vmi),
    ready,
    printableStatus: printableStatus(vm, vmi),
    runStrategy: runStrategyOf(vm),
    observedGeneration: vm.metadata.generation,
    desiredGeneration: vm.metadata.generation,
    conditions,
  };
}

/** A running VMI keeps the spec it was started with; a template change needs a restart. */
export function templateDiffers(vm: VirtualMachine, vmi: VirtualMachineInstance): boolean {
  return canonicalJson(vm.spec?.template?.spec) !== canonicalJson(vmi.spec);
}
