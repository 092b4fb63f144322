// Reads kube-apiserver's audit log (JSON lines) to count the requests a client made.
import { readFileSync, existsSync } from 'node:fs';

export interface AuditEvent {
  verb: string;
  user: { username: string };
  userAgent?: string;
  requestURI: string;
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string; apiGroup?: string };
  responseStatus?: { code?: number };
  requestReceivedTimestamp: string;
  stage: string;
  requestObject?: unknown;
}

export const WRITE_VERBS = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);

export function readAudit(path: string): AuditEvent[] {
  if (!existsSync(path)) return [];
  const events: AuditEvent[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line) continue;
    try {
      const e = JSON.parse(line) as AuditEvent;
      // One entry per request: ResponseComplete (watches also log ResponseStarted).
      if (e.stage === 'ResponseComplete') events.push(e);
    } catch {
      // a line being written
    }
  }
  return events;
}

export interface AuditFilter {
  username?: string;
  since?: Date;
  until?: Date;
  writesOnly?: boolean;
  excludeResources?: string[];
}

export function auditRequests(path: string, filter: AuditFilter): AuditEvent[] {
  return readAudit(path).filter((e) => {
    if (filter.username && e.user.username !== filter.username) return false;
    const t = new Date(e.requestReceivedTimestamp);
    if (filter.since && t < filter.since) return false;
    if (filter.until && t > filter.until) return false;
    if (filter.writesOnly && !WRITE_VERBS.has(e.verb)) return false;
    if (filter.excludeResources?.includes(e.objectRef?.resource ?? '')) return false;
    return true;
  });
}

export function describeRequests(events: AuditEvent[]): string {
  return events
    .map((e) => `${e.requestReceivedTimestamp} ${e.verb} ${e.requestURI} -> ${e.responseStatus?.code}${e.requestObject ? `\n    ${JSON.stringify(e.requestObject).slice(0, 1500)}` : ''}`)
    .join('\n');
}
