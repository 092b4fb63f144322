// The IDS VM: the user's template, owned by the MonitoredServer, pinned to the server VM's node.
import type { MonitoredServer } from '../api/v1alpha1/monitoredserver-types.ts';
import { ANNOTATION_PAIRED_WITH, idsVmName, ownerReference, roleLabels } from './names.ts';
import type { BuiltVirtualMachine } from './virtual-machine.ts';
import { withDiskInspection, type IdsDiskInspection } from './disk-inspection.ts';
import { withFirstNicMac } from './ids-network-data.ts';
import { withIdsNics, type IdsNics } from './networking.ts';
import { intakeEnabled, withIntakeDisk } from './ids-intake.ts';

export const HOSTNAME_LABEL = 'kubernetes.io/hostname';
/** Label KubeVirt puts on a VMI's virt-launcher pod: the VMI's UID. */
export const LAUNCHER_CREATED_BY_LABEL = 'kubevirt.io/created-by';
/** Label KubeVirt puts on a VMI's virt-launcher pod: the VMI's hostname (its name unless spec.hostname is set). */
export const LAUNCHER_VM_NAME_LABEL = 'vm.kubevirt.io/name';

/** Where the server VM runs now: the IDS VM is placed beside it. */
export interface ServerPlacement {
  nodeName: string;
  /** UID of the server VMI (recorded on the IDS VM for traceability). */
  serverVmiUid: string;
  /**
   * Labels of the server's virt-launcher pod that stay the same across server restarts, so that a
   * server restarted on the same node does not force the IDS VM to restart.
   */
  serverPodLabels: Record<string, string>;
}

/** Launcher-pod labels that identify the server VM: ours on an owned VM, KubeVirt's on an adopted one. */
export function serverPodLabels(adopted: boolean, roleLabels: Record<string, string>, serverVmiHostname: string): Record<string, string> {
  if (!adopted) return { 'hyperspector.io/monitored-server': roleLabels['hyperspector.io/monitored-server'] ?? '', 'hyperspector.io/role': 'server' };
  return { [LAUNCHER_VM_NAME_LABEL]: serverVmiHostname };
}

/**
 * The IDS VM. It runs on the server's node: a nodeSelector on kubernetes.io/hostname, plus a
 * required pod affinity to the server VMI's launcher pod, so the scheduler also refuses to place
 * it anywhere else if the node's hostname label were ambiguous. A changed placement changes the
 * VMI template, which KubeVirt reports as RestartRequired; the reconciler then restarts the IDS VMI.
 * With `diskInspection`, the server's disks are plugged in read-only and cloud-init mounts them.
 * Its eviction strategy is None, so a node drain never waits on it.
 */
export function buildIdsVirtualMachine(ms: MonitoredServer, placement: ServerPlacement, diskInspection?: IdsDiskInspection, nics?: IdsNics): BuiltVirtualMachine {
  const template = ms.spec.ids.template;
  const labels = roleLabels(ms, 'ids');
  const spec = structuredClone(template.spec);
  const vmiTemplate = spec.template ?? { spec: { domain: { devices: {} } } };
  let vmiSpec = { ...(vmiTemplate.spec ?? { domain: { devices: {} } }) };
  if (diskInspection) vmiSpec = withDiskInspection(vmiSpec, diskInspection);
  // The alert intake's token, URL and forwarder (ids-intake.ts): a disk, never an environment of the server.
  if (intakeEnabled(ms)) vmiSpec = withIntakeDisk(vmiSpec, ms);
  // Networking: the template's first NIC gets a stable MAC (our network data may name it), then ours.
  if (nics) vmiSpec = withIdsNics(withFirstNicMac(ms, vmiSpec), ms, nics);
  vmiSpec.nodeSelector = { ...(vmiSpec.nodeSelector ?? {}), [HOSTNAME_LABEL]: placement.nodeName };
  const affinity = structuredClone(vmiSpec.affinity ?? {});
  const podAffinity = affinity.podAffinity ?? {};
  podAffinity.requiredDuringSchedulingIgnoredDuringExecution = [
    ...(podAffinity.requiredDuringSchedulingIgnoredDuringExecution ?? []),
    { labelSelector: { matchLabels: { ...placement.serverPodLabels } }, topologyKey: HOSTNAME_LABEL },
  ];
  affinity.podAffinity = podAffinity;
  vmiSpec.affinity = affinity;
  // Never blocks a drain: an eviction stops it (a cluster-wide LiveMigrate default would refuse to
  // evict a VM that cannot migrate — hot-plugged disks, a node-local mirror); the operator starts it
  // again beside the server (planners/evacuation.ts).
  vmiSpec.evictionStrategy = 'None';
  spec.template = {
    ...vmiTemplate,
    metadata: { ...(vmiTemplate.metadata ?? {}), labels: { ...((vmiTemplate.metadata?.labels as Record<string, string> | undefined) ?? {}), ...labels } },
    spec: vmiSpec,
  };
  return {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachine',
    metadata: {
      name: idsVmName(ms),
      namespace: ms.metadata.namespace,
      labels: { ...(template.metadata?.labels ?? {}), ...labels },
      annotations: { ...(template.metadata?.annotations ?? {}), [ANNOTATION_PAIRED_WITH]: placement.serverVmiUid },
      ownerReferences: [ownerReference(ms)],
    },
    spec,
  };
}
