import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config.ts';

describe('operator configuration', () => {
  it('has production defaults', () => {
    const c = parseConfig([], {});
    assert.equal(c.leaderElect, true);
    assert.equal(c.leaseDurationMs, 15_000);
    assert.equal(c.renewDeadlineMs, 10_000);
    assert.equal(c.retryPeriodMs, 2_000);
    assert.equal(c.concurrency, 4);
    assert.equal(c.httpPort, 8080);
    assert.deepEqual(c.namespaces, []);
    assert.equal(c.leaderElectionNamespace, 'hyperspector-system');
  });

  it('reads the environment, and flags win over it', () => {
    const env = { WATCH_NAMESPACES: 'a, b', POD_NAMESPACE: 'ops', MAX_CONCURRENT_RECONCILES: '8', KUBECONFIG: '/k' };
    const fromEnv = parseConfig([], env);
    assert.deepEqual(fromEnv.namespaces, ['a', 'b']);
    assert.equal(fromEnv.leaderElectionNamespace, 'ops');
    assert.equal(fromEnv.concurrency, 8);
    assert.equal(fromEnv.kubeconfig, '/k');
    const flags = parseConfig(['--namespace', 'x', '--concurrency', '2', '--leader-elect=false', '--lease-duration', '30s', '--renew-deadline', '20s', '--retry-period', '500ms'], env);
    assert.deepEqual(flags.namespaces, ['x']);
    assert.equal(flags.concurrency, 2);
    assert.equal(flags.leaderElect, false);
    assert.equal(flags.leaseDurationMs, 30_000);
    assert.equal(flags.retryPeriodMs, 500);
  });

  it('refuses inconsistent leader election timings and bad numbers with the flag named', () => {
    assert.throws(() => parseConfig(['--renew-deadline', '20s'], {}), /--renew-deadline must be shorter than --lease-duration/);
    assert.throws(() => parseConfig(['--retry-period', '12s'], {}), /--retry-period must be shorter than --renew-deadline/);
    assert.throws(() => parseConfig(['--concurrency', 'many'], {}), /--concurrency must be a non-negative integer/);
    assert.throws(() => parseConfig(['--lease-duration', 'soon'], {}), /--lease-duration must be a duration/);
  });
});
