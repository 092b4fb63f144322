// Which fields of an object other writers own (metadata.managedFields): the basis for taking back
// an object the operator owns whole, which server-side apply alone never does (it removes only
// fields the applier owned).
import type { KubeObject } from './objects.ts';

export interface ForeignFieldsOptions {
  /** Our field manager: its fields are never foreign. */
  ownManager: string;
  /** Managers whose writes are part of the platform (e.g. KubeVirt's own controllers), not drift. */
  trustedManagers?: readonly string[];
  /** Top-level field (FieldsV1 `f:<name>`) to look under; default `spec`. */
  under?: string;
}

/**
 * Managers that own fields under `options.under` (default spec) of the main resource (not a
 * subresource such as status) and are neither ours nor trusted. Empty when the object has no
 * managedFields (nothing can be said then).
 */
export function foreignManagers(object: KubeObject, options: ForeignFieldsOptions): string[] {
  const key = `f:${options.under ?? 'spec'}`;
  const trusted = new Set([options.ownManager, ...(options.trustedManagers ?? [])]);
  const out = new Set<string>();
  for (const entry of object.metadata?.managedFields ?? []) {
    if (entry.subresource) continue;
    const manager = entry.manager ?? '';
    if (trusted.has(manager)) continue;
    const fields = entry.fieldsV1 as Record<string, unknown> | undefined;
    const under = fields?.[key];
    if (under && typeof under === 'object' && Object.keys(under).some((k) => k !== '.')) out.add(manager || '(unnamed)');
  }
  return [...out].sort();
}
