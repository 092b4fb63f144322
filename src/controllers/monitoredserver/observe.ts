// Reads one MonitoredServer's world from the informer caches (no API calls).
import type { MonitoredServer } from '../../api/v1alpha1/monitoredserver-types.ts';
import { claimNameOf } from '../../builders/disk-inspection.ts';
import type { VolumeSnapshot } from '../../builders/disk-snapshot.ts';
import { idsCloudInitSecretName, idsVmName, isAdopting, LABEL_MONITORED_SERVER, LABEL_MONITORED_SERVER_NAMESPACE, processBaselineName, processMapperHostname, processMapperPodName, serverVmName } from '../../builders/names.ts';
import type { KubeObject, VirtualMachine } from '../../kube/client/objects.ts';
import { claimOf } from '../../builders/ids-address.ts';
import { isolationPolicyName, type NetworkPolicy } from '../../builders/isolation-policy.ts';
import { IDS_NETWORK_NAD, idsNetworkPolicyName, isMirrored, isSharedNad, legacyNadNames, mirrorNadName, mirrorProducerNadName, SHARED_MIRROR_NAD } from '../../builders/networking.ts';
import { mirrorPeer } from './ovs-mirror-slots.ts';
import { vmiNode } from './observed-state.ts';
import { intakeKeySecretName, legacyIntakeTokenSecretName } from '../../builders/ids-intake.ts';
import type { KubeVirt, ObservedState, PersistentVolumeClaim, Pod, Secret, VirtualMachineInstance, VirtualMachineInstanceMigration } from './observed-state.ts';

export interface CacheReader {
  monitoredServer(namespace: string, name: string): MonitoredServer | undefined;
  /** MonitoredServers adopting the VM `namespace/name`. */
  adoptersOf(namespace: string, vmName: string): MonitoredServer[];
  virtualMachine(namespace: string, name: string): VirtualMachine | undefined;
  virtualMachineInstance(namespace: string, name: string): VirtualMachineInstance | undefined;
  /** Pods labelled as HyperSpector process mappers, by name (they all run in the operator's namespace). */
  processMapperPod(name: string): Pod | undefined;
  processBaseline?(name: string): KubeObject | undefined;
  /** The alert intake's key Secrets and Services in the operator's namespace, by name (absent: none). */
  intakeKeySecret?(name: string): Secret | undefined;
  intakeService?(name: string): KubeObject | undefined;
  persistentVolumeClaim(namespace: string, name: string): PersistentVolumeClaim | undefined;
  /** The cluster's KubeVirt CR, if one can be read. */
  kubevirt(): KubeVirt | undefined;
  /** The UID of a Node, by name (optional: readers without nodes give none). */
  nodeUid?(name: string): string | undefined;
  /** Secrets labelled as HyperSpector's IDS cloud-init. */
  idsCloudInitSecret(namespace: string, name: string): Secret | undefined;
  /** VirtualMachineInstanceMigrations whose spec.vmiName is `vmiName` (none if not watched). */
  migrationsOf?(namespace: string, vmiName: string): VirtualMachineInstanceMigration[];
  /** NetworkAttachmentDefinitions labelled as HyperSpector's (networking off: absent). */
  networkAttachmentDefinition?(namespace: string, name: string): KubeObject | undefined;
  /** Our MultiNetworkPolicies (absent unless the operator makes them). */
  multiNetworkPolicy?(namespace: string, name: string): KubeObject | undefined;
  /** Our NetworkPolicies of the Isolate response (label hyperspector.io/role=response), by name. */
  isolationPolicy?(namespace: string, name: string): NetworkPolicy | undefined;
  /** Every IDS-network address claim (networking off: absent). */
  idsAddressClaims?(): KubeObject[];
  /** The address claims labelled with this MonitoredServer UID (an index; without it all claims are searched). */
  idsAddressClaimsOf?(uid: string): KubeObject[];
  /**
   * Our VolumeSnapshots of one MonitoredServer (Snapshot mode), or why they cannot be read; undefined
   * while the cache has not listed them yet (absent: no snapshot cache).
   */
  diskSnapshots?(namespace: string, msName: string): VolumeSnapshot[] | { unavailable: string } | undefined;
  /** Our claims restored from those snapshots (labelled as ours). */
  snapshotCopyClaims?(namespace: string, msName: string): PersistentVolumeClaim[];
  /** The MonitoredServers of a namespace (those sharing its NADs). */
  monitoredServersIn?(namespace: string): MonitoredServer[];
  /** ovs-cni mirroring only: the MonitoredServers whose server VMI is placed on the node. */
  monitoredServersOnNode?(node: string): MonitoredServer[];
}

function created(ms: MonitoredServer): number {
  const t = ms.metadata.creationTimestamp;
  return t ? new Date(t).getTime() : 0;
}

/**
 * Which MonitoredServer holds the VM, if not `ms`: the one named by the VM's label if it still
 * exists and still points at the VM; otherwise, among those adopting it, the oldest.
 */
function claimant(ms: MonitoredServer, vm: VirtualMachine | undefined, cache: CacheReader): string | undefined {
  const ns = ms.metadata.namespace ?? '';
  const name = serverVmName(ms);
  const labelled = vm?.metadata?.labels?.[LABEL_MONITORED_SERVER];
  if (labelled && labelled !== ms.metadata.name) {
    const other = cache.monitoredServer(ns, labelled);
    if (other && !other.metadata.deletionTimestamp && serverVmName(other) === name) return labelled;
  }
  if (labelled === ms.metadata.name) return undefined;
  const rivals = cache
    .adoptersOf(ns, name)
    .filter((o) => o.metadata.name !== ms.metadata.name && !o.metadata.deletionTimestamp)
    .sort((a, b) => created(a) - created(b) || (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''));
  const first = rivals[0];
  if (first && (created(first) < created(ms) || (created(first) === created(ms) && (first.metadata.name ?? '') < (ms.metadata.name ?? '')))) {
    return first.metadata.name;
  }
  return undefined;
}

export function observe(ms: MonitoredServer, cache: CacheReader): ObservedState {
  const ns = ms.metadata.namespace ?? '';
  const observed: ObservedState = {};
  const serverName = serverVmName(ms);
  const serverVm = cache.virtualMachine(ns, serverName);
  if (isAdopting(ms)) {
    const by = claimant(ms, serverVm, cache);
    if (by) observed.serverClaimedBy = by;
  } else if (serverVm && serverVm.metadata?.labels?.[LABEL_MONITORED_SERVER] !== ms.metadata.name) {
    observed.serverNameTaken = true;
  }
  if (serverVm) observed.serverVm = serverVm;
  const serverVmi = cache.virtualMachineInstance(ns, serverName);
  if (serverVmi && serverVm) observed.serverVmi = serverVmi;
  if (serverVmi && serverVm) {
    const migrations = cache.migrationsOf?.(ns, serverVmi.metadata?.name ?? serverName) ?? [];
    if (migrations.length > 0) observed.serverMigrations = migrations;
  }

  const idsName = idsVmName(ms);
  const idsVm = cache.virtualMachine(ns, idsName);
  if (idsVm && idsVm.metadata?.labels?.[LABEL_MONITORED_SERVER] !== ms.metadata.name) {
    observed.idsNameTaken = true;
  } else if (idsVm) {
    observed.idsVm = idsVm;
    const idsVmi = cache.virtualMachineInstance(ns, idsName);
    if (idsVmi) observed.idsVmi = idsVmi;
  }
  const pod = cache.processMapperPod(processMapperPodName(ms));
  const podLabels = pod?.metadata?.labels ?? {};
  if (pod && podLabels[LABEL_MONITORED_SERVER] === ms.metadata.name && podLabels[LABEL_MONITORED_SERVER_NAMESPACE] === ns) observed.processMapperPod = pod;
  const baseline = cache.processBaseline?.(processBaselineName(ms));
  const baselineLabels = baseline?.metadata?.labels ?? {};
  if (baseline && baselineLabels[LABEL_MONITORED_SERVER] === ms.metadata.name && baselineLabels[LABEL_MONITORED_SERVER_NAMESPACE] === ns) observed.processBaseline = baseline;
  const mine = (o: KubeObject | undefined) => o?.metadata?.labels?.[LABEL_MONITORED_SERVER] === ms.metadata.name && o?.metadata?.labels?.[LABEL_MONITORED_SERVER_NAMESPACE] === ns;
  const intakeKey = cache.intakeKeySecret?.(intakeKeySecretName(ms));
  if (intakeKey && mine(intakeKey)) observed.intakeKeySecret = intakeKey;
  // An older version's Service in front of the mapper, named as the mapper's hostname is now (deleted by planIdsIntake).
  const intakeService = cache.intakeService?.(processMapperHostname(ms));
  if (intakeService && mine(intakeService)) observed.intakeService = intakeService;
  // An older version's token Secret of its own (deleted by planIdsIntake; the token is in the IDS VM's Secret now).
  const legacyToken = cache.idsCloudInitSecret(ns, legacyIntakeTokenSecretName(ms));
  if (legacyToken && legacyToken.metadata?.labels?.[LABEL_MONITORED_SERVER] === ms.metadata.name) observed.legacyIntakeTokenSecret = legacyToken;
  const serverNode = observed.serverVmi?.status?.nodeName;
  const serverNodeUid = serverNode ? cache.nodeUid?.(serverNode) : undefined;
  if (serverNodeUid) observed.serverNodeUid = serverNodeUid;
  const isolation = cache.isolationPolicy?.(ns, isolationPolicyName(ms));
  if (isolation && isolation.metadata?.labels?.[LABEL_MONITORED_SERVER] === ms.metadata.name) observed.isolationPolicy = isolation;
  observeDiskInspection(ms, cache, observed);
  observeNetworking(ms, cache, observed);
  return observed;
}

/** Our NADs of this MonitoredServer and its address claim (all claims while it has none). */
function observeNetworking(ms: MonitoredServer, cache: CacheReader, observed: ObservedState): void {
  if (!cache.networkAttachmentDefinition || !cache.idsAddressClaims) return;
  const ns = ms.metadata.namespace ?? '';
  const nads: Record<string, KubeObject> = {};
  // The namespace's shared NADs, and every name this MonitoredServer's own NADs have had (ovs-cni's, an older version's).
  for (const name of [IDS_NETWORK_NAD, SHARED_MIRROR_NAD]) {
    const nad = cache.networkAttachmentDefinition(ns, name);
    if (nad && isSharedNad(nad)) nads[name] = nad;
  }
  for (const name of new Set([...legacyNadNames(ms, 'tc'), mirrorNadName(ms, 'ovs-cni'), mirrorProducerNadName(ms)])) {
    const nad = cache.networkAttachmentDefinition(ns, name);
    if (nad && nad.metadata?.labels?.[LABEL_MONITORED_SERVER] === ms.metadata.name) nads[name] = nad;
  }
  observed.nads = nads;
  // Read only when this MonitoredServer may be the last to need a shared NAD that exists: one being
  // deleted (any shared NAD), or one that does not mirror (the shared mirror NAD; every MonitoredServer
  // needs the IDS network's). A mirroring one needs every shared NAD itself. (Listing the namespace on
  // every reconcile was a tenth of the reconcile CPU at N=300 in one namespace.)
  const mayBeLast = ms.metadata.deletionTimestamp ? Object.values(nads).some(isSharedNad) : !isMirrored(ms) && nads[SHARED_MIRROR_NAD] !== undefined;
  if (mayBeLast) {
    observed.namespacePeers = (cache.monitoredServersIn?.(ns) ?? []).filter((m) => m.metadata.name !== ms.metadata.name && !m.metadata.deletionTimestamp);
  }
  const policy = cache.multiNetworkPolicy?.(ns, idsNetworkPolicyName(ms));
  if (policy && policy.metadata?.labels?.[LABEL_MONITORED_SERVER] === ms.metadata.name) observed.idsNetworkPolicy = policy;
  const node = vmiNode(observed.serverVmi);
  if (cache.monitoredServersOnNode && node && ms.spec.mirroring?.enabled !== false) {
    const self = `${ns}/${ms.metadata.name}`;
    observed.mirrorPeers = cache
      .monitoredServersOnNode(node)
      .filter((m) => m.spec.mirroring?.enabled !== false && !m.metadata.deletionTimestamp && `${m.metadata.namespace}/${m.metadata.name}` !== self)
      .map(mirrorPeer);
  }
  const mine = claimOf(ms.metadata.uid && cache.idsAddressClaimsOf ? cache.idsAddressClaimsOf(ms.metadata.uid) : cache.idsAddressClaims(), ms.metadata.uid);
  if (mine) observed.addressClaim = mine;
  else observed.addressClaims = cache.idsAddressClaims();
}

/** What disk inspection reads: the KubeVirt CR, the claims behind the named server volumes, our user-data Secret. */
function observeDiskInspection(ms: MonitoredServer, cache: CacheReader, observed: ObservedState): void {
  const disks = ms.spec.server.disks ?? [];
  const ns = ms.metadata.namespace ?? '';
  const secret = cache.idsCloudInitSecret(ns, idsCloudInitSecretName(ms));
  if (secret && secret.metadata?.labels?.[LABEL_MONITORED_SERVER] === ms.metadata.name) observed.idsCloudInitSecret = secret;
  // Also without disks: how the IDS VM's last disks are unplugged depends on the hotplug gates.
  const kubevirt = cache.kubevirt();
  if (kubevirt) observed.kubevirt = kubevirt;
  // Snapshot mode (or copies left from it): our snapshots and the claims restored from them.
  const snapshots = cache.diskSnapshots?.(ns, ms.metadata.name ?? '');
  if (snapshots && 'unavailable' in snapshots) observed.snapshotApiUnavailable = snapshots.unavailable;
  else if (snapshots) observed.diskSnapshots = snapshots;
  const copies = cache.snapshotCopyClaims?.(ns, ms.metadata.name ?? '');
  if (copies) observed.snapshotCopyClaims = copies;
  if (disks.length === 0) return;
  const volumes = observed.serverClaimedBy || observed.serverNameTaken ? [] : (observed.serverVm?.spec?.template?.spec?.volumes ?? []);
  const claims: Record<string, PersistentVolumeClaim> = {};
  for (const volume of volumes) {
    const claimName = disks.includes(volume.name) ? claimNameOf(volume) : undefined;
    const claim = claimName ? cache.persistentVolumeClaim(ns, claimName) : undefined;
    if (claimName && claim) claims[claimName] = claim;
  }
  observed.claims = claims;
}
