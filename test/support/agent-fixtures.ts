// Objects as the node agent sees them in its caches: MonitoredServers, VMIs placed on a node and
// their virt-launcher pods (KubeVirt's labels), for the agent's unit and host tests.
import type { MonitoredServer } from '../../src/api/v1alpha1/monitoredserver-types.ts';
import type { Pod, VirtualMachineInstance } from '../../src/kube/objects.ts';
import { monitoredServer } from './monitoredserver-fixtures.ts';

export const IDS_MIRROR_NETWORK = 'hyperspector-mirror';

/** A MonitoredServer with mirroring as given (default: enabled, Both) and a UID. */
export function mirroredServer(name: string, namespace: string, uid: string, mirroring: MonitoredServer['spec']['mirroring'] = { enabled: true }): MonitoredServer {
  const ms = monitoredServer(name, namespace, { mirroring });
  ms.metadata.uid = uid;
  ms.metadata.generation = 1;
  return ms;
}

type Networks = NonNullable<VirtualMachineInstance['spec']['networks']>;
type Interfaces = NonNullable<VirtualMachineInstance['spec']['domain']['devices']['interfaces']>;

export interface VmiShape {
  networks?: Networks;
  interfaces?: Interfaces;
}

/** The server VMI's shape: one pod network, bridge binding. */
export const SERVER_SHAPE: VmiShape = { networks: [{ name: 'default', pod: {} }], interfaces: [{ name: 'default', bridge: {} }] };
/** The IDS VMI's shape: the pod network plus the mirror network (a Multus secondary network, bridge binding). */
export const IDS_SHAPE: VmiShape = {
  networks: [{ name: 'default', pod: {} }, { name: IDS_MIRROR_NETWORK, multus: { networkName: 'hyperspector-mirror' } }],
  interfaces: [{ name: 'default', masquerade: {} }, { name: IDS_MIRROR_NETWORK, bridge: {} }],
};

export function vmi(namespace: string, name: string, uid: string, nodeName: string | undefined, shape: VmiShape = SERVER_SHAPE): VirtualMachineInstance {
  return {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachineInstance',
    metadata: { name, namespace, uid, labels: nodeName ? { 'kubevirt.io/nodeName': nodeName } : {} },
    spec: { domain: { devices: { interfaces: shape.interfaces ?? [] } }, networks: shape.networks ?? [] },
    status: { ...(nodeName ? { nodeName } : {}), phase: nodeName ? 'Running' : 'Pending' },
  };
}

export function launcherPod(owner: VirtualMachineInstance, podUid: string, nodeName: string, options: { phase?: string; createdAt?: string; deleting?: boolean } = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `virt-launcher-${owner.metadata?.name}-${podUid.slice(0, 5)}`,
      namespace: owner.metadata?.namespace,
      uid: podUid,
      creationTimestamp: options.createdAt ?? '2025-01-01T00:00:00Z',
      labels: { 'kubevirt.io': 'virt-launcher', 'kubevirt.io/created-by': owner.metadata?.uid ?? '', 'vm.kubevirt.io/name': owner.metadata?.name ?? '' },
      ...(options.deleting ? { deletionTimestamp: '2025-01-01T00:10:00Z' } : {}),
    },
    spec: { nodeName, containers: [{ name: 'compute' }] },
    status: { phase: options.phase ?? 'Running' },
  };
}
