// The demo's live table of MonitoredServers, VirtualMachines and launcher pods.
import * as k8s from '@kubernetes/client-node';

interface Row {
  [column: string]: string;
}

export interface DemoState {
  monitoredServers: Row[];
  virtualMachines: Row[];
  pods: Row[];
}

type Obj = { metadata: k8s.V1ObjectMeta; status?: Record<string, any>; spec?: Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any

export async function readDemoState(kubeConfig: k8s.KubeConfig): Promise<DemoState> {
  const custom = kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  const core = kubeConfig.makeApiClient(k8s.CoreV1Api);
  const [ms, vms, vmis, launchers, mappers] = await Promise.all([
    custom.listClusterCustomObject({ group: 'hyperspector.io', version: 'v1alpha1', plural: 'monitoredservers' }) as Promise<{ items: Obj[] }>,
    custom.listClusterCustomObject({ group: 'kubevirt.io', version: 'v1', plural: 'virtualmachines' }) as Promise<{ items: Obj[] }>,
    custom.listClusterCustomObject({ group: 'kubevirt.io', version: 'v1', plural: 'virtualmachineinstances' }) as Promise<{ items: Obj[] }>,
    core.listPodForAllNamespaces({ labelSelector: 'kubevirt.io=virt-launcher' }),
    core.listPodForAllNamespaces({ labelSelector: 'hyperspector.io/role=process-mapper' }),
  ]);
  const pods = { items: [...launchers.items, ...mappers.items] };
  const vmiByKey = new Map(vmis.items.map((v) => [`${v.metadata.namespace}/${v.metadata.name}`, v]));
  return {
    monitoredServers: ms.items.map((m) => {
      const ready = (m.status?.conditions ?? []).find((c: { type: string }) => c.type === 'Ready');
      return {
        NAMESPACE: m.metadata.namespace ?? '',
        MONITOREDSERVER: m.metadata.name ?? '',
        READY: ready?.status ?? '',
        REASON: ready?.reason ?? '',
        NODE: m.status?.nodeName ?? '',
        SERVER: m.status?.serverVM?.name ?? '',
        IDS: m.status?.idsVM?.name ?? '',
      };
    }),
    virtualMachines: vms.items.map((v) => ({
      NAMESPACE: v.metadata.namespace ?? '',
      VM: v.metadata.name ?? '',
      ROLE: v.metadata.labels?.['hyperspector.io/role'] ?? '-',
      STATUS: v.status?.printableStatus ?? '',
      NODE: vmiByKey.get(`${v.metadata.namespace}/${v.metadata.name}`)?.status?.nodeName ?? '',
    })),
    pods: pods.items.map((p) => ({
      NAMESPACE: p.metadata?.namespace ?? '',
      POD: p.metadata?.name ?? '',
      PHASE: p.status?.phase ?? '',
      NODE: p.spec?.nodeName ?? '',
    })),
  };
}

export function allReady(state: DemoState): boolean {
  return state.monitoredServers.length > 0 && state.monitoredServers.every((m) => m.READY === 'True');
}

function table(rows: Row[], empty: string): string {
  if (rows.length === 0) return `  ${empty}`;
  const columns = Object.keys(rows[0]!);
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]) => '  ' + cells.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(columns), ...rows.map((r) => line(columns.map((c) => r[c] ?? '')))].join('\n');
}

export function renderDemoTable(state: DemoState): string {
  return [
    `HyperSpector demo — ${new Date().toISOString().slice(11, 19)} UTC`,
    '',
    table(state.monitoredServers, 'no MonitoredServers'),
    '',
    table(state.virtualMachines, 'no VirtualMachines'),
    '',
    table(state.pods, 'no virt-launcher or process-mapper pods'),
  ].join('\n');
}
