import assert from 'node:assert/strict';
import { HealthServer, informersSyncedCheck, leaderElectionCheck } from '../../../src/kube/runtime/health-server.ts';
import { OperatorMetrics } from '../../../src/kube/runtime/metrics.ts';

describe('HealthServer', () => {
  let server: HealthServer;
  let base: string;
  let synced = false;
  let electorHealthy = true;

  beforeEach(async () => {
    synced = false;
    electorHealthy = true;
    const metrics = new OperatorMetrics({ collectDefaultMetrics: false });
    metrics.controller('monitoredserver');
    server = new HealthServer({ port: 0, host: '127.0.0.1', metrics });
    server.addReadinessCheck('informers', informersSyncedCheck([{ name: 'monitoredservers', hasSynced: () => synced }]));
    server.addReadinessCheck('leader-election', leaderElectionCheck({ healthy: () => electorHealthy, isLeader: () => false }));
    const port = await server.start();
    base = `http://127.0.0.1:${port}`;
  });

  afterEach(async () => server.close());

  it('serves Prometheus metrics on /metrics', async () => {
    const res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
    assert.match(await res.text(), /controller_runtime_reconcile_total\{controller="monitoredserver",result="success"\} 0/);
  });

  it('answers /healthz with ok', async () => {
    const res = await fetch(`${base}/healthz`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'ok');
  });

  it('is not ready until informers sync, naming what is missing, then ready', async () => {
    const notReady = await fetch(`${base}/readyz`);
    assert.equal(notReady.status, 500);
    assert.match(await notReady.text(), /\[-\]informers failed: informers not synced: monitoredservers/);
    synced = true;
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200);
    const verbose = await fetch(`${base}/readyz?verbose`);
    const text = await verbose.text();
    for (const line of ['[+]ping ok', '[+]informers ok', '[+]leader-election ok', 'readyz check passed']) assert.ok(text.includes(line), `missing ${line} in ${text}`);
  });

  it('is not ready when the standby cannot read the lease', async () => {
    synced = true;
    electorHealthy = false;
    const res = await fetch(`${base}/readyz`);
    assert.equal(res.status, 500);
    assert.match(await res.text(), /leader-election failed: cannot read the lease/);
  });

  it('turns a throwing check into a failure, and 404s unknown paths', async () => {
    server.addLivenessCheck('broken', () => {
      throw new Error('check exploded');
    });
    const res = await fetch(`${base}/healthz`);
    assert.equal(res.status, 500);
    assert.match(await res.text(), /\[-\]broken failed: check exploded/);
    assert.equal((await fetch(`${base}/nope`)).status, 404);
  });

  it('closes gracefully, refusing new connections afterwards', async () => {
    await server.close();
    await assert.rejects(fetch(`${base}/healthz`));
  });
});
