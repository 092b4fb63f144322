import type { KubeConfig } from '@kubernetes/client-node';
// Watch from its own module: client-node's index would load its whole generated API.
import { Watch } from '@kubernetes/client-node/dist/watch.js';
import type { KubeAuth } from '../client/light-kubeconfig.ts';
import type { KubeObject } from '../client/apply.ts';
import type { KubeApi } from '../client/rest.ts';

export interface ListResult<T> {
  items: T[];
  /** The list's resourceVersion: watch from here to see every later change. */
  resourceVersion: string;
}

export interface WatchOptions {
  resourceVersion: string;
  /** Server-side timeout; the server ends the watch cleanly after this long. */
  timeoutSeconds: number;
}

/** A running watch; `abort` ends it and no more events are delivered after it. */
export interface WatchHandle {
  abort(): void;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

/**
 * Where an informer lists and watches from. The real one talks to the API server (below); unit
 * tests drive a fake.
 */
export interface ListWatchSource<T> {
  /** Human-readable origin for logs, e.g. the API path. */
  readonly description: string;
  /**
   * Lists every object, each passed through `transform` (when given) as its page arrives, so a
   * large list never holds all full objects at once.
   */
  list(signal: AbortSignal, transform?: (object: T) => T): Promise<ListResult<T>>;
  /**
   * Starts a watch. `onEvent` gets each event; `onDone` is called once when the watch ends, with
   * the error if it failed (including errors starting it).
   */
  watch(options: WatchOptions, onEvent: (type: WatchEventType, object: T) => void, onDone: (err?: unknown) => void): WatchHandle;
}

export interface ApiListWatchOptions {
  /** Collection path, e.g. `/apis/kubevirt.io/v1/virtualmachines` or `/api/v1/namespaces/ns/pods`. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Page size of list requests. */
  pageSize?: number;
  /**
   * Client-side inactivity limit of client-node's Watch (its default, 30 s, would cut every idle
   * watch between bookmarks); the informer's own watchdog is the real guard.
   */
  watchInactivityTimeoutMs?: number;
}

/** ListWatchSource backed by the API server: paged list through KubeApi, watch through client-node. */
export function apiListWatch<T extends KubeObject>(kubeConfig: KubeAuth, api: KubeApi, options: ApiListWatchOptions): ListWatchSource<T> {
  const selectors = {
    labelSelector: options.labelSelector,
    fieldSelector: options.fieldSelector,
  };
  const description = options.labelSelector ? `${options.path}?labelSelector=${options.labelSelector}` : options.path;
  return {
    description,
    async list(signal, transform) {
      const items: T[] = [];
      let continueToken: string | undefined;
      let resourceVersion = '';
      do {
        const page = await api.request<{ apiVersion?: string; kind?: string; items?: T[]; metadata?: { resourceVersion?: string; continue?: string } }>({
          method: 'GET',
          path: options.path,
          query: { ...selectors, limit: options.pageSize ?? 500, continue: continueToken },
          signal,
        });
        // A list of built-in objects (SecretList, PodList ...) leaves apiVersion and kind off its
        // items, which watch events carry: set them from the list's, so an object reads the same
        // whether the cache got it from the list or from a watch (a desired object compared with it
        // would otherwise differ after every restart, and be applied again for nothing).
        const typeMeta = itemTypeMeta(page);
        for (const item of page.items ?? []) {
          const typed = typeMeta && (item.apiVersion === undefined || item.kind === undefined) ? ({ ...typeMeta, ...item } as T) : item;
          items.push(transform ? transform(typed) : typed);
        }
        continueToken = page.metadata?.continue || undefined;
        resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      } while (continueToken);
      return { items, resourceVersion };
    },
    watch(watchOptions, onEvent, onDone) {
      // Watch calls only getCurrentCluster and applySecurityAuthentication on its config (client-node 2.0 watch.js).
      const watch = new Watch(kubeConfig as KubeConfig);
      // requestTimeoutMs is private in the typings but is the only knob for the inactivity limit.
      Reflect.set(watch, 'requestTimeoutMs', options.watchInactivityTimeoutMs ?? 5 * 60_000);
      let aborted = false;
      let controller: AbortController | undefined;
      let finished = false;
      const finish = (err?: unknown) => {
        if (finished) return;
        finished = true;
        onDone(err ?? undefined);
      };
      watch
        .watch(
          options.path,
          { ...selectors, resourceVersion: watchOptions.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: watchOptions.timeoutSeconds },
          (type, object) => {
            if (!aborted) onEvent(type as WatchEventType, object as T);
          },
          (err) => finish(err),
        )
        .then((c) => {
          controller = c;
          if (aborted) c.abort();
        })
        .catch((err: unknown) => finish(err));
      return {
        abort() {
          aborted = true;
          controller?.abort();
        },
      };
    },
  };
}

/** The apiVersion and kind of a list's items, from the list's own (`SecretList` → `Secret`). */
function itemTypeMeta(list: { apiVersion?: string; kind?: string }): { apiVersion: string; kind: string } | undefined {
  if (!list.apiVersion || !list.kind?.endsWith('List') || list.kind === 'List') return undefined;
  return { apiVersion: list.apiVersion, kind: list.kind.slice(0, -'List'.length) };
}
