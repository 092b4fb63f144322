import { isDeepStrictEqual } from 'node:util';
import type { KubeObject } from '../client/apply.ts';
import { type InformerHandlers, objectKey } from './informer.ts';

/** Anything keys can be added to (a WorkQueue). */
export interface KeySink {
  add(key: string): void;
}

/**
 * Informer handlers that turn any change into queue keys. On update both the old and the new
 * object are mapped, so a child that moves from one owner to another wakes both, as
 * controller-runtime's handlers do. The reconciler never learns which event it was.
 *
 * A new version that differs from the cached one in its resourceVersion alone wakes nobody: the
 * cache transform dropped whatever changed (a VMI's guest-agent data, a pod's IPs, another
 * writer's managedFields), so no reconcile could read it. A resync (the same version handed again)
 * still wakes the owner.
 */
export function enqueueMapped<T extends KubeObject>(queue: KeySink, map: (object: T) => string[]): InformerHandlers<T> {
  const enqueue = (...objects: T[]) => {
    for (const key of new Set(objects.flatMap((o) => map(o)))) queue.add(key);
  };
  return {
    onAdd: (o) => enqueue(o),
    onUpdate: (old, o) => {
      if (!onlyResourceVersionChanged(old, o)) enqueue(old, o);
    },
    onDelete: (o) => enqueue(o),
  };
}

/** Two versions of an object (both with a resourceVersion, not the same one) that are otherwise equal. */
export function onlyResourceVersionChanged(old: KubeObject, next: KubeObject): boolean {
  const a = old.metadata?.resourceVersion;
  const b = next.metadata?.resourceVersion;
  if (!a || !b || a === b) return false;
  return isDeepStrictEqual({ ...old, metadata: { ...old.metadata, resourceVersion: b } }, next);
}

/** For the primary kind: its own `namespace/name`. */
export function enqueueObject<T extends KubeObject>(queue: KeySink): InformerHandlers<T> {
  return enqueueMapped<T>(queue, (o) => [objectKey(o)]);
}

/**
 * For owned children: the key of the controlling owner of kind `ownerKind` in group `ownerGroup`
 * (any version), from metadata.ownerReferences with controller=true.
 */
export function enqueueController<T extends KubeObject>(queue: KeySink, ownerGroup: string, ownerKind: string): InformerHandlers<T> {
  return enqueueMapped<T>(queue, (o) => {
    const owner = controllerOf(o);
    if (!owner || owner.kind !== ownerKind || groupOf(owner.apiVersion) !== ownerGroup) return [];
    return [o.metadata?.namespace ? `${o.metadata.namespace}/${owner.name}` : owner.name];
  });
}

interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
}

export function controllerOf(object: KubeObject): OwnerReference | undefined {
  return (object.metadata?.ownerReferences as OwnerReference[] | undefined)?.find((ref) => ref.controller === true);
}

function groupOf(apiVersion: string): string {
  return apiVersion.includes('/') ? apiVersion.split('/')[0]! : '';
}

/** Splits a queue key back into namespace and name. */
export function parseKey(key: string): { namespace?: string; name: string } {
  const slash = key.indexOf('/');
  return slash < 0 ? { name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}
