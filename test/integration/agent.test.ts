// The node agent's thin layer against a real API server: its informers (MonitoredServers, the VMIs
// of its node, the IDS VMIs, its node's virt-launcher pods) lead it to report MirrorAttached on
// MonitoredServer status through its own server-side-apply field manager, beside the operator's
// conditions, and to give it up when mirroring is switched off. The launcher pods are kwok pods
// without processes on this machine, so the mirror itself waits (the host tests install real ones).
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { agentFieldManager, agentIsolationFieldManager, startAgent, type RunningAgent } from '../../src/agent/agent.ts';
import type { MonitoredServer } from '../../src/api/v1alpha1/monitoredserver-types.ts';
import { MONITORED_SERVER } from '../../src/api/v1alpha1/resource.ts';
import { applyStatus } from '../../src/kube/client/apply.ts';
import type { Condition } from '../../src/kube/client/conditions.ts';
import { createKubeApi, type KubeApi } from '../../src/kube/client/rest.ts';
import { collectionPath, objectPath, POD, VIRTUAL_MACHINE_INSTANCE } from '../../src/kube/client/resources.ts';
import { IDS_SHAPE, launcherPod, mirroredServer, vmi } from '../../testenv/fixtures/agent.ts';
import { startCluster, type LocalCluster } from '../../testenv/cluster/local-cluster.ts';
import { waitFor } from '../../testenv/wait.ts';

const NS = 'agent-it';

describe('node agent against a real API server (MirrorAttached through its own field manager)', function () {
  this.timeout(300_000);
  let cluster: LocalCluster;
  let api: KubeApi;
  let agent: RunningAgent;
  let node: string;

  const getMs = () => api.request<MonitoredServer>({ method: 'GET', path: objectPath(MONITORED_SERVER, NS, 'web') });
  const condition = async (type: string) => ((await getMs()).status?.conditions as Condition[] | undefined)?.find((c) => c.type === type);
  const metrics = async () => (await fetch(`http://127.0.0.1:${agent.httpPort}/metrics`)).text();

  before(async function () {
    cluster = await startCluster({ nodes: 1 });
    api = createKubeApi(cluster.kubeConfig);
    await api.request({ method: 'POST', path: '/api/v1/namespaces', body: { metadata: { name: NS } } });
    node = (await cluster.api(k8s.CoreV1Api).listNode()).items[0]!.metadata!.name!;
  });

  after(async () => {
    await agent?.stop();
    await cluster?.stop();
  });

  it('reports where the mirror waits, beside the operator conditions, from kubectl-applied objects', async () => {
    const ms = mirroredServer('web', NS, '');
    delete ms.metadata.uid;
    delete ms.metadata.generation;
    await api.request({ method: 'POST', path: collectionPath(MONITORED_SERVER, NS), body: ms });
    // What KubeVirt would have made of the server and IDS VMs on this node.
    for (const [name, shape, labels] of [['web-server', undefined, {}], ['web-ids', IDS_SHAPE, { 'hyperspector.io/role': 'ids' }]] as const) {
      const body = vmi(NS, name, '', node, shape);
      delete body.metadata!.uid;
      body.metadata!.labels = { ...body.metadata!.labels, ...labels };
      const created = await api.request<typeof body>({ method: 'POST', path: collectionPath(VIRTUAL_MACHINE_INSTANCE, NS), body });
      const pod = launcherPod(created, 'abcde', node);
      delete pod.metadata!.uid;
      delete pod.metadata!.creationTimestamp;
      delete pod.status;
      pod.spec!.containers = [{ name: 'compute', image: 'virt-launcher' }];
      await api.request({ method: 'POST', path: collectionPath(POD, NS), body: pod });
    }
    // The operator's own conditions, under its own field manager.
    await applyStatus(api, MONITORED_SERVER, { apiVersion: 'hyperspector.io/v1alpha1', kind: 'MonitoredServer', metadata: { name: 'web', namespace: NS } }, {
      conditions: [{ type: 'Ready', status: 'False', reason: 'WaitingForServerPlacement', message: 'operator', lastTransitionTime: '2025-01-01T00:00:00Z' }],
    });

    agent = await startAgent({
      kubeConfig: cluster.kubeConfig,
      api,
      config: { nodeName: node, procRoot: '/proc', nodeNetns: '/proc/self/ns/net', idsMirrorNetwork: 'hyperspector-mirror', idsNetwork: 'none', vni: 4242, vxlanPort: 4789, overlayBridge: 'hsids0', overlayVxlan: 'hsids0-vx', resyncPeriodMs: 60_000 },
      httpPort: 0,
      httpHost: '127.0.0.1',
    });
    const waiting = await waitFor(async () => {
      const c = await condition('MirrorAttached');
      // First the pod is not Running yet (kwok starts it), then it runs but has no process here.
      return c?.reason === 'WaitingForServerPod' && /no process/.test(c.message) ? c : undefined;
    }, { timeoutMs: 60_000, description: 'MirrorAttached=False WaitingForServerPod, the pod running without a process here' });
    assert.equal(waiting.status, 'False');
    assert.match(waiting.message, /no process of launcher pod agent-it\/virt-launcher-web-server-.* runs on this node/);
    assert.equal(waiting.observedGeneration, 1);
    const live = await getMs();
    const managers = (live.metadata.managedFields ?? []).filter((e) => e.subresource === 'status').map((e) => e.manager).sort();
    assert.deepEqual(managers, [agentFieldManager(node), 'hyperspector-operator'].sort());
    assert.equal((await condition('Ready'))?.message, 'operator', "the operator's condition is untouched");
    assert.match(await metrics(), /hyperspector_agent_mirrors\{state="waiting"\} 1/);
  });

  it('gives MirrorAttached up when mirroring is switched off, leaving the operator conditions', async () => {
    await api.request({ method: 'PATCH', path: objectPath(MONITORED_SERVER, NS, 'web'), body: { spec: { mirroring: { enabled: false } } }, contentType: 'application/merge-patch+json' });
    await waitFor(async () => (await condition('MirrorAttached')) === undefined, { timeoutMs: 60_000, description: 'MirrorAttached to be removed' });
    assert.equal((await condition('Ready'))?.message, 'operator');
    await waitFor(async () => /hyperspector_agent_mirrors\{state="waiting"\} 0/.test(await metrics()), { timeoutMs: 10_000, description: 'the waiting gauge back to 0' });
  });

  it('reports NetworkIsolated through a field manager of its own while the Isolate response holds, beside MirrorAttached, and gives it up on release', async () => {
    await api.request({ method: 'PATCH', path: objectPath(MONITORED_SERVER, NS, 'web'), body: { spec: { mirroring: { enabled: true } } }, contentType: 'application/merge-patch+json' });
    await waitFor(async () => (await condition('MirrorAttached'))?.reason === 'WaitingForServerPod' || undefined, { timeoutMs: 60_000, description: 'MirrorAttached back' });
    const target = { apiVersion: 'hyperspector.io/v1alpha1', kind: 'MonitoredServer', metadata: { name: 'web', namespace: NS } };
    const ready = { type: 'Ready', status: 'False', reason: 'WaitingForServerPlacement', message: 'operator', lastTransitionTime: '2025-01-01T00:00:00Z' };
    const response = { action: 'Isolate', alertTime: '2026-12-02T00:00:00Z', isolatedAt: '2026-12-02T00:00:01Z' };
    // The operator's isolation (status.response), under its own field manager.
    await applyStatus(api, MONITORED_SERVER, target, { conditions: [ready], response });
    const waiting = await waitFor(async () => {
      const c = await condition('NetworkIsolated');
      return c?.reason === 'WaitingForServerPod' && /no process/.test(c.message) ? c : undefined;
    }, { timeoutMs: 60_000, description: 'NetworkIsolated=False WaitingForServerPod (a kwok pod has no process here)' });
    assert.equal(waiting.status, 'False');
    assert.equal((await condition('MirrorAttached'))?.reason, 'WaitingForServerPod', 'MirrorAttached kept: the two conditions have separate field managers');
    const managers = ((await getMs()).metadata.managedFields ?? []).filter((e) => e.subresource === 'status').map((e) => e.manager).sort();
    assert.deepEqual(managers, [agentFieldManager(node), agentIsolationFieldManager(node), 'hyperspector-operator'].sort());

    await applyStatus(api, MONITORED_SERVER, target, { conditions: [ready], response: { ...response, releasedAt: '2026-12-02T00:00:05Z' } });
    await waitFor(async () => (await condition('NetworkIsolated')) === undefined || undefined, { timeoutMs: 60_000, description: 'NetworkIsolated given up on release' });
    assert.equal((await condition('MirrorAttached'))?.reason, 'WaitingForServerPod');
    assert.equal((await condition('Ready'))?.message, 'operator');
  });
});
