// Pure: which MonitoredServers (namespace/name keys) a change to a VM or VMI concerns.
import type { MonitoredServer } from '../../api/v1alpha1/monitoredserver-types.ts';
import { LABEL_MONITORED_SERVER } from '../../builders/names.ts';
import { isSharedNad } from '../../builders/networking.ts';
import type { KubeObject } from '../../kube/client/objects.ts';


export const ADOPTED_VM_INDEX = 'adoptedVm';
/** Index of MonitoredServers by namespace (those sharing a namespace's NADs). */
export const NAMESPACE_INDEX = 'namespace';

export function namespaceIndex(ms: MonitoredServer): string[] {
  return [ms.metadata.namespace ?? ''];
}

/** Index of MonitoredServers by the VM they adopt: `namespace/vmName`. */
export function adoptedVmIndex(ms: MonitoredServer): string[] {
  const name = ms.spec?.server?.virtualMachineName;
  return name ? [`${ms.metadata.namespace}/${name}`] : [];
}

/**
 * Keys of the MonitoredServers a VM or VMI may matter to: the one named in its label, those adopting
 * it by name, and the one whose child name (<name>-server, <name>-ids) it has (to notice a VM that
 * takes that name). A shared NAD: every MonitoredServer of its namespace (`ofNamespace`).
 */
export function monitoredServerKeysFor(obj: KubeObject, adoptersOf: (key: string) => string[], ofNamespace?: (namespace: string) => string[]): string[] {
  const ns = obj.metadata?.namespace ?? '';
  const name = obj.metadata?.name ?? '';
  // A NAD the namespace shares concerns every MonitoredServer of the namespace.
  if (ofNamespace && isSharedNad(obj)) return ofNamespace(ns);
  const keys = new Set<string>();
  const label = obj.metadata?.labels?.[LABEL_MONITORED_SERVER];
  if (label) keys.add(`${ns}/${label}`);
  for (const key of adoptersOf(`${ns}/${name}`)) keys.add(key);
  const child = /^(.+)-(server|ids)$/.exec(name);
  if (child) keys.add(`${ns}/${child[1]}`);
  return [...keys];
}
