// Leader election between replicas on a real coordination.k8s.io/v1 Lease.
import assert from 'node:assert/strict';
import { LeaderElector, apiLeaseLock, type LeaseLock } from '../../../src/kube/runtime/leader-election.ts';
import { KubeApiError, createKubeApi, type ApiRequest, type KubeApi } from '../../../src/kube/client/rest.ts';
import type { LocalCluster } from '../../../testenv/cluster/local-cluster.ts';
import { startRuntimeTestCluster } from './kube-cluster.ts';
import { waitFor } from '../../../testenv/wait.ts';

const NS = 'leader-election-test';
// Shorter than the 15/10/2 s defaults so the test is quick; the ratios are the same.
const TIMING = { leaseDurationMs: 6000, renewDeadlineMs: 4000, retryPeriodMs: 500 };

interface Replica {
  elector: LeaderElector;
  startedAt?: number;
  stoppedAt?: number;
  observedLeader?: string;
  /** Set to cut this replica off from the API server (a network partition). */
  partitioned: boolean;
}

function replica(api: KubeApi, leaseName: string, identity: string): Replica {
  const r: Replica = { partitioned: false } as Replica;
  const partitionable: KubeApi = {
    request<T>(req: ApiRequest): Promise<T> {
      if (r.partitioned) return Promise.reject(new KubeApiError(`${req.method} ${req.path} failed: connect ETIMEDOUT (partitioned)`, undefined));
      return api.request<T>(req);
    },
  };
  const lock: LeaseLock = apiLeaseLock(partitionable, NS, leaseName);
  r.elector = new LeaderElector({
    lock,
    identity,
    ...TIMING,
    onStartedLeading: () => (r.startedAt = Date.now()),
    onStoppedLeading: () => {
      r.stoppedAt = Date.now();
    },
    onNewLeader: (leader) => (r.observedLeader = leader),
  });
  return r;
}

describe('leader election (real kube-apiserver)', function () {
  let cluster: LocalCluster;
  let api: KubeApi;
  const replicas: Replica[] = [];

  before(async function () {
    cluster = await startRuntimeTestCluster();
    api = createKubeApi(cluster.kubeConfig);
    await api.request({ method: 'POST', path: '/api/v1/namespaces', body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } } });
  });

  afterEach(async () => {
    for (const r of replicas.splice(0)) {
      r.partitioned = false;
      await r.elector.stop();
    }
  });

  after(async () => cluster?.stop());

  async function lease(name: string) {
    return api.request<{ spec: { holderIdentity?: string; renewTime?: string; leaseTransitions?: number } }>({
      method: 'GET',
      path: `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/${name}`,
    });
  }

  function start(leaseName: string, identity: string): Replica {
    const r = replica(api, leaseName, identity);
    replicas.push(r);
    void r.elector.run();
    return r;
  }

  it('lets one replica lead; when it stops, the other takes over within the lease duration', async () => {
    const a = start('handover', 'replica-a');
    await waitFor(() => a.elector.isLeader(), { description: 'replica-a leading' });
    const b = start('handover', 'replica-b');
    await waitFor(() => b.observedLeader === 'replica-a', { description: 'replica-b seeing replica-a as leader' });
    // Let the leader renew twice while b keeps campaigning; b must stay a follower.
    const renewed = (await lease('handover')).spec.renewTime;
    await waitFor(async () => (await lease('handover')).spec.renewTime !== renewed, { description: 'first renewal' });
    const renewedAgain = (await lease('handover')).spec.renewTime;
    await waitFor(async () => (await lease('handover')).spec.renewTime !== renewedAgain, { description: 'second renewal' });
    assert.equal(b.elector.isLeader(), false);
    assert.equal(b.startedAt, undefined);

    const stoppedAt = Date.now();
    await a.elector.stop();
    assert.ok(a.stoppedAt, 'onStoppedLeading was called');
    await waitFor(() => b.elector.isLeader(), { timeoutMs: TIMING.leaseDurationMs, description: 'replica-b taking over' });
    assert.ok(b.startedAt! - stoppedAt < TIMING.leaseDurationMs, `took ${b.startedAt! - stoppedAt} ms`);
    const after = await lease('handover');
    assert.equal(after.spec.holderIdentity, 'replica-b');
    assert.equal(after.spec.leaseTransitions, 1);
  });

  it('a partitioned leader stops leading before another replica takes over (no split brain)', async () => {
    const a = start('partition', 'replica-a');
    await waitFor(() => a.elector.isLeader(), { description: 'replica-a leading' });
    const b = start('partition', 'replica-b');
    await waitFor(() => b.observedLeader === 'replica-a', { description: 'replica-b seeing replica-a as leader' });
    a.partitioned = true;
    await waitFor(() => a.stoppedAt, { timeoutMs: TIMING.renewDeadlineMs + 2000, description: 'replica-a giving up at the renew deadline' });
    await waitFor(() => b.startedAt, { timeoutMs: TIMING.leaseDurationMs + 5000, description: 'replica-b taking over after the lease expired' });
    assert.ok(a.stoppedAt! < b.startedAt!, 'the old leader stopped before the new one started');
    assert.equal((await lease('partition')).spec.holderIdentity, 'replica-b');
  });
});
