// Pure logic of the virt-handler stand-in (a TEST DOUBLE): what KubeVirt v1.8's virt-handler writes
// into a VMI's status at each step, as far as the API shows it. Each function takes the VMI as
// virt-controller left it and returns the next status, or undefined when virt-handler would write
// nothing. References are to kubevirt.io/kubevirt v1.8.2.
import { createHash } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';

/* eslint-disable @typescript-eslint/no-explicit-any -- VMI status is KubeVirt's open schema here */
export type Vmi = { apiVersion?: string; kind?: string; metadata: k8s.V1ObjectMeta; spec?: any; status?: any };
export type Pod = k8s.V1Pod;

export const FINAL_PHASES = new Set(['Succeeded', 'Failed']);
/** The machine type virt-launcher's libvirt reports for the default `q35` alias (pkg/virt-handler/vm.go updateMachineType). */
export const MACHINE_TYPE = 'pc-q35-rhel9.6.0';

function clone<T>(value: T): T {
  return structuredClone(value);
}

function withTransition(status: any, phase: string, now: string): any {
  return {
    ...status,
    phase,
    phaseTransitionTimestamps: [...(status.phaseTransitionTimestamps ?? []), { phase, phaseTransitionTimestamp: now }],
  };
}

/** A MAC for an interface without one (libvirt picks one in the 52:54:00 range). */
export function generatedMac(vmiUid: string, interfaceName: string): string {
  const h = createHash('sha256').update(`${vmiUid}/${interfaceName}`).digest();
  return ['52', '54', '00', ...[...h.subarray(0, 3)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

/** Disk target names as the converter assigns them: vdX for virtio, sdX for sata and scsi (converter.go). */
export function diskTargets(vmi: Vmi): Map<string, string> {
  const targets = new Map<string, string>();
  const next: Record<string, number> = { vd: 0, sd: 0 };
  for (const disk of vmi.spec?.domain?.devices?.disks ?? []) {
    const bus = disk.disk?.bus ?? disk.lun?.bus ?? disk.cdrom?.bus ?? (disk.cdrom ? 'sata' : 'virtio');
    const prefix = bus === 'virtio' ? 'vd' : 'sd';
    targets.set(disk.name, `${prefix}${String.fromCharCode(97 + (next[prefix] ?? 0))}`);
    next[prefix] = (next[prefix] ?? 0) + 1;
  }
  return targets;
}

function podNetworkName(vmi: Vmi): string | undefined {
  return (vmi.spec?.networks ?? []).find((n: any) => n.pod)?.name;
}

/** LiveMigratable as virt-handler computes it (vm.go calculateLiveMigrationCondition), for what a test VM can hold. */
export function liveMigratable(vmi: Vmi): { condition: any; blockMigration: boolean } {
  let blockMigration = false;
  let diskError: string | undefined;
  const volumeStatus = new Map<string, any>((vmi.status?.volumeStatus ?? []).map((v: any) => [v.name, v]));
  for (const volume of vmi.spec?.volumes ?? []) {
    const claim = volume.persistentVolumeClaim?.claimName ?? volume.dataVolume?.name;
    if (claim) {
      const info = volumeStatus.get(volume.name)?.persistentVolumeClaimInfo;
      if (!info) {
        diskError ??= `cannot migrate VMI: Unable to determine if PVC ${claim} is shared, live migration requires that all PVCs must be shared (using ReadWriteMany access mode)`;
        blockMigration = true;
      } else if (!(info.accessModes ?? []).includes('ReadWriteMany')) {
        diskError ??= `cannot migrate VMI: PVC ${claim} is not shared, live migration requires that all PVCs must be shared (using ReadWriteMany access mode)`;
        blockMigration = true;
      }
    } else {
      const readOnlyCdrom = (vmi.spec?.domain?.devices?.disks ?? []).some((d: any) => d.name === volume.name && d.cdrom && d.cdrom.readonly !== false);
      if (!readOnlyCdrom) blockMigration = true;
    }
  }
  const podNet = podNetworkName(vmi);
  const primary = (vmi.spec?.domain?.devices?.interfaces ?? []).find((i: any) => i.name === podNet);
  const allowBridge = vmi.metadata.annotations?.['kubevirt.io/allow-pod-bridge-network-live-migration'] !== undefined;
  const interfaces = vmi.spec?.domain?.devices?.interfaces ?? [];
  let netError: string | undefined;
  if (interfaces.length > 0 && podNet) {
    if (!primary) netError = `no primary interface found for network ${podNet}`;
    else if (!(primary.masquerade || primary.passtBinding || (primary.bridge && allowBridge))) {
      netError = 'cannot migrate VMI which does not use masquerade or a migratable plugin to connect to the pod network';
    }
  }
  if (netError) return { condition: { type: 'LiveMigratable', status: 'False', reason: 'InterfaceNotLiveMigratable', message: netError }, blockMigration };
  if (diskError) return { condition: { type: 'LiveMigratable', status: 'False', reason: 'DisksNotLiveMigratable', message: diskError }, blockMigration };
  return { condition: { type: 'LiveMigratable', status: 'True' }, blockMigration };
}

function setCondition(conditions: any[], condition: any): any[] {
  const rest = conditions.filter((c) => c.type !== condition.type);
  const old = conditions.find((c) => c.type === condition.type);
  if (old && old.status === condition.status && old.reason === condition.reason && old.message === condition.message) return conditions;
  return [...rest, { lastProbeTime: null, lastTransitionTime: null, ...condition }];
}

function interfacesStatus(vmi: Vmi, pod: Pod | undefined): any[] {
  const existing = new Map<string, any>((vmi.status?.interfaces ?? []).map((i: any) => [i.name, i]));
  const podNet = podNetworkName(vmi);
  const podIP = pod?.status?.podIP;
  return (vmi.spec?.domain?.devices?.interfaces ?? []).map((iface: any) => {
    const out: any = {
      ...(existing.get(iface.name) ?? {}),
      name: iface.name,
      mac: iface.macAddress ?? generatedMac(vmi.metadata.uid ?? '', iface.name),
      infoSource: 'domain',
      queueCount: 1,
      linkState: 'up',
    };
    if (iface.name === podNet && podIP) {
      out.ipAddress = podIP;
      out.ipAddresses = [podIP];
    }
    return out;
  });
}

/**
 * The status virt-handler writes once the domain runs (vm.go updateVMIStatus): phase Running with its
 * transition timestamp, machine type, SELinux context, interfaces, volume targets, migratability.
 */
export function runningStatus(vmi: Vmi, pod: Pod | undefined, now: string): any {
  const status = withTransition(clone(vmi.status ?? {}), 'Running', now);
  status.selinuxContext = 'none';
  status.machine = { type: MACHINE_TYPE };
  if (status.memory?.guestAtBoot) status.memory = { ...status.memory, guestCurrent: status.memory.guestAtBoot };
  const targets = diskTargets(vmi);
  status.volumeStatus = (status.volumeStatus ?? []).map((v: any) => (v.hotplugVolume || !targets.has(v.name) ? v : { ...v, target: targets.get(v.name) }));
  status.interfaces = interfacesStatus(vmi, pod);
  const { condition, blockMigration } = liveMigratable({ ...vmi, status });
  status.conditions = setCondition(status.conditions ?? [], condition);
  status.conditions = setCondition(status.conditions, {
    type: 'StorageLiveMigratable',
    status: condition.reason === 'InterfaceNotLiveMigratable' ? 'False' : 'True',
    ...(condition.reason === 'InterfaceNotLiveMigratable' ? { reason: 'NotMigratable', message: `InterfaceNotLiveMigratable: ${condition.message}` } : {}),
  });
  status.migrationMethod = blockMigration ? 'BlockMigration' : 'LiveMigration';
  return status;
}

/** After the domain stopped for a deletion or a stop: Succeeded (vm.go: shutdown reasons Shutdown/Destroyed). */
export function stoppedStatus(vmi: Vmi, now: string): any {
  return withTransition(clone(vmi.status ?? {}), 'Succeeded', now);
}

/** The Paused condition virt-handler reports for a domain paused by the user (vm.go calculatePausedCondition). */
export function pausedStatus(vmi: Vmi, paused: boolean, now: string): any | undefined {
  const has = (vmi.status?.conditions ?? []).some((c: any) => c.type === 'Paused');
  if (paused === has) return undefined;
  const status = clone(vmi.status ?? {});
  status.conditions = (status.conditions ?? []).filter((c: any) => c.type !== 'Paused');
  if (paused) {
    status.conditions.push({ type: 'Paused', status: 'True', reason: 'PausedByUser', message: 'VMI was paused by user', lastProbeTime: now, lastTransitionTime: now });
  }
  return status;
}

/** Hot-plugged volumes mounted into the launcher pod and due to be attached to the domain now (MountedToPod → Ready). */
export function volumesToAttach(vmi: Vmi): string[] {
  const inSpec = new Set((vmi.spec?.volumes ?? []).map((v: any) => v.name));
  const targets = diskTargets(vmi);
  return (vmi.status?.volumeStatus ?? [])
    .filter((v: any) => v.hotplugVolume?.attachPodUID && v.phase === 'MountedToPod' && inSpec.has(v.name) && targets.has(v.name))
    .map((v: any) => v.name as string);
}

/** The message of a hot-plugged volume the domain refused: it stays MountedToPod, never Ready. */
export function attachFailedMessage(volume: string, error: string): string {
  return `failed to attach hotplugged volume ${volume} to the domain: ${error}`;
}

/**
 * Hotplugged volumes, virt-handler's part (vm.go updateVolumeStatusesFromDomain): once virt-controller
 * reports the attachment pod ready (attachPodUID), the volume is mounted into the launcher pod
 * (MountedToPod), then attached to the domain (Ready, with its target). A volume gone from the spec
 * is detached from the domain (target cleared, UnMountedFromPod). `attachFailures` (volume → error)
 * are attaches the domain refused (a real guest's QMP error): those stay MountedToPod and say why.
 */
export function hotplugStatus(vmi: Vmi, attachFailures: ReadonlyMap<string, string> = new Map()): any | undefined {
  const entries: any[] = vmi.status?.volumeStatus ?? [];
  if (!entries.some((v) => v.hotplugVolume)) return undefined;
  const inSpec = new Set((vmi.spec?.volumes ?? []).map((v: any) => v.name));
  const targets = diskTargets(vmi);
  let changed = false;
  const next = entries.map((v) => {
    if (!v.hotplugVolume) return v;
    if (!inSpec.has(v.name)) {
      if (v.phase === 'UnMountedFromPod' || v.phase === 'Detaching') return v;
      changed = true;
      return { ...v, target: '', phase: 'UnMountedFromPod', reason: 'VolumeUnMountedFromPod', message: `Volume ${v.name} has been unmounted from virt-launcher pod` };
    }
    if (!v.hotplugVolume.attachPodUID) return v;
    if (['Bound', 'Pending', 'AttachedToNode'].includes(v.phase)) {
      changed = true;
      return { ...v, phase: 'MountedToPod', reason: 'VolumeMountedToPod', message: `Volume ${v.name} has been mounted in virt-launcher pod` };
    }
    const failure = attachFailures.get(v.name);
    if (v.phase === 'MountedToPod' && failure !== undefined) {
      const message = attachFailedMessage(v.name, failure);
      if (v.message === message) return v;
      changed = true;
      return { ...v, message };
    }
    if (v.phase === 'MountedToPod' && targets.has(v.name)) {
      changed = true;
      return { ...v, target: targets.get(v.name), phase: 'Ready', reason: 'VolumeReady', message: `Successfully attach hotplugged volume ${v.name} to VM` };
    }
    return v;
  });
  return changed ? { ...clone(vmi.status), volumeStatus: next } : undefined;
}

export interface MigrationStep {
  status: any;
  labels?: Record<string, string | null>;
}

/**
 * Live migration, the source's and the target's virt-handler (migration-source.go, migration-target.go),
 * one step per call: target prepared (address, ports, domain detected, ready) → started → completed
 * with the VMI moved to the target node; or failed when `fail` says so.
 */
export function migrationStep(vmi: Vmi, now: string, fail?: string): MigrationStep | undefined {
  const state = vmi.status?.migrationState;
  if (!state?.targetNode || state.completed || state.failed) return undefined;
  const status = clone(vmi.status);
  const m = status.migrationState;
  if (!m.targetPod) return undefined;
  if (!m.targetNodeAddress) {
    m.targetNodeAddress = '127.0.0.1';
    m.targetDirectMigrationNodePorts = { '49152': 0, '49153': 49152 };
    return { status };
  }
  if (!m.targetNodeDomainDetected) {
    m.targetNodeDomainDetected = true;
    m.targetNodeDomainReadyTimestamp = now;
    return { status };
  }
  if (!m.startTimestamp) {
    m.startTimestamp = now;
    m.mode = 'PreCopy';
    return { status };
  }
  if (fail) {
    m.failed = true;
    m.completed = true;
    m.endTimestamp = now;
    m.failureReason = fail;
    return { status, labels: { 'kubevirt.io/migrationTargetNodeName': null } };
  }
  if (!m.endTimestamp) {
    m.endTimestamp = now;
    status.nodeName = m.targetNode;
    status.evacuationNodeName = '';
    status.migrationTransport = 'Unix';
    status.launcherContainerImageVersion = '';
    return { status, labels: { 'kubevirt.io/nodeName': m.targetNode, 'kubevirt.io/outdatedLauncherImage': null } };
  }
  m.completed = true;
  return { status, labels: { 'kubevirt.io/migrationTargetNodeName': null } };
}
