// What the IDS VM's tools post to the alert intake, read into alerts (pure). Accepted bodies:
// - JSON: one alert {source, rule, severity?, message, time?, details?} or an array of them;
// - NDJSON: one JSON object a line, e.g. Suricata's eve.json as it is written: only lines with
//   event_type "alert" are alerts (signature, src/dest ip:port, proto); other event types (flow,
//   stats, dns...) are skipped, counted;
// - text (Content-Type text/plain) with ?source=<tool>: a report, one alert; AIDE's report
//   (source aide) is summarized (added/removed/changed entries and the first paths), and a report
//   saying AIDE found no differences is no alert.
// Every alert gets its Event reason from its source: SuricataAlert, FileIntegrityChanged (AIDE),
// IDSToolAlert (any other tool). Nothing from the guest is trusted: strings are bounded and
// stripped of control characters; a tool's own time is kept in the message, never used as the
// alert's time (the intake's clock is), so a guest cannot back-date or post-date an alert burst.

export const INTAKE_MAX_BODY_BYTES = 1024 * 1024;
export const INTAKE_MAX_ALERTS_PER_REQUEST = 500;
const MAX_MESSAGE = 900;
const MAX_FIELD = 200;

export const INTAKE_REASONS = { suricata: 'SuricataAlert', aide: 'FileIntegrityChanged', other: 'IDSToolAlert' } as const;
export type IntakeReason = (typeof INTAKE_REASONS)[keyof typeof INTAKE_REASONS];

export interface IntakeAlert {
  /** The tool (suricata, aide, or any name a tool gives). */
  source: string;
  /** The Event reason and the rule status.alerts and the counter carry. */
  reason: IntakeReason;
  /** What people read: the tool's rule, severity, what it saw. */
  message: string;
}

export type IntakeParse = { ok: true; alerts: IntakeAlert[]; skipped: number } | { ok: false; status: 400 | 413; error: string };

const SOURCE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function reasonOf(source: string): IntakeReason {
  const s = source.toLowerCase();
  return s === 'suricata' ? INTAKE_REASONS.suricata : s === 'aide' ? INTAKE_REASONS.aide : INTAKE_REASONS.other;
}

/** Printable, one line, at most `max` characters. */
function clean(value: unknown, max = MAX_FIELD): string {
  const s = typeof value === 'string' ? value : typeof value === 'number' || typeof value === 'boolean' ? String(value) : '';
  // eslint-disable-next-line no-control-regex
  const line = s.replace(/[\u0000-\u001f\u007f]+/g, ' ').replace(/ {2,}/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

function alert(source: string, message: string): IntakeAlert {
  return { source, reason: reasonOf(source), message: clean(message, MAX_MESSAGE) };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function endpoint(ip: unknown, port: unknown): string {
  const host = clean(ip, 64) || '?';
  const p = clean(port, 8);
  return p ? (host.includes(':') ? `[${host}]:${p}` : `${host}:${p}`) : host;
}

/** One line of Suricata's eve.json: an alert, or undefined for the other event types. */
export function eveAlert(event: Record<string, unknown>): IntakeAlert | undefined {
  if (event.event_type !== 'alert') return undefined;
  const a = isObject(event.alert) ? event.alert : {};
  const sid = [a.gid, a.signature_id, a.rev].every((x) => typeof x === 'number') ? ` [${a.gid as number}:${a.signature_id as number}:${a.rev as number}]` : '';
  const severity = typeof a.severity === 'number' ? `, severity ${a.severity}` : '';
  const category = a.category ? `, ${clean(a.category, 80)}` : '';
  const at = event.timestamp ? ` at ${clean(event.timestamp, 40)}` : '';
  const action = a.action ? ` (${clean(a.action, 16)})` : '';
  return alert('suricata', `suricata${sid} ${clean(a.signature) || 'alert'}${severity}${category}: ${clean(event.proto, 16) || 'IP'} ${endpoint(event.src_ip, event.src_port)} -> ${endpoint(event.dest_ip, event.dest_port)}${action}${at}`);
}

/** One alert object {source, rule, severity?, message, time?, details?}; a string names what is wrong. */
export function genericAlert(value: unknown): IntakeAlert | string {
  if (!isObject(value)) return 'an alert must be a JSON object';
  if ('event_type' in value) return eveAlert(value) ?? 'skip';
  const source = value.source;
  if (typeof source !== 'string' || !SOURCE.test(source)) return 'source must be a tool name (1-63 characters of [A-Za-z0-9._-])';
  if (typeof value.rule !== 'string' || !value.rule.trim()) return 'rule must be a non-empty string';
  if (typeof value.message !== 'string' || !value.message.trim()) return 'message must be a non-empty string';
  if (value.time !== undefined && (typeof value.time !== 'string' || Number.isNaN(Date.parse(value.time)))) return 'time must be an RFC 3339 time';
  if (source.toLowerCase() === 'aide' && value.message.includes('\n')) return aideAlert(value.message) ?? 'skip';
  const severity = value.severity !== undefined ? `, severity ${clean(value.severity, 16)}` : '';
  const at = value.time ? ` at ${clean(value.time, 40)}` : '';
  const details = value.details !== undefined ? ` (details: ${clean(JSON.stringify(value.details), 300)})` : '';
  return alert(source, `${clean(source, 63)} [${clean(value.rule, 100)}${severity}] ${clean(value.message, 500)}${at}${details}`);
}

/** AIDE's report text: one alert summarizing what changed, or undefined when it found nothing. */
export function aideAlert(report: string): IntakeAlert | undefined {
  if (/found NO differences/i.test(report)) return undefined;
  const count = (what: string) => Number(new RegExp(`^\\s*${what} entries:\\s*(\\d+)`, 'mi').exec(report)?.[1] ?? NaN);
  const [added, removed, changed] = [count('Added'), count('Removed'), count('Changed')];
  const paths: string[] = [];
  let section = '';
  for (const line of report.split('\n')) {
    const heading = /^(Added|Removed|Changed) entries:\s*$/.exec(line.trim());
    if (heading) section = heading[1]!.toLowerCase();
    // Entry lines: "<attribute flags>: <path>" (f++++++++++++++++: /etc/x, f   ...    .C... : /etc/passwd).
    const entry = /^[a-zA-Z!][^:]{0,40}:\s+(\/\S.*)$/.exec(line.trim());
    if (section && entry && paths.length < 10) paths.push(`${section} ${clean(entry[1], 120)}`);
  }
  const summary = [added, removed, changed].every(Number.isNaN) ? 'differences' : `${added || 0} added, ${removed || 0} removed, ${changed || 0} changed`;
  if (!/differences/i.test(report) && paths.length === 0 && summary === 'differences') return alert('aide', `aide report: ${clean(report, 400)}`);
  return alert('aide', `aide found file changes on the server's disks: ${summary}${paths.length ? `: ${paths.join('; ')}` : ''}`);
}

/** A text report of `source` (query parameter): AIDE's is summarized, any other tool's is one alert. */
export function textReport(source: string | null, body: string): IntakeParse {
  if (!source || !SOURCE.test(source)) return { ok: false, status: 400, error: 'a text body needs ?source=<tool> (1-63 characters of [A-Za-z0-9._-])' };
  if (!body.trim()) return { ok: false, status: 400, error: 'the report is empty' };
  if (source.toLowerCase() === 'aide') {
    const a = aideAlert(body);
    return { ok: true, alerts: a ? [a] : [], skipped: a ? 0 : 1 };
  }
  return { ok: true, alerts: [alert(source, `${clean(source, 63)}: ${clean(body, 800)}`)], skipped: 0 };
}

function collect(values: unknown[], where: (i: number) => string): IntakeParse {
  if (values.length > INTAKE_MAX_ALERTS_PER_REQUEST) return { ok: false, status: 413, error: `at most ${INTAKE_MAX_ALERTS_PER_REQUEST} alerts per request (got ${values.length})` };
  const alerts: IntakeAlert[] = [];
  let skipped = 0;
  for (const [i, v] of values.entries()) {
    const a = genericAlert(v);
    if (a === 'skip') skipped++;
    else if (typeof a === 'string') return { ok: false, status: 400, error: `${where(i)}: ${a}` };
    else alerts.push(a);
  }
  return { ok: true, alerts, skipped };
}

/** A JSON body: one object, an array, or NDJSON (one object a line). */
export function parseIntakeJson(body: string): IntakeParse {
  const text = body.trim();
  if (!text) return { ok: false, status: 400, error: 'the body is empty: post a JSON alert, an array of them, or eve.json lines' };
  try {
    const whole: unknown = JSON.parse(text);
    return Array.isArray(whole) ? collect(whole, (i) => `alert ${i}`) : collect([whole], () => 'the alert');
  } catch (err) {
    const lines = text.split('\n').map((l) => l.trim());
    if (lines.length < 2) return { ok: false, status: 400, error: `the body is not JSON: ${(err as Error).message}` };
    const values: unknown[] = [];
    const lineNumbers: number[] = [];
    for (const [i, line] of lines.entries()) {
      if (!line) continue;
      try {
        values.push(JSON.parse(line));
        lineNumbers.push(i + 1);
      } catch (lineErr) {
        return { ok: false, status: 400, error: `line ${i + 1} is not JSON: ${(lineErr as Error).message}` };
      }
    }
    return collect(values, (i) => `line ${lineNumbers[i]}`);
  }
}
