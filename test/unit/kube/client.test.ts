import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { createKubeClients, loadKubeConfig } from '../../../src/kube/client/client.ts';

function kubeconfig(server: string, context = 'ctx'): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    `clusters:\n- name: c\n  cluster:\n    server: ${server}`,
    'users:\n- name: u\n  user:\n    token: t',
    `contexts:\n- name: ${context}\n  context:\n    cluster: c\n    user: u`,
    `current-context: ${context}`,
    '',
  ].join('\n');
}

describe('loadKubeConfig', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'kube-client-test-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('prefers an explicit path over KUBECONFIG', () => {
    const explicit = join(dir, 'explicit');
    const fromEnv = join(dir, 'env');
    writeFileSync(explicit, kubeconfig('https://explicit.example:6443'));
    writeFileSync(fromEnv, kubeconfig('https://env.example:6443'));
    const kc = loadKubeConfig({ kubeconfigPath: explicit, env: { KUBECONFIG: fromEnv } });
    assert.equal(kc.getCurrentCluster()?.server, 'https://explicit.example:6443');
  });

  it('uses $KUBECONFIG when no path is given, merging a path list', () => {
    const first = join(dir, 'first');
    const second = join(dir, 'second');
    writeFileSync(first, kubeconfig('https://first.example:6443', 'one'));
    writeFileSync(second, kubeconfig('https://second.example:6443', 'two'));
    const kc = loadKubeConfig({ env: { KUBECONFIG: `${first}:${join(dir, 'absent')}:${second}` } });
    assert.equal(kc.getCurrentContext(), 'one');
    assert.deepEqual(kc.getContexts().map((c) => c.name).sort(), ['one', 'two']);
    const other = loadKubeConfig({ env: { KUBECONFIG: `${first}:${second}` }, context: 'two' });
    assert.equal(other.getCurrentContext(), 'two');
  });

  it('names the file when it cannot be read', () => {
    assert.throws(() => loadKubeConfig({ kubeconfigPath: join(dir, 'missing') }), /Failed to load kubeconfig from .*missing/);
  });

  it('builds the JSON client and typed clients from one config', () => {
    const path = join(dir, 'kc');
    writeFileSync(path, kubeconfig('https://x.example:6443'));
    const clients = createKubeClients(loadKubeConfig({ kubeconfigPath: path }));
    assert.equal(typeof clients.api.request, 'function');
    assert.ok(clients.typed(CoreV1Api) instanceof CoreV1Api);
  });
});
