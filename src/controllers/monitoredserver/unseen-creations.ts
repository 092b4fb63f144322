// Children this controller created that its caches have not shown yet (client-go's "expectations",
// kept as the objects themselves). Without it, a reconcile woken by another child's event before
// the new child's watch event arrived sees no child and creates it again: one more write each
// time (measured: the process-mapper pod applied 1.4 times per MonitoredServer at N=30).
import type { KubeObject } from '../../kube/client/objects.ts';

export interface UnseenCreationsOptions {
  /** How long a creation is trusted without the cache showing it (its watch events may both have been missed). */
  ttlMs: number;
  now: () => number;
}

export class UnseenCreations {
  private readonly created = new Map<string, { object: KubeObject; at: number }>();

  constructor(private readonly options: UnseenCreationsOptions) {}

  private static key(kind: string, namespace: string, name: string): string {
    return `${kind}/${namespace}/${name}`;
  }

  /** A child just created (the API server's answer, as the cache would keep it). */
  remember(kind: string, object: KubeObject): void {
    const { namespace = '', name = '' } = object.metadata ?? {};
    this.created.set(UnseenCreations.key(kind, namespace, name), { object, at: this.options.now() });
  }

  /** The cache saw the child (added, changed or deleted): from now on the cache is right. */
  seen(kind: string, object: KubeObject): void {
    this.created.delete(UnseenCreations.key(kind, object.metadata?.namespace ?? '', object.metadata?.name ?? ''));
  }

  /**
   * The cached child; else one created lately that the cache has not shown yet, and then `trusted`
   * hears when that trust ends (the reader rechecks then: the cache may never show it).
   */
  read<T extends KubeObject>(kind: string, namespace: string, name: string, cached: T | undefined, trusted?: (untilMs: number) => void): T | undefined {
    const key = UnseenCreations.key(kind, namespace, name);
    const entry = this.created.get(key);
    if (!entry) return cached;
    if (cached || this.options.now() - entry.at > this.options.ttlMs) {
      this.created.delete(key);
      return cached;
    }
    trusted?.(entry.at + this.options.ttlMs + 1);
    return entry.object as T;
  }

  /** A creation that did not happen after all (the request failed). */
  forget(kind: string, object: KubeObject): void {
    this.seen(kind, object);
  }

  /** The creations of this kind the cache has not shown yet (within the TTL), to add to a cached list. */
  list<T extends KubeObject>(kind: string): T[] {
    const now = this.options.now();
    const prefix = `${kind}/`;
    const out: T[] = [];
    for (const [key, entry] of this.created) {
      if (!key.startsWith(prefix)) continue;
      if (now - entry.at > this.options.ttlMs) this.created.delete(key);
      else out.push(entry.object as T);
    }
    return out;
  }

  /** Forgets everything (a new leadership term starts from the caches alone). */
  clear(): void {
    this.created.clear();
  }

  get size(): number {
    return this.created.size;
  }
}
