import assert from 'node:assert/strict';
import { WorkQueue } from '../../../src/kube/runtime/workqueue.ts';
import { WorkerPool, type ReconcileFn } from '../../../src/kube/runtime/workers.ts';
import { ExponentialBackoffRateLimiter } from '../../../src/kube/runtime/rate-limiter.ts';
import { OperatorMetrics } from '../../../src/kube/runtime/metrics.ts';
import { FakeClock, flushPromises } from '../../../src/kube/testing/fake-clock.ts';
import { TerminalError } from '../../../src/kube/runtime/errors.ts';

function setup(reconcile: ReconcileFn, concurrency = 1) {
  const clock = new FakeClock();
  const metrics = new OperatorMetrics({ clock, collectDefaultMetrics: false });
  const queue = new WorkQueue({
    name: 'monitoredserver',
    clock,
    rateLimiter: new ExponentialBackoffRateLimiter({ baseDelayMs: 5, maxDelayMs: 1000, jitter: 0 }),
    metrics: metrics.workQueue('monitoredserver'),
  });
  const pool = new WorkerPool({ name: 'monitoredserver', queue, reconcile, concurrency, clock, metrics: metrics.controller('monitoredserver') });
  return { clock, metrics, queue, pool };
}

async function metricValue(metrics: OperatorMetrics, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const metric = await metrics.registry.getSingleMetric(name)?.get();
  return metric?.values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))?.value;
}

/** A promise the test resolves by hand, to hold a reconcile in flight. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

describe('WorkerPool', () => {
  it('reconciles each added key and forgets its backoff on success', async () => {
    const seen: string[] = [];
    const { queue, pool, metrics } = setup(async (key) => {
      seen.push(key);
    });
    pool.start();
    queue.add('shop/web-1');
    queue.add('shop/web-2');
    await flushPromises();
    assert.deepEqual(seen, ['shop/web-1', 'shop/web-2']);
    assert.equal(await metricValue(metrics, 'controller_runtime_reconcile_total', { result: 'success' }), 2);
    await pool.stop();
  });

  it('retries a throwing reconcile with growing backoff, then resets after success', async () => {
    let calls = 0;
    const times: number[] = [];
    const { clock, queue, pool, metrics } = setup(async () => {
      calls++;
      times.push(clock.now());
      if (calls <= 3) throw new Error('VirtualMachine shop/web-1-ids: apply failed');
    });
    pool.start();
    queue.add('shop/web-1');
    await flushPromises();
    await clock.advance(100);
    assert.equal(calls, 4);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    assert.deepEqual(gaps, [5, 10, 20]);
    assert.equal(queue.numRequeues('shop/web-1'), 0);
    assert.equal(await metricValue(metrics, 'controller_runtime_reconcile_errors_total', {}), 3);
    assert.equal(await metricValue(metrics, 'controller_runtime_reconcile_total', { result: 'error' }), 3);
    assert.equal(await metricValue(metrics, 'workqueue_retries_total', { name: 'monitoredserver' }), 3);
    await pool.stop();
  });

  it('does not retry a TerminalError: reported and counted, the key forgotten', async () => {
    let calls = 0;
    const { clock, queue, pool, metrics } = setup(async () => {
      calls++;
      throw new TerminalError('spec.server.template cannot be built: retrying cannot help');
    });
    pool.start();
    queue.add('shop/web-1');
    await flushPromises();
    await clock.advance(10_000);
    assert.equal(calls, 1);
    assert.equal(queue.numRequeues('shop/web-1'), 0);
    assert.equal(await metricValue(metrics, 'controller_runtime_reconcile_errors_total', {}), 1);
    queue.add('shop/web-1');
    await flushPromises();
    assert.equal(calls, 2, 'a new change brings it back');
    await pool.stop();
  });

  it('requeueAfter schedules the key again after exactly that delay, without backoff', async () => {
    let calls = 0;
    const { clock, queue, pool, metrics } = setup(async () => {
      calls++;
      return calls === 1 ? { requeueAfter: 30_000 } : undefined;
    });
    pool.start();
    queue.add('shop/web-1');
    await flushPromises();
    assert.equal(calls, 1);
    await clock.advance(29_999);
    assert.equal(calls, 1);
    await clock.advance(1);
    assert.equal(calls, 2);
    assert.equal(queue.numRequeues('shop/web-1'), 0);
    assert.equal(await metricValue(metrics, 'controller_runtime_reconcile_total', { result: 'requeue_after' }), 1);
    await pool.stop();
  });

  it('requeue: true retries with backoff', async () => {
    let calls = 0;
    const { clock, queue, pool } = setup(async () => {
      calls++;
      return calls === 1 ? { requeue: true } : undefined;
    });
    pool.start();
    queue.add('k');
    await flushPromises();
    assert.equal(queue.numRequeues('k'), 1);
    await clock.advance(5);
    assert.equal(calls, 2);
    await pool.stop();
  });

  it('runs different keys concurrently up to the limit but never one key twice at once', async () => {
    const gates = new Map<string, ReturnType<typeof gate>>();
    let inFlight = 0;
    let maxInFlight = 0;
    const perKey = new Map<string, number>();
    const overlaps: string[] = [];
    const { queue, pool, metrics } = setup(async (key) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      perKey.set(key, (perKey.get(key) ?? 0) + 1);
      if (perKey.get(key)! > 1) overlaps.push(key);
      const g = gate();
      gates.set(key, g);
      await g.opened;
      perKey.set(key, perKey.get(key)! - 1);
      inFlight--;
    }, 2);
    pool.start();
    queue.add('a');
    queue.add('b');
    queue.add('c');
    await flushPromises();
    assert.equal(inFlight, 2, 'two workers busy');
    assert.equal(await metricValue(metrics, 'controller_runtime_active_workers', {}), 2);
    assert.equal(await metricValue(metrics, 'controller_runtime_max_concurrent_reconciles', {}), 2);
    queue.add('a');
    gates.get('a')!.open();
    await flushPromises();
    // 'c' was queued before the re-added 'a', so it goes first; 'a' waits its turn.
    gates.get('b')!.open();
    await flushPromises();
    for (const key of ['c', 'a']) {
      gates.get(key)!.open();
      await flushPromises();
    }
    assert.deepEqual(overlaps, []);
    assert.equal(maxInFlight, 2);
    assert.equal(await metricValue(metrics, 'controller_runtime_reconcile_total', { result: 'success' }), 4);
    await pool.stop();
  });

  it('stop waits for reconciles in flight and takes no new keys', async () => {
    const g = gate();
    let finished = false;
    const { queue, pool } = setup(async () => {
      await g.opened;
      finished = true;
    });
    pool.start();
    queue.add('a');
    await flushPromises();
    let stopped = false;
    const stopping = pool.stop().then(() => (stopped = true));
    queue.add('b');
    await flushPromises();
    assert.equal(stopped, false);
    g.open();
    await stopping;
    assert.equal(finished, true);
    assert.equal(queue.len(), 0);
  });

  it('gives each reconcile the term signal; when the term ends it aborts the reconcile in flight, drops queued keys and retries nothing', async () => {
    const term = new AbortController();
    const clock = new FakeClock();
    const queue = new WorkQueue<string>({ name: 'monitoredserver', clock });
    const started: string[] = [];
    const requests: string[] = [];
    const reconcile: ReconcileFn = async (key, ctx) => {
      started.push(key);
      // A request in flight that honours the signal, as createKubeApi does.
      await new Promise<void>((resolve, reject) => {
        ctx.signal.addEventListener('abort', () => reject(new Error(`PATCH ${key} aborted: ${(ctx.signal.reason as Error).message}`)), { once: true });
      });
      requests.push(key);
    };
    const pool = new WorkerPool({ name: 'monitoredserver', queue, reconcile, concurrency: 1, clock, signal: term.signal });
    pool.start();
    queue.add('shop/a');
    queue.add('shop/b');
    await flushPromises();
    assert.deepEqual(started, ['shop/a']);
    let stopped = false;
    const stopping = pool.stop().then(() => (stopped = true));
    await flushPromises();
    assert.equal(stopped, false, 'stop waits for the reconcile in flight');
    term.abort(new Error('lost the lease'));
    await stopping;
    assert.deepEqual(started, ['shop/a'], 'shop/b, still queued, was dropped');
    assert.deepEqual(requests, [], 'the request in flight was aborted');
    assert.equal(queue.numRequeues('shop/a'), 0, 'an aborted reconcile is not retried');
    queue.add('shop/c');
    await clock.advance(60_000);
    assert.deepEqual(started, ['shop/a']);
  });

  it('hands out no key once the term has ended, even before stop is called', async () => {
    const term = new AbortController();
    const seen: string[] = [];
    const queue = new WorkQueue<string>({ name: 'monitoredserver' });
    const pool = new WorkerPool({ name: 'monitoredserver', queue, reconcile: async (key) => void seen.push(key), signal: term.signal });
    pool.start();
    queue.add('shop/a');
    await flushPromises();
    term.abort(new Error('lost the lease'));
    queue.add('shop/b');
    await flushPromises();
    assert.deepEqual(seen, ['shop/a']);
    assert.equal(queue.isShuttingDown(), true);
    await pool.stop();
  });

  it('passes a signal that never aborts when the pool has no term', async () => {
    let signal: AbortSignal | undefined;
    const { queue, pool } = setup(async (_key, ctx) => {
      signal = ctx.signal;
    });
    pool.start();
    queue.add('k');
    await flushPromises();
    assert.equal(signal?.aborted, false);
    await pool.stop();
    assert.equal(signal?.aborted, false);
  });

  it('rejects a non-positive concurrency', () => {
    const queue = new WorkQueue({ name: 'x' });
    assert.throws(() => new WorkerPool({ name: 'x', queue, reconcile: async () => {}, concurrency: 0 }), /Invalid concurrency 0 for controller x/);
  });
});

describe('WorkerPool and the event loop', () => {
  it('lets timers and I/O run between keys when reconciles have nothing to send (no turn of the event loop held for the whole queue)', async () => {
    let reconciled = 0;
    const { queue, pool } = setup(async () => {
      reconciled++;
    }, 8);
    for (let i = 0; i < 1000; i++) queue.add(`shop/web-${i}`);
    // Where a lease renewal's timer or a watch event would run.
    const at = new Promise<number>((resolve) => setImmediate(() => resolve(reconciled)));
    pool.start();
    const reconciledBeforeTheEventLoopRan = await at;
    assert.ok(reconciledBeforeTheEventLoopRan <= 8, `${reconciledBeforeTheEventLoopRan} reconciles ran before the event loop had a turn`);
    await new Promise<void>((resolve) => {
      const check = () => (reconciled === 1000 ? resolve() : setImmediate(check));
      check();
    });
    await pool.stop();
  });
});
