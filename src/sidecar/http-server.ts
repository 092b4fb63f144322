// The sidecar's HTTP API (docs/process-mapping.md):
//   GET /processes  the last consistent process table (JSON)
//   GET /processes/<pid>  one process read now in detail: threads, executable, open files
//   GET /sockets    the last socket scan: every socket user space holds, with pid and fd (ss -anp)
//   GET /events     server-sent events: process-start, process-exit, alert, guest-attached/-detached;
//                   honours Last-Event-ID to replay what a reconnecting client missed
//   GET /metrics    Prometheus
//   GET /healthz    200 while polling works (attached and polled recently), 503 otherwise
//   POST /intake/v1/alerts, /intake/v1/credential  the IDS VM's alert intake (intake.ts), its own token
// With an authorizer, the first three need a bearer token allowed to get monitoredservers/processes
// (api-auth.ts): 401 without one, 403 for a user without the right; /metrics and /healthz stay open.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Clock } from '../kube/util/clock.ts';
import type { MapperMetrics } from './metrics.ts';
import type { NumberedEvent, ProcessMapper } from './process-mapper.ts';
import type { VmiIdentity } from './qemu-finder.ts';
import type { RequestAuthorizer } from './api-auth.ts';
import type { AlertIntake } from './intake.ts';
import { sendJson } from './http-json.ts';

export interface SidecarServerDeps {
  mapper: ProcessMapper;
  metrics: MapperMetrics;
  vmi: VmiIdentity;
  pollIntervalMs: number;
  clock: Clock;
  /** Comment lines keep idle SSE connections open through proxies. */
  heartbeatMs?: number;
  /** Checks callers of /processes and /events; without it (development, loopback only) they are open. */
  authorizer?: Pick<RequestAuthorizer, 'authorize'>;
  /** The IDS VM's alert intake (intake.ts), authenticated with its own token; absent without a signing key. */
  intake?: Pick<AlertIntake, 'handle'>;
}

export function createSidecarServer(deps: SidecarServerDeps): Server {
  return createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (deps.intake?.handle(path, req, res)) return;
    if (req.method !== 'GET') return sendJson(res, 405, { error: 'only GET is served' });
    if (path === '/metrics') return void metrics(deps, res);
    if (path === '/healthz') return healthz(deps, res);
    if (!deps.authorizer) return route(deps, path, req, res);
    void deps.authorizer.authorize(req).then(
      (decision) => (decision.allowed ? route(deps, path, req, res) : sendJson(res, decision.status, { error: decision.message })),
      (err: Error) => sendJson(res, 503, { error: err.message }),
    );
  });
}

function route(deps: SidecarServerDeps, path: string, req: IncomingMessage, res: ServerResponse): void {
  const detail = /^\/processes\/(\d+)$/.exec(path);
  if (detail) return processDetails(deps, Number(detail[1]), res);
  switch (path) {
    case '/processes': return processes(deps, res);
    case '/sockets': return sockets(deps, res);
    case '/events': return events(deps, req, res);
    default: return sendJson(res, 404, { error: `no route ${path}` });
  }
}

function processes(deps: SidecarServerDeps, res: ServerResponse): void {
  const state = deps.mapper.state();
  if (!state.snapshot) {
    return sendJson(res, 503, { error: state.lastError ?? 'no snapshot yet', vmi: deps.vmi });
  }
  sendJson(res, 200, { vmi: deps.vmi, qemuPid: state.qemuPid, baselineLearning: state.baselineLearning, ...state.snapshot });
}

function sockets(deps: SidecarServerDeps, res: ServerResponse): void {
  const scan = deps.mapper.state().sockets;
  if (!scan) return sendJson(res, 503, { error: 'no socket scan yet (not attached, or the kernel profile cannot read sockets)', vmi: deps.vmi });
  sendJson(res, 200, { vmi: deps.vmi, ...scan });
}

function processDetails(deps: SidecarServerDeps, pid: number, res: ServerResponse): void {
  let details: unknown;
  try {
    details = deps.mapper.processDetails(pid);
  } catch (err) {
    return sendJson(res, 503, { error: `reading process ${pid} failed: ${(err as Error).message}` });
  }
  if (details === undefined) return sendJson(res, 404, { error: `no process ${pid} in the guest (or not attached)` });
  sendJson(res, 200, { vmi: deps.vmi, ...(details as object) });
}

function events(deps: SidecarServerDeps, req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  const write = ({ id, event }: NumberedEvent) => res.write(`id: ${id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
  const lastId = Number(req.headers['last-event-id'] ?? NaN);
  if (Number.isInteger(lastId)) for (const e of deps.mapper.eventsAfter(lastId)) write(e);
  res.write(': connected\n\n');
  const unsubscribe = deps.mapper.subscribe(write);
  const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), deps.heartbeatMs ?? 15_000);
  heartbeat.unref();
  req.on('close', () => {
    clearInterval(heartbeat);
    unsubscribe();
  });
}

async function metrics(deps: SidecarServerDeps, res: ServerResponse): Promise<void> {
  res.writeHead(200, { 'content-type': deps.metrics.registry.contentType });
  res.end(await deps.metrics.registry.metrics());
}

function healthz(deps: SidecarServerDeps, res: ServerResponse): void {
  const s = deps.mapper.state();
  const recent = s.lastPollAt !== undefined && deps.clock.now() - s.lastPollAt < 3 * deps.pollIntervalMs + 1000;
  const kernel = s.snapshot ? { kernelRelease: s.snapshot.kernel.release, profileSource: s.snapshot.kernel.profileSource } : {};
  if (recent && s.snapshot) return sendJson(res, 200, { status: 'ok', qemuPid: s.qemuPid, ...kernel });
  sendJson(res, 503, { status: 'unhealthy', reason: !recent ? 'poll loop stalled' : (s.lastError ?? 'not attached yet') });
}
