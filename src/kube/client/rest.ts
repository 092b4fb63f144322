// RequestContext from its own module: client-node's index would load its whole generated API.
import { RequestContext } from '@kubernetes/client-node/dist/gen/http/http.js';
import type { KubeAuth } from './light-kubeconfig.ts';
import { getGlobalDispatcher, request as undiciRequest } from 'undici';
import { fencedDispatcher } from './fenced-dispatcher.ts';
import { STATUS_CODES } from 'node:http';

/**
 * A thin JSON client for any API path, on the same auth/TLS plumbing as client-node's Watch.
 * Used where client-node's typed clients fall short: server-side apply with fieldValidation,
 * MicroTime fields written with microsecond precision, per-request timeouts, any resource by path.
 */
export interface ApiRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  /** Serialized as JSON unless already a string. */
  body?: unknown;
  /** Defaults to application/json; use application/apply-patch+yaml for server-side apply. */
  contentType?: string;
  /** Aborts the request after this long; defaults to the client's timeout. */
  timeoutMs?: number;
  /**
   * Cancels the request: not sent when already aborted, cut off when aborted in flight. Requests
   * made on behalf of a reconcile pass the reconcile's signal, which aborts when the leadership
   * term ends.
   */
  signal?: AbortSignal;
  /**
   * Asked right before the request is written to a connection (fenced-dispatcher.ts): false stops
   * it there. Leadership fencing sets it (leader-election.ts fenceApi).
   */
  mayWrite?: () => boolean;
}

export interface KubeApi {
  request<T = unknown>(req: ApiRequest): Promise<T>;
}

/** A failed API call: `statusCode` is the HTTP status, undefined when the server was not reached. */
export class KubeApiError extends Error {
  constructor(
    message: string,
    readonly statusCode: number | undefined,
    /** metav1.Status reason, e.g. NotFound, Conflict, Expired, Invalid. */
    readonly reason?: string,
    readonly status?: unknown,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'KubeApiError';
  }
}

export interface KubeApiOptions {
  /** Default per-request timeout; 30 s. */
  timeoutMs?: number;
}

export function createKubeApi(kubeConfig: KubeAuth, options: KubeApiOptions = {}): KubeApi {
  const defaultTimeoutMs = options.timeoutMs ?? 30_000;
  // client-node builds a new connection pool (and so a new TLS handshake) for every request; one
  // pool per client keeps connections alive across requests. Auth headers are still applied per
  // request, so refreshed tokens are picked up.
  let dispatcher: ReturnType<RequestContext['getDispatcher']>;
  return {
    async request<T>(req: ApiRequest): Promise<T> {
      throwIfAborted(req);
      const cluster = kubeConfig.getCurrentCluster();
      if (!cluster) throw new KubeApiError(`${req.method} ${req.path} failed: kubeconfig has no current cluster`, undefined);
      const url = new URL(cluster.server.replace(/\/$/, '') + req.path);
      for (const [key, value] of Object.entries(req.query ?? {})) {
        if (value !== undefined) url.searchParams.set(key, String(value));
      }
      const ctx = new RequestContext(url.toString(), req.method);
      await kubeConfig.applySecurityAuthentication(ctx);
      // As kubectl asks: aggregated APIs (KubeVirt's subresources) declare routes that produce */*.
      const headers: Record<string, string> = { ...ctx.getHeaders(), Accept: 'application/json, */*' };
      let body: string | undefined;
      if (req.body !== undefined) {
        body = typeof req.body === 'string' ? req.body : JSON.stringify(req.body);
        headers['Content-Type'] = req.contentType ?? 'application/json';
      }
      const timeout = AbortSignal.timeout(req.timeoutMs ?? defaultTimeoutMs);
      const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
      dispatcher ??= ctx.getDispatcher();
      // Authentication may have taken a while (a token refresh): look again before sending.
      throwIfAborted(req);
      let response;
      try {
        const via = req.mayWrite ? fencedDispatcher(dispatcher ?? getGlobalDispatcher(), req.mayWrite, () => new Error(`${req.method} ${req.path} not sent: no longer allowed to write (leadership lost)`)) : dispatcher;
        // undici's request(), not fetch(): a string body is written with the headers, in the same
        // turn as the fence's last check; fetch streams it from a later microtask.
        response = await undiciRequest(url, { method: req.method, headers, body, signal, ...(via ? { dispatcher: via } : {}) });
      } catch (err) {
        throwIfAborted(req, err);
        throw new KubeApiError(`${req.method} ${req.path} failed: ${describeNetworkError(err)}`, undefined, undefined, undefined, { cause: err });
      }
      let text: string;
      try {
        text = await response.body.text();
      } catch (err) {
        throwIfAborted(req, err);
        throw new KubeApiError(`${req.method} ${req.path} failed reading the response: ${describeNetworkError(err)}`, undefined, undefined, undefined, { cause: err });
      }
      const parsed = parseJson(text);
      if (response.statusCode < 200 || response.statusCode > 299) {
        const status = parsed as { message?: string; reason?: string } | undefined;
        const detail = status?.message ?? (text.slice(0, 300) || (STATUS_CODES[response.statusCode] ?? ''));
        throw new KubeApiError(`${req.method} ${req.path} failed with ${response.statusCode}: ${detail}`, response.statusCode, status?.reason, parsed);
      }
      return parsed as T;
    },
  };
}

/**
 * A request cancelled through its signal fails with KubeApiAbortedError, whose message gives the
 * signal's reason (e.g. the lost lease), so callers can tell it from a timeout or a network failure.
 */
export class KubeApiAbortedError extends KubeApiError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, undefined, undefined, undefined, options);
    this.name = 'KubeApiAbortedError';
  }
}

function throwIfAborted(req: ApiRequest, cause?: unknown): void {
  if (!req.signal?.aborted) return;
  const reason: unknown = req.signal.reason;
  const why = reason instanceof Error ? reason.message : String(reason);
  throw new KubeApiAbortedError(`${req.method} ${req.path} aborted: ${why}`, { cause: cause ?? reason });
}

/** True for a request its caller cancelled (see ApiRequest.signal), not for a timeout. */
export const isAborted = (err: unknown): boolean => err instanceof KubeApiAbortedError;

function parseJson(text: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function describeNetworkError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: unknown }).cause;
  // undici reports "fetch failed" and keeps the useful part (ECONNREFUSED, ...) in the cause.
  if (cause instanceof Error && cause.message) return `${err.message}: ${cause.message}`;
  return err.message;
}

/** HTTP status of an error from KubeApi, client-node's ApiException or Watch; undefined otherwise. */
export function statusCodeOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { statusCode?: unknown; code?: unknown };
  if (typeof e.statusCode === 'number') return e.statusCode;
  if (typeof e.code === 'number') return e.code;
  return undefined;
}

export const isNotFound = (err: unknown): boolean => statusCodeOf(err) === 404;
export const isConflict = (err: unknown): boolean => statusCodeOf(err) === 409;
export const isGone = (err: unknown): boolean => statusCodeOf(err) === 410;
