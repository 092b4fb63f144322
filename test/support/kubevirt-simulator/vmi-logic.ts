// Pure logic of KubeVirt's VMI controller (virt-controller) and virt-handler, as far as an operator
// can observe it: the virt-launcher Pod built for a VMI (pkg/virt-controller/services/template.go)
// and the VMI status as the pod is scheduled and runs.
import { createHash } from 'node:crypto';
import {
  APP_LABEL,
  CREATED_BY_LABEL,
  DOMAIN_ANNOTATION,
  LAUNCHER_IMAGE,
  MULTUS_NETWORKS_ANNOTATION,
  NODE_NAME_LABEL,
  NODE_SCHEDULABLE_LABEL,
  VM_NAME_LABEL,
  type Pod,
  type VirtualMachineInstance,
} from './types.ts';

interface Network {
  name: string;
  pod?: Record<string, unknown>;
  multus?: { networkName: string; default?: boolean };
}

function networksOf(vmi: VirtualMachineInstance): Network[] {
  return ((vmi.spec?.networks ?? []) as Network[]).filter((n) => n && n.name);
}

/** The pod interface name Multus uses for a secondary network (KubeVirt's hashed naming). */
export function podInterfaceName(networkName: string): string {
  return `pod${createHash('sha256').update(networkName).digest('hex').slice(0, 11)}`;
}

/** A stable MAC for an interface without one (KubeVirt lets the CNI or libvirt choose). */
export function generatedMac(vmiUid: string, networkName: string): string {
  const h = createHash('sha256').update(`${vmiUid}/${networkName}`).digest();
  return ['02', ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

export function buildLauncherPod(vmi: VirtualMachineInstance): Pod {
  const name = vmi.metadata.name ?? '';
  const hostname = (vmi.spec?.hostname as string | undefined) ?? name;
  const multus = networksOf(vmi).filter((n) => n.multus && !n.multus.default);
  const annotations: Record<string, string> = {
    [DOMAIN_ANNOTATION]: name,
    'kubectl.kubernetes.io/default-container': 'compute',
  };
  if (multus.length > 0) {
    annotations[MULTUS_NETWORKS_ANNOTATION] = JSON.stringify(
      multus.map((n) => {
        const [ns, nad] = n.multus!.networkName.includes('/') ? n.multus!.networkName.split('/') : [vmi.metadata.namespace, n.multus!.networkName];
        return { name: nad, namespace: ns, interface: podInterfaceName(n.name) };
      }),
    );
  }
  const memory =
    (vmi.spec?.domain?.resources?.requests as Record<string, string> | undefined)?.memory ??
    (vmi.spec?.domain?.memory?.guest as string | undefined) ??
    '128Mi';
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: `virt-launcher-${name}-`,
      namespace: vmi.metadata.namespace,
      labels: {
        ...(vmi.metadata.labels ?? {}),
        [APP_LABEL]: 'virt-launcher',
        [CREATED_BY_LABEL]: vmi.metadata.uid ?? '',
        [VM_NAME_LABEL]: hostname,
      },
      annotations,
      ownerReferences: [
        {
          apiVersion: 'kubevirt.io/v1',
          kind: 'VirtualMachineInstance',
          name,
          uid: vmi.metadata.uid ?? '',
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: {
      hostname,
      subdomain: vmi.spec?.subdomain as string | undefined,
      nodeSelector: { ...((vmi.spec?.nodeSelector as Record<string, string> | undefined) ?? {}), [NODE_SCHEDULABLE_LABEL]: 'true' },
      affinity: vmi.spec?.affinity as Pod['spec'] extends infer S ? (S extends { affinity?: infer A } ? A : never) : never,
      tolerations: vmi.spec?.tolerations as NonNullable<Pod['spec']>['tolerations'],
      schedulerName: vmi.spec?.schedulerName as string | undefined,
      priorityClassName: vmi.spec?.priorityClassName as string | undefined,
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: ((vmi.spec?.terminationGracePeriodSeconds as number | undefined) ?? 30) + 15,
      containers: [
        {
          name: 'compute',
          image: LAUNCHER_IMAGE,
          command: ['/usr/bin/virt-launcher-monitor', '--qemu-timeout', '240s', '--name', name, '--uid', vmi.metadata.uid ?? '', '--namespace', vmi.metadata.namespace ?? ''],
          resources: { requests: { cpu: '100m', memory } },
        },
      ],
    },
  };
}

export function podIsTerminal(pod: Pod): boolean {
  return pod.status?.phase === 'Failed' || pod.status?.phase === 'Succeeded' || Boolean(pod.metadata?.deletionTimestamp);
}

function podRunning(pod: Pod): boolean {
  return pod.status?.phase === 'Running' && !pod.metadata?.deletionTimestamp;
}

export interface VmiUpdate {
  labels?: Record<string, string>;
  status: Record<string, unknown>;
}

/**
 * The VMI's next status given its launcher pod (or none). Returns undefined when nothing changes
 * in what KubeVirt reports.
 */
export function nextVmiStatus(vmi: VirtualMachineInstance, pod: Pod | undefined, now: string): VmiUpdate {
  const phase = (vmi.status?.phase as string | undefined) ?? '';
  const prev = (vmi.status ?? {}) as Record<string, unknown>;
  const transition = (type: string, status: string) => {
    const old = ((prev.conditions ?? []) as Array<{ type: string; status: string; lastTransitionTime?: string }>).find((c) => c.type === type);
    return old && old.status === status ? old.lastTransitionTime : now;
  };
  if (phase === 'Failed' || phase === 'Succeeded') return { status: prev };
  if (!pod) {
    // The pod is gone: before it ran the VMI stays Pending (a new pod is created); after, it failed.
    if (phase === 'Running' || phase === 'Scheduled' || phase === 'Scheduling') {
      return { status: { ...prev, phase: 'Failed', conditions: [readyCondition(false, 'PodTerminating', 'virt-launcher pod is gone', transition)] } };
    }
    return { status: { ...prev, phase: 'Pending' } };
  }
  if (podIsTerminal(pod)) {
    return { status: { ...prev, phase: 'Failed', conditions: [readyCondition(false, 'PodTerminating', 'virt-launcher pod terminated', transition)] } };
  }
  const nodeName = pod.spec?.nodeName;
  if (!nodeName) {
    const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
    const conditions = [readyCondition(false, 'PodNotReady', 'virt-launcher pod is not scheduled', transition)];
    if (scheduled?.status === 'False') {
      conditions.push({
        type: 'PodScheduled',
        status: 'False',
        reason: scheduled.reason ?? 'Unschedulable',
        message: scheduled.message ?? '',
       
        lastTransitionTime: transition('PodScheduled', 'False'),
      });
    }
    return { status: { ...prev, phase: 'Scheduling', conditions } };
  }
  if (!podRunning(pod)) {
    return {
      labels: { [NODE_NAME_LABEL]: nodeName },
      status: { ...prev, phase: 'Scheduled', nodeName, activePods: { [pod.metadata?.uid ?? '']: nodeName }, conditions: [readyCondition(false, 'PodNotReady', 'virt-launcher pod is not running', transition)] },
    };
  }
  return {
    labels: { [NODE_NAME_LABEL]: nodeName },
    status: {
      ...prev,
      phase: 'Running',
      nodeName,
      activePods: { [pod.metadata?.uid ?? '']: nodeName },
      launcherContainerImageVersion: LAUNCHER_IMAGE,
      qosClass: 'Burstable',
      guestOSInfo: {},
      migrationMethod: 'BlockMigration',
      migrationTransport: 'Unix',
      interfaces: interfaceStatuses(vmi, pod),
      volumeStatus: volumeStatuses(vmi),
      conditions: [
        readyCondition(true, '', '', transition),
        { type: 'LiveMigratable', status: 'True', reason: '', message: '', lastTransitionTime: transition('LiveMigratable', 'True') },
      ],
    },
  };
}

function readyCondition(ready: boolean, reason: string, message: string, transition: (type: string, status: string) => string | undefined) {
  const status = ready ? 'True' : 'False';
  return { type: 'Ready', status, reason, message, lastTransitionTime: transition('Ready', status) };
}

interface InterfaceSpec {
  name: string;
  macAddress?: string;
}

function interfaceStatuses(vmi: VirtualMachineInstance, pod: Pod): Array<Record<string, unknown>> {
  const interfaces = ((vmi.spec?.domain?.devices?.interfaces ?? []) as InterfaceSpec[]);
  return networksOf(vmi).map((network, index) => {
    const spec = interfaces.find((i) => i.name === network.name);
    const onPodNetwork = Boolean(network.pod) || Boolean(network.multus?.default);
    const status: Record<string, unknown> = {
      name: network.name,
      interfaceName: `eth${index}`,
      mac: spec?.macAddress ?? generatedMac(vmi.metadata.uid ?? '', network.name),
      infoSource: onPodNetwork ? 'domain, guest-agent' : 'domain, multus-status',
      queueCount: 1,
      linkState: 'up',
    };
    if (!onPodNetwork) status.podInterfaceName = podInterfaceName(network.name);
    if (onPodNetwork && pod.status?.podIP) {
      status.ipAddress = pod.status.podIP;
      status.ipAddresses = (pod.status.podIPs ?? [{ ip: pod.status.podIP }]).map((p) => p.ip);
    }
    return status;
  });
}

const TARGETS = 'abcdefghijklmnopqrstuvwxyz';

/** volumeStatus for the VMI's volumes; hotplugged volumes (later issue) add phase and hotplugVolume here. */
function volumeStatuses(vmi: VirtualMachineInstance): Array<Record<string, unknown>> {
  const volumes = (vmi.spec?.volumes ?? []) as Array<{ name: string }>;
  return volumes.map((v, i) => ({ name: v.name, target: `vd${TARGETS[i] ?? 'z'}` }));
}
