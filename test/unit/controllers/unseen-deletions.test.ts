import assert from 'node:assert/strict';
import { UnseenDeletions } from '../../../src/controllers/monitoredserver/unseen-deletions.ts';
import type { KubeObject } from '../../../src/kube/client/objects.ts';

const vmi = (uid: string, deletionTimestamp?: string): KubeObject => ({
  apiVersion: 'kubevirt.io/v1',
  kind: 'VirtualMachineInstance',
  metadata: { name: 'web-1-ids', namespace: 'shop', uid, ...(deletionTimestamp ? { deletionTimestamp } : {}) },
});

describe('UnseenDeletions (children deleted but still shown by the cache)', () => {
  let now = 0;
  const deletions = () => new UnseenDeletions({ ttlMs: 60_000, now: () => now });
  beforeEach(() => {
    now = Date.UTC(2026, 11, 2, 12, 0, 0);
  });

  it('reads the deleted object the cache still shows unchanged as being deleted, so it is not deleted twice', () => {
    const d = deletions();
    d.remember('VirtualMachineInstance', 'shop', 'web-1-ids', 'uid-1');
    const read = d.read('VirtualMachineInstance', 'shop', 'web-1-ids', vmi('uid-1'));
    assert.equal(read?.metadata?.deletionTimestamp, '2026-12-02T12:00:00.000Z');
    assert.equal(read?.metadata?.uid, 'uid-1');
    assert.equal(d.read('VirtualMachine', 'shop', 'web-1-ids', vmi('uid-1'))?.metadata?.deletionTimestamp, undefined, 'per kind');
    assert.equal(d.read('VirtualMachineInstance', 'other', 'web-1-ids', vmi('uid-1'))?.metadata?.deletionTimestamp, undefined, 'per namespace');
  });

  it('answers with the cache once it shows the deletion, the object gone, or a new object of that name', () => {
    const d = deletions();
    d.remember('VirtualMachineInstance', 'shop', 'web-1-ids', 'uid-1');
    const deleting = vmi('uid-1', '2026-12-02T11:59:59Z');
    assert.equal(d.read('VirtualMachineInstance', 'shop', 'web-1-ids', deleting), deleting);
    assert.equal(d.size, 0);

    d.remember('VirtualMachineInstance', 'shop', 'web-1-ids', 'uid-1');
    assert.equal(d.read('VirtualMachineInstance', 'shop', 'web-1-ids', undefined), undefined, 'gone');
    assert.equal(d.size, 0);

    d.remember('VirtualMachineInstance', 'shop', 'web-1-ids', 'uid-1');
    const next = vmi('uid-2');
    assert.equal(d.read('VirtualMachineInstance', 'shop', 'web-1-ids', next), next, 'restarted: the new VMI is not being deleted');
    assert.equal(d.size, 0);
  });

  it('forgets a deletion when the cache reports the object being deleted, deleted or replaced, but not for an unrelated update', () => {
    const d = deletions();
    d.remember('VirtualMachineInstance', 'shop', 'web-1-ids', 'uid-1');
    d.seen('VirtualMachineInstance', vmi('uid-1'));
    assert.equal(d.size, 1, 'a status update of the same object says nothing about the deletion');
    d.seen('VirtualMachineInstance', vmi('uid-1', '2026-12-02T12:00:01Z'));
    assert.equal(d.size, 0);

    d.remember('VirtualMachineInstance', 'shop', 'web-1-ids', 'uid-1');
    d.seen('VirtualMachineInstance', vmi('uid-1'), true);
    assert.equal(d.size, 0, 'a delete event');

    d.remember('VirtualMachineInstance', 'shop', 'web-1-ids', 'uid-1');
    d.seen('VirtualMachineInstance', vmi('uid-2'));
    assert.equal(d.size, 0, 'a new VMI of that name');
  });

  it('tells the reader when its trust in an unseen deletion runs out, and not once the cache shows it', () => {
    const d = deletions();
    const until: number[] = [];
    d.remember('VirtualMachineInstance', 'shop', 'web-1-ids', 'uid-1');
    d.read('VirtualMachineInstance', 'shop', 'web-1-ids', vmi('uid-1'), (t) => until.push(t));
    assert.deepEqual(until, [now + 60_001]);
    d.read('VirtualMachineInstance', 'shop', 'web-1-ids', vmi('uid-2'), (t) => until.push(t));
    assert.equal(until.length, 1, 'replaced: the cache is right');
  });

  it('trusts a deletion the cache never showed only for the TTL, and clear() forgets all', () => {
    const d = deletions();
    d.remember('VirtualMachineInstance', 'shop', 'web-1-ids', 'uid-1');
    now += 60_001;
    assert.equal(d.read('VirtualMachineInstance', 'shop', 'web-1-ids', vmi('uid-1'))?.metadata?.deletionTimestamp, undefined);
    assert.equal(d.size, 0);
    d.remember('VirtualMachineInstance', 'shop', 'web-1-ids', 'uid-1');
    d.clear();
    assert.equal(d.read('VirtualMachineInstance', 'shop', 'web-1-ids', vmi('uid-1'))?.metadata?.deletionTimestamp, undefined);
  });
});
