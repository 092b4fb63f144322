// Cache transforms: what an informer keeps of each object (see CacheTransform in informer.ts).
// controller-runtime's cache.TransformStripManagedFields and DefaultTransform are the model.
import type { KubeObject, ManagedFieldsEntry, ObjectMeta } from '../client/objects.ts';
import type { CacheTransform } from './informer.ts';

/** The whole previous object as `kubectl apply` (client-side) stores it: often the largest field. */
export const LAST_APPLIED_ANNOTATION = 'kubectl.kubernetes.io/last-applied-configuration';

/** The metadata fields a cache keeps (everything else, e.g. managedFields, is dropped). */
const KEPT_METADATA = [
  'name',
  'namespace',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'labels',
  'annotations',
  'ownerReferences',
  'finalizers',
] as const;

/** The listed keys of `record` that are present (undefined for a missing or non-object record). */
export function pick<T = Record<string, unknown>>(record: unknown, keys: readonly string[]): T | undefined {
  if (record === null || typeof record !== 'object' || Array.isArray(record)) return undefined;
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    const value: unknown = Reflect.get(record, key);
    if (value !== undefined) out[key] = value;
  }
  return out as T;
}

/** Which managedFields entries a cache keeps: a manager's name, or a predicate over the entries. */
export type KeepManagedFields = string | ((entry: ManagedFieldsEntry) => boolean);

/**
 * The object's metadata without managedFields (except the entries `keep` names: needsApply reads
 * the operator's own owned fields, drift detection the other writers' of objects it owns whole)
 * and without kubectl's last-applied-configuration annotation.
 */
export function strippedMetadata(metadata: ObjectMeta | undefined, keep?: KeepManagedFields): ObjectMeta {
  const out: ObjectMeta = pick(metadata, KEPT_METADATA) ?? {};
  if (out.annotations && LAST_APPLIED_ANNOTATION in out.annotations) {
    const { [LAST_APPLIED_ANNOTATION]: _dropped, ...annotations } = out.annotations;
    out.annotations = annotations;
  }
  const kept = keep === undefined ? undefined : metadata?.managedFields?.filter(typeof keep === 'string' ? (e) => e.manager === keep : keep);
  if (kept && kept.length > 0) out.managedFields = kept;
  return out;
}

/**
 * Keeps the whole object but its metadata as strippedMetadata leaves it: the transform for objects
 * the controller reads in full (its own custom resources).
 */
export function stripManagedFields<T extends KubeObject>(keepManager?: KeepManagedFields): CacheTransform<T> {
  return (object) => ({ ...object, metadata: strippedMetadata(object.metadata, keepManager) });
}
