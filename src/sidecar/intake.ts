// The alert intake of the IDS VM (docs/process-mapping.md, "Alerts from the IDS VM"):
//   POST /intake/v1/alerts      Authorization: Bearer <intake token>; a JSON alert, an array, NDJSON
//                               (Suricata eve.json lines) or a text report with ?source=<tool>
//                               (intake-parser.ts) → 202 {accepted, skipped}
//   POST /intake/v1/credential  Authorization: Bearer <intake token> → 200 {token, epoch,
//                               expiresAt, renewAfter}: the current token, for a running guest
// The token is this MonitoredServer's, of the current or the previous rotation epoch
// (intake-credential.ts): 401 otherwise, and nothing is recorded. Bodies are bounded (413), bad
// JSON is a 400 naming the problem, and a token bucket limits the alerts a guest can post (429
// with Retry-After) before the alert reporter's own Event rate limit and status coalescing.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Counter } from 'prom-client';
import type { Clock } from '../kube/util/clock.ts';
import type { MapperEvent } from './events.ts';
import { bearerToken } from './api-auth.ts';
import { checkIntakeToken, currentIntakeToken, nextEpochStart, rotationEpoch, type IntakeSubject } from './intake-credential.ts';
import { INTAKE_MAX_ALERTS_PER_REQUEST, INTAKE_MAX_BODY_BYTES, parseIntakeJson, textReport, type IntakeAlert, type IntakeParse } from './intake-parser.ts';
import { sendJson } from './http-json.ts';

export const INTAKE_ALERTS_PATH = '/intake/v1/alerts';
export const INTAKE_CREDENTIAL_PATH = '/intake/v1/credential';

export interface IntakeOptions {
  /** The MonitoredServer's signing key (the operator's Secret, given to the mapper pod). */
  key: Buffer;
  subject: IntakeSubject;
  rotationMs: number;
  clock: Clock;
  /** Called with the accepted alerts of one request and the time they were received. */
  onAlerts: (alerts: IntakeAlert[], receivedAt: string) => void;
  /** Requests by result (accepted, unauthorized, invalid, too-large, rate-limited, renewed). */
  requests?: Counter<'result'>;
  maxBodyBytes?: number;
  /** Token bucket of alerts: at most `burst` at once, refilled at `perSecond`. */
  rateLimit?: { burst: number; perSecond: number };
}

export class AlertIntake {
  private tokens: number;
  private refilledAt: number;
  private readonly burst: number;
  private readonly perSecond: number;

  constructor(private readonly options: IntakeOptions) {
    this.burst = options.rateLimit?.burst ?? INTAKE_MAX_ALERTS_PER_REQUEST;
    this.perSecond = options.rateLimit?.perSecond ?? 20;
    this.tokens = this.burst;
    this.refilledAt = options.clock.now();
  }

  /** Serves the request when `path` is the intake's; false otherwise. */
  handle(path: string, req: IncomingMessage, res: ServerResponse): boolean {
    if (path !== INTAKE_ALERTS_PATH && path !== INTAKE_CREDENTIAL_PATH) return false;
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      sendJson(res, 405, { error: 'only POST is served' });
      return true;
    }
    const now = this.options.clock.now();
    const token = bearerToken(req);
    const check = token ? checkIntakeToken(this.options.key, this.options.subject, token, now, this.options.rotationMs) : { valid: false as const, reason: 'a bearer token is required (Authorization: Bearer <intake token>)' };
    if (!check.valid) {
      this.count('unauthorized');
      req.resume();
      sendJson(res, 401, { error: check.reason });
      return true;
    }
    if (path === INTAKE_CREDENTIAL_PATH) {
      req.resume();
      this.count('renewed');
      sendJson(res, 200, this.credential(now));
      return true;
    }
    void this.receive(req, res);
    return true;
  }

  /** The current token, when it expires (the end of the next epoch) and when to renew (half a period). */
  credential(now: number): { token: string; epoch: number; expiresAt: string; renewAfter: string } {
    const period = this.options.rotationMs;
    return {
      token: currentIntakeToken(this.options.key, this.options.subject, now, period),
      epoch: rotationEpoch(now, period),
      expiresAt: new Date(nextEpochStart(now, period) + period).toISOString(),
      renewAfter: new Date(now + period / 2).toISOString(),
    };
  }

  private async receive(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req, this.options.maxBodyBytes ?? INTAKE_MAX_BODY_BYTES);
    if (body === undefined) {
      this.count('too-large');
      res.setHeader('connection', 'close');
      return sendJson(res, 413, { error: `the body is larger than ${this.options.maxBodyBytes ?? INTAKE_MAX_BODY_BYTES} bytes` });
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    const type = (req.headers['content-type'] ?? '').toLowerCase();
    const parsed: IntakeParse = type.startsWith('text/plain') ? textReport(url.searchParams.get('source'), body) : parseIntakeJson(body);
    if (!parsed.ok) {
      this.count(parsed.status === 413 ? 'too-large' : 'invalid');
      return sendJson(res, parsed.status, { error: parsed.error });
    }
    const now = this.options.clock.now();
    if (!this.take(parsed.alerts.length, now)) {
      this.count('rate-limited');
      res.setHeader('retry-after', String(Math.ceil((parsed.alerts.length - this.tokens) / this.perSecond)));
      return sendJson(res, 429, { error: `too many alerts: at most ${this.burst} at once and ${this.perSecond} a second; retry later` });
    }
    this.count('accepted');
    if (parsed.alerts.length > 0) this.options.onAlerts(parsed.alerts, new Date(now).toISOString());
    sendJson(res, 202, { accepted: parsed.alerts.length, skipped: parsed.skipped });
  }

  private take(n: number, now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.refilledAt) / 1000) * this.perSecond);
    this.refilledAt = now;
    if (n > this.tokens) return false;
    this.tokens -= n;
    return true;
  }

  private count(result: string): void {
    this.options.requests?.inc({ result });
  }
}

/** The body as text, or undefined once it exceeds `max` bytes (the rest is not read). */
async function readBody(req: IncomingMessage, max: number): Promise<string | undefined> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > max) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The intake's alerts as the mapper's alert events (the reporter and /events take these). */
export function intakeAlertEvents(alerts: IntakeAlert[], receivedAt: string): Array<Extract<MapperEvent, { type: 'alert' }>> {
  return alerts.map((a) => ({ type: 'alert', time: receivedAt, rule: a.reason, message: a.message, source: a.source }));
}
