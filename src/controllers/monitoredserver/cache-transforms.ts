// What the MonitoredServer controller's caches keep of each object. The operator watches every
// VirtualMachine and VMI (an adopted server VM is named by its user, not found by a label), so
// without these a cluster's unmonitored VMs — full templates, cloud-init, managedFields — would
// fill its memory. Every field the controller (observe, status, reconcile) reads is kept; a field
// it starts to read must be added here, and cache-transforms.test.ts shows what is kept.
import type { KubeObject } from '../../kube/apply.ts';
import { FIELD_MANAGER } from '../../kube/apply.ts';
import { pick, strippedMetadata, stripManagedFields } from '../../kube/cache-transform.ts';
import { LABEL_MONITORED_SERVER } from '../../builders/names.ts';

/** apiVersion and kind: present on watch events, absent from the items of a built-in kind's list. */
const TYPE = ['apiVersion', 'kind'];

/**
 * MonitoredServers are read whole; only managedFields (but the operator's own) and kubectl's
 * last-applied-configuration go.
 */
export function transformMonitoredServer<T extends KubeObject>(ms: T): T {
  return stripManagedFields<T>(FIELD_MANAGER)(ms);
}

/** VM status fields read for ServerRunning/IDSRunning, ServerRestartRequired and status.serverVM/idsVM. */
const VM_STATUS = ['printableStatus', 'conditions', 'ready', 'created', 'observedGeneration', 'desiredGeneration'];
/** What status reads of the spec of a VM that is not ours (e.g. one about to be adopted). */
const FOREIGN_VM_SPEC = ['runStrategy', 'running'];

/**
 * A VM HyperSpector created or adopted (it carries the monitored-server label) keeps its whole
 * spec and the operator's managedFields entry: applyIfChanged compares the desired VM with both.
 * Any other VM keeps only its run strategy; its template, the bulk of it, is dropped.
 */
export function transformVirtualMachine<T extends KubeObject>(vm: T): T {
  const ours = vm.metadata.labels?.[LABEL_MONITORED_SERVER] !== undefined;
  const out = { ...pick(vm, TYPE), metadata: strippedMetadata(vm.metadata, ours ? FIELD_MANAGER : undefined) } as KubeObject;
  const spec = ours ? vm.spec : pick(vm.spec, FOREIGN_VM_SPEC);
  if (spec) out.spec = spec;
  const status = pick(vm.status, VM_STATUS);
  if (status) out.status = status;
  return out as T;
}

/** VMI fields read: the node and phase (placement, Running), conditions (Ready, PodScheduled), evacuation. */
const VMI_STATUS = ['phase', 'nodeName', 'conditions', 'reason', 'evacuationNodeName'];
/** The server VMI's hostname names the launcher pod the IDS VM's affinity points at. */
const VMI_SPEC = ['hostname'];

/**
 * A VMI keeps its metadata (the kubevirt.io/vm-generation annotation tells a stale IDS VMI),
 * its hostname and the status fields above; its copy of the template spec and its interface,
 * volume and guest-OS status are dropped. No VMI is ever applied, so no managedFields are kept.
 */
export function transformVirtualMachineInstance<T extends KubeObject>(vmi: T): T {
  const out = { ...pick(vmi, TYPE), metadata: strippedMetadata(vmi.metadata) } as KubeObject;
  const spec = pick(vmi.spec, VMI_SPEC);
  if (spec && Object.keys(spec).length > 0) out.spec = spec;
  const status = pick(vmi.status, VMI_STATUS);
  if (status) out.status = status;
  return out as T;
}

const POD_STATUS = ['phase', 'conditions', 'containerStatuses'];
const CONTAINER_STATUS = ['name', 'ready', 'state', 'restartCount'];

/**
 * The process-mapper pod: its node, readiness and container states (ProcessMapping). Its spec is
 * never compared (the spec-hash annotation says whether it is current), so only nodeName stays.
 */
export function transformProcessMapperPod<T extends KubeObject>(pod: T): T {
  const out = { ...pick(pod, TYPE), metadata: strippedMetadata(pod.metadata) } as KubeObject;
  const spec = pick(pod.spec, ['nodeName']);
  if (spec) out.spec = spec;
  const status = pick(pod.status, POD_STATUS);
  if (status) {
    const containers = status.containerStatuses;
    if (Array.isArray(containers)) status.containerStatuses = containers.map((c) => pick(c, CONTAINER_STATUS));
    out.status = status;
  }
  return out as T;
}
