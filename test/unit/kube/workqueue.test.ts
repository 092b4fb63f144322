import assert from 'node:assert/strict';
import { WorkQueue, type WorkQueueMetrics } from '../../../src/kube/runtime/workqueue.ts';
import { BucketRateLimiter, ExponentialBackoffRateLimiter, MaxOfRateLimiter, backoffDelay, defaultControllerRateLimiter } from '../../../src/kube/runtime/rate-limiter.ts';
import { FakeClock, flushPromises } from '../../../src/kube/testing/fake-clock.ts';

function newQueue(clock = new FakeClock(), metrics?: WorkQueueMetrics) {
  const rateLimiter = new ExponentialBackoffRateLimiter({ baseDelayMs: 5, maxDelayMs: 1_000_000, jitter: 0 });
  return new WorkQueue({ name: 'test', clock, rateLimiter, metrics });
}

describe('WorkQueue', () => {
  it('holds a pending key once however often it is added', async () => {
    const q = newQueue();
    q.add('a');
    q.add('b');
    q.add('a');
    assert.equal(q.len(), 2);
    assert.equal(await q.get(), 'a');
    assert.equal(await q.get(), 'b');
    assert.equal(q.len(), 0);
  });

  it('never hands out a key that is being processed; re-queues it after done', async () => {
    const q = newQueue();
    q.add('a');
    const first = await q.get();
    assert.equal(first, 'a');
    q.add('a');
    q.add('a');
    assert.equal(q.len(), 0, 'a key being processed must not be queued again yet');
    let second: string | undefined;
    void q.get().then((k) => (second = k));
    await flushPromises();
    assert.equal(second, undefined, 'a second worker must not receive the same key');
    q.done('a');
    await flushPromises();
    assert.equal(second, 'a', 'the key added during processing is handed out once after done');
    q.done('a');
    assert.equal(q.len(), 0);
  });

  it('wakes a waiting worker when a key arrives', async () => {
    const q = newQueue();
    const pending = q.get();
    q.add('x');
    assert.equal(await pending, 'x');
  });

  it('addAfter queues the key only when due, and the earliest time wins', async () => {
    const clock = new FakeClock();
    const q = newQueue(clock);
    q.addAfter('a', 1000);
    q.addAfter('a', 300);
    q.addAfter('a', 5000);
    assert.equal(q.waitingCount(), 1);
    await clock.advance(299);
    assert.equal(q.len(), 0);
    await clock.advance(1);
    assert.equal(q.len(), 1);
    assert.equal(q.waitingCount(), 0);
    await clock.advance(10_000);
    assert.equal(q.len(), 1, 'later addAfter calls were superseded by the earlier one');
  });

  it('addAfter with a non-positive delay adds at once', () => {
    const q = newQueue();
    q.addAfter('a', 0);
    assert.equal(q.len(), 1);
  });

  it('backs off per key exponentially and resets on forget', async () => {
    const clock = new FakeClock();
    const q = newQueue(clock);
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      const start = clock.now();
      q.addRateLimited('a');
      while (q.len() === 0) await clock.advance(1);
      delays.push(clock.now() - start);
      assert.equal(await q.get(), 'a');
      q.done('a');
    }
    assert.deepEqual(delays, [5, 10, 20, 40]);
    assert.equal(q.numRequeues('a'), 4);
    assert.equal(q.numRequeues('b'), 0, 'backoff is per key');
    q.forget('a');
    assert.equal(q.numRequeues('a'), 0);
  });

  it('shutDown stops new adds, drops delayed keys, lets workers drain queued keys, then get returns undefined', async () => {
    const clock = new FakeClock();
    const q = newQueue(clock);
    q.add('a');
    q.addAfter('later', 100);
    q.shutDown();
    q.add('b');
    assert.equal(q.len(), 1);
    assert.equal(clock.pendingTimers(), 0, 'delayed keys are dropped');
    assert.equal(await q.get(), 'a');
    assert.equal(await q.get(), undefined);
  });

  it('shutDown releases workers blocked in get', async () => {
    const q = newQueue();
    const pending = q.get();
    q.shutDown();
    assert.equal(await pending, undefined);
  });

  it('shutDownWithDrain resolves only after keys in flight are done', async () => {
    const q = newQueue();
    q.add('a');
    const key = await q.get();
    let drained = false;
    const drain = q.shutDownWithDrain().then(() => (drained = true));
    await flushPromises();
    assert.equal(drained, false);
    q.done(key!);
    await drain;
    assert.equal(drained, true);
  });

  it('reports adds, gets, dones and retries to its metrics', async () => {
    const calls: string[] = [];
    const q = newQueue(new FakeClock(), {
      add: (k) => calls.push(`add ${k}`),
      get: (k) => calls.push(`get ${k}`),
      done: (k) => calls.push(`done ${k}`),
      retry: () => calls.push('retry'),
    });
    q.add('a');
    q.add('a');
    const k = await q.get();
    q.done(k!);
    q.addRateLimited('a');
    assert.deepEqual(calls, ['add a', 'get a', 'done a', 'retry']);
  });
});

describe('backoffDelay', () => {
  it('doubles from the base and stops at the cap, also for huge failure counts', () => {
    assert.equal(backoffDelay(0, 5, 1000), 5);
    assert.equal(backoffDelay(3, 5, 1000), 40);
    assert.equal(backoffDelay(10, 5, 1000), 1000);
    assert.equal(backoffDelay(5000, 5, 1_000_000), 1_000_000);
  });

  it('adds at most the jitter fraction and never exceeds the cap', () => {
    assert.equal(backoffDelay(2, 5, 1000, 0.1, () => 1), 22);
    assert.equal(backoffDelay(2, 5, 1000, 0.1, () => 0), 20);
    assert.equal(backoffDelay(20, 5, 1000, 0.5, () => 1), 1000);
  });

  it('rejects a cap below the base', () => {
    assert.throws(() => new ExponentialBackoffRateLimiter({ baseDelayMs: 10, maxDelayMs: 5 }), /Invalid backoff/);
  });
});

describe('BucketRateLimiter / MaxOfRateLimiter', () => {
  it('lets a burst through, then spaces retries at the rate', () => {
    let now = 0;
    const bucket = new BucketRateLimiter(10, 3, () => now);
    assert.deepEqual([bucket.when('a'), bucket.when('b'), bucket.when('c')], [0, 0, 0]);
    assert.equal(Math.round(bucket.when('d')), 100);
    assert.equal(Math.round(bucket.when('e')), 200);
    now = 1000;
    assert.equal(bucket.when('f'), 0, 'tokens come back with time');
  });

  it('takes the longest delay and forgets in every limiter', () => {
    let now = 0;
    const limiter = new MaxOfRateLimiter(new ExponentialBackoffRateLimiter({ baseDelayMs: 5, jitter: 0 }), new BucketRateLimiter(1, 1, () => now));
    assert.equal(limiter.when('a'), 5);
    assert.equal(Math.round(limiter.when('a')), 1000, 'the bucket is empty: 1 s at 1 qps');
    assert.equal(limiter.numRequeues('a'), 2);
    limiter.forget('a');
    assert.equal(limiter.numRequeues('a'), 0);
    now = 10_000;
    assert.equal(limiter.when('a'), 5);
  });

  it('the default controller limiter starts at 5 ms per key', () => {
    const limiter = defaultControllerRateLimiter({ jitter: 0, now: () => 0 });
    assert.deepEqual([limiter.when('a'), limiter.when('a'), limiter.when('b')], [5, 10, 5]);
  });
});
