// Cache transforms: what an informer keeps of each object (see CacheTransform in informer.ts).
// controller-runtime's cache.TransformStripManagedFields and DefaultTransform are the model.
import type { KubeObject, ObjectMeta } from './apply.ts';
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
export function pick(record: unknown, keys: readonly string[]): Record<string, unknown> | undefined {
  if (record === null || typeof record !== 'object' || Array.isArray(record)) return undefined;
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    const value = (record as Record<string, unknown>)[key];
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/**
 * The object's metadata without managedFields (except the entries of `keepManager`, whose owned
 * fields needsApply reads to tell whether an apply would remove something) and without kubectl's
 * last-applied-configuration annotation.
 */
export function strippedMetadata(metadata: ObjectMeta, keepManager?: string): ObjectMeta {
  const out = pick(metadata, KEPT_METADATA) as ObjectMeta;
  if (out.annotations && LAST_APPLIED_ANNOTATION in out.annotations) {
    const { [LAST_APPLIED_ANNOTATION]: _dropped, ...annotations } = out.annotations;
    out.annotations = annotations;
  }
  const own = keepManager ? metadata.managedFields?.filter((e) => e.manager === keepManager) : undefined;
  if (own && own.length > 0) out.managedFields = own;
  return out;
}

/**
 * Keeps the whole object but its metadata as strippedMetadata leaves it: the transform for objects
 * the controller reads in full (its own custom resources).
 */
export function stripManagedFields<T extends KubeObject>(keepManager?: string): CacheTransform<T> {
  return (object) => ({ ...object, metadata: strippedMetadata(object.metadata, keepManager) });
}
