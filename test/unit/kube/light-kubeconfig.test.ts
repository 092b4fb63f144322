import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RequestContext } from '@kubernetes/client-node/dist/gen/http/http.js';
import { loadKubeAuth, loadLightKubeConfig, LightKubeConfig } from '../../../src/kube/client/light-kubeconfig.ts';

function kubeconfig(server: string, user: string, context = 'ctx', cluster = ''): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    `clusters:\n- name: c\n  cluster:\n    server: ${server}\n${cluster}`,
    `users:\n- name: u\n  user:\n${user}`,
    `contexts:\n- name: ${context}\n  context:\n    cluster: c\n    user: u`,
    `current-context: ${context}`,
    '',
  ].join('\n');
}

async function headersFor(kc: LightKubeConfig): Promise<Record<string, string>> {
  const ctx = new RequestContext('https://api.example:6443/api', 'GET' as never);
  await kc.applySecurityAuthentication(ctx);
  return ctx.getHeaders();
}

describe('light kubeconfig (no client-node generated API)', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'light-kubeconfig-test-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('serves a bearer token from an explicit path, over KUBECONFIG', async () => {
    const explicit = join(dir, 'explicit');
    writeFileSync(explicit, kubeconfig('https://explicit.example:6443', '    token: secret-token'));
    writeFileSync(join(dir, 'env'), kubeconfig('https://env.example:6443', '    token: other'));
    const kc = loadLightKubeConfig({ kubeconfigPath: explicit, env: { KUBECONFIG: join(dir, 'env') } });
    assert.ok(kc);
    assert.equal(kc.getCurrentCluster().server, 'https://explicit.example:6443');
    assert.equal((await headersFor(kc)).Authorization, 'Bearer secret-token');
  });

  it('merges a KUBECONFIG path list (the first file names the context) and honours a context override', () => {
    const first = join(dir, 'first');
    const second = join(dir, 'second');
    writeFileSync(first, kubeconfig('https://first.example:6443', '    token: a', 'one'));
    writeFileSync(second, kubeconfig('https://second.example:6443', '    token: b', 'two'));
    assert.equal(loadLightKubeConfig({ env: { KUBECONFIG: `${first}:${join(dir, 'absent')}:${second}` } })?.getCurrentCluster().server, 'https://first.example:6443');
    // Both files call their cluster "c": the first definition wins, as kubectl does.
    assert.equal(loadLightKubeConfig({ env: { KUBECONFIG: `${first}:${second}` }, context: 'two' })?.getCurrentCluster().server, 'https://first.example:6443');
  });

  it('reads a client certificate and CA named relative to the kubeconfig file', async () => {
    writeFileSync(join(dir, 'ca.crt'), 'not really a CA');
    writeFileSync(join(dir, 'client.crt'), 'cert');
    writeFileSync(join(dir, 'client.key'), 'key');
    const file = join(dir, 'config');
    writeFileSync(file, kubeconfig('https://api.example:6443', '    client-certificate: client.crt\n    client-key: client.key', 'ctx', '    certificate-authority: ca.crt'));
    const kc = loadLightKubeConfig({ kubeconfigPath: file });
    assert.equal(kc?.getCurrentCluster().caFile, join(dir, 'ca.crt'));
    const ctx = new RequestContext('https://api.example:6443/api', 'GET' as never);
    await kc!.applySecurityAuthentication(ctx);
    assert.ok(ctx.getDispatcher(), 'a TLS agent with the CA and the client certificate');
    assert.equal(ctx.getHeaders().Authorization, undefined);
  });

  it('leaves exec plugins and auth providers to client-node (undefined: the full loader serves them)', async () => {
    const file = join(dir, 'config');
    writeFileSync(file, kubeconfig('https://api.example:6443', '    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: aws-iam-authenticator'));
    assert.equal(loadLightKubeConfig({ kubeconfigPath: file }), undefined);
    const full = await loadKubeAuth({ kubeconfigPath: file });
    assert.ok(!(full instanceof LightKubeConfig));
    assert.equal(full.getCurrentCluster()?.server, 'https://api.example:6443');
  });

  it('refuses plain HTTP unless TLS verification is explicitly skipped', async () => {
    const file = join(dir, 'config');
    writeFileSync(file, kubeconfig('http://api.example:8080', '    token: t'));
    await assert.rejects(() => headersFor(loadLightKubeConfig({ kubeconfigPath: file })!), /HTTP protocol is not allowed/);
  });

  it('says how to give it a kubeconfig when there is none', () => {
    assert.throws(() => loadLightKubeConfig({ env: {} }), /no kubeconfig: pass --kubeconfig/);
  });
});
