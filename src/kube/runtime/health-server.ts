import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Logger, errorField, silentLogger } from '../util/logger.ts';
import type { OperatorMetrics } from './metrics.ts';

/** A health check: true/undefined when fine, false or a reason string when not. */
export type HealthCheck = () => boolean | string | undefined | Promise<boolean | string | undefined>;

export interface HealthServerOptions {
  /** 0 picks a free port (tests). */
  port: number;
  host?: string;
  metrics?: OperatorMetrics;
  logger?: Logger;
}

/**
 * Serves /metrics, /healthz (liveness) and /readyz (readiness) like controller-runtime's manager:
 * 200 "ok" when every check passes, 500 listing the failed checks otherwise; `?verbose` lists all.
 */
export class HealthServer {
  private readonly options: HealthServerOptions;
  private readonly log: Logger;
  private readonly liveness = new Map<string, HealthCheck>([['ping', () => true]]);
  private readonly readiness = new Map<string, HealthCheck>([['ping', () => true]]);
  private server: Server | undefined;

  constructor(options: HealthServerOptions) {
    this.options = options;
    this.log = options.logger ?? silentLogger();
  }

  addLivenessCheck(name: string, check: HealthCheck): void {
    this.liveness.set(name, check);
  }

  addReadinessCheck(name: string, check: HealthCheck): void {
    this.readiness.set(name, check);
  }

  /** Starts listening; resolves with the bound port. */
  async start(): Promise<number> {
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const respond = (status: number, body: string, contentType = 'text/plain; charset=utf-8') => {
        res.writeHead(status, { 'Content-Type': contentType });
        res.end(body);
      };
      const handle = async () => {
        if (req.method !== 'GET' && req.method !== 'HEAD') return respond(405, 'method not allowed\n');
        if (url.pathname === '/metrics' && this.options.metrics) {
          const { contentType, body } = await this.options.metrics.render();
          return respond(200, body, contentType);
        }
        if (url.pathname === '/healthz' || url.pathname === '/livez') return this.runChecks(this.liveness, url, respond);
        if (url.pathname === '/readyz') return this.runChecks(this.readiness, url, respond);
        return respond(404, 'not found\n');
      };
      handle().catch((err: unknown) => {
        this.log.error('Failed to serve health request', { path: url.pathname, err: errorField(err) });
        if (!res.headersSent) respond(500, 'internal error\n');
      });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port, this.options.host ?? '0.0.0.0', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const port = (server.address() as AddressInfo).port;
    this.log.info('Started health and metrics server', { port });
    return port;
  }

  /** Stops accepting connections, ends idle keep-alive ones, and waits for requests in flight. */
  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    await closed;
  }

  private async runChecks(checks: Map<string, HealthCheck>, url: URL, respond: (status: number, body: string) => void): Promise<void> {
    const results = await Promise.all(
      [...checks].map(async ([name, check]) => {
        try {
          const result = await check();
          return { name, ok: result === true || result === undefined, reason: typeof result === 'string' ? result : 'check failed' };
        } catch (err) {
          return { name, ok: false, reason: errorField(err) };
        }
      }),
    );
    const failed = results.filter((r) => !r.ok);
    const verbose = url.searchParams.has('verbose');
    const lines = results.filter((r) => verbose || !r.ok).map((r) => (r.ok ? `[+]${r.name} ok` : `[-]${r.name} failed: ${r.reason}`));
    if (failed.length > 0) return respond(500, `${lines.join('\n')}\n${url.pathname.slice(1)} check failed\n`);
    respond(200, verbose ? `${lines.join('\n')}\n${url.pathname.slice(1)} check passed\n` : 'ok');
  }
}

/** Readiness: every informer has synced. */
export function informersSyncedCheck(informers: Array<{ name: string; hasSynced(): boolean }>): HealthCheck {
  return () => {
    const pending = informers.filter((i) => !i.hasSynced()).map((i) => i.name);
    return pending.length === 0 ? true : `informers not synced: ${pending.join(', ')}`;
  };
}

/** Readiness with leader election: leading with a fresh lease, or standing by and able to read it. */
export function leaderElectionCheck(elector: { healthy(): boolean; isLeader(): boolean }): HealthCheck {
  return () => (elector.healthy() ? true : elector.isLeader() ? 'lease not renewed in time' : 'cannot read the lease');
}
