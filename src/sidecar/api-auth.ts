// Who may read the process mapper's API: a bearer token the API server authenticates (TokenReview)
// and whose user may `get` the subresource `monitoredservers/processes` of this MonitoredServer
// (SubjectAccessReview) — kube-rbac-proxy's convention. A server's command lines carry secrets, so
// the process table, one process's details and the event stream all need it; /metrics and /healthz
// stay open. Decisions are cached briefly by a hash of the token (allowed 60 s, denied 10 s).
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { KubeApi } from '../kube/client/rest.ts';
import type { Clock } from '../kube/util/clock.ts';
import { errorField } from '../kube/util/logger.ts';

export const PROCESSES_SUBRESOURCE = 'processes';

export type AuthDecision = { allowed: true; user: string } | { allowed: false; status: 401 | 403 | 503; message: string };

export interface RequestAuthorizerOptions {
  api: KubeApi;
  monitoredServer: { namespace: string; name: string };
  clock: Clock;
  allowedTtlMs?: number;
  deniedTtlMs?: number;
}

interface TokenReview {
  status?: { authenticated?: boolean; error?: string; user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> } };
}

interface SubjectAccessReview {
  status?: { allowed?: boolean; denied?: boolean; reason?: string };
}

export function bearerToken(req: IncomingMessage): string | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  return m?.[1];
}

export class RequestAuthorizer {
  private readonly cache = new Map<string, { decision: AuthDecision; until: number }>();

  constructor(private readonly options: RequestAuthorizerOptions) {}

  async authorize(req: IncomingMessage): Promise<AuthDecision> {
    const token = bearerToken(req);
    if (!token) return { allowed: false, status: 401, message: 'a bearer token is required (Authorization: Bearer <token>)' };
    return this.authorizeToken(token);
  }

  /** The same decision for a token that came another way (the 9P process view's attach name). */
  async authorizeToken(token: string): Promise<AuthDecision> {
    const key = createHash('sha256').update(token).digest('hex');
    const now = this.options.clock.now();
    const cached = this.cache.get(key);
    if (cached && cached.until > now) return cached.decision;
    const decision = await this.review(token);
    // An API server we could not ask decides nothing: not cached.
    if (decision.allowed || decision.status !== 503) {
      if (this.cache.size > 1000) this.cache.clear();
      this.cache.set(key, { decision, until: now + (decision.allowed ? (this.options.allowedTtlMs ?? 60_000) : (this.options.deniedTtlMs ?? 10_000)) });
    }
    return decision;
  }

  private async review(token: string): Promise<AuthDecision> {
    const { namespace, name } = this.options.monitoredServer;
    try {
      const review = await this.options.api.request<TokenReview>({
        method: 'POST',
        path: '/apis/authentication.k8s.io/v1/tokenreviews',
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } },
        timeoutMs: 10_000,
      });
      const user = review.status?.user;
      if (!review.status?.authenticated || !user?.username) return { allowed: false, status: 401, message: `the token was not accepted by the API server${review.status?.error ? `: ${review.status.error}` : ''}` };
      const access = await this.options.api.request<SubjectAccessReview>({
        method: 'POST',
        path: '/apis/authorization.k8s.io/v1/subjectaccessreviews',
        body: {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SubjectAccessReview',
          spec: {
            user: user.username,
            ...(user.uid ? { uid: user.uid } : {}),
            ...(user.groups ? { groups: user.groups } : {}),
            ...(user.extra ? { extra: user.extra } : {}),
            resourceAttributes: { namespace, name, verb: 'get', group: 'hyperspector.io', resource: 'monitoredservers', subresource: PROCESSES_SUBRESOURCE },
          },
        },
        timeoutMs: 10_000,
      });
      if (!access.status?.allowed) {
        return { allowed: false, status: 403, message: `user "${user.username}" cannot get monitoredservers/${PROCESSES_SUBRESOURCE} of ${namespace}/${name}${access.status?.reason ? `: ${access.status.reason}` : ''}` };
      }
      return { allowed: true, user: user.username };
    } catch (err) {
      return { allowed: false, status: 503, message: `cannot check the token with the API server: ${errorField(err)}` };
    }
  }
}
