// The last-moment write check: a request the fence refuses when it is about to be written never
// reaches the server, even if it was allowed when it was handed to the client (a freeze between the
// two is what let a resumed old leader write after the standby took over).
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, fetch } from 'undici';
import { fencedDispatcher } from '../../../src/kube/client/fenced-dispatcher.ts';

describe('fenced dispatcher', () => {
  let server: Server;
  let received: string[];
  let url: string;
  const agent = new Agent();

  before(async () => {
    server = createServer((req, res) => {
      received.push(`${req.method} ${req.url}`);
      res.end('{}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  beforeEach(() => (received = []));
  after(async () => {
    await agent.close();
    await new Promise((resolve) => server.close(resolve));
  });

  it('sends while the fence allows', async () => {
    const res = await fetch(`${url}/allowed`, { method: 'POST', body: '{}', dispatcher: fencedDispatcher(agent, () => true, () => new Error('lost')) });
    assert.equal(res.status, 200);
    await res.text();
    assert.deepEqual(received, ['POST /allowed']);
  });

  it('keeps a request off the wire when the fence closes between the call and the write', async () => {
    let open = true;
    const pending = fetch(`${url}/late`, { method: 'POST', body: '{}', dispatcher: fencedDispatcher(new Agent(), () => open, () => new Error('lease lost')) });
    // The connection is made asynchronously: the fence closes before the request can be written.
    open = false;
    await assert.rejects(pending, (err: Error) => /lease lost/.test(String((err as { cause?: Error }).cause?.message ?? err.message)));
    assert.deepEqual(received, [], 'the server never saw it');
  });

  it('refuses on a kept-alive connection too', async () => {
    const first = await fetch(`${url}/warm`, { dispatcher: agent });
    await first.text();
    await assert.rejects(fetch(`${url}/refused`, { method: 'DELETE', dispatcher: fencedDispatcher(agent, () => false, () => new Error('lease lost')) }));
    assert.deepEqual(received, ['GET /warm']);
  });
});
