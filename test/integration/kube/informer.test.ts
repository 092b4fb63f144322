// The supervised informer against a real kube-apiserver, including a restart of the API server.
import assert from 'node:assert/strict';
import { KubeConfig } from '@kubernetes/client-node';
import { Informer, labelIndex } from '../../../src/kube/runtime/informer.ts';
import { apiListWatch } from '../../../src/kube/runtime/list-watch.ts';
import { createKubeApi, type KubeApi } from '../../../src/kube/client/rest.ts';
import { CONFIG_MAP, collectionPath, objectPath } from '../../../src/kube/client/resources.ts';
import type { LocalCluster } from '../../../testenv/cluster/local-cluster.ts';
import { startRuntimeTestCluster } from './kube-cluster.ts';
import { waitFor } from '../../../testenv/wait.ts';
import { FreezableProxy } from './freezable-proxy.ts';
import type { TestObject } from '../../../src/kube/testing/test-object.ts';

const NS = 'informer-test';

describe('supervised informer (real kube-apiserver)', function () {
  let cluster: LocalCluster;
  let api: KubeApi;
  let informer: Informer<TestObject>;
  const seen: string[] = [];

  before(async function () {
    cluster = await startRuntimeTestCluster();
    api = createKubeApi(cluster.kubeConfig, { timeoutMs: 5000 });
    await api.request({ method: 'POST', path: '/api/v1/namespaces', body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } } });
  });

  after(async () => {
    await informer?.stop();
    await cluster?.stop();
  });

  const configMap = (name: string, owner: string, value = 'v'): TestObject => ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace: NS, labels: { 'hyperspector.io/test': 'yes', owner } },
    data: { value },
  });
  const create = (obj: TestObject) => api.request({ method: 'POST', path: collectionPath(CONFIG_MAP, NS), body: obj });
  const replace = async (name: string, value: string) => {
    const live = await api.request<TestObject>({ method: 'GET', path: objectPath(CONFIG_MAP, NS, name) });
    await api.request({ method: 'PUT', path: objectPath(CONFIG_MAP, NS, name), body: { ...live, data: { value } } });
  };
  const remove = (name: string) => api.request({ method: 'DELETE', path: objectPath(CONFIG_MAP, NS, name) });
  const cachedValue = (name: string) => (informer.get(NS, name)?.data as { value?: string } | undefined)?.value;

  it('lists, syncs and follows changes of label-selected objects in one namespace', async () => {
    await create(configMap('before-start', 'a'));
    await create({ ...configMap('unselected', 'a'), metadata: { name: 'unselected', namespace: NS } });
    informer = new Informer<TestObject>({
      name: 'configmaps',
      source: apiListWatch<TestObject>(cluster.kubeConfig, api, { path: collectionPath(CONFIG_MAP, NS), labelSelector: 'hyperspector.io/test=yes' }),
      watchdogMs: 90_000,
      backoffMaxMs: 2000,
    });
    informer.addIndex('owner', labelIndex('owner'));
    informer.addEventHandler({
      onAdd: (o) => seen.push(`add ${o.metadata.name}`),
      onUpdate: (_, o) => seen.push(`update ${o.metadata.name}`),
      onDelete: (o) => seen.push(`delete ${o.metadata.name}`),
    });
    informer.start();
    await informer.waitForSync(30_000);
    assert.deepEqual(informer.list().map((o) => o.metadata.name), ['before-start']);

    await create(configMap('after-start', 'b'));
    await waitFor(() => informer.get(NS, 'after-start'), { description: 'after-start in the cache' });
    await replace('before-start', 'v2');
    await waitFor(() => cachedValue('before-start') === 'v2', { description: 'update in the cache' });
    assert.deepEqual(informer.byIndex('owner', 'b').map((o) => o.metadata.name), ['after-start']);
    assert.ok(seen.includes('add after-start') && seen.includes('update before-start'));
  });

  it('keeps an idle watch open past client-node\'s 30 s inactivity limit, kept alive by bookmarks', async () => {
    const before = informer.health();
    // The API server sends a bookmark about once a minute to watches that asked for them.
    await waitFor(() => informer.health().bookmarks > before.bookmarks, { timeoutMs: 90_000, intervalMs: 1000, description: 'a bookmark on the idle watch' });
    const after = informer.health();
    assert.equal(after.watches, before.watches, 'the watch was not restarted while idle');
    assert.equal(after.lists, before.lists);
    assert.equal(after.consecutiveFailures, 0);
  });

  it('recovers after the API server restarts, without restarting the process', async () => {
    await cluster.restartApiServer({
      // While the API server is down the informer must notice and keep retrying.
      downtimeProbe: () => waitFor(() => informer.health().consecutiveFailures > 0 || undefined, { timeoutMs: 30_000, description: 'informer noticing the outage' }).then(() => {}),
    });
    await create(configMap('after-restart', 'c'));
    await replace('before-start', 'v3');
    await remove('after-start');
    await waitFor(() => informer.get(NS, 'after-restart') && cachedValue('before-start') === 'v3' && !informer.get(NS, 'after-start'), {
      timeoutMs: 60_000,
      description: 'changes made after the restart reaching the cache',
    });
    assert.ok(seen.includes('add after-restart'));
    assert.ok(seen.includes('delete after-start'));
    assert.equal(informer.hasSynced(), true);
  });
});

describe('supervised informer watchdog (real kube-apiserver behind a freezable proxy)', function () {
  let cluster: LocalCluster;
  let api: KubeApi;
  let proxy: FreezableProxy;
  let informer: Informer<TestObject>;

  before(async function () {
    cluster = await startRuntimeTestCluster();
    api = createKubeApi(cluster.kubeConfig, { timeoutMs: 5000 });
    await api.request({ method: 'POST', path: '/api/v1/namespaces', body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } } });
    const target = new URL(cluster.apiServerUrl);
    proxy = await FreezableProxy.start(target.hostname, Number(target.port));
  });

  after(async () => {
    await informer?.stop();
    await proxy?.close();
    await cluster?.stop();
  });

  it('restarts a watch that went silent without any error, resuming from the last resourceVersion', async () => {
    // Only the watch goes through the proxy; lists go straight to the API server.
    const current = cluster.kubeConfig.getCurrentCluster()!;
    const viaProxy = new KubeConfig();
    viaProxy.loadFromOptions({
      // The serving certificate is for 127.0.0.1, so TLS verifies through the proxy unchanged.
      clusters: [{ ...current, server: `https://127.0.0.1:${proxy.port}` }],
      users: cluster.kubeConfig.users,
      contexts: cluster.kubeConfig.contexts,
      currentContext: cluster.kubeConfig.currentContext,
    });
    informer = new Informer<TestObject>({
      name: 'configmaps',
      source: apiListWatch<TestObject>(viaProxy, api, { path: collectionPath(CONFIG_MAP, NS) }),
      watchdogMs: 4000,
    });
    informer.start();
    await informer.waitForSync(30_000);
    const create = (name: string) =>
      api.request({ method: 'POST', path: collectionPath(CONFIG_MAP, NS), body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name } } });
    await create('before-freeze');
    await waitFor(() => informer.get(NS, 'before-freeze'), { description: 'before-freeze in the cache' });
    const before = informer.health();

    assert.equal(proxy.freezeAll(), 1, 'exactly the watch connection was frozen');
    await create('while-frozen');
    await waitFor(() => informer.get(NS, 'while-frozen'), { timeoutMs: 30_000, description: 'while-frozen reaching the cache through a new watch' });
    const after = informer.health();
    assert.ok(after.watches > before.watches, 'the silent watch was replaced');
    assert.equal(after.lists, before.lists, 'resumed from the resourceVersion, no relist');
    assert.equal(after.consecutiveFailures, 0);
  });
});
