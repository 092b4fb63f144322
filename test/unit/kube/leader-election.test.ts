import assert from 'node:assert/strict';
import { LeaderElector, defaultIdentity, fenceApi, formatMicroTime, type LeaderElectionOptions } from '../../../src/kube/runtime/leader-election.ts';
import type { ApiRequest } from '../../../src/kube/client/rest.ts';
import { OperatorMetrics } from '../../../src/kube/runtime/metrics.ts';
import { FakeClock, flushPromises } from '../../../src/kube/testing/fake-clock.ts';
import { FakeLeaseStore, type LockFaults } from '../../../src/kube/testing/fake-lease-lock.ts';

interface Candidate {
  elector: LeaderElector;
  started: number;
  stopped: number;
  signal?: AbortSignal;
  faults: LockFaults;
  done: Promise<void>;
}

function candidate(store: FakeLeaseStore, clock: FakeClock, identity: string, extra: Partial<LeaderElectionOptions> = {}): Candidate {
  const faults: LockFaults = {};
  const c = { started: 0, stopped: 0, faults } as Candidate;
  c.elector = new LeaderElector({
    lock: store.lock(faults),
    identity,
    clock,
    random: () => 0,
    onStartedLeading: (signal) => {
      c.started++;
      c.signal = signal;
    },
    onStoppedLeading: () => {
      c.stopped++;
    },
    ...extra,
  });
  c.done = c.elector.run();
  return c;
}

describe('LeaderElector', () => {
  let clock: FakeClock;
  let store: FakeLeaseStore;
  const all: Candidate[] = [];
  beforeEach(() => {
    clock = new FakeClock();
    store = new FakeLeaseStore();
  });
  afterEach(async () => {
    for (const c of all.splice(0)) {
      c.faults.down = false;
      c.faults.hang = false;
      store.hang = false;
      store.down = false;
      const stopping = c.elector.stop();
      await clock.advance(20_000);
      await stopping;
    }
  });
  function join(identity: string, extra?: Partial<LeaderElectionOptions>): Candidate {
    const c = candidate(store, clock, identity, extra);
    all.push(c);
    return c;
  }

  it('creates a missing lease and leads at once, with default timings and MicroTime stamps', async () => {
    const metrics = new OperatorMetrics({ collectDefaultMetrics: false });
    const a = join('a', { metrics: metrics.leaderElection('hyperspector-operator') });
    await flushPromises();
    assert.equal(a.started, 1);
    assert.equal(a.elector.isLeader(), true);
    assert.equal(store.lease?.spec?.holderIdentity, 'a');
    assert.equal(store.lease?.spec?.leaseDurationSeconds, 15);
    assert.equal(store.lease?.spec?.leaseTransitions, 0);
    assert.match(store.lease?.spec?.renewTime ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    const gauge = await metrics.registry.getSingleMetric('leader_election_master_status')?.get();
    assert.equal(gauge?.values[0]?.value, 1);
  });

  it('renews every retry period while leading', async () => {
    join('a');
    await flushPromises();
    const firstRenew = store.lease?.spec?.renewTime;
    await clock.advance(2000);
    assert.notEqual(store.lease?.spec?.renewTime, firstRenew);
    assert.equal(store.lease?.spec?.holderIdentity, 'a');
  });

  it('lets only one of two candidates lead', async () => {
    const a = join('a');
    const b = join('b');
    await flushPromises();
    await clock.advance(60_000);
    assert.equal(a.started + b.started, 1);
    assert.equal(a.elector.isLeader() !== b.elector.isLeader(), true);
  });

  it('hands over at once when the leader stops and releases the lease', async () => {
    const a = join('a');
    await flushPromises();
    const b = join('b');
    await clock.advance(5000);
    assert.equal(b.elector.isLeader(), false);
    const stopping = a.elector.stop();
    await clock.advance(0);
    await stopping;
    assert.equal(a.stopped, 1);
    assert.equal(a.signal?.aborted, true);
    assert.equal(store.lease?.spec?.holderIdentity, '', 'released');
    await clock.advance(2400);
    assert.equal(b.elector.isLeader(), true, 'took over within one (jittered) retry period');
    assert.equal(store.lease?.spec?.leaseTransitions, 1);
    await a.done;
  });

  it('takes over from a crashed leader only after the lease duration has passed', async () => {
    const a = join('a');
    await flushPromises();
    const b = join('b');
    await flushPromises();
    a.faults.hang = true; // a is gone: it neither renews nor releases
    await clock.advance(14_000);
    assert.equal(b.elector.isLeader(), false, 'the lease is still valid');
    await clock.advance(4000);
    assert.equal(b.elector.isLeader(), true);
    assert.equal(store.lease?.spec?.holderIdentity, 'b');
  });

  it('stops leading at the renew deadline when the API server is unreachable', async () => {
    const a = join('a');
    await flushPromises();
    const leadingSignal = a.signal!;
    a.faults.down = true;
    await clock.advance(9_999);
    assert.equal(a.elector.isLeader(), true);
    await clock.advance(1);
    assert.equal(a.elector.isLeader(), false);
    assert.equal(a.stopped, 1);
    assert.equal(leadingSignal.aborted, true);
    await a.done;
    await clock.advance(60_000);
    assert.equal(a.started, 1, 'a lost leader does not campaign again');
  });

  it('with reelectAfterLoss, campaigns again after a loss and leads again once the API is back', async () => {
    const a = join('a', { reelectAfterLoss: true });
    await flushPromises();
    a.faults.down = true;
    await clock.advance(10_000);
    assert.equal(a.stopped, 1);
    assert.equal(a.elector.isLeader(), false);
    await clock.advance(20_000);
    assert.equal(a.started, 1, 'cannot lead while the API server is unreachable');
    a.faults.down = false;
    await clock.advance(2400);
    assert.equal(a.started, 2);
    assert.equal(a.elector.isLeader(), true);
    assert.equal(a.signal?.aborted, false, 'a fresh signal for the new term');
  });

  it('stops leading at the renew deadline even when renew requests hang', async () => {
    const a = join('a');
    await flushPromises();
    a.faults.hang = true;
    await clock.advance(10_000);
    assert.equal(a.elector.isLeader(), false);
    assert.equal(a.stopped, 1);
  });

  it('keeps leading through failures shorter than the renew deadline', async () => {
    const a = join('a');
    await flushPromises();
    a.faults.down = true;
    await clock.advance(7000);
    a.faults.down = false;
    await clock.advance(30_000);
    assert.equal(a.elector.isLeader(), true);
    assert.equal(a.stopped, 0);
  });

  it('stops leading as soon as it sees another holder', async () => {
    const a = join('a');
    await flushPromises();
    store.lease = { ...store.lease!, metadata: { ...store.lease!.metadata, resourceVersion: '999' }, spec: { ...store.lease!.spec, holderIdentity: 'intruder' } };
    await clock.advance(2000);
    assert.equal(a.elector.isLeader(), false);
    assert.equal(a.stopped, 1);
  });

  it('never lets two candidates win the same free lease (optimistic concurrency)', async () => {
    store.lease = { metadata: { namespace: 'hyperspector-system', name: 'hyperspector-operator', resourceVersion: '1' }, spec: { holderIdentity: '' } };
    const a = join('a');
    const b = join('b');
    await flushPromises();
    assert.equal(a.started + b.started, 1);
  });

  it('reports health: a candidate that can read the lease and a leader that renews in time are healthy', async () => {
    const a = join('a');
    const b = join('b');
    await flushPromises();
    assert.equal(a.elector.healthy(), true);
    assert.equal(b.elector.healthy(), true);
    b.faults.down = true;
    await clock.advance(16_000);
    assert.equal(b.elector.healthy(), false);
  });

  it('aborts the term signal before onStoppedLeading runs, with the reason', async () => {
    const order: string[] = [];
    const a = join('a', {
      onStartedLeading: (signal) => signal.addEventListener('abort', () => order.push(`aborted: ${(signal.reason as Error).message}`)),
      onStoppedLeading: () => {
        order.push('onStoppedLeading');
      },
    });
    await flushPromises();
    a.faults.down = true;
    await clock.advance(10_000);
    assert.deepEqual(order, ['aborted: Lease hyperspector-system/hyperspector-operator was not renewed within the renew deadline (10000 ms)', 'onStoppedLeading']);
  });

  it('starts a new term only after the previous term drained (onStoppedLeading settled)', async () => {
    const events: string[] = [];
    let drained: (() => void) | undefined;
    const a = join('a', {
      reelectAfterLoss: true,
      onStartedLeading: () => events.push('started'),
      onStoppedLeading: () => {
        events.push('stopped');
        if (drained) return; // the second term (ended by afterEach) drains at once
        return new Promise<void>((resolve) => (drained = () => {
          events.push('drained');
          resolve();
        }));
      },
    });
    await flushPromises();
    a.faults.down = true;
    await clock.advance(10_000);
    a.faults.down = false;
    const writes = store.writes;
    // The API is back and the lease is still a's, but the old term's work has not ended.
    await clock.advance(60_000);
    assert.deepEqual(events, ['started', 'stopped']);
    assert.equal(store.writes, writes, 'no lease write while draining');
    assert.equal(a.elector.isLeader(), false);
    drained!();
    await clock.advance(2400);
    assert.deepEqual(events, ['started', 'stopped', 'drained', 'started']);
    assert.equal(a.elector.isLeader(), true);
  });

  it('releases the lease on stop only after the term drained', async () => {
    let drained!: () => void;
    const a = join('a', { onStoppedLeading: () => new Promise<void>((resolve) => (drained = resolve)) });
    await flushPromises();
    const stopping = a.elector.stop();
    await clock.advance(5000);
    assert.equal(store.lease?.spec?.holderIdentity, 'a', 'still held while the term drains');
    drained();
    await clock.advance(0);
    await stopping;
    assert.equal(store.lease?.spec?.holderIdentity, '', 'released');
  });

  it('after a freeze, ends the term as soon as anything asks (checkLeading), before the overdue timers fire', async () => {
    const a = join('a');
    await flushPromises();
    await clock.advance(2000);
    assert.equal(a.elector.checkLeading(), true);
    const writes = store.writes;
    // SIGSTOP for 20 s, then SIGCONT: the clock jumped, no timer has fired yet.
    clock.jump(20_000);
    assert.equal(a.signal?.aborted, false, 'nothing has run yet');
    assert.equal(a.elector.checkLeading(), false);
    assert.equal(a.signal?.aborted, true, 'the term ended synchronously');
    assert.equal(a.elector.isLeader(), false);
    await clock.advance(0);
    assert.equal(a.stopped, 1);
    assert.equal(store.writes, writes, 'no renewal after the deadline: the lease may be another replica’s');
  });

  it('after a freeze, never renews the lease even when the renew timer fires first', async () => {
    const a = join('a');
    await flushPromises();
    const writes = store.writes;
    clock.jump(20_000);
    await clock.advance(0); // the overdue retry-period timer and the deadline timer fire now
    assert.equal(a.stopped, 1);
    assert.equal(store.writes, writes);
  });

  it('counts the renew deadline from when the renewal began: a renewal answered too late does not extend the term', async () => {
    let delayUpdates = false;
    let answer: (() => void) | undefined;
    const inner = store.lock();
    const lock = {
      ...inner,
      update: async (lease: Parameters<typeof inner.update>[0], timeoutMs: number) => {
        if (delayUpdates) await new Promise<void>((resolve) => (answer = resolve));
        return inner.update(lease, timeoutMs);
      },
    };
    const a = join('a', { lock });
    await flushPromises();
    delayUpdates = true;
    await clock.advance(2000); // a renewal begins at t=2 s and hangs
    assert.ok(answer, 'a renewal is in flight');
    clock.jump(11_000); // frozen until t=13 s
    answer!(); // its answer is the first thing processed on resume
    await flushPromises();
    assert.equal(a.elector.checkLeading(), false, '13 s - 2 s is past the 10 s deadline');
    await clock.advance(0);
    assert.equal(a.stopped, 1);
  });

  it('fenceApi re-checks the renew deadline before a write that carries a signal, and leaves reads and others alone', async () => {
    const a = join('a');
    await flushPromises();
    const sent: ApiRequest[] = [];
    const fenced = fenceApi(
      {
        async request<T>(req: ApiRequest): Promise<T> {
          if (req.signal?.aborted) throw new Error(`refused: ${(req.signal.reason as Error).message}`);
          sent.push(req);
          return {} as T;
        },
      },
      a.elector,
    );
    const term = a.signal!;
    await fenced.request({ method: 'PATCH', path: '/before', signal: term });
    clock.jump(20_000);
    await assert.rejects(fenced.request({ method: 'PATCH', path: '/after-freeze', signal: term }), /refused: .*not renewed within the renew deadline/);
    await fenced.request({ method: 'GET', path: '/cache-list' });
    // A read with a signal (an informer's list, stopped with the caches) is not a write: a standby's
    // caches list and watch while it does not lead.
    const caches = new AbortController().signal;
    await fenced.request({ method: 'GET', path: '/cache-list-with-signal', signal: caches });
    assert.deepEqual(sent.map((r) => r.path), ['/before', '/cache-list', '/cache-list-with-signal']);
    assert.equal(typeof sent[0]!.mayWrite, 'function', 'a write is checked once more right before it is sent');
    assert.equal(sent[2]!.mayWrite, undefined, 'a read is not');
  });

  it('rejects timings that cannot work', () => {
    const lock = store.lock();
    const cb = { onStartedLeading: () => {}, onStoppedLeading: () => {} };
    assert.throws(() => new LeaderElector({ lock, ...cb, leaseDurationMs: 10_000, renewDeadlineMs: 10_000 }), /leaseDuration must be greater than renewDeadline/);
    assert.throws(() => new LeaderElector({ lock, ...cb, renewDeadlineMs: 2000, retryPeriodMs: 2000 }), /renewDeadline must be greater/);
  });

  it('formats MicroTime with six digits and builds a unique identity', () => {
    assert.equal(formatMicroTime(Date.parse('2026-01-01T00:00:00.123Z')), '2026-01-01T00:00:00.123000Z');
    assert.notEqual(defaultIdentity(), defaultIdentity());
  });
});
