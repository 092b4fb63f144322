// Reads kube-apiserver's audit log (JSON lines) to count the requests a client made.
import { closeSync, existsSync, openSync, readdirSync, readSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';

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
  const events: AuditEvent[] = [];
  forEachAuditLine(path, (line) => {
    const e = parseCompleted(line);
    if (e) events.push(e);
  });
  return events;
}

/** One entry per request: ResponseComplete (watches also log ResponseStarted); undefined otherwise. */
function parseCompleted(line: string): AuditEvent | undefined {
  try {
    const e = JSON.parse(line) as AuditEvent;
    return e.stage === 'ResponseComplete' ? e : undefined;
  } catch {
    return undefined; // a line being written
  }
}

/** The time lumberjack puts in a rotated file's name (UTC, sortable). */
const ROTATION_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3}$/;

/**
 * The log's files, oldest first: kube-apiserver rotates its audit log at 100 MB (lumberjack's
 * default), keeping the older part beside it as `<name>-<UTC time>.<ext>`, e.g.
 * `audit-2026-12-03T11-13-27.570.log`; a benchmark's log rotates several times.
 */
export function auditLogFiles(path: string): string[] {
  const dir = dirname(path);
  const ext = extname(path);
  const stem = basename(path, ext);
  const rotated = (f: string) => f.startsWith(`${stem}-`) && f.endsWith(ext) && ROTATION_TIME.test(f.slice(stem.length + 1, f.length - ext.length));
  const backups = existsSync(dir) ? readdirSync(dir).filter(rotated).sort() : [];
  return [...backups.map((f) => join(dir, f)), ...(existsSync(path) ? [path] : [])];
}

/**
 * Calls `onLine` for each line of the log (its rotated files first), read in chunks: a benchmark's
 * log can outgrow the longest string V8 can hold (about 512 MiB), so it is never read whole.
 */
function forEachAuditLine(path: string, onLine: (line: string) => void): void {
  for (const file of auditLogFiles(path)) forEachLineOf(file, onLine);
}

function forEachLineOf(path: string, onLine: (line: string) => void): void {
  const fd = openSync(path, 'r');
  try {
    const chunk = Buffer.alloc(8 << 20);
    const decoder = new StringDecoder('utf8'); // a chunk may end inside a multi-byte character
    let rest = '';
    for (;;) {
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      const text = rest + decoder.write(chunk.subarray(0, n));
      const lines = text.split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) if (line) onLine(line);
    }
    if (rest) onLine(rest);
  } finally {
    closeSync(fd);
  }
}

export interface AuditFilter {
  username?: string;
  /** Requests about objects in this namespace. */
  namespace?: string;
  since?: Date;
  until?: Date;
  writesOnly?: boolean;
  excludeResources?: string[];
}

export function auditRequests(path: string, filter: AuditFilter): AuditEvent[] {
  const events: AuditEvent[] = [];
  forEachAuditLine(path, (line) => {
    // Cheap test before parsing: most lines of a large log are other clients'.
    if (filter.username && !line.includes(`"username":${JSON.stringify(filter.username)}`)) return;
    if (filter.namespace && !line.includes(`"namespace":${JSON.stringify(filter.namespace)}`)) return;
    const e = parseCompleted(line);
    if (e && matches(e, filter)) events.push(e);
  });
  return events;
}

function matches(e: AuditEvent, filter: AuditFilter): boolean {
  if (filter.username && e.user.username !== filter.username) return false;
  if (filter.namespace && e.objectRef?.namespace !== filter.namespace) return false;
  const t = new Date(e.requestReceivedTimestamp);
  if (filter.since && t < filter.since) return false;
  if (filter.until && t > filter.until) return false;
  if (filter.writesOnly && !WRITE_VERBS.has(e.verb)) return false;
  if (filter.excludeResources?.includes(e.objectRef?.resource ?? '')) return false;
  return true;
}

export function describeRequests(events: AuditEvent[]): string {
  return events
    .map((e) => `${e.requestReceivedTimestamp} ${e.verb} ${e.requestURI} -> ${e.responseStatus?.code}${e.requestObject ? `\n    ${JSON.stringify(e.requestObject).slice(0, 1500)}` : ''}`)
    .join('\n');
}
