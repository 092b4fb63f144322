// The Event recorder's writes are accepted by a real kube-apiserver (events.k8s.io/v1 validation)
// and repeats land in the series of one Event.
import assert from 'node:assert/strict';
import { EventRecorder, referenceTo } from '../../../src/kube/runtime/events.ts';
import type { KubeObject } from '../../../src/kube/client/apply.ts';
import { createKubeApi, type KubeApi } from '../../../src/kube/client/rest.ts';
import type { LocalCluster } from '../../../testenv/cluster/local-cluster.ts';
import { startRuntimeTestCluster } from './kube-cluster.ts';

const NS = 'events-test';
const REASON_DISK_NOT_SHAREABLE = 'DiskNotShareable';

describe('event recorder (real kube-apiserver)', function () {
  let cluster: LocalCluster;
  let api: KubeApi;

  before(async function () {
    cluster = await startRuntimeTestCluster();
    api = createKubeApi(cluster.kubeConfig);
    await api.request({ method: 'POST', path: '/api/v1/namespaces', body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } } });
  });

  after(async () => cluster?.stop());

  it('creates one Event and bumps its series on repeats, visible through core/v1 too', async () => {
    const cm = await api.request<KubeObject>({ method: 'POST', path: `/api/v1/namespaces/${NS}/configmaps`, body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'target' } } });
    const recorder = new EventRecorder({ api, reportingInstance: 'operator-0' });
    for (let i = 0; i < 3; i++) {
      recorder.warning(referenceTo(cm), REASON_DISK_NOT_SHAREABLE, 'AttachDisk', 'Volume rootdisk is ReadWriteOncePod and cannot be shared');
      await recorder.flush();
    }
    const list = await api.request<{ items: Array<{ reason: string; type: string; series?: { count: number }; regarding: { name: string }; reportingController: string }> }>({
      method: 'GET',
      path: `/apis/events.k8s.io/v1/namespaces/${NS}/events`,
    });
    assert.equal(list.items.length, 1);
    const [event] = list.items;
    assert.equal(event!.reason, REASON_DISK_NOT_SHAREABLE);
    assert.equal(event!.type, 'Warning');
    assert.equal(event!.regarding.name, 'target');
    assert.equal(event!.reportingController, 'hyperspector-operator');
    assert.equal(event!.series?.count, 3);
    const core = await api.request<{ items: Array<{ involvedObject: { name: string }; reason: string }> }>({ method: 'GET', path: `/api/v1/namespaces/${NS}/events` });
    assert.equal(core.items[0]?.involvedObject.name, 'target');
  });
});
