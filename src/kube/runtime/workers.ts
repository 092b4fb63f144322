import { randomUUID } from 'node:crypto';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { type Clock, realClock } from '../util/clock.ts';
import { isTerminal } from './errors.ts';
import { type Logger, errorField, silentLogger } from '../util/logger.ts';
import type { ControllerMetrics, ReconcileResultLabel } from './metrics.ts';
import type { WorkQueue } from './workqueue.ts';

/**
 * What a reconcile returns, as in controller-runtime: nothing (done), `requeueAfter` (look again
 * after that many ms, no backoff) or `requeue: true` (again, with backoff). A thrown TerminalError
 * (./errors.ts) is reported and not retried; any other thrown error is
 * retried with per-key backoff.
 */
export type ReconcileResult = { requeueAfter?: number; requeue?: boolean } | void;

export interface ReconcileContext {
  /** Unique per call; put it on every log line of the call. */
  reconcileID: string;
  /** Logger already carrying controller, key and reconcileID. */
  log: Logger;
  /**
   * Aborts when the pool's term ends (the replica lost its lease). Pass it to every API request
   * and Event the reconcile makes: requests in flight are then cancelled and no new one is sent.
   */
  signal: AbortSignal;
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
  /**
   * The term the pool works for, e.g. the leadership term's signal. When it aborts, the pool hands
   * out no key any more (keys still queued are dropped), every reconcile in flight sees its
   * context's signal abort, and their outcomes are not retried: the next term starts from a full
   * resync. Default: a term that never ends.
   */
  signal?: AbortSignal;
}

/**
 * Runs `concurrency` workers that take keys from the queue and reconcile them. The queue
 * guarantees one worker per key; this class maps each outcome to the queue's retry policy.
 */
export class WorkerPool {
  private readonly options: Required<Omit<WorkerPoolOptions, 'metrics' | 'signal'>> & { metrics: ControllerMetrics | undefined };
  private readonly signal: AbortSignal;
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
    this.signal = options.signal ?? new AbortController().signal;
  }

  start(): void {
    if (this.workers.length > 0) throw new Error(`Worker pool of controller ${this.options.name} was already started`);
    this.options.metrics?.setMaxConcurrentReconciles(this.options.concurrency);
    this.options.logger.info('Starting workers', { controller: this.options.name, workerCount: this.options.concurrency });
    // Takes effect at once, not when the owner gets round to calling stop().
    if (this.signal.aborted) this.options.queue.shutDown();
    else this.signal.addEventListener('abort', () => this.options.queue.shutDown(), { once: true });
    for (let i = 0; i < this.options.concurrency; i++) this.workers.push(this.runWorker());
  }

  /**
   * Shuts the queue down and resolves when every worker has exited: reconciles in flight have
   * returned (after the term ended: aborted), so nothing of this pool runs any more.
   */
  async stop(): Promise<void> {
    await this.options.queue.shutDownWithDrain();
    await Promise.all(this.workers);
    this.options.logger.info('Stopped workers', { controller: this.options.name, termEnded: this.signal.aborted });
  }

  private async runWorker(): Promise<void> {
    const { queue } = this.options;
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      try {
        // A key still queued when the term ended is dropped; the next term resyncs every object.
        if (!this.signal.aborted) await this.processKey(key);
      } finally {
        queue.done(key);
      }
      // A reconcile with nothing to send settles in microtasks, and so does get() while keys are
      // queued: without this the pool would run the whole queue in one turn of the event loop,
      // and timers and sockets (the lease renewal, watch events) would wait for all of it — at
      // 1000 MonitoredServers for up to 12 s, past the renew deadline.
      await yieldToEventLoop();
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
      // After the term ended the queue is shut down, so the requeues below are no-ops.
      const result = await reconcile(key, { reconcileID, log, signal: this.signal });
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
      label = 'error';
      if (this.signal.aborted) {
        // Expected: its requests were cancelled. Not retried; the next term resyncs every object.
        log.info('Aborted reconcile: the term ended while it ran', { reason: abortReason(this.signal), err: errorField(err) });
      } else if (isTerminal(err)) {
        // Retrying cannot help: reported, not retried; a change to the object brings it back.
        queue.forget(key);
        log.error('Reconciler error (terminal, not retried)', { err: errorField(err) });
      } else {
        queue.addRateLimited(key);
        log.error('Reconciler error', { err: errorField(err), retries: queue.numRequeues(key) });
      }
    } finally {
      metrics?.workerStopped();
    }
    metrics?.reconciled(label, (clock.now() - started) / 1000);
  }
}

function abortReason(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason.message : String(reason);
}
