import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FakeClock } from '../../../src/kube/testing/fake-clock.ts';
import { AlertIntake, INTAKE_ALERTS_PATH, INTAKE_CREDENTIAL_PATH, intakeAlertEvents } from '../../../src/sidecar/intake.ts';
import { checkIntakeToken, currentIntakeToken, deriveIntakeToken, nextEpochStart, parseIntakeKey, rotationEpoch } from '../../../src/sidecar/intake-credential.ts';
import { AIDE_REPORT, EVE_ALERT } from '../../../testenv/fixtures/ids-alerts.ts';
import { aideAlert, eveAlert, INTAKE_MAX_ALERTS_PER_REQUEST, parseIntakeJson, reasonOf, textReport, type IntakeAlert } from '../../../src/sidecar/intake-parser.ts';

const KEY = Buffer.alloc(32, 7);
const OTHER_KEY = Buffer.alloc(32, 8);
const WEB = { namespace: 'shop', name: 'web-1' };
const HOUR = 3_600_000;

describe('IDS VM alert intake', () => {
  describe('credential', () => {
    it('epochs are floor(now / period); the next starts at the boundary', () => {
      assert.equal(rotationEpoch(0, HOUR), 0);
      assert.equal(rotationEpoch(HOUR - 1, HOUR), 0);
      assert.equal(rotationEpoch(HOUR, HOUR), 1);
      assert.equal(nextEpochStart(HOUR + 5, HOUR), 2 * HOUR);
    });

    it('derives a readable, deterministic token per MonitoredServer and epoch', () => {
      const t = deriveIntakeToken(KEY, WEB, 5);
      assert.match(t, /^hsi1\.5\.[A-Za-z0-9_-]{43}$/);
      assert.equal(deriveIntakeToken(KEY, WEB, 5), t);
      assert.notEqual(deriveIntakeToken(KEY, WEB, 6), t);
      assert.notEqual(deriveIntakeToken(KEY, { namespace: 'shop', name: 'web-2' }, 5), t);
      assert.notEqual(deriveIntakeToken(KEY, { namespace: 'shop-web', name: '1' }, 5), t);
      assert.notEqual(deriveIntakeToken(OTHER_KEY, WEB, 5), t);
    });

    const now = 10 * HOUR + 123;
    const cases: Array<[string, string, boolean, RegExp?]> = [
      ['the current epoch', deriveIntakeToken(KEY, WEB, 10), true],
      ['the previous epoch', deriveIntakeToken(KEY, WEB, 9), true],
      ['two epochs old', deriveIntakeToken(KEY, WEB, 8), false, /expired/],
      ['the next epoch', deriveIntakeToken(KEY, WEB, 11), false, /future/],
      ['another MonitoredServer', deriveIntakeToken(KEY, { namespace: 'shop', name: 'db-1' }, 10), false, /not valid for this MonitoredServer/],
      ['another key', deriveIntakeToken(OTHER_KEY, WEB, 10), false, /not valid/],
      ['an epoch rewritten on a valid MAC', deriveIntakeToken(KEY, WEB, 10).replace('hsi1.10.', 'hsi1.9.'), false, /not valid/],
      ['garbage', 'hunter2', false, /not an intake token/],
      ['a cut MAC', deriveIntakeToken(KEY, WEB, 10).slice(0, -1), false, /not an intake token/],
    ];
    for (const [what, token, valid, reason] of cases) {
      it(`${valid ? 'accepts' : 'refuses'} a token of ${what}`, () => {
        const check = checkIntakeToken(KEY, WEB, token, now, HOUR);
        assert.equal(check.valid, valid);
        if (!check.valid && reason) assert.match(check.reason, reason);
      });
    }

    it('reads the key from base64 and refuses a short one', () => {
      assert.deepEqual(parseIntakeKey(KEY.toString('base64')), KEY);
      assert.throws(() => parseIntakeKey(Buffer.alloc(16).toString('base64')), /at least 32 bytes/);
      assert.throws(() => parseIntakeKey(undefined), /at least 32 bytes/);
    });
  });

  describe('parser', () => {
    it('maps a source to its Event reason', () => {
      assert.deepEqual(['suricata', 'Suricata', 'aide', 'ossec', 'clamav'].map(reasonOf), ['SuricataAlert', 'SuricataAlert', 'FileIntegrityChanged', 'IDSToolAlert', 'IDSToolAlert']);
    });

    it('reads a Suricata eve.json alert: signature, ids, severity, proto, endpoints', () => {
      const a = eveAlert(EVE_ALERT);
      assert.deepEqual(a, { source: 'suricata', reason: 'SuricataAlert', message: 'suricata [1:2100498:7] GPL ATTACK_RESPONSE id check returned root, severity 2, Potentially Bad Traffic: TCP 10.0.0.66:4444 -> 10.0.0.5:80 (allowed) at 2026-12-02T03:00:00.123456+0000' });
      assert.match(eveAlert({ ...EVE_ALERT, src_ip: 'fd00::1', src_port: 1 })!.message, /\[fd00::1\]:1 ->/);
      assert.equal(eveAlert({ event_type: 'flow' }), undefined);
    });

    it('takes only the alerts of NDJSON eve.json and names a bad line', () => {
      const ndjson = [JSON.stringify({ event_type: 'stats' }), JSON.stringify(EVE_ALERT), '', JSON.stringify({ event_type: 'flow' }), JSON.stringify({ ...EVE_ALERT, alert: { ...EVE_ALERT.alert, signature: 'second' } })].join('\n');
      const parsed = parseIntakeJson(ndjson);
      assert.ok(parsed.ok);
      assert.equal(parsed.alerts.length, 2);
      assert.equal(parsed.skipped, 2);
      assert.match(parsed.alerts[1]!.message, /second/);
      const bad = parseIntakeJson(`${JSON.stringify(EVE_ALERT)}\n{oops`);
      assert.deepEqual(bad.ok ? 'ok' : [bad.status, /^line 2 is not JSON/.test(bad.error)], [400, true]);
    });

    it('reads one generic alert, or an array; a tool’s time stays in the message', () => {
      const one = parseIntakeJson(JSON.stringify({ source: 'ossec', rule: '5710', severity: 'high', message: 'sshd: attempt to login using a non-existent user', time: '2026-12-02T03:00:00Z', details: { user: 'admin' } }));
      assert.ok(one.ok);
      assert.deepEqual(one.alerts, [{ source: 'ossec', reason: 'IDSToolAlert', message: 'ossec [5710, severity high] sshd: attempt to login using a non-existent user at 2026-12-02T03:00:00Z (details: {"user":"admin"})' }]);
      const many = parseIntakeJson(JSON.stringify([{ source: 'suricata', rule: 'x', message: 'y' }, EVE_ALERT]));
      assert.ok(many.ok);
      assert.deepEqual(many.alerts.map((a) => a.reason), ['SuricataAlert', 'SuricataAlert']);
    });

    const invalid: Array<[string, string, number, RegExp]> = [
      ['empty', '  ', 400, /empty/],
      ['not JSON', '{oops', 400, /not JSON/],
      ['a number', '42', 400, /must be a JSON object/],
      ['no source', JSON.stringify({ rule: 'r', message: 'm' }), 400, /source must be a tool name/],
      ['a bad source', JSON.stringify({ source: '../x', rule: 'r', message: 'm' }), 400, /source must be a tool name/],
      ['no rule', JSON.stringify({ source: 's', message: 'm' }), 400, /rule must be/],
      ['no message', JSON.stringify({ source: 's', rule: 'r' }), 400, /message must be/],
      ['a bad time', JSON.stringify({ source: 's', rule: 'r', message: 'm', time: 'yesterday' }), 400, /time must be an RFC 3339 time/],
      ['the second of an array bad', JSON.stringify([{ source: 's', rule: 'r', message: 'm' }, { source: 's' }]), 400, /^alert 1: rule must be/],
      ['too many alerts', JSON.stringify(Array.from({ length: INTAKE_MAX_ALERTS_PER_REQUEST + 1 }, () => EVE_ALERT)), 413, /at most 500 alerts/],
    ];
    for (const [what, body, status, error] of invalid) {
      it(`refuses ${what} (${status})`, () => {
        const parsed = parseIntakeJson(body);
        assert.equal(parsed.ok, false);
        if (!parsed.ok) {
          assert.equal(parsed.status, status);
          assert.match(parsed.error, error);
        }
      });
    }

    it('summarizes an AIDE report; no differences is no alert', () => {
      assert.deepEqual(aideAlert(AIDE_REPORT), { source: 'aide', reason: 'FileIntegrityChanged', message: "aide found file changes on the server's disks: 1 added, 0 removed, 1 changed: added /srv/server/root/etc/cron.d/evil; changed /srv/server/root/etc/passwd" });
      assert.equal(aideAlert('Start timestamp: x\nAIDE found NO differences between database and filesystem. Looks okay!!\n'), undefined);
      const text = textReport('aide', AIDE_REPORT);
      assert.ok(text.ok);
      assert.equal(text.alerts[0]?.reason, 'FileIntegrityChanged');
      const json = parseIntakeJson(JSON.stringify({ source: 'aide', rule: 'check', message: AIDE_REPORT }));
      assert.ok(json.ok);
      assert.deepEqual(json.alerts, text.alerts);
    });

    it('a text report needs its source; control characters are stripped', () => {
      assert.deepEqual(textReport(null, 'x'), { ok: false, status: 400, error: 'a text body needs ?source=<tool> (1-63 characters of [A-Za-z0-9._-])' });
      const r = textReport('rkhunter', 'Warning: \u001b[31mrootkit\u0000 found\n');
      assert.ok(r.ok);
      assert.equal(r.alerts[0]?.message, 'rkhunter: Warning: [31mrootkit found');
    });
  });

  describe('endpoint', () => {
    let server: Server;
    let url: string;
    const clock = new FakeClock(100 * HOUR + 1000);
    const received: IntakeAlert[][] = [];
    const intake = new AlertIntake({ key: KEY, subject: WEB, rotationMs: HOUR, clock, onAlerts: (alerts) => received.push(alerts), maxBodyBytes: 64 * 1024, rateLimit: { burst: 10, perSecond: 1 } });

    before(async () => {
      server = createServer((req, res) => {
        if (!intake.handle(new URL(req.url ?? '/', 'http://x').pathname, req, res)) res.writeHead(404).end();
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(() => {
      server.closeAllConnections();
      server.close();
    });
    beforeEach(() => (received.length = 0));

    const post = (path: string, body: string, token?: string, type = 'application/json') =>
      fetch(`${url}${path}`, { method: 'POST', body, headers: { 'content-type': type, ...(token ? { authorization: `Bearer ${token}` } : {}) } });
    const token = () => currentIntakeToken(KEY, WEB, clock.now(), HOUR);

    it('refuses without a valid token (401) and records nothing', async () => {
      for (const t of [undefined, 'nope', deriveIntakeToken(KEY, WEB, 98), deriveIntakeToken(KEY, { namespace: 'shop', name: 'db-1' }, 100)]) {
        const res = await post(INTAKE_ALERTS_PATH, JSON.stringify(EVE_ALERT), t);
        assert.equal(res.status, 401, String(t));
        assert.equal((await post(INTAKE_CREDENTIAL_PATH, '', t)).status, 401);
      }
      assert.equal(received.length, 0);
    });

    it('accepts alerts with the current or the previous token (202) and hands them on', async () => {
      const res = await post(INTAKE_ALERTS_PATH, JSON.stringify(EVE_ALERT), token());
      assert.equal(res.status, 202);
      assert.deepEqual(await res.json(), { accepted: 1, skipped: 0 });
      assert.equal((await post(INTAKE_ALERTS_PATH, AIDE_REPORT, deriveIntakeToken(KEY, WEB, 99), 'text/plain; charset=utf-8')).status, 400, 'text needs ?source');
      assert.equal((await post(`${INTAKE_ALERTS_PATH}?source=aide`, AIDE_REPORT, deriveIntakeToken(KEY, WEB, 99), 'text/plain')).status, 202);
      assert.deepEqual(received.map((r) => r[0]?.reason), ['SuricataAlert', 'FileIntegrityChanged']);
      const events = intakeAlertEvents(received[0]!, '2026-12-02T03:00:00.000Z');
      assert.deepEqual(events[0], { type: 'alert', time: '2026-12-02T03:00:00.000Z', rule: 'SuricataAlert', message: received[0]![0]!.message, source: 'suricata' });
    });

    it('renews: the credential endpoint returns the current token, its expiry and when to renew', async () => {
      const res = await post(INTAKE_CREDENTIAL_PATH, '', deriveIntakeToken(KEY, WEB, 99));
      assert.equal(res.status, 200);
      const body = (await res.json()) as { token: string; epoch: number; expiresAt: string; renewAfter: string };
      assert.equal(body.token, deriveIntakeToken(KEY, WEB, 100));
      assert.equal(body.epoch, 100);
      assert.equal(body.expiresAt, new Date(102 * HOUR).toISOString());
      assert.equal(body.renewAfter, new Date(clock.now() + HOUR / 2).toISOString());
    });

    it('bounds the body (413), names bad JSON (400), limits the rate (429), serves only POST (405)', async () => {
      assert.equal((await post(INTAKE_ALERTS_PATH, 'x'.repeat(64 * 1024 + 1), token())).status, 413);
      const bad = await post(INTAKE_ALERTS_PATH, '{"source":', token());
      assert.equal(bad.status, 400);
      assert.match(((await bad.json()) as { error: string }).error, /not JSON/);
      assert.equal((await fetch(`${url}${INTAKE_ALERTS_PATH}`)).status, 405);
      await clock.advance(60_000); // the bucket is full again
      const ten = JSON.stringify(Array.from({ length: 10 }, () => EVE_ALERT));
      assert.equal((await post(INTAKE_ALERTS_PATH, ten, token())).status, 202);
      const limited = await post(INTAKE_ALERTS_PATH, JSON.stringify([EVE_ALERT, EVE_ALERT]), token());
      assert.equal(limited.status, 429);
      assert.equal(limited.headers.get('retry-after'), '2');
      await clock.advance(2000);
      assert.equal((await post(INTAKE_ALERTS_PATH, JSON.stringify([EVE_ALERT, EVE_ALERT]), token())).status, 202);
      assert.deepEqual(received.map((r) => r.length), [10, 2]);
    });
  });
});
