// The operator's API client speaks HTTP/1.1 to a server that also offers HTTP/2 (as kube-apiserver
// does): with HTTP/1.1 a write is on the socket in the same turn as the leadership fence's last
// check (fenced-dispatcher.ts); HTTP/2 would queue its frames for a later turn, and a leader frozen
// in between would send the write on resume, after the standby took over.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadKubeConfig } from '../../../src/kube/client/client.ts';
import { loadLightKubeConfig } from '../../../src/kube/client/light-kubeconfig.ts';
import { createKubeApi } from '../../../src/kube/client/rest.ts';
import { createCertificateAuthority, issueCertificate } from '../../../testenv/cluster/certs.ts';

describe('createKubeApi over TLS: HTTP/1.1 where the server offers HTTP/2', function () {
  this.timeout(20_000);
  let dir: string;
  let server: Http2SecureServer;
  let received: Array<{ line: string; httpVersion: string; body: string }>;
  let file: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rest-http1-test-'));
    const ca = createCertificateAuthority(dir, 'ca');
    const leaf = issueCertificate(ca, dir, 'server', { commonName: 'apiserver', subjectAltNames: ['127.0.0.1'], usage: 'server' });
    // Offers h2 first, as kube-apiserver does; HTTP/1.1 clients are served too.
    server = createSecureServer({ key: readFileSync(leaf.key), cert: readFileSync(leaf.cert), allowHTTP1: true }, (req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        received.push({ line: `${req.method} ${req.url}`, httpVersion: req.httpVersion, body });
        res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"kind":"ConfigMap","metadata":{"name":"x"}}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    file = join(dir, 'config');
    writeFileSync(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        `clusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:${(server.address() as AddressInfo).port}\n    certificate-authority: ${ca.cert}`,
        'users:\n- name: u\n  user:\n    token: t',
        'contexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u',
        'current-context: ctx',
        '',
      ].join('\n'),
    );
  });
  beforeEach(() => (received = []));
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('speaks HTTP/1.1 with the light kubeconfig, the body sent whole', async () => {
    const api = createKubeApi(loadLightKubeConfig({ kubeconfigPath: file })!);
    const signal = new AbortController().signal;
    const answer = await api.request<{ kind: string }>({ method: 'PATCH', path: '/api/v1/namespaces/a/configmaps/x', body: { data: { k: 'v' } }, signal, mayWrite: () => true });
    assert.equal(answer.kind, 'ConfigMap');
    await api.request({ method: 'GET', path: '/api/v1/namespaces/a/configmaps/x' });
    assert.deepEqual(
      received.map((r) => [r.line, r.httpVersion, r.body]),
      [
        ['PATCH /api/v1/namespaces/a/configmaps/x', '1.1', '{"data":{"k":"v"}}'],
        ['GET /api/v1/namespaces/a/configmaps/x', '1.1', ''],
      ],
    );
  });

  it('speaks HTTP/1.1 with client-node\'s full kubeconfig too (exec plugins, auth providers)', async () => {
    const api = createKubeApi(loadKubeConfig({ kubeconfigPath: file }));
    await api.request({ method: 'POST', path: '/api/v1/namespaces/a/configmaps', body: { metadata: { name: 'x' } } });
    assert.deepEqual(received.map((r) => [r.line, r.httpVersion]), [['POST /api/v1/namespaces/a/configmaps', '1.1']]);
  });

  it('keeps a fenced write off the wire once the fence closes, on a kept-alive connection', async () => {
    const api = createKubeApi(loadLightKubeConfig({ kubeconfigPath: file })!);
    await api.request({ method: 'GET', path: '/warm' });
    await assert.rejects(
      api.request({ method: 'DELETE', path: '/api/v1/namespaces/a/configmaps/x', signal: new AbortController().signal, mayWrite: () => false }),
      /leadership lost/,
    );
    assert.deepEqual(received.map((r) => r.line), ['GET /warm']);
  });
});
