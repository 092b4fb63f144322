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
  MirrorAttached: 'MirrorAttached',
  DiskAttached: 'DiskAttached',
  ResponseReady: 'ResponseReady',
  /** Not part of Ready: True while a response to an alert holds (the server is paused), False once released. */
  Responded: 'Responded',
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
  // ResponseReady (Pause), Responded
  Armed: 'Armed',
  ServerPaused: 'ServerPaused',
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
  // IDSRunning
  IDSVMCreating: 'IDSVMCreating',
  IDSVMStarting: 'IDSVMStarting',
  IDSVMUnschedulable: 'IDSVMUnschedulable',
  IDSVMRestarting: 'IDSVMRestarting',
  IDSVMNameConflict: 'IDSVMNameConflict',
  IDSVMInvalid: 'IDSVMInvalid',
  // ProcessMapping
  Mapping: 'Mapping',
  ProcessMapperCreating: 'ProcessMapperCreating',
  ProcessMapperStarting: 'ProcessMapperStarting',
  ProcessMapperFailing: 'ProcessMapperFailing',
} as const;

export const EventReason = {
  ServerVMCreated: 'ServerVMCreated',
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
  IDSVMCreated: 'IDSVMCreated',
  IDSVMUpdated: 'IDSVMUpdated',
  /** Someone else changed the IDS VM's spec; it was put back. */
  IDSVMReverted: 'IDSVMReverted',
  IDSVMRestarted: 'IDSVMRestarted',
  IDSVMDeleted: 'IDSVMDeleted',
  IDSVMNameConflict: 'IDSVMNameConflict',
  IDSVMInvalid: 'IDSVMInvalid',
  IDSVMUnschedulable: 'IDSVMUnschedulable',
  ProcessMapperCreated: 'ProcessMapperCreated',
  ProcessMapperReplaced: 'ProcessMapperReplaced',
  ProcessMapperDeleted: 'ProcessMapperDeleted',
  IDSCloudInitCreated: 'IDSCloudInitCreated',
  DiskPlugged: 'DiskPlugged',
  DiskUnplugged: 'DiskUnplugged',
  MonitoringStarted: 'MonitoringStarted',
  MonitoringDegraded: 'MonitoringDegraded',
  ReconcileFailed: 'ReconcileFailed',
  /** spec.response.onAlert: Pause paused the server on an alert; ResponseReleased when the user released it. */
  ServerPaused: 'ServerPaused',
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
  Reason.ResponseUnavailable,
]);
