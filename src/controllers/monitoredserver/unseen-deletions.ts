// Deletions this controller made that its caches have not shown yet (the other half of client-go's
// "expectations"). Without it, a reconcile woken by another event before the deleted object's watch
// event arrived still sees the object as it was and deletes it again: one more write, and in the
// audit log a second restart of the IDS VM.
import type { KubeObject } from '../../kube/client/objects.ts';

export interface UnseenDeletionsOptions {
  /** How long a deletion is trusted without the cache showing it (its watch events may have been missed). */
  ttlMs: number;
  now: () => number;
}

interface Deletion {
  uid: string;
  at: number;
}

export class UnseenDeletions {
  private readonly deleted = new Map<string, Deletion>();

  constructor(private readonly options: UnseenDeletionsOptions) {}

  private static key(kind: string, namespace: string, name: string): string {
    return `${kind}/${namespace}/${name}`;
  }

  /** The object with this UID was just deleted (the API server accepted the request). */
  remember(kind: string, namespace: string, name: string, uid: string): void {
    this.deleted.set(UnseenDeletions.key(kind, namespace, name), { uid, at: this.options.now() });
  }

  /** The cache showed the object being deleted, gone, or replaced: from now on the cache is right. */
  seen(kind: string, object: KubeObject, gone = false): void {
    const key = UnseenDeletions.key(kind, object.metadata?.namespace ?? '', object.metadata?.name ?? '');
    const entry = this.deleted.get(key);
    if (!entry) return;
    if (gone || object.metadata?.deletionTimestamp || object.metadata?.uid !== entry.uid) this.deleted.delete(key);
  }

  /**
   * The cached object; the one deleted lately that the cache still shows unchanged is read as being
   * deleted (with a deletionTimestamp of when it was), as the cache will show it; `trusted` then
   * hears when that trust ends.
   */
  read<T extends KubeObject>(kind: string, namespace: string, name: string, cached: T | undefined, trusted?: (untilMs: number) => void): T | undefined {
    const key = UnseenDeletions.key(kind, namespace, name);
    const entry = this.deleted.get(key);
    if (!entry) return cached;
    const stale = cached !== undefined && cached.metadata?.uid === entry.uid && !cached.metadata?.deletionTimestamp;
    if (!stale || this.options.now() - entry.at > this.options.ttlMs) {
      this.deleted.delete(key);
      return cached;
    }
    trusted?.(entry.at + this.options.ttlMs + 1);
    return { ...cached, metadata: { ...cached.metadata, deletionTimestamp: new Date(entry.at).toISOString() } };
  }

  /** Forgets everything (a new leadership term starts from the caches alone). */
  clear(): void {
    this.deleted.clear();
  }

  get size(): number {
    return this.deleted.size;
  }
}
