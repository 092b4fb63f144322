import assert from 'node:assert/strict';
import {
  type Condition,
  conditionsEqual,
  findCondition,
  formatTime,
  isConditionFalse,
  isConditionTrue,
  removeCondition,
  setCondition,
} from '../../../src/kube/client/conditions.ts';

const T0 = new Date('2026-01-01T00:00:00.123Z');
const T1 = new Date('2026-01-01T00:05:00Z');

describe('conditions', () => {
  it('adds a new condition with lastTransitionTime at second precision', () => {
    const list = setCondition([], { type: 'Ready', status: 'False', reason: 'WaitingForServerPlacement', message: 'Server VMI has no node yet', observedGeneration: 1 }, T0);
    assert.deepEqual(list, [
      { type: 'Ready', status: 'False', reason: 'WaitingForServerPlacement', message: 'Server VMI has no node yet', observedGeneration: 1, lastTransitionTime: '2026-01-01T00:00:00Z' },
    ]);
  });

  it('keeps lastTransitionTime when status is unchanged but updates reason, message and observedGeneration', () => {
    const first = setCondition(undefined, { type: 'Ready', status: 'False', reason: 'A', message: 'a', observedGeneration: 1 }, T0);
    const second = setCondition(first, { type: 'Ready', status: 'False', reason: 'B', message: 'b', observedGeneration: 2 }, T1);
    assert.equal(second[0]!.lastTransitionTime, '2026-01-01T00:00:00Z');
    assert.equal(second[0]!.reason, 'B');
    assert.equal(second[0]!.message, 'b');
    assert.equal(second[0]!.observedGeneration, 2);
    assert.equal(first[0]!.reason, 'A', 'input list is not modified');
  });

  it('moves lastTransitionTime when status changes', () => {
    const first = setCondition(undefined, { type: 'Ready', status: 'False', reason: 'A', message: 'a' }, T0);
    const second = setCondition(first, { type: 'Ready', status: 'True', reason: 'Monitoring', message: 'ok' }, T1);
    assert.equal(second[0]!.lastTransitionTime, '2026-01-01T00:05:00Z');
  });

  it('keeps the order of other conditions and replaces in place', () => {
    let list = setCondition([], { type: 'ServerRunning', status: 'True', reason: 'R', message: '' }, T0);
    list = setCondition(list, { type: 'Colocated', status: 'False', reason: 'R', message: '' }, T0);
    list = setCondition(list, { type: 'ServerRunning', status: 'False', reason: 'Stopped', message: '' }, T1);
    assert.deepEqual(list.map((c) => c.type), ['ServerRunning', 'Colocated']);
    assert.equal(findCondition(list, 'ServerRunning')?.reason, 'Stopped');
  });

  it('finds, tests and removes conditions', () => {
    const list = setCondition(setCondition([], { type: 'Ready', status: 'True', reason: 'R', message: '' }, T0), { type: 'DiskAttached', status: 'False', reason: 'R', message: '' }, T0);
    assert.equal(isConditionTrue(list, 'Ready'), true);
    assert.equal(isConditionTrue(list, 'DiskAttached'), false);
    assert.equal(isConditionFalse(list, 'DiskAttached'), true);
    assert.equal(isConditionTrue(list, 'Missing'), false);
    assert.equal(isConditionFalse(list, 'Missing'), false);
    assert.equal(findCondition(undefined, 'Ready'), undefined);
    assert.deepEqual(removeCondition(list, 'Ready').map((c) => c.type), ['DiskAttached']);
  });

  it('setting the same values again yields an equal list, so the status write can be skipped', () => {
    const update = { type: 'Ready', status: 'True' as const, reason: 'Monitoring', message: 'ok', observedGeneration: 3 };
    const live = setCondition([], update, T0);
    assert.equal(conditionsEqual(live, setCondition(live, update, T1)), true);
  });

  it('conditionsEqual ignores order but compares every field', () => {
    const a: Condition = { type: 'A', status: 'True', reason: 'R', message: 'm', observedGeneration: 1, lastTransitionTime: '2026-01-01T00:00:00Z' };
    const b: Condition = { type: 'B', status: 'False', reason: 'R', message: 'm', lastTransitionTime: '2026-01-01T00:00:00Z' };
    assert.equal(conditionsEqual([a, b], [b, a]), true);
    assert.equal(conditionsEqual(undefined, []), true);
    for (const change of [{ status: 'False' }, { reason: 'X' }, { message: 'x' }, { observedGeneration: 2 }, { lastTransitionTime: '2026-01-02T00:00:00Z' }]) {
      assert.equal(conditionsEqual([a, b], [{ ...a, ...change } as Condition, b]), false, JSON.stringify(change));
    }
    assert.equal(conditionsEqual([a], [a, b]), false);
    assert.equal(conditionsEqual([a, a], [a, b]), false);
  });

  it('formats times without sub-seconds', () => {
    assert.equal(formatTime(T0), '2026-01-01T00:00:00Z');
  });
});
