// Names, labels and annotations HyperSpector puts on the objects it creates or adopts.
import { createHash } from 'node:crypto';
import type { MonitoredServer } from '../api/v1alpha1/monitoredserver-types.ts';

export const LABEL_MONITORED_SERVER = 'hyperspector.io/monitored-server';
/** On objects outside the MonitoredServer's namespace (the process-mapper pods): its namespace. */
export const LABEL_MONITORED_SERVER_NAMESPACE = 'hyperspector.io/monitored-server-namespace';
export const LABEL_ROLE = 'hyperspector.io/role';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'hyperspector';
export const ANNOTATION_MONITORED_BY = 'hyperspector.io/monitored-by';
/** UID of the server VMI the IDS VM was placed beside. */
export const ANNOTATION_PAIRED_WITH = 'hyperspector.io/paired-with-vmi';
export const FINALIZER = 'hyperspector.io/teardown';

export type Role = 'server' | 'ids' | 'process-mapper' | 'process-baseline' | 'ids-cloud-init' | 'network' | 'ids-address' | 'disk-snapshot' | 'response' | 'ids-intake-key' | 'ids-intake';

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

/**
 * Objects of a MonitoredServer in the operator's namespace (its process-mapper pod, its process
 * baseline) carry its namespace and name in their names, and a hash of both (`a-b`/`c` and
 * `a`/`b-c` must not meet).
 */
function operatorNamespaceName(ms: MonitoredServer, what: string): string {
  const ns = ms.metadata.namespace ?? '';
  const name = ms.metadata.name ?? '';
  const hash = createHash('sha256').update(`${ns}/${name}`).digest('hex').slice(0, 8);
  return `${`${ns}-${name}`.slice(0, 200).replace(/[.-]+$/, '')}-${what}-${hash}`;
}

export function processMapperPodName(ms: MonitoredServer): string {
  return operatorNamespaceName(ms, 'process-mapper');
}

/**
 * The process mapper's hostname, a DNS label of at most 63 characters: `hs-intake-` + 20 hex of
 * SHA-256 over namespace/name. With the headless Service as its subdomain it is the DNS name the IDS
 * VM's forwarder posts to (builders/ids-intake.ts).
 */
export function processMapperHostname(ms: MonitoredServer): string {
  return `hs-intake-${createHash('sha256').update(`${ms.metadata.namespace}/${ms.metadata.name}`).digest('hex').slice(0, 20)}`;
}

/** The ConfigMap (operator's namespace) holding the process baseline the mapper learned for this MonitoredServer. */
export function processBaselineName(ms: MonitoredServer): string {
  return operatorNamespaceName(ms, 'process-baseline');
}

/** Set to a new value (e.g. the time) to have the process baseline learned anew. */
export const ANNOTATION_RELEARN_BASELINE = 'hyperspector.io/relearn-baseline';

/** The labels that tie a process-mapper pod (in the operator's namespace) to its MonitoredServer. */
export function processMapperLabels(ms: MonitoredServer): Record<string, string> {
  return { ...roleLabels(ms, 'process-mapper'), [LABEL_MONITORED_SERVER_NAMESPACE]: ms.metadata.namespace ?? '' };
}

/** The Secret holding the IDS VM's user data merged with HyperSpector's disk-inspection cloud-init. */
export function idsCloudInitSecretName(ms: MonitoredServer): string {
  return `${ms.metadata.name}-ids-cloud-init`;
}
