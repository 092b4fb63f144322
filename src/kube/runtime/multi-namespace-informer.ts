// One cache over several namespaces: an informer per watched namespace (or one for all), read as
// one (controller-runtime's multi-namespace cache).
import type { KubeObject } from '../client/objects.ts';
import type { Informer } from './informer.ts';

export class MultiNamespaceInformer<T extends KubeObject> {
  readonly informers: Informer<T>[];

  constructor(make: (namespace?: string) => Informer<T>, namespaces: string[] | undefined) {
    this.informers = namespaces && namespaces.length > 0 ? namespaces.map((ns) => make(ns)) : [make()];
  }

  get(namespace: string, name: string): T | undefined {
    for (const informer of this.informers) {
      const found = informer.get(namespace, name);
      if (found) return found;
    }
    return undefined;
  }

  byIndex(index: string, value: string): T[] {
    return this.informers.flatMap((i) => i.byIndex(index, value));
  }

  list(): T[] {
    return this.informers.flatMap((i) => i.list());
  }
}
