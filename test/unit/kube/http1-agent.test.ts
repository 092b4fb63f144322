// The operator's agent puts a request on the wire in the same turn as the fence's last check, on a
// new connection and on a kept-alive one: the test "freezes" the client (a busy loop, queued as a
// microtask, so it runs right after the turn that passed the check) and a server on another thread
// notes when the request arrived. Over HTTP/2 the request arrives only after the freeze.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { request } from 'undici';
import { fencedDispatcher } from '../../../src/kube/client/fenced-dispatcher.ts';
import { http1Agent } from '../../../src/kube/client/http1-agent.ts';
import { createCertificateAuthority, issueCertificate } from '../../../testenv/cluster/certs.ts';
import { waitFor } from '../../../testenv/wait.ts';

// A TLS server offering h2 and http/1.1 (as kube-apiserver does), on its own thread so the client's
// freeze does not stop it; it posts each request's arrival time and HTTP version.
const SERVER = `
const { parentPort, workerData } = require('node:worker_threads');
const { readFileSync } = require('node:fs');
const { createSecureServer } = require('node:http2');
const server = createSecureServer({ key: readFileSync(workerData.key), cert: readFileSync(workerData.cert), allowHTTP1: true }, (req, res) => {
  parentPort.postMessage({ arrived: Date.now(), path: req.url, httpVersion: req.httpVersion });
  req.resume();
  req.on('end', () => res.end('{}'));
});
server.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
`;

interface Arrival {
  arrived: number;
  path: string;
  httpVersion: string;
}

describe('http1Agent: a request on the wire in the turn of the last check', function () {
  this.timeout(30_000);
  let dir: string;
  let worker: Worker;
  let port: number;
  const arrivals: Arrival[] = [];
  let ca: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'http1-agent-test-'));
    const authority = createCertificateAuthority(dir, 'ca');
    const leaf = issueCertificate(authority, dir, 'server', { commonName: 'apiserver', subjectAltNames: ['127.0.0.1'], usage: 'server' });
    ca = authority.cert;
    worker = new Worker(SERVER, { eval: true, workerData: leaf });
    port = await new Promise<number>((resolve) =>
      worker.on('message', (m: { port?: number } & Partial<Arrival>) => {
        if (m.port) resolve(m.port);
        else arrivals.push(m as Arrival);
      }),
    );
  });
  after(async () => {
    await worker.terminate();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Sends a fenced POST; right after the check passes, the client freezes for `freezeMs`. */
  async function sendFrozenAfterCheck(agent: ReturnType<typeof http1Agent>, path: string, freezeMs: number): Promise<{ checkedAt: number; arrival: Arrival }> {
    let checkedAt = 0;
    const mayWrite = () => {
      checkedAt = Date.now();
      queueMicrotask(() => {
        while (Date.now() - checkedAt < freezeMs) {
          // the process is frozen: nothing of it runs
        }
      });
      return true;
    };
    const { body } = await request(`https://127.0.0.1:${port}${path}`, { method: 'POST', body: '{"k":"v"}', dispatcher: fencedDispatcher(agent, mayWrite, () => new Error('lost')) });
    await body.text();
    // The server thread's message may come after the response.
    const arrival = await waitFor(() => arrivals.find((a) => a.path === path), { timeoutMs: 5000, intervalMs: 10, description: `the server to report ${path}` });
    return { checkedAt, arrival };
  }

  it('on a new connection and on a kept-alive one, over HTTP/1.1', async () => {
    const { readFileSync } = await import('node:fs');
    const agent = http1Agent({ ca: readFileSync(ca) });
    try {
      const fresh = await sendFrozenAfterCheck(agent, '/new-connection', 400);
      assert.equal(fresh.arrival.httpVersion, '1.1');
      assert.ok(fresh.arrival.arrived - fresh.checkedAt < 200, `the request arrived ${fresh.arrival.arrived - fresh.checkedAt} ms after the check, after the freeze`);
      const kept = await sendFrozenAfterCheck(agent, '/kept-alive', 400);
      assert.ok(kept.arrival.arrived - kept.checkedAt < 200, `the request arrived ${kept.arrival.arrived - kept.checkedAt} ms after the check, after the freeze`);
    } finally {
      await agent.close();
    }
  });
});
