import { type Clock, type TimerHandle, realClock } from '../util/clock.ts';
import { type RateLimiter, defaultControllerRateLimiter } from './rate-limiter.ts';

/**
 * Hooks the queue calls so metrics (see metrics.ts) can follow it; all optional to implement.
 * Mirrors client-go's workqueue MetricsProvider.
 */
export interface WorkQueueMetrics<K = string> {
  add(key: K): void;
  get(key: K): void;
  done(key: K): void;
  retry(): void;
}

export interface WorkQueueOptions<K = string> {
  /** Used in metric labels and log lines. */
  name: string;
  clock?: Clock;
  /** Default: controller-runtime's (per-key 5 ms .. 1000 s exponential, overall 10 qps / burst 100). */
  rateLimiter?: RateLimiter<K>;
  metrics?: WorkQueueMetrics<K>;
}

/**
 * A keyed work queue with client-go util/workqueue semantics:
 * - a key waiting in the queue is held once, however often it is added (dedup);
 * - a key is handed to one worker at a time: added while being processed, it is queued again only
 *   when that worker calls `done`;
 * - `addRateLimited` retries with per-key exponential backoff, `forget` resets it;
 * - `addAfter` queues a key later (requeueAfter); the earliest pending time wins;
 * - `shutDown` stops new adds; workers still drain what is queued, then `get` returns undefined.
 */
export class WorkQueue<K = string> {
  readonly name: string;
  private readonly clock: Clock;
  private readonly rateLimiter: RateLimiter<K>;
  private readonly metrics: WorkQueueMetrics<K> | undefined;

  private readonly queue: K[] = [];
  /** Keys that need processing: queued, or added again while processing. */
  private readonly dirty = new Set<K>();
  private readonly processing = new Set<K>();
  /** Keys waiting for addAfter: the due time and its timer. */
  private readonly waiting = new Map<K, { at: number; timer: TimerHandle }>();
  private readonly getters: Array<(key: K | undefined) => void> = [];
  private readonly drainWaiters: Array<() => void> = [];
  private shuttingDown = false;

  constructor(options: WorkQueueOptions<K>) {
    this.name = options.name;
    this.clock = options.clock ?? realClock;
    this.rateLimiter = options.rateLimiter ?? defaultControllerRateLimiter<K>({ now: () => this.clock.now() });
    this.metrics = options.metrics;
  }

  add(key: K): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.metrics?.add(key);
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    this.push(key);
  }

  addAfter(key: K, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = this.clock.now() + delayMs;
    const existing = this.waiting.get(key);
    if (existing && existing.at <= at) return;
    if (existing) this.clock.clearTimeout(existing.timer);
    const timer = this.clock.setTimeout(() => {
      this.waiting.delete(key);
      this.add(key);
    }, delayMs);
    this.waiting.set(key, { at, timer });
  }

  addRateLimited(key: K): void {
    this.metrics?.retry();
    this.addAfter(key, this.rateLimiter.when(key));
  }

  forget(key: K): void {
    this.rateLimiter.forget(key);
  }

  numRequeues(key: K): number {
    return this.rateLimiter.numRequeues(key);
  }

  /**
   * Next key to process, waiting if none is queued. Resolves to undefined once the queue is shut
   * down and empty. Every key returned must be passed to `done`.
   */
  get(): Promise<K | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) return Promise.resolve(this.startProcessing(key));
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.getters.push(resolve));
  }

  done(key: K): void {
    if (!this.processing.delete(key)) return;
    this.metrics?.done(key);
    if (this.dirty.has(key)) this.push(key);
    if (this.processing.size === 0) this.drainWaiters.splice(0).forEach((wake) => wake());
  }

  /** Keys queued and ready now (not counting those being processed or waiting for addAfter). */
  len(): number {
    return this.queue.length;
  }

  /** Keys currently handed to workers. */
  processingCount(): number {
    return this.processing.size;
  }

  /** Keys scheduled by addAfter/addRateLimited and not yet due. */
  waitingCount(): number {
    return this.waiting.size;
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /** Stops accepting keys and drops delayed ones; workers finish what is already queued. */
  shutDown(): void {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    for (const { timer } of this.waiting.values()) this.clock.clearTimeout(timer);
    this.waiting.clear();
    if (this.queue.length === 0) this.getters.splice(0).forEach((resolve) => resolve(undefined));
  }

  /** Like shutDown, then resolves once every key handed to a worker is done. */
  async shutDownWithDrain(): Promise<void> {
    this.shutDown();
    if (this.processing.size === 0 && this.queue.length === 0) return;
    await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
    // Keys still queued at shutdown are handed out by get(); wait for those too.
    if (this.queue.length > 0 || this.processing.size > 0) await this.shutDownWithDrain();
  }

  private push(key: K): void {
    const getter = this.getters.shift();
    if (getter) {
      getter(this.startProcessing(key));
      return;
    }
    this.queue.push(key);
  }

  private startProcessing(key: K): K {
    this.dirty.delete(key);
    this.processing.add(key);
    this.metrics?.get(key);
    if (this.shuttingDown && this.queue.length === 0) this.getters.splice(0).forEach((resolve) => resolve(undefined));
    return key;
  }
}
