// The process-mapper sidecar Pod: hostPID with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH (not privileged), on the server VM's node, reading that VMI's
// guest memory read-only (src/sidecar). It runs in the operator's namespace (the only namespace that
// needs the privileged Pod Security level; tenants keep theirs), under the process mapper's own
// ServiceAccount, which may only post Events and write status.alerts of MonitoredServers. Owner
// references cannot cross namespaces: the operator tracks it by labels and deletes it in teardown;
// its controller reference is its Node (so `kubectl drain` evicts it like any controlled pod).
import { createHash } from 'node:crypto';
import type { MonitoredServer } from '../api/v1alpha1/monitoredserver-types.ts';
import { HOSTNAME_LABEL } from './ids-vm.ts';
import { ANNOTATION_RELEARN_BASELINE, processBaselineName, processMapperHostname, processMapperLabels, processMapperPodName } from './names.ts';
import type { V1PodSpec } from '@kubernetes/client-node';
import { DEFAULT_ROTATION_MS } from '../sidecar/intake-credential.ts';
import { INTAKE_KEY_FIELD, intakeEnabled, intakeKeySecretName } from './ids-intake.ts';
import type { ObjectMeta, Pod } from '../kube/client/objects.ts';
import { PROCFS_PORT } from '../procfs/port.ts';

/** What the process mapper needs to read the memory of a QEMU process run by another user. */
export const PROCESS_MAPPER_CAPABILITIES = ['SYS_PTRACE', 'DAC_READ_SEARCH'] as const;

export const PROCESS_MAPPER_PORT = 9464;
/** The read-only 9P process view (src/procfs): the IDS VM mounts it to run unmodified ps/top on the server's processes. */
export const PROCESS_VIEW_PORT = PROCFS_PORT;
export const KERNEL_PROFILES_MOUNT = '/etc/hyperspector/kernel-profiles';
/** Hash of the desired pod spec: a Pod's spec is immutable, so a different hash means replace. */
export const ANNOTATION_SPEC_HASH = 'hyperspector.io/spec-hash';

export interface ProcessMapperSettings {
  /** Image of the operator; the sidecar is the same image with another entry point. */
  image: string;
  /** ConfigMap with the cluster's kernel profiles (in `namespace`), used when the MonitoredServer names none. */
  defaultKernelProfilesConfigMap: string;
  /** Where the pods run: the operator's namespace. */
  namespace: string;
  /** ServiceAccount of the pods (Events and status.alerts of MonitoredServers, nothing else). */
  serviceAccountName: string;
  /**
   * The headless Service (the chart's) selecting every process mapper: a pod with a hostname and
   * this subdomain has the DNS name <hostname>.<service>.<namespace>.svc, the URL its IDS VM posts
   * alerts to; it survives the pod's replacement, and costs no object per MonitoredServer.
   */
  serviceName: string;
  /** Rotation period of the IDS VM's intake token (default 24 h). */
  idsCredentialRotationMs?: number;
}

export interface ServerVmiRef {
  nodeName: string;
  name: string;
  uid: string;
  /** The VMI's virt-launcher pod on that node (vmi.status.activePods): only a QEMU in its cgroup is read. */
  launcherPodUid: string;
  /**
   * UID of that Node: the pod's controller reference. A pod without a controller makes `kubectl
   * drain` refuse the node; owner references cannot reach the MonitoredServer in another namespace,
   * and a node-bound pod going with its Node is what the kubelet's mirror pods do too.
   */
  nodeUid: string;
}

/** The Pod the builder produces: a core/v1 Pod whose identity fields and spec are always set. */
export type BuiltPod = Pod & {
  apiVersion: 'v1';
  kind: 'Pod';
  metadata: ObjectMeta & { name: string; annotations: Record<string, string> };
  spec: V1PodSpec;
};

export function buildProcessMapperPod(ms: MonitoredServer, vmi: ServerVmiRef, settings: ProcessMapperSettings): BuiltPod {
  const mapping = ms.spec.processMapping ?? {};
  const configMap = mapping.kernelProfile?.configMapName ?? settings.defaultKernelProfilesConfigMap;
  const spec: V1PodSpec = {
    // Placed by the scheduler on the server's node (not nodeName, which would skip admission of
    // resources); hostPID to find the server's QEMU process among the node's processes.
    nodeSelector: { [HOSTNAME_LABEL]: vmi.nodeName },
    hostPID: true,
    serviceAccountName: settings.serviceAccountName,
    // <hostname>.<service>.<namespace>.svc: the IDS VM's intake URL (the chart's headless Service).
    hostname: processMapperHostname(ms),
    subdomain: settings.serviceName,
    // The token posts alerts: Warning Events and status.alerts of this MonitoredServer.
    automountServiceAccountToken: true,
    enableServiceLinks: false,
    restartPolicy: 'Always',
    terminationGracePeriodSeconds: 10,
    containers: [
      {
        name: 'process-mapper',
        image: settings.image,
        command: ['node', 'dist/src/sidecar/main.js'],
        env: [
          { name: 'VMI_NAMESPACE', value: ms.metadata.namespace ?? '' },
          { name: 'MONITORED_SERVER', value: ms.metadata.name ?? '' },
          { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
          { name: 'VMI_NAME', value: vmi.name },
          { name: 'VMI_UID', value: vmi.uid },
          { name: 'LAUNCHER_POD_UID', value: vmi.launcherPodUid },
          { name: 'KERNEL_PROFILES', value: KERNEL_PROFILES_MOUNT },
          { name: 'LISTEN', value: `0.0.0.0:${PROCESS_MAPPER_PORT}` },
          // Attach needs a token allowed to get monitoredservers/processes (like the HTTP API).
          { name: 'PROCFS_LISTEN', value: `0.0.0.0:${PROCESS_VIEW_PORT}` },
          { name: 'POLL_INTERVAL_MS', value: String((mapping.pollIntervalSeconds ?? 1) * 1000) },
          { name: 'BASELINE_WINDOW_MS', value: String((mapping.baselineWindowSeconds ?? 300) * 1000) },
          // The learned baseline outlives this pod (a guest reboot, a new VMI, a node move): kept
          // per MonitoredServer in a ConfigMap beside it; a new relearn annotation value (part of the
          // spec hash, so the pod is replaced) has it learned anew.
          { name: 'BASELINE_CONFIGMAP', value: `${settings.namespace}/${processBaselineName(ms)}` },
          { name: 'BASELINE_GENERATION', value: ms.metadata.annotations?.[ANNOTATION_RELEARN_BASELINE] ?? '' },
          // The IDS VM's alert intake (src/sidecar/intake.ts): the signing key its tokens derive from.
          ...(intakeEnabled(ms)
            ? [
                { name: 'IDS_INTAKE_KEY', valueFrom: { secretKeyRef: { name: intakeKeySecretName(ms), key: INTAKE_KEY_FIELD } } },
                { name: 'IDS_CREDENTIAL_ROTATION_MS', value: String(settings.idsCredentialRotationMs ?? DEFAULT_ROTATION_MS) },
              ]
            : []),
        ],
        ports: [{ name: 'http', containerPort: PROCESS_MAPPER_PORT, protocol: 'TCP' }, { name: 'procfs', containerPort: PROCESS_VIEW_PORT, protocol: 'TCP' }],
        readinessProbe: { httpGet: { path: '/healthz', port: PROCESS_MAPPER_PORT }, periodSeconds: 5 },
        // Not privileged: exactly the two capabilities reading QEMU's memory needs (proven in
        // test/host/introspection/sidecar-capabilities.test.ts against a QEMU of another user):
        // SYS_PTRACE — /proc/<qemu>/mem and /maps need ptrace read access to a process of another
        // user; DAC_READ_SEARCH — those files are mode 0600/0400 and owned by QEMU's user (107
        // under virt-launcher). Root, because capabilities of a non-root user are not effective
        // after exec. The root file system stays read-only, the runtime's seccomp profile applies,
        // no privilege escalation; guest memory is only ever opened O_RDONLY (src/introspection).
        securityContext: {
          privileged: false,
          allowPrivilegeEscalation: false,
          capabilities: { drop: ['ALL'], add: [...PROCESS_MAPPER_CAPABILITIES] },
          readOnlyRootFilesystem: true,
          runAsUser: 0,
          seccompProfile: { type: 'RuntimeDefault' },
        },
        resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } },
        volumeMounts: [{ name: 'kernel-profiles', mountPath: KERNEL_PROFILES_MOUNT, readOnly: true }],
      },
    ],
    // Optional: kernels with BTF are profiled from guest memory; the ConfigMap overrides or covers the rest.
    volumes: [{ name: 'kernel-profiles', configMap: { name: configMap, optional: true } }],
  };
  const hash = createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 16);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: processMapperPodName(ms),
      namespace: settings.namespace,
      labels: processMapperLabels(ms),
      annotations: { [ANNOTATION_SPEC_HASH]: hash },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: vmi.nodeName, uid: vmi.nodeUid, controller: true }],
    },
    spec,
  };
}
