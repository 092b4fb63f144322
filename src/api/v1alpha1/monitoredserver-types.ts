// The MonitoredServer API (hyperspector.io/v1alpha1): the single source of truth.
// The CRD in crds/ is generated from these schemas (npm run generate:crds) and the TypeScript types
// are inferred from them, so the two cannot drift; test/unit/api checks the committed CRD is current.
import { Type, type Static } from '@sinclair/typebox';
import type { ObjectMeta } from '../../kube/client/objects.ts';
import type { V1VirtualMachineSpec } from '@kubevirt-ui-ext/kubevirt-api/kubevirt';
import { AnnotationMap, DnsLabel, DnsSubdomain, LabelMap, Opaque, StringEnum, withRules } from './schema-helpers.ts';

export const GROUP = 'hyperspector.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'MonitoredServer';
export const PLURAL = 'monitoredservers';

/** Longest MonitoredServer name: children are called `<name>-server` and `<name>-ids` (≤ 63). */
export const MAX_NAME_LENGTH = 56;

export const DELETION_POLICIES = ['Retain', 'Delete'] as const;
export const MIRROR_DIRECTIONS = ['Ingress', 'Egress', 'Both'] as const;
export const DISK_INSPECTION_MODES = ['Live', 'Snapshot'] as const;
export const ALERT_RESPONSES = ['None', 'Pause', 'Isolate'] as const;

export const VirtualMachineTemplateSchema = Type.Object(
  {
    metadata: Type.Optional(
      Type.Object(
        {
          labels: Type.Optional(LabelMap('Labels added to the VirtualMachine (qualified-name keys, values of at most 63 characters).')),
          annotations: Type.Optional(AnnotationMap('Annotations added to the VirtualMachine (qualified-name keys, at most 255 KiB in all).')),
        },
        { additionalProperties: false },
      ),
    ),
    spec: Opaque<V1VirtualMachineSpec>(
      'A kubevirt.io/v1 VirtualMachine spec; validated by KubeVirt when the VirtualMachine is applied.',
    ),
  },
  { additionalProperties: false, description: 'A VirtualMachine to create: metadata and a kubevirt.io/v1 VirtualMachineSpec.' },
);

export const ServerSpecSchema = withRules(
  Type.Object(
    {
      virtualMachineName: Type.Optional(
        withRules(DnsLabel('Adopt this existing VirtualMachine in the same namespace. It is labelled while monitored and never deleted.'), [
          { rule: 'self == oldSelf', message: 'spec.server.virtualMachineName is immutable; create a new MonitoredServer to monitor another VM' },
        ]),
      ),
      template: Type.Optional(VirtualMachineTemplateSchema),
      monitoredNetwork: Type.Optional(
        DnsLabel("Name of the server VM's network (spec.template.spec.networks[].name) whose traffic is mirrored. Defaults to the first network."),
      ),
      disks: Type.Optional(
        Type.Array(DnsLabel('Name of a volume of the server VM (PVC or DataVolume).'), {
          description: 'Volumes of the server VM exposed read-only to the IDS VM.',
          maxItems: 16,
          'x-kubernetes-list-type': 'set',
        }),
      ),
      deletionPolicy: Type.Optional(
        StringEnum(DELETION_POLICIES, {
          default: 'Retain',
          description:
            'What happens to a server VM created from template when the MonitoredServer is deleted: Retain (default; monitoring is removed, the server keeps running) or Delete.',
        }),
      ),
    },
    { additionalProperties: false, description: 'The server VM to monitor.' },
  ),
  [
    {
      rule: 'has(self.virtualMachineName) != has(self.template)',
      message: 'exactly one of spec.server.virtualMachineName (adopt an existing VM) or spec.server.template (create one) must be set',
    },
    {
      rule: '!has(self.virtualMachineName) || !has(self.deletionPolicy) || self.deletionPolicy == "Retain"',
      message: 'spec.server.deletionPolicy must be Retain when adopting an existing VM (virtualMachineName): HyperSpector never deletes a VM it did not create',
      fieldPath: '.deletionPolicy',
      reason: 'FieldValueForbidden',
    },
    {
      rule: 'has(self.virtualMachineName) == has(oldSelf.virtualMachineName)',
      message: 'spec.server cannot switch between virtualMachineName and template; create a new MonitoredServer instead',
    },
  ],
);

export const IdsSpecSchema = Type.Object(
  { template: VirtualMachineTemplateSchema },
  { additionalProperties: false, description: 'The IDS VM, created and owned by the operator as <name>-ids on the server VM node.' },
);

export const MirroringSpecSchema = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean({ default: true, description: "Mirror the server's traffic to the IDS VM." })),
    direction: Type.Optional(StringEnum(MIRROR_DIRECTIONS, { default: 'Both', description: 'Which traffic is mirrored: Ingress, Egress or Both.' })),
  },
  { additionalProperties: false, default: {}, description: 'Software port mirroring of the monitored network.' },
);

/** Bounds of spec.diskInspection.snapshot.intervalMinutes: from 5 minutes to a week. */
export const SNAPSHOT_INTERVAL_MINUTES = { minimum: 5, maximum: 10080, default: 60 } as const;
/** Bounds of spec.diskInspection.snapshot.readyTimeoutMinutes. */
export const SNAPSHOT_READY_TIMEOUT_MINUTES = { minimum: 1, maximum: 1440, default: 10 } as const;

export const DiskSnapshotSpecSchema = Type.Object(
  {
    intervalMinutes: Type.Optional(
      Type.Integer({
        ...SNAPSHOT_INTERVAL_MINUTES,
        description: 'How often a new snapshot of each server volume is taken and rotated into the IDS VM (the new copy is plugged before the old one goes).',
      }),
    ),
    readyTimeoutMinutes: Type.Optional(
      Type.Integer({
        ...SNAPSHOT_READY_TIMEOUT_MINUTES,
        description: 'How long a new VolumeSnapshot may take to become readyToUse; past it DiskAttached says SnapshotNotReady and the previous copy stays plugged.',
      }),
    ),
    volumeSnapshotClassName: Type.Optional(
      DnsSubdomain("VolumeSnapshotClass of the snapshots; default: the cluster's default class for the claim's CSI driver (the snapshot controller picks it)."),
    ),
  },
  { additionalProperties: false, description: 'Snapshot mode: how the server volumes are snapshotted and rotated.' },
);

export const DiskInspectionSpecSchema = withRules(
  Type.Object(
    {
      mode: Type.Optional(
        StringEnum(DISK_INSPECTION_MODES, {
          default: 'Live',
          description: 'Live: hot-plug the server disks read-only into the IDS VM. Snapshot: expose a point-in-time snapshot.',
        }),
      ),
      mountPath: Type.Optional(
        Type.String({
          default: '/.serverfs',
          maxLength: 255,
          pattern: '^(/[^/\\x00]+)+$',
          description: 'Absolute path in the IDS VM under which each server volume is mounted (<mountPath>/<volume>).',
        }),
      ),
      snapshot: Type.Optional(DiskSnapshotSpecSchema),
    },
    { additionalProperties: false, default: {}, description: 'Inter-VM disk mounting.' },
  ),
  [
    {
      rule: "!has(self.mountPath) || !self.mountPath.split('/').exists(s, s == '.' || s == '..')",
      message: 'spec.diskInspection.mountPath must not contain . or .. segments',
      fieldPath: '.mountPath',
    },
    {
      rule: "!has(self.snapshot) || (has(self.mode) && self.mode == 'Snapshot')",
      message: 'spec.diskInspection.snapshot is only valid with mode: Snapshot',
      fieldPath: '.snapshot',
    },
  ],
);

export const ProcessMappingSpecSchema = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean({ default: true, description: "Map the server VM's processes from guest memory." })),
    kernelProfile: Type.Optional(
      Type.Object(
        { configMapName: DnsSubdomain('ConfigMap holding the kernel profile JSON, in the operator namespace, where the process mapper runs (a cluster administrator choice, like the default profiles). Only needed for guest kernels without BTF.') },
        { additionalProperties: false, description: "Kernel profile of the server VM's guest kernel. Defaults to the cluster's profiles." },
      ),
    ),
    pollIntervalSeconds: Type.Optional(Type.Integer({ default: 1, minimum: 1, maximum: 60, description: 'How often the process table is read.' })),
    baselineWindowSeconds: Type.Optional(
      Type.Integer({
        default: 300,
        minimum: 0,
        maximum: 86400,
        description: 'Processes seen during this window after start form the baseline; later newcomers raise alerts.',
      }),
    ),
  },
  { additionalProperties: false, default: {}, description: 'Inter-VM process mapping.' },
);

export const ResponseSpecSchema = Type.Object(
  {
    onAlert: Type.Optional(
      StringEnum(ALERT_RESPONSES, {
        default: 'None',
        description: "What to do with the server VM on an alert, once per alert burst, until released with the annotation hyperspector.io/release-response: None, Pause (pause the VMI) or Isolate (a deny-all NetworkPolicy cuts the VM's launcher pod off the pod network and, with the node agent, a tc filter drops every frame at each of its taps after the mirror's copy; ResponseReady says when a server cannot be isolated).",
      }),
    ),
  },
  { additionalProperties: false, default: {}, description: 'Response to alerts.' },
);

export const MonitoredServerSpecSchema = Type.Object(
  {
    server: ServerSpecSchema,
    ids: IdsSpecSchema,
    mirroring: Type.Optional(MirroringSpecSchema),
    diskInspection: Type.Optional(DiskInspectionSpecSchema),
    processMapping: Type.Optional(ProcessMappingSpecSchema),
    response: Type.Optional(ResponseSpecSchema),
  },
  { additionalProperties: false, description: 'What to monitor and how.' },
);

export const CONDITION_STATUSES = ['True', 'False', 'Unknown'] as const;

/** metav1.Condition, with the validation the Kubernetes API types carry. */
export const ConditionSchema = Type.Object(
  {
    type: Type.String({ maxLength: 316, pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$' }),
    status: StringEnum(CONDITION_STATUSES),
    observedGeneration: Type.Optional(Type.Integer({ format: 'int64', minimum: 0 })),
    lastTransitionTime: Type.String({ format: 'date-time' }),
    reason: Type.String({ minLength: 1, maxLength: 1024, pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$' }),
    message: Type.String({ maxLength: 32768 }),
  },
  { additionalProperties: false },
);

export const VmStatusSchema = Type.Object(
  {
    name: Type.String(),
    phase: Type.Optional(Type.String({ description: 'printableStatus of the VirtualMachine (Running, Stopped, Provisioning, ...).' })),
    ready: Type.Optional(Type.Boolean()),
    nodeName: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

/** The most recent alerts, newest first; the process mapper keeps at most ALERTS_RECENT_LIMIT. */
export const ALERTS_RECENT_LIMIT = 5;

export const AlertSummarySchema = Type.Object(
  {
    time: Type.String({ format: 'date-time' }),
    rule: Type.String({ maxLength: 63, description: 'The rule that raised the alert, also the reason of its Warning Event.' }),
    pid: Type.Optional(Type.Integer({ minimum: 0 })),
    comm: Type.Optional(Type.String({ maxLength: 64 })),
    message: Type.String({ maxLength: 1024, description: 'What was seen; command-line values that look like secrets are redacted.' }),
  },
  { additionalProperties: false },
);

export const MONITORING_GAP_CAUSES = ['Migration', 'Evacuation', 'Restart'] as const;

/** The last time the pair moved and monitoring was blind: from the IDS side stopping to Ready again. */
export const MonitoringGapSchema = Type.Object(
  {
    cause: StringEnum(MONITORING_GAP_CAUSES, {
      description: 'Migration (the server VM live-migrated), Evacuation (its node was drained and it migrated), Restart (it could not migrate and restarted elsewhere).',
    }),
    startTime: Type.String({ format: 'date-time', description: 'When the IDS side stopped on the node the server left.' }),
    endTime: Type.Optional(Type.String({ format: 'date-time', description: 'When the pair was Ready again; absent while the gap lasts.' })),
    durationSeconds: Type.Optional(Type.Number({ minimum: 0, description: 'endTime - startTime.' })),
    fromNode: Type.Optional(Type.String()),
    toNode: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

export const AlertsStatusSchema = Type.Object(
  {
    count: Type.Integer({ format: 'int64', minimum: 0, description: 'Alerts raised for this MonitoredServer since it was created.' }),
    lastAlertTime: Type.Optional(Type.String({ format: 'date-time' })),
    recent: Type.Optional(Type.Array(AlertSummarySchema, { maxItems: ALERTS_RECENT_LIMIT, description: 'The latest alerts, newest first.' })),
  },
  { additionalProperties: false, description: 'Alerts raised about the server, written by the process mapper (field manager hyperspector-process-mapper); each is also a Warning Event.' },
);

export const ResponseStatusSchema = Type.Object(
  {
    action: Type.String({ maxLength: 32, description: 'The response taken (spec.response.onAlert).' }),
    alertTime: Type.String({ format: 'date-time', description: 'The last alert responded to (status.alerts.lastAlertTime then).' }),
    pausedAt: Type.Optional(Type.String({ format: 'date-time', description: 'Pause: when the server VMI was paused.' })),
    isolatedAt: Type.Optional(Type.String({ format: 'date-time', description: "Isolate: when the NetworkPolicy <name>-isolate cut the server VM's launcher pod off the pod network." })),
    releasedAt: Type.Optional(Type.String({ format: 'date-time', description: 'When the user released it (annotation hyperspector.io/release-response).' })),
  },
  { additionalProperties: false, description: 'The last response to an alert, written by the operator.' },
);

export const IdsNetworkStatusSchema = Type.Object(
  {
    address: Type.String({ description: "The IDS VM's address on the IDS-only network, with its prefix length (e.g. 10.99.0.7/16)." }),
    provider: Type.String({ description: 'The IDS network provider the operator is configured with: vxlan or ovn-k8s-layer2.' }),
    networkAttachmentDefinition: Type.String({ description: "The NetworkAttachmentDefinition of the IDS VM's IDS-network NIC." }),
  },
  { additionalProperties: false, description: 'The IDS VM on the IDS-only network.' },
);

export const DiskSnapshotStatusSchema = Type.Object(
  {
    volume: Type.String({ description: 'The server volume (an entry of spec.server.disks).' }),
    volumeSnapshot: Type.String({ description: 'The VolumeSnapshot whose restored copy is plugged into the IDS VM now.' }),
    claim: Type.String({ description: 'The PersistentVolumeClaim restored from it (read-only in the IDS VM).' }),
    creationTime: Type.Optional(Type.String({ format: 'date-time', description: "The snapshot's point in time (status.creationTime of the VolumeSnapshot)." })),
  },
  { additionalProperties: false },
);

export const DiskInspectionStatusSchema = Type.Object(
  {
    snapshots: Type.Optional(Type.Array(DiskSnapshotStatusSchema, { maxItems: 64, description: 'Snapshot mode: the copy of each server volume the IDS VM reads now.' })),
  },
  { additionalProperties: false, description: 'Disk inspection (Snapshot mode: the current copies).' },
);

export const MonitoredServerStatusSchema = Type.Object(
  {
    observedGeneration: Type.Optional(Type.Integer({ format: 'int64', minimum: 0 })),
    nodeName: Type.Optional(Type.String({ description: 'The node the server VM and the IDS VM run on.' })),
    serverVM: Type.Optional(VmStatusSchema),
    idsVM: Type.Optional(VmStatusSchema),
    alerts: Type.Optional(AlertsStatusSchema),
    response: Type.Optional(ResponseStatusSchema),
    lastMonitoringGap: Type.Optional(MonitoringGapSchema),
    idsNetwork: Type.Optional(IdsNetworkStatusSchema),
    diskInspection: Type.Optional(DiskInspectionStatusSchema),
    conditions: Type.Optional(
      Type.Array(ConditionSchema, {
        maxItems: 32,
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['type'],
      }),
    ),
  },
  { additionalProperties: false },
);

export type VirtualMachineTemplate = Static<typeof VirtualMachineTemplateSchema>;
export type ServerSpec = Static<typeof ServerSpecSchema>;
export type IdsSpec = Static<typeof IdsSpecSchema>;
export type MirroringSpec = Static<typeof MirroringSpecSchema>;
export type DiskInspectionSpec = Static<typeof DiskInspectionSpecSchema>;
export type DiskSnapshotSpec = Static<typeof DiskSnapshotSpecSchema>;
export type DiskSnapshotStatus = Static<typeof DiskSnapshotStatusSchema>;
export type ProcessMappingSpec = Static<typeof ProcessMappingSpecSchema>;
export type ResponseSpec = Static<typeof ResponseSpecSchema>;
export type MonitoredServerSpec = Static<typeof MonitoredServerSpecSchema>;
export type Condition = Static<typeof ConditionSchema>;
export type ConditionStatus = (typeof CONDITION_STATUSES)[number];
export type VmStatus = Static<typeof VmStatusSchema>;
export type MonitoringGap = Static<typeof MonitoringGapSchema>;
export type IdsNetworkStatus = Static<typeof IdsNetworkStatusSchema>;
export type MonitoredServerStatus = Static<typeof MonitoredServerStatusSchema>;
export type AlertsStatus = Static<typeof AlertsStatusSchema>;
export type AlertSummary = Static<typeof AlertSummarySchema>;
export type ResponseStatus = Static<typeof ResponseStatusSchema>;
export type DeletionPolicy = (typeof DELETION_POLICIES)[number];

export type { ObjectMeta };

export interface MonitoredServer {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  /** Always present on objects read from the API server. */
  metadata: ObjectMeta;
  spec: MonitoredServerSpec;
  status?: MonitoredServerStatus;
}
