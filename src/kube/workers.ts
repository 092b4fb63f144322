import { randomUUID } from 'node:crypto';
import { type Clock, realClock } from './clock.ts';
import { type Logger, errorField, silentLogger } from './logger.ts';
import type { ControllerMetrics, ReconcileResultLabel } from './metrics.ts';
import type { WorkQueue } from './workqueue.ts';

/**
 * What a reconcile returns, as in controller-runtime: nothing (done), `requeueAfter` (look again
 * after that many ms, no backoff) or `requeue: true` (again, with backoff). A thrown error is
 * retried with per-key backoff.
 */
export type ReconcileResult = { requeueAfter?: number; requeue?: boolean } | void;

export interface ReconcileContext {
  /** Unique per call; put it on every log line of the call. */
  reconcileID: string;
  /** Logger already carrying controller, key and reconcileID. */
  log: Logger;
  /** Aborted when the reconcile must stop (leadership lost): pass it to every request. */
  signal?: AbortSignal;
}

export type ReconcileFn = (key: string, context: ReconcileContext) => Promise<ReconcileResult>;

export interface WorkerPoolOptions {
  /** Controller name, for logs and metric labels. */
  name: string;
  queue: WorkQueue<string>;
  reconcile: ReconcileFn;
  /** Number of keys reconciled at once (controller-runtime's MaxConcurrentReconciles); default 1. */
  concurrency?: number;
  logger?: Logger;
  metrics?: ControllerMetrics;
  clock?: Clock;
}

/**
 * Runs `concurrency` workers that take keys from the queue and reconcile them. The queue
 * guarantees one worker per key; this class maps each outcome to the queue's retry policy.
 */
export class WorkerPool {
  private readonly options: Required<Omit<WorkerPoolOptions, 'metrics'>> & { metrics: ControllerMetrics | undefined };
  private workers: Promise<void>[] = [];

  constructor(options: WorkerPoolOptions) {
    const concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new Error(`Invalid concurrency ${concurrency} for controller ${options.name}: must be a positive integer`);
    }
    this.options = {
      ...options,
      concurrency,
      logger: options.logger ?? silentLogger(),
      clock: options.clock ?? realClock,
      metrics: options.metrics,
    };
  }

  start(): void {
    if (this.workers.length > 0) throw new Error(`Worker pool of controller ${this.options.name} was already started`);
    this.options.metrics?.setMaxConcurrentReconciles(this.options.concurrency);
    this.options.logger.info('Starting workers', { controller: this.options.name, workerCount: this.options.concurrency });
    for (let i = 0; i < this.options.concurrency; i++) this.workers.push(this.runWorker());
  }

  /** Shuts the queue down, lets reconciles in flight finish, and resolves when all workers exited. */
  async stop(): Promise<void> {
    await this.options.queue.shutDownWithDrain();
    await Promise.all(this.workers);
    this.options.logger.info('Stopped workers', { controller: this.options.name });
  }

  private async runWorker(): Promise<void> {
    const { queue } = this.options;
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      try {
        await this.processKey(key);
      } finally {
        queue.done(key);
      }
    }
  }

  private async processKey(key: string): Promise<void> {
    const { name, queue, reconcile, clock, metrics, logger } = this.options;
    const reconcileID = randomUUID();
    const log = logger.child({ controller: name, key, reconcileID });
    const started = clock.now();
    metrics?.workerStarted();
    let label: ReconcileResultLabel;
    try {
      const result = await reconcile(key, { reconcileID, log });
      if (result?.requeueAfter !== undefined && result.requeueAfter > 0) {
        queue.forget(key);
        queue.addAfter(key, result.requeueAfter);
        label = 'requeue_after';
      } else if (result?.requeue) {
        queue.addRateLimited(key);
        label = 'requeue';
      } else {
        queue.forget(key);
        label = 'success';
      }
    } catch (err) {
      queue.addRateLimited(key);
      label = 'error';
      log.error('Reconciler error', { err: errorField(err), retries: queue.numRequeues(key) });
    } finally {
      metrics?.workerStopped();
    }
    metrics?.reconciled(label, (clock.now() - started) / 1000);
  }
}
