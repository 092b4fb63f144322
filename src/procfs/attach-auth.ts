// Who may attach the 9P process view: the token in Tattach's aname, checked by an injected
// AttachChecker. Two here: the Kubernetes one (TokenReview + SubjectAccessReview of `get
// monitoredservers/processes`, the same rule and cache as the mapper's HTTP API) and a fixed
// shared token from a file (development, tests, or a credential another component hands the IDS
// VM). Tokens are never logged; the fixed one is compared in constant time.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestAuthorizer } from '../sidecar/api-auth.ts';
import type { AttachChecker, AttachDecision } from './ninep-server.ts';

export function kubernetesAttachChecker(authorizer: Pick<RequestAuthorizer, 'authorizeToken'>): AttachChecker {
  return {
    async check(token: string): Promise<AttachDecision> {
      const d = await authorizer.authorizeToken(token);
      return d.allowed ? { allowed: true, user: d.user } : { allowed: false, reason: d.message };
    },
  };
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Accepts exactly one token (surrounding whitespace of the file is not part of it). */
export function sharedTokenChecker(expected: string, user = 'shared-token'): AttachChecker {
  const want = digest(expected.trim());
  if (expected.trim() === '') throw new Error('the shared procfs token is empty');
  return {
    check(token: string): Promise<AttachDecision> {
      return Promise.resolve(timingSafeEqual(digest(token), want) ? { allowed: true, user } : { allowed: false, reason: 'the token does not match' });
    },
  };
}

/**
 * The IDS VM's own credential: a current (or previous-epoch) intake token of this MonitoredServer
 * (src/sidecar/intake-credential.ts), the one its intake disk and renewals give it.
 */
export function intakeTokenAttachChecker(isValid: (token: string) => boolean): AttachChecker {
  return {
    check(token: string): Promise<AttachDecision> {
      return Promise.resolve(isValid(token) ? { allowed: true, user: 'ids-vm' } : { allowed: false, reason: 'not a current intake token of this MonitoredServer' });
    },
  };
}

/** Either checker accepts: the first that allows decides; otherwise the last refusal is the reason. */
export function anyAttachChecker(checkers: AttachChecker[]): AttachChecker {
  return {
    async check(token: string): Promise<AttachDecision> {
      let last: AttachDecision = { allowed: false, reason: 'no way to check tokens is configured' };
      for (const c of checkers) {
        last = await c.check(token);
        if (last.allowed) return last;
      }
      return last;
    },
  };
}
