// createKubeApi against a local HTTP server: what a caller's AbortSignal does to a request.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { createKubeApi, isAborted, KubeApiAbortedError, type KubeApi } from '../../../src/kube/client/rest.ts';
import { waitFor } from '../../../testenv/wait.ts';

describe('createKubeApi and AbortSignal', () => {
  let server: Server;
  let api: KubeApi;
  const received: string[] = [];
  /** Requests the server holds without answering, until the test answers or the client goes away. */
  const held: ServerResponse[] = [];

  before(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      received.push(`${req.method} ${req.url}`);
      if (req.url?.startsWith('/hang')) {
        held.push(res);
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"kind":"Status"}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'ctx', cluster: 'c', user: 'u' }],
      currentContext: 'ctx',
    });
    api = createKubeApi(kc);
  });

  afterEach(() => {
    received.length = 0;
    for (const res of held.splice(0)) res.destroy();
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('sends a request whose signal has not aborted', async () => {
    const signal = new AbortController().signal;
    assert.deepEqual(await api.request({ method: 'PATCH', path: '/ok', body: {}, signal }), { kind: 'Status' });
    assert.deepEqual(received, ['PATCH /ok']);
  });

  it('does not send a request whose signal has already aborted, and says why', async () => {
    const term = new AbortController();
    term.abort(new Error('lost Lease hyperspector-system/hyperspector-operator'));
    const err = await api.request({ method: 'PATCH', path: '/never', body: {}, signal: term.signal }).catch((e: unknown) => e);
    assert.ok(err instanceof KubeApiAbortedError);
    assert.equal(isAborted(err), true);
    assert.equal((err as Error).message, 'PATCH /never aborted: lost Lease hyperspector-system/hyperspector-operator');
    assert.equal((err as KubeApiAbortedError).statusCode, undefined);
    // Let a request that was sent anyway reach the server before looking.
    await api.request({ method: 'GET', path: '/ok' });
    assert.deepEqual(received, ['GET /ok']);
  });

  it('cuts off a request in flight when its signal aborts', async () => {
    const term = new AbortController();
    const pending = api.request({ method: 'DELETE', path: '/hang', signal: term.signal }).catch((e: unknown) => e);
    await waitFor(() => held.length === 1 || undefined, { timeoutMs: 5000, description: 'the request to reach the server' });
    const abortedAt = Date.now();
    term.abort(new Error('lost the lease'));
    const err = await pending;
    assert.ok(Date.now() - abortedAt < 1000, 'failed at once, not at the 30 s timeout');
    assert.equal(isAborted(err), true);
    assert.match((err as Error).message, /^DELETE \/hang aborted: lost the lease$/);
  });

  it('reports its own timeout as a failure, not as aborted by the caller', async () => {
    const err = await api.request({ method: 'GET', path: '/hang', timeoutMs: 50, signal: new AbortController().signal }).catch((e: unknown) => e);
    assert.equal(isAborted(err), false);
    assert.match((err as Error).message, /^GET \/hang failed: /);
  });
});
