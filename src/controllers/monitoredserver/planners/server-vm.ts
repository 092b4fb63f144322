// Planner: the server VM. Created from spec.server.template and owned whole; or, when
// spec.server.virtualMachineName names the user's own VM, adopted: only HyperSpector's label and
// annotation are added, nothing of the user's VM changes.
import type { MonitoredServer } from '../../../api/v1alpha1/monitoredserver-types.ts';
import { buildAdoptionMarks, buildServerVirtualMachine } from '../../../builders/server-vm.ts';
import { isAdopting, serverVmName } from '../../../builders/names.ts';
import { VIRTUAL_MACHINE } from '../../../kube/client/resources.ts';
import type { Action } from '../actions.ts';
import type { ObservedState } from '../observed-state.ts';
import { EventReason } from '../reasons.ts';
import { planOwnedVm } from './owned-vm.ts';

export function planServerVm(ms: MonitoredServer, o: ObservedState): Action[] {
  if (o.serverClaimedBy || o.serverNameTaken) return [];
  const ns = ms.metadata.namespace ?? '';
  const vmName = serverVmName(ms);
  if (!isAdopting(ms)) {
    return planOwnedVm(buildServerVirtualMachine(ms), o.serverVm, {
      capability: 'serverVM',
      kind: 'ServerVM',
      updated: EventReason.ServerVMUpdated,
      describe: `server VirtualMachine ${vmName}`,
    });
  }
  if (!o.serverVm) return []; // ServerRunning=False ServerVMNotFound says what to do
  const marks = buildAdoptionMarks(ms);
  const labels = o.serverVm.metadata?.labels ?? {};
  const annotations = o.serverVm.metadata?.annotations ?? {};
  const marked =
    Object.entries(marks.metadata.labels ?? {}).every(([k, v]) => labels[k] === v) &&
    Object.entries(marks.metadata.annotations ?? {}).every(([k, v]) => annotations[k] === v);
  if (marked) return [];
  return [
    {
      type: 'patch',
      capability: 'serverVM',
      failureReason: 'AdoptServerVMFailed',
      log: `Adopt VirtualMachine ${ns}/${vmName}`,
      resource: VIRTUAL_MACHINE,
      namespace: ns,
      name: vmName,
      patchType: 'merge',
      // Exactly our label and annotation: nothing of the owner's VM changes.
      body: { metadata: { labels: marks.metadata.labels, annotations: marks.metadata.annotations } },
      event: { type: 'Normal', reason: EventReason.ServerVMAdopted, message: `Adopted VirtualMachine ${vmName} as the monitored server` },
    },
  ];
}
