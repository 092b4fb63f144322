import assert from 'node:assert/strict';
import { CommanderError } from 'commander';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config.ts';
import { loadKubeConfig, NO_KUBECONFIG_MESSAGE } from '../../src/kube/client/client.ts';

describe('operator configuration', () => {
  it('has production defaults', () => {
    const c = parseConfig([], {});
    assert.equal(c.leaderElect, true);
    assert.equal(c.leaseDurationMs, 15_000);
    assert.equal(c.renewDeadlineMs, 10_000);
    assert.equal(c.retryPeriodMs, 2_000);
    assert.equal(c.concurrency, 4);
    assert.equal(c.notReadyRecheckMs, 60_000);
    assert.equal(c.notReadyRecheckMaxMs, 300_000);
    assert.equal(c.httpPort, 8080);
    assert.deepEqual(c.namespaces, []);
    assert.equal(c.leaderElectionNamespace, 'hyperspector-system');
  });

  it('has the networking defaults (tc, vxlan) and refuses unknown providers and bad prefixes with the flag named', () => {
    const c = parseConfig([], {});
    assert.deepEqual([c.networking.mirroring, c.networking.idsNetwork, c.networking.idsCidr, c.networking.idsMtu, c.idsAddressNamespace], ['tc', 'vxlan', '10.99.0.0/16', 1450, 'hyperspector-system']);
    const other = parseConfig(['--mirroring-provider', 'ovs-cni', '--ids-network', 'ovn-k8s-layer2', '--ids-network-cidr', '172.20.0.0/20'], { POD_NAMESPACE: 'ops' });
    assert.deepEqual([other.networking.mirroring, other.networking.idsNetwork, other.networking.idsCidr, other.idsAddressNamespace], ['ovs-cni', 'ovn-k8s-layer2', '172.20.0.0/20', 'ops']);
    assert.throws(() => parseConfig(['--ids-network', 'flannel'], {}), /--ids-network must be one of vxlan, ovn-k8s-layer2/);
    assert.throws(() => parseConfig([], { MIRRORING_PROVIDER: 'span' }), /--mirroring-provider must be one of tc, ovs-cni/);
    assert.throws(() => parseConfig(['--ids-network-cidr', '10.99.0.1/16'], {}), /--ids-network-cidr: .*host bits set/);
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
    assert.throws(() => parseConfig(['--not-ready-recheck', '10m'], {}), /--not-ready-recheck-max must not be shorter than --not-ready-recheck/);
    assert.throws(() => parseConfig(['--retry-period', '12s'], {}), /--retry-period must be shorter than --renew-deadline/);
    assert.throws(() => parseConfig(['--concurrency', 'many'], {}), /--concurrency must be a non-negative integer/);
    assert.throws(() => parseConfig(['--lease-duration', 'soon'], {}), /--lease-duration must be a duration/);
  });

  it('a snapshot minute lasts 60 s unless a test shortens it (at least 1 s)', () => {
    assert.equal(parseConfig([], {}).snapshotMinuteMs, 60_000);
    assert.equal(parseConfig(['--snapshot-minute', '1s'], {}).snapshotMinuteMs, 1000);
    assert.throws(() => parseConfig(['--snapshot-minute', '10ms'], {}), /--snapshot-minute must be at least 1s/);
  });

  it('answers --version with the package version', () => {
    const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    const out: string[] = [];
    const write = process.stdout.write;
    process.stdout.write = ((chunk: string) => (out.push(chunk), true)) as typeof process.stdout.write;
    try {
      assert.throws(() => parseConfig(['--version'], {}), (err: unknown) => err instanceof CommanderError && err.exitCode === 0);
    } finally {
      process.stdout.write = write;
    }
    assert.equal(out.join('').trim(), version);
  });
});

describe('operator credentials', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hs-kubeconfig-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses to start without a kubeconfig, in-cluster environment or ~/.kube/config', () => {
    assert.throws(() => loadKubeConfig({ env: { HOME: dir } }), (err: Error) => err.message === NO_KUBECONFIG_MESSAGE);
  });

  it('falls back to ~/.kube/config', () => {
    mkdirSync(join(dir, '.kube'));
    writeFileSync(
      join(dir, '.kube', 'config'),
      'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://10.0.0.1:6443"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n',
    );
    assert.equal(loadKubeConfig({ env: { HOME: dir } }).getCurrentCluster()?.server, 'https://10.0.0.1:6443');
  });
});
