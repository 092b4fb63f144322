// Names, labels and annotations HyperSpector puts on the objects it creates or adopts.
import type { MonitoredServer } from '../api/v1alpha1/monitoredserver-types.ts';

export const LABEL_MONITORED_SERVER = 'hyperspector.io/monitored-server';
export const LABEL_ROLE = 'hyperspector.io/role';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'hyperspector';
export const ANNOTATION_MONITORED_BY = 'hyperspector.io/monitored-by';
/** UID of the server VMI the IDS VM was placed beside. */
export const ANNOTATION_PAIRED_WITH = 'hyperspector.io/paired-with-vmi';
export const FINALIZER = 'hyperspector.io/teardown';

export type Role = 'server' | 'ids' | 'process-mapper' | 'ids-cloud-init' | 'network' | 'ids-address';

export function idsVmName(ms: MonitoredServer): string {
  return `${ms.metadata.name}-ids`;
}

/** The server VM: the adopted VM's name, or `<name>-server` for one created from the template. */
export function serverVmName(ms: MonitoredServer): string {
  return ms.spec.server.virtualMachineName ?? `${ms.metadata.name}-server`;
}

export function isAdopting(ms: MonitoredServer): boolean {
  return ms.spec.server.virtualMachineName !== undefined;
}

export function roleLabels(ms: MonitoredServer, role: Role): Record<string, string> {
  return { [LABEL_MONITORED_SERVER]: ms.metadata.name ?? '', [LABEL_ROLE]: role, [LABEL_MANAGED_BY]: MANAGED_BY };
}

export function ownerReference(ms: MonitoredServer) {
  return {
    apiVersion: ms.apiVersion,
    kind: ms.kind,
    name: ms.metadata.name ?? '',
    uid: ms.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

export function processMapperPodName(ms: MonitoredServer): string {
  return `${ms.metadata.name}-process-mapper`;
}

/** The Secret holding the IDS VM's user data merged with HyperSpector's disk-inspection cloud-init. */
export function idsCloudInitSecretName(ms: MonitoredServer): string {
  return `${ms.metadata.name}-ids-cloud-init`;
}
