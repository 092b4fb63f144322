import assert from 'node:assert/strict';
import { UnseenCreations } from '../../../src/controllers/monitoredserver/unseen-creations.ts';
import type { KubeObject } from '../../../src/kube/client/objects.ts';

const pod = (name: string, resourceVersion = '1'): KubeObject => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'shop', resourceVersion } });

describe('UnseenCreations (children created but not yet in the cache)', () => {
  let now = 0;
  const created = () => new UnseenCreations({ ttlMs: 60_000, now: () => now });
  beforeEach(() => {
    now = 1_000;
  });

  it('answers with the created child while the cache has none, so it is not created twice', () => {
    const u = created();
    u.remember('Pod', pod('web-1-process-mapper'));
    assert.equal(u.read('Pod', 'shop', 'web-1-process-mapper', undefined)?.metadata?.name, 'web-1-process-mapper');
    assert.equal(u.read('VirtualMachine', 'shop', 'web-1-process-mapper', undefined), undefined, 'per kind');
    assert.equal(u.read('Pod', 'other', 'web-1-process-mapper', undefined), undefined, 'per namespace');
  });

  it('prefers the cache once it shows the child, and forgets the creation then', () => {
    const u = created();
    u.remember('Pod', pod('a', '5'));
    const cached = pod('a', '7');
    assert.equal(u.read('Pod', 'shop', 'a', cached), cached);
    assert.equal(u.size, 0);
    assert.equal(u.read('Pod', 'shop', 'a', undefined), undefined, 'deleted later: the cache is right');
  });

  it('forgets a creation when the cache reports the child (added, changed or deleted)', () => {
    const u = created();
    u.remember('Pod', pod('a'));
    u.seen('Pod', pod('a'));
    assert.equal(u.read('Pod', 'shop', 'a', undefined), undefined);
  });

  it('trusts a creation the cache never showed only for the TTL', () => {
    const u = created();
    u.remember('Pod', pod('a'));
    now += 60_000;
    assert.ok(u.read('Pod', 'shop', 'a', undefined));
    now += 1;
    assert.equal(u.read('Pod', 'shop', 'a', undefined), undefined);
    assert.equal(u.size, 0);
  });

  it('tells the reader when its trust in an unseen creation runs out (the controller rechecks then), and only then', () => {
    const u = created();
    const until: number[] = [];
    u.remember('Pod', pod('a'));
    now += 10_000;
    u.read('Pod', 'shop', 'a', undefined, (t) => until.push(t));
    assert.deepEqual(until, [1_000 + 60_000 + 1], 'the first instant the TTL has passed');
    u.read('Pod', 'shop', 'a', pod('a', '2'), (t) => until.push(t));
    u.read('Pod', 'shop', 'b', undefined, (t) => until.push(t));
    assert.equal(until.length, 1, 'a cached child or none remembered: nothing to recheck');
    u.remember('Pod', pod('c'));
    now = 1_000 + 10_000 + 60_001;
    u.read('Pod', 'shop', 'c', undefined, (t) => until.push(t));
    assert.equal(until.length, 1, 'expired: the cache is right, nothing to recheck');
  });

  it('lists the creations of one kind the cache has not shown, within the TTL; forget drops one that failed', () => {
    const u = created();
    u.remember('ConfigMap', pod('claim-1'));
    u.remember('ConfigMap', pod('claim-2'));
    u.remember('Pod', pod('a'));
    assert.deepEqual(u.list('ConfigMap').map((o) => o.metadata?.name), ['claim-1', 'claim-2']);
    u.forget('ConfigMap', pod('claim-1'));
    assert.deepEqual(u.list('ConfigMap').map((o) => o.metadata?.name), ['claim-2']);
    now += 60_001;
    assert.deepEqual(u.list('ConfigMap'), [], 'past the TTL');
    assert.equal(u.size, 1, 'expired entries of the listed kind are dropped');
  });

  it('clear forgets everything (a new leadership term starts from the caches)', () => {
    const u = created();
    u.remember('Pod', pod('a'));
    u.remember('Pod', pod('b'));
    u.clear();
    assert.equal(u.size, 0);
  });
});
