import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { type Clock, realClock } from '../util/clock.ts';
import type { WorkQueueMetrics } from './workqueue.ts';

/** Result label of controller_runtime_reconcile_total, as in controller-runtime. */
export type ReconcileResultLabel = 'success' | 'error' | 'requeue' | 'requeue_after';

/** What a worker pool reports about its reconciles. */
export interface ControllerMetrics {
  reconciled(result: ReconcileResultLabel, seconds: number): void;
  setMaxConcurrentReconciles(n: number): void;
  workerStarted(): void;
  workerStopped(): void;
}

export interface LeaderElectionMetrics {
  setLeading(leading: boolean): void;
}

export interface OperatorMetricsOptions {
  registry?: Registry;
  clock?: Clock;
  /** Process metrics (CPU, memory, event loop lag, ...); on by default. */
  collectDefaultMetrics?: boolean;
}

// controller-runtime's buckets for controller_runtime_reconcile_time_seconds.
const RECONCILE_TIME_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 1.75,
  2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
];
// client-go's workqueue buckets: 10 ns .. 10^3 s, ×10 each.
const WORKQUEUE_BUCKETS = Array.from({ length: 12 }, (_, i) => 1e-8 * 10 ** i);

/**
 * The operator's Prometheus metrics, under controller-runtime's and client-go's names so existing
 * dashboards and alerts work unchanged.
 */
export class OperatorMetrics {
  readonly registry: Registry;
  private readonly clock: Clock;
  private readonly queues = new Map<string, QueueTracker>();

  private readonly reconcileTotal: Counter<'controller' | 'result'>;
  private readonly reconcileErrors: Counter<'controller'>;
  private readonly reconcileTime: Histogram<'controller'>;
  private readonly maxConcurrent: Gauge<'controller'>;
  private readonly activeWorkers: Gauge<'controller'>;
  private readonly depth: Gauge<'name'>;
  private readonly adds: Counter<'name'>;
  private readonly queueDuration: Histogram<'name'>;
  private readonly workDuration: Histogram<'name'>;
  private readonly retries: Counter<'name'>;
  private readonly leaderStatus: Gauge<'name'>;

  constructor(options: OperatorMetricsOptions = {}) {
    this.registry = options.registry ?? new Registry();
    this.clock = options.clock ?? realClock;
    const registers = [this.registry];
    if (options.collectDefaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });

    this.reconcileTotal = new Counter({ name: 'controller_runtime_reconcile_total', help: 'Total number of reconciliations per controller', labelNames: ['controller', 'result'], registers });
    this.reconcileErrors = new Counter({ name: 'controller_runtime_reconcile_errors_total', help: 'Total number of reconciliation errors per controller', labelNames: ['controller'], registers });
    this.reconcileTime = new Histogram({ name: 'controller_runtime_reconcile_time_seconds', help: 'Length of time per reconciliation per controller', labelNames: ['controller'], buckets: RECONCILE_TIME_BUCKETS, registers });
    this.maxConcurrent = new Gauge({ name: 'controller_runtime_max_concurrent_reconciles', help: 'Maximum number of concurrent reconciles per controller', labelNames: ['controller'], registers });
    this.activeWorkers = new Gauge({ name: 'controller_runtime_active_workers', help: 'Number of currently used workers per controller', labelNames: ['controller'], registers });

    this.depth = new Gauge({ name: 'workqueue_depth', help: 'Current depth of workqueue', labelNames: ['name'], registers });
    this.adds = new Counter({ name: 'workqueue_adds_total', help: 'Total number of adds handled by workqueue', labelNames: ['name'], registers });
    this.queueDuration = new Histogram({ name: 'workqueue_queue_duration_seconds', help: 'How long in seconds an item stays in workqueue before being requested', labelNames: ['name'], buckets: WORKQUEUE_BUCKETS, registers });
    this.workDuration = new Histogram({ name: 'workqueue_work_duration_seconds', help: 'How long in seconds processing an item from workqueue takes', labelNames: ['name'], buckets: WORKQUEUE_BUCKETS, registers });
    this.retries = new Counter({ name: 'workqueue_retries_total', help: 'Total number of retries handled by workqueue', labelNames: ['name'], registers });
    const queues = this.queues;
    const clock = this.clock;
    // These two are computed at scrape time from the items in flight, as client-go does.
    new Gauge({
      name: 'workqueue_unfinished_work_seconds',
      help: 'How many seconds of work has been done that is in progress and hasn\'t been observed by work_duration. Large values indicate stuck threads.',
      labelNames: ['name'],
      registers,
      collect() {
        for (const [name, tracker] of queues) this.set({ name }, tracker.unfinishedSeconds(clock.now()));
      },
    });
    new Gauge({
      name: 'workqueue_longest_running_processor_seconds',
      help: 'How many seconds has the longest running processor for workqueue been running.',
      labelNames: ['name'],
      registers,
      collect() {
        for (const [name, tracker] of queues) this.set({ name }, tracker.longestRunningSeconds(clock.now()));
      },
    });
    this.leaderStatus = new Gauge({ name: 'leader_election_master_status', help: 'Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. \'name\' is the string used to identify the lease.', labelNames: ['name'], registers });
  }

  /** Metrics hooks for the work queue called `name`; pass to `new WorkQueue({ metrics })`. */
  workQueue(name: string): WorkQueueMetrics<string> {
    const tracker = new QueueTracker();
    this.queues.set(name, tracker);
    this.depth.set({ name }, 0);
    this.adds.inc({ name }, 0);
    this.retries.inc({ name }, 0);
    return {
      add: (key) => {
        this.adds.inc({ name });
        this.depth.inc({ name });
        if (!tracker.addedAt.has(key)) tracker.addedAt.set(key, this.clock.now());
      },
      get: (key) => {
        this.depth.dec({ name });
        const added = tracker.addedAt.get(key);
        if (added !== undefined) this.queueDuration.observe({ name }, (this.clock.now() - added) / 1000);
        tracker.addedAt.delete(key);
        tracker.startedAt.set(key, this.clock.now());
      },
      done: (key) => {
        const started = tracker.startedAt.get(key);
        if (started !== undefined) this.workDuration.observe({ name }, (this.clock.now() - started) / 1000);
        tracker.startedAt.delete(key);
      },
      retry: () => this.retries.inc({ name }),
    };
  }

  /** Metrics hooks for the worker pool of controller `controller`. */
  controller(controller: string): ControllerMetrics {
    this.activeWorkers.set({ controller }, 0);
    for (const result of ['success', 'error', 'requeue', 'requeue_after'] as const) this.reconcileTotal.inc({ controller, result }, 0);
    this.reconcileErrors.inc({ controller }, 0);
    return {
      reconciled: (result, seconds) => {
        this.reconcileTotal.inc({ controller, result });
        if (result === 'error') this.reconcileErrors.inc({ controller });
        this.reconcileTime.observe({ controller }, seconds);
      },
      setMaxConcurrentReconciles: (n) => this.maxConcurrent.set({ controller }, n),
      workerStarted: () => this.activeWorkers.inc({ controller }),
      workerStopped: () => this.activeWorkers.dec({ controller }),
    };
  }

  /** Metrics hooks for leader election on the lease called `name`. */
  leaderElection(name: string): LeaderElectionMetrics {
    this.leaderStatus.set({ name }, 0);
    return { setLeading: (leading) => this.leaderStatus.set({ name }, leading ? 1 : 0) };
  }

  /** Text exposition for /metrics. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

class QueueTracker {
  readonly addedAt = new Map<unknown, number>();
  readonly startedAt = new Map<unknown, number>();

  unfinishedSeconds(now: number): number {
    let total = 0;
    for (const started of this.startedAt.values()) total += now - started;
    return total / 1000;
  }

  longestRunningSeconds(now: number): number {
    let oldest = now;
    for (const started of this.startedAt.values()) oldest = Math.min(oldest, started);
    return (now - oldest) / 1000;
  }
}
