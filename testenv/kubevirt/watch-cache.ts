// List+watch cache used by the virt-handler stand-in (a test double). It relists and rewatches after
// any error or closed watch, so the stand-in survives API-server restarts like virt-handler does.
import * as k8s from '@kubernetes/client-node';
import { createKubeApi, type KubeApi } from '../../src/kube/client/rest.ts';

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: k8s.V1ObjectMeta;
  [key: string]: unknown;
}

export type ChangeHandler<T> = (obj: T, type: 'ADDED' | 'MODIFIED' | 'DELETED') => void;

export class WatchCache<T extends KubeObject> {
  private readonly items = new Map<string, T>();
  private abort?: AbortController;
  private stopped = false;
  private synced = false;
  private retryTimer?: NodeJS.Timeout;
  private resourceVersion = '';
  private readonly api: KubeApi;

  constructor(
    private readonly kubeConfig: k8s.KubeConfig,
    /** e.g. /apis/kubevirt.io/v1/virtualmachines */
    private readonly path: string,
    private readonly onChange: ChangeHandler<T>,
    private readonly labelSelector?: string,
  ) {
    this.api = createKubeApi(kubeConfig);
  }

  static key(obj: KubeObject): string {
    return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
  }

  get(key: string): T | undefined {
    return this.items.get(key);
  }

  list(): T[] {
    return [...this.items.values()];
  }

  hasSynced(): boolean {
    return this.synced;
  }

  start(): void {
    void this.relist();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.abort?.abort();
  }

  private retry(): void {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.relist(), 500);
  }

  private async relist(): Promise<void> {
    if (this.stopped) return;
    try {
      const list = await this.api.request<{ items: T[]; metadata: { resourceVersion: string } }>({
        method: 'GET',
        path: this.path,
        query: { labelSelector: this.labelSelector },
      });
      const seen = new Set<string>();
      for (const item of list.items) {
        const key = WatchCache.key(item);
        seen.add(key);
        const old = this.items.get(key);
        this.items.set(key, item);
        if (!old) this.onChange(item, 'ADDED');
        else if (old.metadata?.resourceVersion !== item.metadata?.resourceVersion) this.onChange(item, 'MODIFIED');
      }
      for (const [key, old] of this.items) {
        if (!seen.has(key)) {
          this.items.delete(key);
          this.onChange(old, 'DELETED');
        }
      }
      this.resourceVersion = list.metadata.resourceVersion;
      this.synced = true;
      await this.watch();
    } catch {
      this.retry();
    }
  }

  private async watch(): Promise<void> {
    if (this.stopped) return;
    const params: Record<string, string | boolean> = { resourceVersion: this.resourceVersion, allowWatchBookmarks: true };
    if (this.labelSelector) params.labelSelector = this.labelSelector;
    this.abort = await new k8s.Watch(this.kubeConfig).watch(
      this.path,
      params,
      (type, obj: T) => {
        if (type === 'BOOKMARK') {
          this.resourceVersion = obj.metadata?.resourceVersion ?? this.resourceVersion;
          return;
        }
        if (type === 'ERROR') return;
        this.resourceVersion = obj.metadata?.resourceVersion ?? this.resourceVersion;
        const key = WatchCache.key(obj);
        if (type === 'DELETED') this.items.delete(key);
        else this.items.set(key, obj);
        this.onChange(obj, type as 'ADDED' | 'MODIFIED' | 'DELETED');
      },
      () => this.retry(),
    );
  }
}
