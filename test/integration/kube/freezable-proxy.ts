// A TCP proxy in front of the API server that can freeze its connections: they stay open but no
// byte passes in either direction, which is how a watch "goes silent" behind a broken load
// balancer or NAT. A network fault injector, not a fake API server: TLS and HTTP pass through.
import { type Server, type Socket, createServer, connect } from 'node:net';

interface Pair {
  client: Socket;
  upstream: Socket;
}

export class FreezableProxy {
  private readonly pairs = new Set<Pair>();
  private readonly server: Server;
  port = 0;

  private constructor(targetHost: string, targetPort: number) {
    this.server = createServer((client) => {
      const upstream = connect(targetPort, targetHost);
      const pair = { client, upstream };
      this.pairs.add(pair);
      client.pipe(upstream);
      upstream.pipe(client);
      const drop = () => {
        this.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
    });
  }

  static async start(targetHost: string, targetPort: number): Promise<FreezableProxy> {
    const proxy = new FreezableProxy(targetHost, targetPort);
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    const address = proxy.server.address();
    if (typeof address !== 'object' || !address) throw new Error('proxy has no address');
    proxy.port = address.port;
    return proxy;
  }

  /** Stops every current connection from carrying data, without closing it. New connections work. */
  freezeAll(): number {
    for (const { client, upstream } of this.pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
    return this.pairs.size;
  }

  async close(): Promise<void> {
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
