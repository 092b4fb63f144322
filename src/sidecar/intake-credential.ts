// The IDS VM's credential for the alert intake (pure; shared by the operator, which hands tokens
// out, and the process mapper, which checks them). One signing key per MonitoredServer (a Secret
// in the operator's namespace) derives a token per rotation epoch:
//   token = "hsi1." + epoch + "." + base64url(HMAC-SHA256(key, "<namespace>/<name>/<epoch>"))
//   epoch = floor(now / rotationPeriod)
// The mapper accepts the current and the previous epoch's token (constant-time compare), so a token
// lives one to two periods; a running IDS guest renews it with the one it holds
// (POST /intake/v1/credential) and a booting one reads the current one from the Secret the
// operator rewrites each epoch. Another MonitoredServer's token, a token of an older epoch or one
// of the next epoch (no clock runs ahead by a period) is refused.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { LRUCache } from 'lru-cache';

export const INTAKE_TOKEN_PREFIX = 'hsi1';
/** Signing keys are 32 random bytes (base64 in the Secret). */
export const INTAKE_KEY_BYTES = 32;
export const DEFAULT_ROTATION_MS = 24 * 60 * 60 * 1000;
/** Below this a guest renewing every period/2 would spend its life renewing. */
export const MIN_ROTATION_MS = 10_000;

export interface IntakeSubject {
  namespace: string;
  name: string;
}

export function rotationEpoch(nowMs: number, periodMs: number): number {
  return Math.floor(nowMs / periodMs);
}

/** When the epoch after the one of `nowMs` starts: the operator rewrites the token Secret then. */
export function nextEpochStart(nowMs: number, periodMs: number): number {
  return (rotationEpoch(nowMs, periodMs) + 1) * periodMs;
}

/**
 * The MACs derived lately: the operator derives the same token on every reconcile of a
 * MonitoredServer and the mapper on every alert, and a keyed HMAC costs a key object each time (at
 * N=300 a tenth of the operator's reconcile CPU). Bounded; it holds nothing the process does not
 * already hold (the keys are in its cache or its environment).
 */
const recentMacs = new LRUCache<string, Buffer>({ max: 4096 });

function mac(key: Buffer, subject: IntakeSubject, epoch: number): Buffer {
  const message = `${subject.namespace}/${subject.name}/${epoch}`;
  const memo = `${key.toString('base64')}\0${message}`;
  const known = recentMacs.get(memo);
  if (known) return known;
  const digest = createHmac('sha256', key).update(message).digest();
  recentMacs.set(memo, digest);
  return digest;
}

export function deriveIntakeToken(key: Buffer, subject: IntakeSubject, epoch: number): string {
  return `${INTAKE_TOKEN_PREFIX}.${epoch}.${mac(key, subject, epoch).toString('base64url')}`;
}

/** The token for the epoch of `nowMs`. */
export function currentIntakeToken(key: Buffer, subject: IntakeSubject, nowMs: number, periodMs: number): string {
  return deriveIntakeToken(key, subject, rotationEpoch(nowMs, periodMs));
}

export type TokenCheck = { valid: true; epoch: number } | { valid: false; reason: string };

/** Whether `token` is this MonitoredServer's token of the current or the previous epoch. */
export function checkIntakeToken(key: Buffer, subject: IntakeSubject, token: string, nowMs: number, periodMs: number): TokenCheck {
  const m = /^hsi1\.(\d{1,15})\.([A-Za-z0-9_-]{43})$/.exec(token);
  if (!m) return { valid: false, reason: 'not an intake token' };
  const epoch = Number(m[1]);
  const current = rotationEpoch(nowMs, periodMs);
  if (epoch !== current && epoch !== current - 1) return { valid: false, reason: epoch < current ? 'the token has expired (older than the previous rotation period)' : 'the token is of a future rotation period' };
  const given = Buffer.from(m[2]!, 'base64url');
  const expected = mac(key, subject, epoch);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { valid: false, reason: 'the token is not valid for this MonitoredServer' };
  return { valid: true, epoch };
}

/** The signing key from its Secret value (base64 of at least 32 bytes), or an error naming the problem. */
export function parseIntakeKey(value: string | undefined): Buffer {
  const key = Buffer.from((value ?? '').trim(), 'base64');
  if (key.length < INTAKE_KEY_BYTES) throw new Error(`the intake signing key must be base64 of at least ${INTAKE_KEY_BYTES} bytes (got ${key.length})`);
  return key;
}
