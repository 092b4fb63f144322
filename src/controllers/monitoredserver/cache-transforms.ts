// What the MonitoredServer controller's caches keep of each object. The operator watches every
// VirtualMachine and VMI (an adopted server VM is named by its user, not found by a label), so
// without these a cluster's unmonitored VMs — full templates, cloud-init, managedFields — would
// fill its memory. Every field the controller (observe, status, reconcile) reads is kept; a field
// it starts to read must be added here, and cache-transforms.test.ts shows what is kept.
import type { KubeObject } from '../../kube/client/objects.ts';
import { FIELD_MANAGER } from '../../kube/client/apply.ts';
import type { MonitoredServer } from '../../api/v1alpha1/monitoredserver-types.ts';
import type { ManagedFieldsEntry, Pod, VirtualMachine, VirtualMachineInstance } from '../../kube/client/objects.ts';
import { pick, strippedMetadata } from '../../kube/runtime/cache-transform.ts';
import { LABEL_MONITORED_SERVER } from '../../builders/names.ts';

/** apiVersion and kind: present on watch events, absent from the items of a built-in kind's list. */
const TYPE = ['apiVersion', 'kind'];

/**
 * MonitoredServers are read whole; only managedFields (but the operator's own) and kubectl's
 * last-applied-configuration go.
 */
export function transformMonitoredServer(ms: MonitoredServer): MonitoredServer {
  return { ...ms, metadata: strippedMetadata(ms.metadata, FIELD_MANAGER) };
}

/** VM status fields read for ServerRunning/IDSRunning, ServerRestartRequired, status.serverVM/idsVM and pending hotplug requests (addvolume). */
const VM_STATUS = ['printableStatus', 'conditions', 'ready', 'created', 'observedGeneration', 'desiredGeneration', 'volumeRequests'];
/** What status reads of the spec of a VM that is not ours (e.g. one about to be adopted). */
const FOREIGN_VM_SPEC = ['runStrategy', 'running'];

/** Of a VM it owns, the operator keeps every writer's entry of the main resource: drift detection names them. */
const mainResourceEntry = (e: ManagedFieldsEntry) => !e.subresource;

/**
 * A VM HyperSpector created or adopted (it carries the monitored-server label) keeps its whole
 * spec and the managedFields of its main resource: applyIfChanged compares the desired VM with the
 * operator's entry, and a field another writer added to a VM it owns is found through theirs.
 * Any other VM keeps only its run strategy; its template, the bulk of it, is dropped.
 */
export function transformVirtualMachine(vm: VirtualMachine): VirtualMachine {
  const ours = vm.metadata?.labels?.[LABEL_MONITORED_SERVER] !== undefined;
  const out: VirtualMachine = {
    ...pick<Pick<VirtualMachine, 'apiVersion' | 'kind'>>(vm, TYPE),
    metadata: strippedMetadata(vm.metadata, ours ? mainResourceEntry : undefined),
    spec: ours ? vm.spec : (pick<VirtualMachine['spec']>(vm.spec, FOREIGN_VM_SPEC) ?? ({} as VirtualMachine['spec'])),
  };
  const status = pick<NonNullable<VirtualMachine['status']>>(vm.status, VM_STATUS);
  if (status) out.status = status;
  return out;
}

/** VMI fields read: the node and phase (placement, Running), conditions (Ready, PodScheduled, LiveMigratable), evacuation and migration (the pair moves), hot-plugged volumes (DiskAttached), the launcher pod (the mapper reads only its QEMU). */
const VMI_STATUS = ['phase', 'nodeName', 'conditions', 'reason', 'evacuationNodeName', 'migrationState', 'volumeStatus', 'activePods'];
/** The server VMI's hostname names the launcher pod the IDS VM's affinity points at; the IDS VMI's node selector tells a stale pin. */
// networks: which NetworkAttachmentDefinitions the VMI runs with (IDSNetworkJoined, MirrorAttached with ovs-cni).
const VMI_SPEC = ['hostname', 'nodeSelector', 'networks'];

/**
 * A VMI keeps its metadata (the kubevirt.io/vm-generation annotation tells a stale IDS VMI),
 * its hostname, node selector and volume names, and the status fields above; its copy of the template spec and
 * its interface, volume and guest-OS status are dropped. No VMI is ever applied, so no managedFields are kept.
 */
export function transformVirtualMachineInstance(vmi: VirtualMachineInstance): VirtualMachineInstance {
  const out: VirtualMachineInstance = {
    ...pick<Pick<VirtualMachineInstance, 'apiVersion' | 'kind'>>(vmi, TYPE),
    metadata: strippedMetadata(vmi.metadata),
    spec: pick<VirtualMachineInstance['spec']>(vmi.spec, VMI_SPEC) ?? ({} as VirtualMachineInstance['spec']),
  };
  // Which volumes the VMI has (DiskAttached): their names only, never their sources (cloud-init can be large).
  const volumes = vmi.spec?.volumes;
  if (Array.isArray(volumes)) out.spec.volumes = volumes.map((v) => ({ name: v.name }));
  const status = pick<NonNullable<VirtualMachineInstance['status']>>(vmi.status, VMI_STATUS);
  if (status) out.status = status;
  return out;
}

const POD_STATUS = ['phase', 'conditions', 'containerStatuses'];
const CONTAINER_STATUS = ['name', 'ready', 'state', 'restartCount'];

/**
 * The process-mapper pod: its node, readiness and container states (ProcessMapping). Its spec is
 * never compared (the spec-hash annotation says whether it is current), so only nodeName stays.
 */
export function transformProcessMapperPod(pod: Pod): Pod {
  const out: Pod = { ...pick<Pick<Pod, 'apiVersion' | 'kind'>>(pod, TYPE), metadata: strippedMetadata(pod.metadata) };
  const spec = pick<NonNullable<Pod['spec']>>(pod.spec, ['nodeName']);
  if (spec) out.spec = spec;
  const status = pick<NonNullable<Pod['status']>>(pod.status, POD_STATUS);
  if (status) {
    const containers = status.containerStatuses;
    if (Array.isArray(containers)) status.containerStatuses = containers.map((c) => pick<(typeof containers)[number]>(c, CONTAINER_STATUS) ?? c);
    out.status = status;
  }
  return out;
}

/** Metadata only (a stored process baseline: the controller reads who it belongs to, never its data). */
export function transformMetadataOnly(obj: KubeObject): KubeObject {
  return { ...pick<Pick<KubeObject, 'apiVersion' | 'kind'>>(obj, TYPE), metadata: strippedMetadata(obj.metadata) };
}

/** A Node: its name and UID only (the process-mapper pod's controller reference). */
export function transformNode(node: KubeObject): KubeObject {
  return { ...pick<Pick<KubeObject, 'apiVersion' | 'kind'>>(node, TYPE), metadata: { name: node.metadata?.name ?? '', ...(node.metadata?.uid ? { uid: node.metadata.uid } : {}), ...(node.metadata?.resourceVersion ? { resourceVersion: node.metadata.resourceVersion } : {}) } };
}
