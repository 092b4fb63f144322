import assert from 'node:assert/strict';
import { ProgressWriteBudget, progressWindow } from '../../../src/controllers/monitoredserver/status-write-pacing.ts';

describe('status write pacing: the coalescing window of one MonitoredServer', () => {
  const table: Array<[string, number, number, number, number]> = [
    // what, waited since the last write (ms), progress writes so far, window (ms), counted writes
    ['never written: 30 s', 0, 0, 30_000, 0],
    ['after one progress write: 60 s', 10_000, 1, 60_000, 1],
    ['after two: 120 s', 10_000, 2, 120_000, 2],
    ['after many: at most 5 min', 10_000, 9, 300_000, 9],
    ['a quiet spell as long as the cap starts it over', 300_000, 4, 30_000, 0],
  ];
  for (const [what, waited, writes, windowMs, counted] of table) {
    it(what, () => assert.deepEqual(progressWindow(waited, writes, 30_000, 300_000), { windowMs, progressWrites: counted }));
  }
});

describe('status write pacing: the progress-write budget shared by all MonitoredServers', () => {
  it('lets a burst through at once, then one slot per interval, first come first served', () => {
    const budget = new ProgressWriteBudget(2_000, 3);
    const now = 1_000_000;
    const slots = ['a', 'b', 'c', 'd', 'e', 'f'].map((k) => budget.slotFor(k, now));
    assert.deepEqual(
      slots.map((s) => s - now),
      [0, 0, 0, 2_000, 4_000, 6_000],
    );
  });

  it('keeps a key’s slot until it is released: asking again neither moves it nor takes another', () => {
    const budget = new ProgressWriteBudget(2_000, 1);
    const now = 1_000_000;
    assert.equal(budget.slotFor('a', now), now);
    assert.equal(budget.slotFor('b', now), now + 2_000);
    assert.equal(budget.slotFor('b', now + 1_000), now + 2_000, 'the same slot');
    assert.equal(budget.reserved, 2);
    budget.release('a');
    budget.release('b');
    assert.equal(budget.reserved, 0);
    assert.equal(budget.slotFor('c', now + 1_000), now + 4_000, 'released slots are not handed out again');
  });

  it('recovers its burst after a quiet spell', () => {
    const budget = new ProgressWriteBudget(2_000, 2);
    let now = 1_000_000;
    for (const k of ['a', 'b', 'c', 'd', 'e']) budget.slotFor(k, now);
    now += 60_000;
    assert.deepEqual(
      ['f', 'g', 'h'].map((k) => budget.slotFor(k, now) - now),
      [0, 0, 2_000],
    );
  });

  it('spreads a thousand MonitoredServers asking at once over the budget: 30 progress writes a minute', () => {
    const budget = new ProgressWriteBudget(2_000, 10);
    const now = 1_000_000;
    const slots = Array.from({ length: 1000 }, (_, i) => budget.slotFor(`ns/ms-${i}`, now));
    const firstMinute = slots.filter((s) => s < now + 60_000).length;
    assert.equal(firstMinute, 10 + 29, 'the burst, then one per 2 s');
    assert.ok(slots.every((s, i) => i === 0 || s >= slots[i - 1]!), 'in the order asked');
  });
});
