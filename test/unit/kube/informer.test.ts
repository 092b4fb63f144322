import assert from 'node:assert/strict';
import { Informer, labelIndex, objectKey } from '../../../src/kube/runtime/informer.ts';
import { KubeApiError } from '../../../src/kube/client/rest.ts';
import { CACHE_STRINGS } from '../../../src/kube/runtime/string-pool.ts';
import { FakeClock, flushPromises } from '../../../src/kube/testing/fake-clock.ts';
import { FakeListWatch } from '../../../src/kube/testing/fake-list-watch.ts';
import type { TestObject } from '../../../src/kube/testing/test-object.ts';

function vm(namespace: string, name: string, resourceVersion: string, labels: Record<string, string> = {}): TestObject {
  return { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { namespace, name, resourceVersion, labels } };
}

function setup(options: { resyncPeriodMs?: number; watchdogMs?: number } = {}) {
  const clock = new FakeClock();
  const source = new FakeListWatch<TestObject>();
  const informer = new Informer<TestObject>({
    name: 'virtualmachines',
    source,
    clock,
    resyncPeriodMs: options.resyncPeriodMs ?? 0,
    watchdogMs: options.watchdogMs ?? 60_000,
    backoffBaseMs: 100,
    backoffMaxMs: 1600,
    random: () => 0,
  });
  const events: string[] = [];
  informer.addEventHandler({
    onAdd: (o) => events.push(`add ${objectKey(o)}@${o.metadata.resourceVersion}`),
    onUpdate: (old, o) => events.push(`update ${objectKey(o)}@${old.metadata.resourceVersion}->${o.metadata.resourceVersion}`),
    onDelete: (o) => events.push(`delete ${objectKey(o)}@${o.metadata.resourceVersion}`),
  });
  return { clock, source, informer, events };
}

describe('Informer', () => {
  let stopAll: Array<() => Promise<void>> = [];
  afterEach(async () => {
    await Promise.all(stopAll.map((stop) => stop()));
    stopAll = [];
  });
  function started(options?: Parameters<typeof setup>[0], items: TestObject[] = []) {
    const s = setup(options);
    s.source.items = items;
    s.source.resourceVersion = '10';
    s.informer.start();
    stopAll.push(() => s.informer.stop());
    return s;
  }

  it('lists into the cache, reports adds, syncs, then watches from the list resourceVersion', async () => {
    const { source, informer, events } = started({}, [vm('shop', 'web-1', '5'), vm('lab', 'db', '7')]);
    assert.equal(informer.hasSynced(), false);
    await informer.waitForSync();
    await flushPromises();
    assert.equal(informer.hasSynced(), true);
    assert.deepEqual(events, ['add shop/web-1@5', 'add lab/db@7']);
    assert.equal(informer.get('shop', 'web-1')?.metadata.resourceVersion, '5');
    assert.equal(informer.getByKey('lab/db')?.metadata.name, 'db');
    assert.equal(informer.list().length, 2);
    assert.deepEqual(informer.listByNamespace('shop').map((o) => o.metadata.name), ['web-1']);
    assert.equal(source.current()?.options.resourceVersion, '10');
  });

  it("puts the string values of what it stores, listed or watched, into the process's string pool", async () => {
    const unique = `value-${process.hrtime.bigint()}`;
    const { source, informer } = started({}, [vm('shop', 'web-1', '5', { listed: `${unique}-listed` })]);
    await informer.waitForSync();
    await flushPromises();
    source.send('ADDED', vm('shop', 'web-2', '11', { watched: `${unique}-watched` }));
    const pooled = CACHE_STRINGS.size;
    for (const value of [`${unique}-listed`, `${unique}-watched`]) assert.equal(CACHE_STRINGS.intern(value), value);
    assert.equal(CACHE_STRINGS.size, pooled, 'both label values were in the pool already');
    CACHE_STRINGS.intern(`${unique}-never-stored`);
    assert.equal(CACHE_STRINGS.size, pooled + 1, 'a value no informer stored was not');
  });

  it('applies watch events to the cache and handlers and tracks the resourceVersion, bookmarks included', async () => {
    const { source, informer, events } = started();
    await informer.waitForSync();
    await flushPromises();
    source.send('ADDED', vm('shop', 'web-1', '11'));
    source.send('MODIFIED', vm('shop', 'web-1', '12'));
    source.send('BOOKMARK', { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: '', resourceVersion: '20' } });
    assert.equal(informer.health().resourceVersion, '20');
    source.send('DELETED', vm('shop', 'web-1', '21'));
    assert.deepEqual(events, ['add shop/web-1@11', 'update shop/web-1@11->12', 'delete shop/web-1@21']);
    assert.equal(informer.get('shop', 'web-1'), undefined);
    assert.equal(informer.health().resourceVersion, '21');
  });

  it('keeps indexes in step with adds, label changes and deletes', async () => {
    const { source, informer } = started({}, [vm('shop', 'web-1-ids', '5', { 'hyperspector.io/server': 'web-1' })]);
    informer.addIndex('server', labelIndex('hyperspector.io/server'));
    await informer.waitForSync();
    await flushPromises();
    assert.deepEqual(informer.byIndex('server', 'web-1').map((o) => o.metadata.name), ['web-1-ids']);
    source.send('MODIFIED', vm('shop', 'web-1-ids', '11', { 'hyperspector.io/server': 'web-2' }));
    assert.deepEqual(informer.byIndex('server', 'web-1'), []);
    assert.equal(informer.byIndex('server', 'web-2').length, 1);
    source.send('DELETED', vm('shop', 'web-1-ids', '12', { 'hyperspector.io/server': 'web-2' }));
    assert.deepEqual(informer.byIndex('server', 'web-2'), []);
    assert.throws(() => informer.byIndex('nope', 'x'), /Informer virtualmachines has no index named nope/);
  });

  it('after a connection error, backs off and resumes the watch from the last resourceVersion without relisting', async () => {
    const { clock, source, informer } = started();
    await informer.waitForSync();
    await flushPromises();
    source.send('ADDED', vm('shop', 'web-1', '15'));
    source.end(new KubeApiError('GET /apis/...: connect ECONNREFUSED', undefined));
    await flushPromises();
    assert.equal(source.current(), undefined, 'no new watch before the backoff');
    await clock.advance(100);
    assert.equal(source.current()?.options.resourceVersion, '15');
    assert.equal(source.listCalls, 1);
    assert.equal(informer.health().consecutiveFailures, 1);
    source.send('BOOKMARK', { apiVersion: 'v1', kind: 'VirtualMachine', metadata: { name: '', resourceVersion: '16' } });
    assert.equal(informer.health().consecutiveFailures, 0, 'the first event shows the watch works again');
  });

  it('keeps retrying with growing backoff while the API server is down, and recovers when it is back', async () => {
    const { clock, source, informer, events } = started({}, [vm('shop', 'web-1', '5')]);
    await informer.waitForSync();
    await flushPromises();
    const refused = () => new KubeApiError('connect ECONNREFUSED', undefined);
    source.watchErrors = [refused(), refused(), refused()];
    source.end(refused());
    const watchTimes: number[] = [];
    const start = clock.now();
    for (let i = 0; i < 60 && source.watches.length < 5; i++) {
      const before = source.watches.length;
      await clock.advance(50);
      if (source.watches.length > before) watchTimes.push(clock.now() - start);
    }
    assert.deepEqual(watchTimes, [100, 300, 700, 1500], 'retries after 100, 200, 400, 800 ms');
    assert.equal(informer.health().consecutiveFailures, 4);
    source.send('MODIFIED', vm('shop', 'web-1', '30'));
    assert.deepEqual(events, ['add shop/web-1@5', 'update shop/web-1@5->30']);
    assert.equal(informer.health().consecutiveFailures, 0);
  });

  it('relists on 410 Gone and reports what changed while it was not watching', async () => {
    const { source, informer, events } = started({}, [vm('shop', 'a', '5'), vm('shop', 'b', '6'), vm('shop', 'c', '7')]);
    await informer.waitForSync();
    await flushPromises();
    source.items = [vm('shop', 'a', '5'), vm('shop', 'b', '40'), vm('shop', 'd', '41')];
    source.resourceVersion = '42';
    source.end(new KubeApiError('too old resource version', 410, 'Expired'));
    await flushPromises();
    assert.equal(source.listCalls, 2);
    assert.deepEqual(events.slice(3), ['update shop/b@6->40', 'add shop/d@41', 'delete shop/c@7']);
    assert.equal(source.current()?.options.resourceVersion, '42');
  });

  it('relists when the watch stream carries an ERROR event with code 410', async () => {
    const { source, informer } = started();
    await informer.waitForSync();
    await flushPromises();
    source.send('ERROR', { code: 410, reason: 'Expired', message: 'too old' } as unknown as TestObject);
    await flushPromises();
    assert.equal(source.listCalls, 2);
    assert.ok(source.current());
  });

  it('relists with backoff after a server error such as 500 or 403, and never gives up', async () => {
    const { clock, source, informer } = started();
    await informer.waitForSync();
    await flushPromises();
    source.listErrors = [new KubeApiError('boom', 500), new KubeApiError('forbidden', 403)];
    source.end(new KubeApiError('internal error', 500));
    await clock.advance(100);
    assert.equal(source.listCalls, 2, 'first relist after 100 ms fails');
    await clock.advance(200);
    assert.equal(source.listCalls, 3, 'second relist after 200 ms fails');
    await clock.advance(400);
    assert.equal(source.listCalls, 4);
    assert.ok(source.current(), 'watching again');
  });

  it('retries a failing first list; waitForSync with a deadline rejects naming the informer and the error', async () => {
    const { clock, source, informer } = setup();
    source.listErrors = [new KubeApiError('GET /apis/kubevirt.io/v1/virtualmachines failed: connect ECONNREFUSED', undefined)];
    informer.start();
    stopAll.push(() => informer.stop());
    const waiting = informer.waitForSync(50).catch((err: unknown) => err);
    await clock.advance(50);
    assert.match(String(await waiting), /Informer virtualmachines \(fake\) did not sync within 50 ms: .*ECONNREFUSED/);
    await clock.advance(50);
    assert.equal(informer.hasSynced(), true);
  });

  it('restarts a watch that has been silent for the watchdog period, and events keep it alive', async () => {
    const { clock, source, informer } = started({ watchdogMs: 1000 });
    await informer.waitForSync();
    await flushPromises();
    await clock.advance(900);
    source.send('BOOKMARK', { apiVersion: 'v1', kind: 'VirtualMachine', metadata: { name: '', resourceVersion: '11' } });
    await clock.advance(900);
    assert.equal(source.watches.length, 1, 'the bookmark reset the watchdog');
    await clock.advance(100);
    assert.equal(source.watches[0]!.aborted, true, 'the silent watch was aborted');
    assert.equal(source.watches.length, 2);
    assert.equal(source.current()?.options.resourceVersion, '11');
    assert.equal(source.listCalls, 1, 'resumed without relisting');
    assert.deepEqual({ lists: informer.health().lists, watches: informer.health().watches, bookmarks: informer.health().bookmarks }, { lists: 1, watches: 2, bookmarks: 1 });
  });

  it('reports every cached object as updated each resync period, from the cache: no list, the watch goes on', async () => {
    const { clock, source, informer, events } = started({ resyncPeriodMs: 10_000 }, [vm('shop', 'a', '5'), vm('shop', 'b', '7')]);
    await informer.waitForSync();
    await flushPromises();
    const watch = source.current();
    await clock.advance(10_000);
    assert.deepEqual(events, ['add shop/a@5', 'add shop/b@7', 'update shop/a@5->5', 'update shop/b@7->7']);
    await clock.advance(10_000);
    assert.equal(events.length, 6);
    assert.equal(source.listCalls, 1, 'never listed again');
    assert.equal(source.current(), watch, 'the same watch');
    assert.equal(informer.health().watches, 1);
  });

  it('backs off when watches close at once without events instead of spinning', async () => {
    const { clock, source, informer } = started();
    await informer.waitForSync();
    await flushPromises();
    source.end();
    await flushPromises();
    assert.equal(source.current(), undefined);
    await clock.advance(100);
    assert.ok(source.current());
  });

  it('re-watches at once after a normal close of a watch that delivered events', async () => {
    const { clock, source, informer } = started();
    await informer.waitForSync();
    await flushPromises();
    await clock.advance(5000);
    source.send('ADDED', vm('shop', 'a', '12'));
    source.end();
    await flushPromises();
    assert.equal(source.current()?.options.resourceVersion, '12');
  });

  it('survives a throwing handler and still informs the others', async () => {
    const { source, informer, events } = started();
    informer.addEventHandler({
      onAdd: () => {
        throw new Error('handler bug');
      },
    });
    await informer.waitForSync();
    await flushPromises();
    source.send('ADDED', vm('shop', 'a', '12'));
    assert.deepEqual(events, ['add shop/a@12']);
    assert.equal(informer.get('shop', 'a')?.metadata.resourceVersion, '12');
  });

  it('tells a handler added after sync about cached objects', async () => {
    const { informer } = started({}, [vm('shop', 'a', '5')]);
    await informer.waitForSync();
    const late: string[] = [];
    informer.addEventHandler({ onAdd: (o) => late.push(objectKey(o)) });
    assert.deepEqual(late, ['shop/a']);
  });

  it('stop ends the watch and starts no more', async () => {
    const { clock, source, informer } = started();
    await informer.waitForSync();
    await flushPromises();
    await informer.stop();
    assert.equal(source.watches[0]!.aborted, true);
    await clock.advance(60_000);
    assert.equal(source.watches.length, 1);
  });
  it('passes every listed and watched object through the transform before storing it or calling handlers', async () => {
    const clock = new FakeClock();
    const source = new FakeListWatch<TestObject>();
    const big = (name: string, rv: string): TestObject => ({ ...vm('shop', name, rv), spec: { template: { huge: 'x'.repeat(1000) } } });
    source.items = [big('web-1', '5')];
    const informer = new Informer<TestObject>({
      name: 'virtualmachines',
      source,
      clock,
      resyncPeriodMs: 0,
      transform: ({ spec: _spec, ...rest }) => ({ ...rest, metadata: { ...rest.metadata, labels: { transformed: 'yes' } } }),
    });
    const seen: TestObject[] = [];
    informer.addEventHandler({ onAdd: (o) => seen.push(o), onUpdate: (_old, o) => seen.push(o), onDelete: (o) => seen.push(o) });
    informer.start();
    stopAll.push(() => informer.stop());
    await informer.waitForSync();
    await flushPromises();
    source.send('ADDED', big('web-2', '6'));
    source.send('MODIFIED', big('web-1', '7'));
    source.send('DELETED', big('web-2', '8'));
    assert.deepEqual(
      seen.map((o) => [o.metadata.name, o.metadata.resourceVersion, o.metadata.labels?.transformed, 'spec' in o]),
      [
        ['web-1', '5', 'yes', false],
        ['web-2', '6', 'yes', false],
        ['web-1', '7', 'yes', false],
        ['web-2', '8', 'yes', false],
      ],
    );
    assert.deepEqual(informer.list(), [{ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { namespace: 'shop', name: 'web-1', resourceVersion: '7', labels: { transformed: 'yes' } } }]);
  });
});
