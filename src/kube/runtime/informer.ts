import type { KubeObject } from '../client/apply.ts';
import { type Clock, type TimerHandle, realClock, sleep } from '../util/clock.ts';
import type { ListWatchSource, WatchEventType, WatchHandle } from './list-watch.ts';
import { type Logger, errorField, silentLogger } from '../util/logger.ts';
import { backoffDelay } from './rate-limiter.ts';
import { internStrings } from './string-pool.ts';
import { isGone, statusCodeOf } from '../client/rest.ts';

export interface InformerHandlers<T> {
  onAdd?(object: T): void;
  /** Also called for every cached object after a periodic resync, with `old === new` content. */
  onUpdate?(oldObject: T, newObject: T): void;
  /** Gets the last known state of the object. */
  onDelete?(object: T): void;
}

/** Maps an object to the index values it is found under, e.g. a label value. */
export type IndexFunc<T> = (object: T) => string[];

/**
 * Applied to every object before it is stored or handed to a handler (controller-runtime's cache
 * TransformFunc): the cache keeps only what the controller reads. Must return an object whose
 * metadata keeps name, namespace and resourceVersion; it may return its argument changed.
 */
export type CacheTransform<T> = (object: T) => T;

export interface InformerOptions<T> {
  /** For logs, e.g. 'virtualmachines'. */
  name: string;
  source: ListWatchSource<T>;
  /** See CacheTransform; e.g. stripManagedFields. */
  transform?: CacheTransform<T>;
  /** Interns the string values of what is stored in the process's pool (string-pool.ts). Default true. */
  internStrings?: boolean;
  clock?: Clock;
  logger?: Logger;
  /**
   * Resync period: every cached object is handed to onUpdate again (old and new the same), from the
   * cache, as client-go's informers do; nothing is listed. 0 disables. Default 10 min.
   */
  resyncPeriodMs?: number;
  /** A watch without any event or bookmark for this long is restarted. Default 2 min. */
  watchdogMs?: number;
  /** Backoff after failures: base and cap. Defaults 800 ms and 30 s, like client-go's reflector. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  random?: () => number;
}

/** `namespace/name`, or `name` for cluster-scoped objects: the informer's and the queue's key. */
export function objectKey(object: KubeObject): string {
  const name = object.metadata?.name ?? '';
  return object.metadata?.namespace ? `${object.metadata.namespace}/${name}` : name;
}

/** Index function for the value of one label. */
export function labelIndex<T extends KubeObject>(label: string): IndexFunc<T> {
  return (object) => {
    const value = object.metadata?.labels?.[label];
    return value === undefined ? [] : [value];
  };
}

export interface InformerHealth {
  synced: boolean;
  /** Failed list/watch attempts in a row; 0 once a list succeeds or a watch delivers an event. */
  consecutiveFailures: number;
  lastError?: string;
  /** Last resourceVersion seen, from a list, an event or a bookmark. */
  resourceVersion: string;
  /** Lists and watches started and bookmarks received since start (for debugging and tests). */
  lists: number;
  watches: number;
  bookmarks: number;
}

type WatchOutcome = 'closed' | 'gone' | 'silent' | 'stopped';

class WatchEndedWithError extends Error {}

/**
 * A supervised list+watch cache of one resource. Unlike client-node's informer it never gives up:
 * any failure (connection refused, 5xx, 410 Gone, a watch that goes silent) leads to a retry with
 * backoff, resuming from the last seen resourceVersion when possible and relisting when not. A
 * relist diffs against the cache, so handlers see adds, updates and deletes that were missed.
 */
export class Informer<T extends KubeObject> {
  readonly name: string;
  private readonly source: ListWatchSource<T>;
  private readonly transform: CacheTransform<T> | undefined;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly resyncPeriodMs: number;
  private readonly watchdogMs: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly random: () => number;

  private readonly cache = new Map<string, T>();
  private readonly indexers = new Map<string, IndexFunc<T>>();
  private readonly indexes = new Map<string, Map<string, Set<string>>>();
  private readonly handlers: InformerHandlers<T>[] = [];

  private lastResourceVersion = '';
  private synced = false;
  private readonly syncWaiters: Array<() => void> = [];
  private stopController: AbortController | undefined;
  private running: Promise<void> | undefined;
  private resyncTimer: TimerHandle | undefined;
  /** Ends the watch in progress with an outcome; set while a watch runs. */
  private endWatch: ((outcome: WatchOutcome) => void) | undefined;
  private consecutiveFailures = 0;
  private lastError: string | undefined;
  private readonly counts = { lists: 0, watches: 0, bookmarks: 0 };

  constructor(options: InformerOptions<T>) {
    this.name = options.name;
    this.source = options.source;
    // What a cache stores shares its repeated strings with the process's other caches (string-pool.ts).
    const transform = options.transform;
    this.transform = options.internStrings === false ? transform : transform ? (object) => internStrings(transform(object)) : (object) => internStrings(object);
    this.clock = options.clock ?? realClock;
    this.log = (options.logger ?? silentLogger()).child({ informer: options.name });
    this.resyncPeriodMs = options.resyncPeriodMs ?? 10 * 60_000;
    this.watchdogMs = options.watchdogMs ?? 2 * 60_000;
    this.backoffBaseMs = options.backoffBaseMs ?? 800;
    this.backoffMaxMs = options.backoffMaxMs ?? 30_000;
    this.random = options.random ?? Math.random;
  }

  addEventHandler(handlers: InformerHandlers<T>): void {
    this.handlers.push(handlers);
    // A handler added late still hears about what is already cached, as in client-go.
    if (handlers.onAdd) for (const object of this.cache.values()) this.callHandler(() => handlers.onAdd!(object));
  }

  /** Adds a named index; call before start. */
  addIndex(name: string, indexFunc: IndexFunc<T>): void {
    this.indexers.set(name, indexFunc);
    const index = new Map<string, Set<string>>();
    this.indexes.set(name, index);
    for (const [key, object] of this.cache) this.indexObject(index, indexFunc, key, object);
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.cache.get(namespace ? `${namespace}/${name}` : name);
  }

  getByKey(key: string): T | undefined {
    return this.cache.get(key);
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  listByNamespace(namespace: string): T[] {
    return this.list().filter((o) => o.metadata?.namespace === namespace);
  }

  byIndex(indexName: string, value: string): T[] {
    const index = this.indexes.get(indexName);
    if (!index) throw new Error(`Informer ${this.name} has no index named ${indexName}`);
    return [...(index.get(value) ?? [])].map((key) => this.cache.get(key)!).filter(Boolean);
  }

  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves once the first list has filled the cache; rejects after `timeoutMs` if given. */
  waitForSync(timeoutMs?: number): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let timer: TimerHandle | undefined;
      const done = () => {
        if (timer) this.clock.clearTimeout(timer);
        resolve();
      };
      this.syncWaiters.push(done);
      if (timeoutMs !== undefined) {
        timer = this.clock.setTimeout(() => {
          const i = this.syncWaiters.indexOf(done);
          if (i >= 0) this.syncWaiters.splice(i, 1);
          reject(new Error(`Informer ${this.name} (${this.source.description}) did not sync within ${timeoutMs} ms${this.lastError ? `: ${this.lastError}` : ''}`));
        }, timeoutMs);
      }
    });
  }

  /** Last error seen and how many attempts in a row failed; for readiness and debugging. */
  health(): InformerHealth {
    return { synced: this.synced, consecutiveFailures: this.consecutiveFailures, lastError: this.lastError, resourceVersion: this.lastResourceVersion, ...this.counts };
  }

  start(): void {
    if (this.running) throw new Error(`Informer ${this.name} was already started`);
    this.stopController = new AbortController();
    this.scheduleResync();
    this.running = this.run(this.stopController.signal);
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.stopController?.abort();
    if (this.resyncTimer) this.clock.clearTimeout(this.resyncTimer);
    this.endWatch?.('stopped');
    await this.running;
    this.running = undefined;
  }

  private async run(stop: AbortSignal): Promise<void> {
    let needList = true;
    while (!stop.aborted) {
      try {
        if (needList) {
          await this.relist(stop);
          needList = false;
        }
        if (stop.aborted) break;
        const started = this.clock.now();
        const { outcome, events } = await this.watchOnce();
        this.consecutiveFailures = 0;
        this.lastError = undefined;
        switch (outcome) {
          case 'gone':
            this.log.info('Relisting after the watch resourceVersion expired', { resourceVersion: this.lastResourceVersion });
            needList = true;
            break;
          case 'silent':
            this.log.warn('Restarted a watch that went silent', { source: this.source.description, silentForMs: this.watchdogMs });
            break;
          case 'closed':
            // A watch that ends at once without events would spin; treat it as a failure.
            if (events === 0 && this.clock.now() - started < 1000) throw new WatchEndedWithError('watch closed immediately without events');
            break;
          case 'stopped':
            break;
        }
      } catch (err) {
        if (stop.aborted) break;
        this.consecutiveFailures++;
        this.lastError = errorField(err);
        const delay = backoffDelay(this.consecutiveFailures - 1, this.backoffBaseMs, this.backoffMaxMs, 0.5, this.random);
        this.log.warn('Failed to list or watch; retrying', {
          source: this.source.description,
          err: this.lastError,
          statusCode: statusCodeOf(err),
          attempt: this.consecutiveFailures,
          retryInMs: Math.round(delay),
        });
        // Resume from the last resourceVersion when the server had just gone away; relist on
        // anything that may mean the cache can no longer be trusted.
        if (isGone(err) || !(err instanceof WatchEndedWithError || isConnectionError(err)) || this.lastResourceVersion === '') needList = true;
        await sleep(this.clock, delay, stop);
      }
    }
  }

  /** Lists everything and brings the cache and handlers in line with the result. */
  private async relist(stop: AbortSignal): Promise<void> {
    this.counts.lists++;
    const { items, resourceVersion } = await this.source.list(stop, this.transform);
    if (stop.aborted) return;
    const seen = new Set<string>();
    for (const object of items) {
      const key = objectKey(object);
      seen.add(key);
      const old = this.cache.get(key);
      this.store(key, object);
      if (!old) this.emit((h) => h.onAdd?.(object));
      else if (old.metadata?.resourceVersion !== object.metadata?.resourceVersion) this.emit((h) => h.onUpdate?.(old, object));
    }
    for (const [key, old] of [...this.cache]) {
      if (seen.has(key)) continue;
      this.remove(key);
      this.emit((h) => h.onDelete?.(old));
    }
    this.lastResourceVersion = resourceVersion;
    this.consecutiveFailures = 0;
    this.lastError = undefined;
    this.log.debug('Listed objects', { source: this.source.description, count: items.length, resourceVersion });
    if (!this.synced) {
      this.synced = true;
      this.log.info('Synced informer cache', { source: this.source.description, count: items.length });
      this.syncWaiters.splice(0).forEach((wake) => wake());
    }
  }

  /** Runs one watch until it ends; resolves with why it ended, rejects if it failed. */
  private watchOnce(): Promise<{ outcome: WatchOutcome; events: number }> {
    return new Promise((resolve, reject) => {
      let events = 0;
      let settled = false;
      // Filled in once the watch starts.
      const current: { handle?: WatchHandle } = {};
      let watchdog: TimerHandle | undefined;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        this.endWatch = undefined;
        if (watchdog) this.clock.clearTimeout(watchdog);
        current.handle?.abort();
        fn();
      };
      const armWatchdog = () => {
        if (watchdog) this.clock.clearTimeout(watchdog);
        watchdog = this.clock.setTimeout(() => settle(() => resolve({ outcome: 'silent', events })), this.watchdogMs);
      };
      this.endWatch = (outcome) => settle(() => resolve({ outcome, events }));
      armWatchdog();
      // Randomized like client-go so many watches do not all restart at the same moment.
      const timeoutSeconds = Math.floor(300 * (1 + this.random()));
      this.counts.watches++;
      const handle = this.source.watch(
        { resourceVersion: this.lastResourceVersion, timeoutSeconds },
        (type, object) => {
          if (settled) return;
          events++;
          armWatchdog();
          this.consecutiveFailures = 0;
          this.lastError = undefined;
          try {
            const outcome = this.applyWatchEvent(type, object);
            if (outcome) settle(() => resolve({ outcome, events }));
          } catch (err) {
            settle(() => reject(err));
          }
        },
        (err) => {
          if (err === undefined || err === null) settle(() => resolve({ outcome: 'closed', events }));
          else if (isGone(err)) settle(() => resolve({ outcome: 'gone', events }));
          else settle(() => reject(err));
        },
      );
      current.handle = handle;
      if (settled) handle.abort();
    });
  }

  /** Applies one watch event to the cache; returns an outcome when the watch must end. */
  private applyWatchEvent(type: WatchEventType, received: T): WatchOutcome | undefined {
    const object = type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED' ? this.transformed(received) : received;
    if (type === 'ERROR') {
      const status: { code?: number; message?: string; reason?: string } = object as T & { code?: number; message?: string; reason?: string };
      if (status.code === 410 || status.reason === 'Expired' || status.reason === 'Gone') return 'gone';
      const err = new Error(`Watch of ${this.source.description} failed: ${status.message ?? JSON.stringify(status)}`);
      (err as Error & { statusCode?: number }).statusCode = status.code;
      throw err;
    }
    const resourceVersion = object.metadata?.resourceVersion;
    if (type === 'BOOKMARK') {
      this.counts.bookmarks++;
      if (resourceVersion) this.lastResourceVersion = resourceVersion;
      return undefined;
    }
    const key = objectKey(object);
    const old = this.cache.get(key);
    if (type === 'DELETED') {
      this.remove(key);
      this.emit((h) => h.onDelete?.(object));
    } else {
      this.store(key, object);
      if (old) this.emit((h) => h.onUpdate?.(old, object));
      else this.emit((h) => h.onAdd?.(object));
    }
    if (resourceVersion) this.lastResourceVersion = resourceVersion;
    return undefined;
  }

  private transformed(object: T): T {
    return this.transform ? this.transform(object) : object;
  }

  private scheduleResync(): void {
    if (this.resyncPeriodMs <= 0) return;
    this.resyncTimer = this.clock.setTimeout(() => {
      // From the cache: a periodic list of every object (all VMs and VMIs of the cluster) would
      // hold two copies of them at once and load the API server for nothing the watch missed.
      if (this.synced) for (const object of [...this.cache.values()]) this.emit((h) => h.onUpdate?.(object, object));
      this.scheduleResync();
    }, this.resyncPeriodMs);
  }

  private store(key: string, object: T): void {
    const old = this.cache.get(key);
    this.cache.set(key, object);
    for (const [name, indexFunc] of this.indexers) {
      const index = this.indexes.get(name)!;
      if (old) this.unindexObject(index, indexFunc, key, old);
      this.indexObject(index, indexFunc, key, object);
    }
  }

  private remove(key: string): void {
    const old = this.cache.get(key);
    if (!old) return;
    this.cache.delete(key);
    for (const [name, indexFunc] of this.indexers) this.unindexObject(this.indexes.get(name)!, indexFunc, key, old);
  }

  private indexObject(index: Map<string, Set<string>>, indexFunc: IndexFunc<T>, key: string, object: T): void {
    for (const value of indexFunc(object)) {
      let keys = index.get(value);
      if (!keys) index.set(value, (keys = new Set()));
      keys.add(key);
    }
  }

  private unindexObject(index: Map<string, Set<string>>, indexFunc: IndexFunc<T>, key: string, object: T): void {
    for (const value of indexFunc(object)) {
      const keys = index.get(value);
      keys?.delete(key);
      if (keys?.size === 0) index.delete(value);
    }
  }

  private emit(call: (handlers: InformerHandlers<T>) => void): void {
    for (const handlers of this.handlers) this.callHandler(() => call(handlers));
  }

  private callHandler(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      // A faulty handler must not stop the informer or the other handlers.
      this.log.error('Informer event handler failed', { err: errorField(err) });
    }
  }
}

/** Errors from not reaching the server at all (no HTTP status), e.g. during an API server restart. */
function isConnectionError(err: unknown): boolean {
  return statusCodeOf(err) === undefined;
}
