// Condition types, condition reasons and Event reasons: named constants, stable across releases
// (users alert on them).

export const ConditionType = {
  Ready: 'Ready',
  ServerRunning: 'ServerRunning',
  Colocated: 'Colocated',
  IDSRunning: 'IDSRunning',
  ProcessMapping: 'ProcessMapping',
  /** Present only while reconciling fails: False, reason ReconcileFailed, the API server's message. */
  Synced: 'Synced',
  /** Reported by the node agent (mirroring provider tc) under its own field manager, or by the operator (ovs-cni). */
  MirrorAttached: 'MirrorAttached',
  /** The IDS VM is on the IDS-only network with its address. */
  IDSNetworkJoined: 'IDSNetworkJoined',
  DiskAttached: 'DiskAttached',
  ResponseReady: 'ResponseReady',
  /** Not part of Ready: True while a response to an alert holds (the server is paused or isolated), False once released. */
  Responded: 'Responded',
  /** Written by the node agent (own field manager) while the Isolate response holds: the server's taps drop every frame. Not part of Ready. */
  NetworkIsolated: 'NetworkIsolated',
  /** Not part of Ready: the user's server VM waits for a restart to take a template change. */
  ServerRestartRequired: 'ServerRestartRequired',
} as const;

export const Reason = {
  // Ready
  Monitoring: 'Monitoring',
  Deleting: 'Deleting',
  // MirrorAttached, DiskAttached, ResponseReady: capabilities the spec enables that this release
  // cannot provide yet (never silently accepted: Ready is False and says so)
  MirroringUnavailable: 'MirroringUnavailable',
  DiskInspectionUnavailable: 'DiskInspectionUnavailable',
  ResponseUnavailable: 'ResponseUnavailable',
  // ResponseReady (Pause, Isolate), Responded
  Armed: 'Armed',
  ServerPaused: 'ServerPaused',
  Isolated: 'Isolated',
  Released: 'Released',
  // DiskAttached (Live mode)
  Attached: 'Attached',
  DiskAttaching: 'DiskAttaching',
  DiskVolumeNotFound: 'DiskVolumeNotFound',
  DiskVolumeUnsupported: 'DiskVolumeUnsupported',
  DiskClaimNotFound: 'DiskClaimNotFound',
  DiskClaimReadWriteOncePod: 'DiskClaimReadWriteOncePod',
  HotplugUnavailable: 'HotplugUnavailable',
  HotplugRefused: 'HotplugRefused',
  IDSCloudInitUnmergeable: 'IDSCloudInitUnmergeable',
  // DiskAttached (Snapshot mode)
  SnapshotNotReady: 'SnapshotNotReady',
  SnapshotAPIUnavailable: 'SnapshotAPIUnavailable',
  // ServerRestartRequired
  RestartRequired: 'RestartRequired',
  UpToDate: 'UpToDate',
  // ServerRunning
  Running: 'Running',
  ServerVMNotFound: 'ServerVMNotFound',
  ServerVMCreating: 'ServerVMCreating',
  ServerVMStarting: 'ServerVMStarting',
  ServerVMStopped: 'ServerVMStopped',
  ServerVMAlreadyMonitored: 'ServerVMAlreadyMonitored',
  ServerVMNameConflict: 'ServerVMNameConflict',
  ServerVMInvalid: 'ServerVMInvalid',
  // Colocated
  SameNode: 'SameNode',
  WaitingForServerPlacement: 'WaitingForServerPlacement',
  WaitingForIDSPlacement: 'WaitingForIDSPlacement',
  NodeMismatch: 'NodeMismatch',
  // Colocated, IDSRunning and ProcessMapping while the pair moves (planners/evacuation.ts)
  ServerMigrating: 'ServerMigrating',
  ServerEvacuating: 'ServerEvacuating',
  EvacuationMigrationFailed: 'EvacuationMigrationFailed',
  ServerRestarting: 'ServerRestarting',
  // IDSRunning
  IDSVMCreating: 'IDSVMCreating',
  IDSVMStarting: 'IDSVMStarting',
  IDSVMUnschedulable: 'IDSVMUnschedulable',
  IDSVMRestarting: 'IDSVMRestarting',
  IDSVMNameConflict: 'IDSVMNameConflict',
  IDSVMInvalid: 'IDSVMInvalid',
  // IDSNetworkJoined
  Joined: 'Joined',
  IDSNetworkJoining: 'IDSNetworkJoining',
  IDSNetworkFull: 'IDSNetworkFull',
  IDSNetworkMisconfigured: 'IDSNetworkMisconfigured',
  IDSNetworkDataUnmergeable: 'IDSNetworkDataUnmergeable',
  NetworkAttachmentRefused: 'NetworkAttachmentRefused',
  // MirrorAttached while the operator waits for the node agent (tc), or reports it (ovs-cni)
  WaitingForMirrorAgent: 'WaitingForMirrorAgent',
  ServerNICNotMirrorable: 'ServerNICNotMirrorable',
  /** ovs-cni: the OVS bridge on the server's node already applies its 32 mirrors (ovs-mirror-slots.ts). */
  MirrorBridgeFull: 'MirrorBridgeFull',
  // ProcessMapping
  Mapping: 'Mapping',
  ProcessMapperCreating: 'ProcessMapperCreating',
  ProcessMapperStarting: 'ProcessMapperStarting',
  ProcessMapperFailing: 'ProcessMapperFailing',
} as const;

export const EventReason = {
  ServerVMUpdated: 'ServerVMUpdated',
  /** Someone else changed the spec of a server VM HyperSpector created; it was put back. */
  ServerVMReverted: 'ServerVMReverted',
  ServerVMAdopted: 'ServerVMAdopted',
  ServerVMNotFound: 'ServerVMNotFound',
  ServerVMAlreadyMonitored: 'ServerVMAlreadyMonitored',
  ServerVMNameConflict: 'ServerVMNameConflict',
  ServerVMInvalid: 'ServerVMInvalid',
  ServerVMReleased: 'ServerVMReleased',
  ServerVMRetained: 'ServerVMRetained',
  ServerVMDeleted: 'ServerVMDeleted',
  IDSVMUpdated: 'IDSVMUpdated',
  /** Someone else changed the IDS VM's spec; it was put back. */
  IDSVMReverted: 'IDSVMReverted',
  IDSVMRestarted: 'IDSVMRestarted',
  IDSVMDeleted: 'IDSVMDeleted',
  IDSVMNameConflict: 'IDSVMNameConflict',
  IDSVMInvalid: 'IDSVMInvalid',
  IDSVMUnschedulable: 'IDSVMUnschedulable',
  ProcessMapperReplaced: 'ProcessMapperReplaced',
  ProcessMapperDeleted: 'ProcessMapperDeleted',
  IDSAddressReleased: 'IDSAddressReleased',
  /** A claim whose MonitoredServer is gone (finalizer removed by hand) was deleted; the Event is on the claim ConfigMap. */
  OrphanedIDSAddressReleased: 'OrphanedIDSAddressReleased',
  DiskPlugged: 'DiskPlugged',
  DiskUnplugged: 'DiskUnplugged',
  /** Snapshot mode: a VolumeSnapshot of a server volume was taken, restored into a claim, or a superseded one deleted. */
  DiskSnapshotCreated: 'DiskSnapshotCreated',
  DiskSnapshotRestored: 'DiskSnapshotRestored',
  DiskSnapshotDeleted: 'DiskSnapshotDeleted',
  /** The server VM leaves a drained node (a migration or, when it cannot migrate, a restart). */
  ServerVMEvacuating: 'ServerVMEvacuating',
  /** The IDS VM was stopped on the node the server leaves. */
  IDSVMStopped: 'IDSVMStopped',
  /** Monitoring is blind while the pair moves (status.lastMonitoringGap); ended when it is Ready again. */
  MonitoringGapStarted: 'MonitoringGapStarted',
  MonitoringGapEnded: 'MonitoringGapEnded',
  MonitoringStarted: 'MonitoringStarted',
  MonitoringDegraded: 'MonitoringDegraded',
  ReconcileFailed: 'ReconcileFailed',
  /** spec.response.onAlert: Pause paused the server on an alert; ResponseReleased when the user released it. */
  ServerPaused: 'ServerPaused',
  /** spec.response.onAlert: Isolate cut the server off the pod network (a NetworkPolicy) on an alert. */
  ServerIsolated: 'ServerIsolated',
  ResponseReleased: 'ResponseReleased',
  TeardownStalled: 'TeardownStalled',
} as const;

/** Condition reasons that are a problem the user must act on: each is also published as a Warning Event. */
export const WARNING_REASONS: ReadonlySet<string> = new Set([
  Reason.ServerVMNotFound,
  Reason.ServerVMAlreadyMonitored,
  Reason.ServerVMNameConflict,
  Reason.ServerVMInvalid,
  Reason.IDSVMNameConflict,
  Reason.IDSVMInvalid,
  Reason.IDSVMUnschedulable,
  Reason.ProcessMapperFailing,
  Reason.RestartRequired,
  Reason.MirroringUnavailable,
  Reason.DiskInspectionUnavailable,
  Reason.DiskVolumeNotFound,
  Reason.DiskVolumeUnsupported,
  Reason.DiskClaimNotFound,
  Reason.DiskClaimReadWriteOncePod,
  Reason.HotplugUnavailable,
  Reason.HotplugRefused,
  Reason.IDSCloudInitUnmergeable,
  Reason.SnapshotNotReady,
  Reason.SnapshotAPIUnavailable,
  Reason.ResponseUnavailable,
  Reason.EvacuationMigrationFailed,
  Reason.IDSNetworkFull,
  Reason.IDSNetworkMisconfigured,
  Reason.IDSNetworkDataUnmergeable,
  Reason.NetworkAttachmentRefused,
  Reason.ServerNICNotMirrorable,
  Reason.MirrorBridgeFull,
]);
