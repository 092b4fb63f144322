// Planner: the IDS VM, owned whole, pinned to the server VM's node; restarted when it runs on
// another node or an older template KubeVirt cannot update live.
import type { MonitoredServer } from '../../../api/v1alpha1/monitoredserver-types.ts';
import { buildIdsVirtualMachine, HOSTNAME_LABEL, serverPodLabels } from '../../../builders/ids-vm.ts';
import { idsVmName, isAdopting, roleLabels } from '../../../builders/names.ts';
import type { IdsNics } from '../../../builders/networking.ts';
import { VIRTUAL_MACHINE_INSTANCE } from '../../../kube/client/resources.ts';
import type { Action } from '../actions.ts';
import { vmiNeedsRestart, vmiNode, type ObservedState } from '../observed-state.ts';
import { EventReason } from '../reasons.ts';
import { hasDisksToDrop, resolveDiskInspection } from './disk-inspection.ts';
import { planOwnedVm } from './owned-vm.ts';

/**
 * `networking`: the IDS VM gets its mirror and IDS-network NICs, and waits until its IDS-network
 * address is claimed (it is in the network data; `networkData` is what planIdsNetworkData returned).
 */
export function planIdsVm(ms: MonitoredServer, o: ObservedState, networking?: { networkData?: string; address?: string; nics: IdsNics }): Action[] {
  if (o.idsNameTaken || o.serverClaimedBy || o.serverNameTaken) return [];
  const serverNode = vmiNode(o.serverVmi);
  if (!serverNode || !o.serverVmi) return []; // Colocated=False WaitingForServerPlacement until the server has a node
  // IDSNetworkJoined says what the IDS VM waits for (its address, or network data it cannot take).
  if (networking && networking.networkData === undefined) return [];
  const ns = ms.metadata.namespace ?? '';
  const vmName = idsVmName(ms);
  const hostname = (o.serverVmi.spec?.hostname as string | undefined) ?? o.serverVmi.metadata?.name ?? '';
  const desired = buildIdsVirtualMachine(ms, {
    nodeName: serverNode,
    serverVmiUid: o.serverVmi.metadata?.uid ?? '',
    serverPodLabels: serverPodLabels(isAdopting(ms), roleLabels(ms, 'server'), hostname),
  }, resolveDiskInspection(ms, o, networking?.networkData).ids, networking?.nics);
  const vmActions = planOwnedVm(desired, o.idsVm, {
    capability: 'idsVM',
    kind: 'IDSVM',
    updated: EventReason.IDSVMUpdated,
    describe: `IDS VirtualMachine ${vmName}`,
    // The IDS-network address it was given (MonitoringStarted and status.idsNetwork say it too).
    createdDetail: ` pinned to node ${serverNode}${networking?.address ? `, IDS-network address ${networking.address}` : ''}`,
  }, hasDisksToDrop(ms, o));
  // Whether the running IDS VMI must restart is decided on a VM that already matches: while a
  // write is pending, the VM and KubeVirt's view of it are about to change.
  if (vmActions.length > 0) return vmActions;
  const idsVmi = o.idsVmi;
  if (!idsVmi || idsVmi.metadata?.deletionTimestamp) return [];
  const idsNode = vmiNode(idsVmi);
  const wrongNode = idsNode !== undefined && idsNode !== serverNode;
  // A VMI not yet on a node keeps the node selector it was created with (its pod's is immutable):
  // pinned to a node the server left, it would wait there forever.
  const pinnedTo = idsVmi.spec?.nodeSelector?.[HOSTNAME_LABEL];
  const stalePin = idsNode === undefined && pinnedTo !== undefined && pinnedTo !== serverNode;
  if (!wrongNode && !stalePin && !vmiNeedsRestart(o.idsVm, idsVmi)) return [];
  const why = wrongNode
    ? `it ran on node ${idsNode} but the server VM runs on node ${serverNode}`
    : stalePin
      ? `it waited for node ${pinnedTo} but the server VM runs on node ${serverNode}`
      : 'its template changed';
  return [
    {
      type: 'delete',
      capability: 'idsVM',
      failureReason: 'RestartIDSVMFailed',
      log: `Restart IDS VM ${ns}/${vmName}: ${why}`,
      resource: VIRTUAL_MACHINE_INSTANCE,
      namespace: ns,
      name: vmName,
      // Its VM starts it again from the current template, on the server's node.
      ...(idsVmi.metadata?.uid ? { preconditionUid: idsVmi.metadata.uid } : {}),
      tolerate: [404, 409],
      event: { type: 'Normal', reason: EventReason.IDSVMRestarted, message: `Restarted IDS VirtualMachine ${vmName}: ${why}` },
    },
  ];
}
