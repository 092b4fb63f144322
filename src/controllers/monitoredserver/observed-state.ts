// What the reconciler read from its caches about one MonitoredServer's world.
import type { MonitoredServer } from '../../api/v1alpha1/monitoredserver-types.ts';
import type { VolumeSnapshot } from '../../builders/disk-snapshot.ts';
import type { MirrorPeer } from './ovs-mirror-slots.ts';
import type { NetworkPolicy } from '../../builders/isolation-policy.ts';
import type { KubeObject, KubeVirt, ObjectMeta, PersistentVolumeClaim, Pod, Secret, VirtualMachine, VirtualMachineCondition, VirtualMachineInstance } from '../../kube/client/objects.ts';

export type { KubeVirt, PersistentVolumeClaim, Pod, Secret, VirtualMachine, VirtualMachineInstance };

export interface ObservedState {
  serverVm?: VirtualMachine;
  serverVmi?: VirtualMachineInstance;
  idsVm?: VirtualMachine;
  idsVmi?: VirtualMachineInstance;
  /** Another MonitoredServer (name) that already monitors the server VM. */
  serverClaimedBy?: string;
  /** A VM with the server VM's name exists but was not created for this MonitoredServer. */
  serverNameTaken?: boolean;
  /** A VM with the IDS VM's name exists but was not created for this MonitoredServer. */
  idsNameTaken?: boolean;
  processMapperPod?: Pod;
  /** The process baseline the mapper stored (operator's namespace; metadata only). */
  processBaseline?: KubeObject;
  /** The IDS alert intake's signing key Secret (operator's namespace; with its data) and Service, when ours. */
  intakeKeySecret?: Secret;
  /** A Service an older version put in front of the process mapper (deleted). */
  intakeService?: KubeObject;
  /** The intake token Secret of its own an older version made (tenant's namespace), when ours: deleted. */
  legacyIntakeTokenSecret?: Secret;
  /** UID of the Node the server VMI runs on: the process-mapper pod's controller reference. */
  serverNodeUid?: string;
  /** The cluster's KubeVirt CR: its feature gates decide how disks are hot-plugged. */
  kubevirt?: KubeVirt;
  /** The claims behind the server volumes named in spec.server.disks, by claim name (those cached). */
  claims?: Record<string, PersistentVolumeClaim>;
  /** Snapshot mode: our VolumeSnapshots of this MonitoredServer's server volumes (labelled as ours). */
  diskSnapshots?: VolumeSnapshot[];
  /** Snapshot mode: our claims restored from them (labelled as ours). */
  snapshotCopyClaims?: PersistentVolumeClaim[];
  /** Snapshot mode: why VolumeSnapshots cannot be read (the CRD is not installed, no permission). */
  snapshotApiUnavailable?: string;
  /** The Secret with the IDS VM's merged user data, when it exists and is this MonitoredServer's. */
  idsCloudInitSecret?: Secret;
  /**
   * Our NetworkAttachmentDefinitions this MonitoredServer uses or made, by name: the namespace's
   * shared ones, and those labelled with its name (ovs-cni's, an older version's per-MonitoredServer ones).
   */
  nads?: Record<string, KubeObject>;
  /** The other MonitoredServers of the namespace that are not being deleted (they may need the shared NADs); read only for one being deleted or not mirroring. */
  namespacePeers?: MonitoredServer[];
  /** Our MultiNetworkPolicy of the IDS network (networking with --ids-network-policy). */
  idsNetworkPolicy?: KubeObject;
  /** This MonitoredServer's IDS-network address claim (found by its UID). */
  addressClaim?: KubeObject;
  /** Every address claim (to pick a free address); only read while this MonitoredServer has none. */
  addressClaims?: KubeObject[];
  /**
   * ovs-cni: the other MonitoredServers with mirroring whose server VMI is placed on the node this
   * one's is (their mirrors share the node's OVS bridge); absent when not counted.
   */
  mirrorPeers?: MirrorPeer[];
  /** Our NetworkPolicy of spec.response.onAlert: Isolate (by name and label), while it exists. */
  isolationPolicy?: NetworkPolicy;
  /** VirtualMachineInstanceMigrations of the server VMI (by spec.vmiName), finished ones included. */
  serverMigrations?: VirtualMachineInstanceMigration[];
}

/** kubevirt.io/v1 VirtualMachineInstanceMigration: the fields the evacuation planner reads. */
export interface VirtualMachineInstanceMigration {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec?: { vmiName?: string };
  status?: {
    phase?: string;
    phaseTransitionTimestamps?: Array<{ phase?: string; phaseTransitionTimestamp?: string }>;
    conditions?: Array<{ type: string; status: string; reason?: string; message?: string }>;
    migrationState?: { failureReason?: string; failed?: boolean; completed?: boolean; targetNode?: string; sourceNode?: string };
  };
}

export function podIsReady(pod: Pod | undefined): boolean {
  return Boolean(pod && !pod.metadata?.deletionTimestamp && pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
}

export function vmiIsRunning(vmi: VirtualMachineInstance | undefined): boolean {
  return vmi?.status?.phase === 'Running' && !vmi.metadata?.deletionTimestamp;
}

export function vmiIsReady(vmi: VirtualMachineInstance | undefined): boolean {
  return vmiIsRunning(vmi) && Boolean(vmi?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
}

/** The node a VMI is on, once its launcher pod is scheduled (phase Scheduled or Running). */
export function vmiNode(vmi: VirtualMachineInstance | undefined): string | undefined {
  if (!vmi || vmi.metadata?.deletionTimestamp) return undefined;
  const phase = vmi.status?.phase;
  return phase === 'Scheduled' || phase === 'Running' ? vmi.status?.nodeName : undefined;
}

export function printableStatus(vm: VirtualMachine | undefined): string | undefined {
  return vm?.status?.printableStatus;
}

/** KubeVirt's own words for a VM on its way up: its status has not yet caught up with a VMI that already runs. */
const COMING_UP = new Set(['Stopped', 'Provisioning', 'Starting', 'WaitingForVolumeBinding']);

/**
 * True when the VMI runs but virt-controller has not yet written that into the VM's status
 * (`kubectl get vm` still says Starting). The VM counts as running only once both agree, so Ready
 * turns True together with the phases status shows, in one status write.
 */
export function vmStatusBehind(vm: VirtualMachine | undefined): boolean {
  const phase = printableStatus(vm);
  return phase === undefined || COMING_UP.has(phase);
}

/** Annotation KubeVirt keeps on a VMI: the VM generation whose template the VMI runs (kubevirt.io/api core/v1). */
export const VMI_VM_GENERATION_ANNOTATION = 'kubevirt.io/vm-generation';

/**
 * The VMI runs an older template that KubeVirt cannot update live: the VM reports RestartRequired
 * and the VMI was started from (or live-updated to) a generation older than the VM's. A VMI started
 * after the change carries the current generation, so a RestartRequired condition that has not yet
 * been cleared (KubeVirt clears it only after the new VMI exists) never restarts it a second time.
 * Live-updatable changes (memory, node selector, affinity, tolerations) never raise RestartRequired.
 */
export function vmiNeedsRestart(vm: VirtualMachine | undefined, vmi: VirtualMachineInstance | undefined): boolean {
  if (!vm || !vmi || !vmConditionTrue(vm, 'RestartRequired')) return false;
  const started = Number(vmi.metadata?.annotations?.[VMI_VM_GENERATION_ANNOTATION]);
  const current = vm.metadata?.generation;
  // virt-controller has not yet synced the current generation (it copies it to status.desiredGeneration;
  // observedGeneration is the VMI's): its RestartRequired may be about an older spec, e.g. a drift
  // HyperSpector just reverted.
  if (vm.status?.desiredGeneration !== undefined && vm.status.desiredGeneration !== current) return false;
  if (!Number.isFinite(started) || current === undefined) return false;
  return started < current;
}

export function vmCondition(vm: VirtualMachine | undefined, type: string): VirtualMachineCondition | undefined {
  return vm?.status?.conditions?.find((c) => c.type === type);
}

export function vmConditionTrue(vm: VirtualMachine | undefined, type: string): boolean {
  return vmCondition(vm, type)?.status === 'True';
}
