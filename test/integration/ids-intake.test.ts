// Alerts raised in the IDS VM reach the same pipeline as the mapper's own: the operator (under its
// own RBAC, with a 20 s rotation) keeps the signing key beside the mapper and the token in the IDS VM's
// Secret; the real sidecar process (src/sidecar/main.ts, the mapper's ServiceAccount, the key
// from that Secret) takes a POST with the token from the tenant's Secret and turns it into a
// Warning Event, a metric and a status.alerts entry, which pauses the server once
// (onAlert: Pause). No token, a wrong one, another MonitoredServer's, one two epochs old: 401 and
// nothing recorded. A running guest renews; the rotated Secret does not restart the IDS VM. The
// forwarder the operator ships runs under sh and busybox sh against the same sidecar, posting a
// real eve.json alert line and an AIDE report. The example IDS VM is accepted by the API server.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { parse } from 'yaml';
import type { MonitoredServer } from '../../src/api/v1alpha1/monitoredserver-types.ts';
import { buildDiskInspectionCloudInit, diskSerialForVolume, mergeDiskInspectionUserData, MOUNT_SCRIPT_PATH } from '../../src/builders/disk-inspection-cloud-init.ts';
import { intakeKeySecretName } from '../../src/builders/ids-intake.ts';
import { processMapperHostname } from '../../src/builders/names.ts';
import { ALERT_FIELD_MANAGER } from '../../src/sidecar/alert-reporter.ts';
import { deriveIntakeToken, rotationEpoch } from '../../src/sidecar/intake-credential.ts';
import { auditRequests } from '../../testenv/cluster/audit-log.ts';
import { writeKubeconfig } from '../../testenv/cluster/users.ts';
import { monitoredServer, vmTemplate } from '../../testenv/fixtures/monitoredservers.ts';
import { MS, OperatorTestEnv, VM, VMI } from '../../testenv/operator/operator-env.ts';
import { startOperatorProcess, type OperatorProcess } from '../../testenv/operator/operator-process.ts';
import { REPO_ROOT } from '../../testenv/repo-root.ts';
import { waitFor } from '../../testenv/wait.ts';
import { AIDE_REPORT, EVE_ALERT } from '../../testenv/fixtures/ids-alerts.ts';

const NS = 'intake';
const OPNS = 'hyperspector-system';
const ROTATION_MS = 20_000;

interface RunningSidecar {
  child: ChildProcess;
  url: string;
  log: () => string;
}

async function startSidecar(args: string[], env: Record<string, string>): Promise<RunningSidecar> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/sidecar/main.ts', '--listen', '127.0.0.1:0', ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const url = await waitFor(() => /"listen":"([\d.]+:\d+)"/.exec(log)?.[1], { timeoutMs: 60_000, intervalMs: 100, description: `the sidecar's listen line:\n${log}` });
  return { child, url: `http://${url}`, log: () => log };
}

describe('IDS VM alert intake (real control plane, operator, real sidecar process)', function () {
  this.timeout(600_000);
  let env: OperatorTestEnv;
  let operator: OperatorProcess;
  let sidecar: RunningSidecar | undefined;
  let key: Buffer;
  let work: string;
  const core = () => env.cluster.api(k8s.CoreV1Api);
  const subject = { namespace: NS, name: 'web-1' };

  before(async function () {
    env = await OperatorTestEnv.start(1);
    await env.namespace(NS);
    operator = await startOperatorProcess(env.cluster, { user: 'operator', extraArgs: [`--ids-credential-rotation=${ROTATION_MS / 1000}s`] });
    work = mkdtempSync(join(tmpdir(), 'hs-intake-'));
  });

  after(async function () {
    if (sidecar?.child.exitCode === null) {
      const gone = new Promise((resolve) => sidecar!.child.once('exit', resolve));
      sidecar.child.kill('SIGTERM');
      await gone;
    }
    await operator?.stop();
    await env?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  afterEach(function () {
    if (!operator.process.running) throw new Error('the operator process must never crash');
  });

  const tokenSecret = async () => {
    const s = await core().readNamespacedSecret({ namespace: NS, name: 'web-1-ids-cloud-init' });
    const d = (k: string) => Buffer.from(s.data?.[k] ?? '', 'base64').toString();
    return { token: d('token'), epoch: Number(d('epoch')), url: d('url'), renewSeconds: d('renew-seconds'), forwarder: d('hyperspector-intake'), resourceVersion: s.metadata?.resourceVersion };
  };
  const post = (path: string, body: string, token?: string, type = 'application/json') =>
    fetch(`${sidecar!.url}${path}`, { method: 'POST', body, headers: { 'content-type': type, ...(token ? { authorization: `Bearer ${token}` } : {}) } });
  const alertEvents = async () => {
    const list = await env.cluster.api(k8s.EventsV1Api).listNamespacedEvent({ namespace: NS });
    return list.items.filter((e) => e.reportingController === ALERT_FIELD_MANAGER && e.regarding?.name === 'web-1');
  };
  const alertsStatus = async () => ((await env.get(MS, NS, 'web-1')) as unknown as MonitoredServer | undefined)?.status?.alerts;

  it('the operator makes the key and puts the token in the IDS VM’s Secret (also a disk of it), names the mapper by its pod’s DNS name and deletes an older version’s Service and token Secret; the sidecar takes only this MonitoredServer’s current or previous token', async function () {
    // What an older version left in front of the mapper pod: a Service per MonitoredServer (upgrade).
    const legacyName = processMapperHostname(monitoredServer('web-1', NS));
    const legacyLabels = { 'hyperspector.io/monitored-server': 'web-1', 'hyperspector.io/role': 'ids-intake', 'app.kubernetes.io/managed-by': 'hyperspector', 'hyperspector.io/monitored-server-namespace': NS };
    await core().createNamespacedService({ namespace: OPNS, body: { metadata: { name: legacyName, labels: legacyLabels }, spec: { selector: { 'hyperspector.io/role': 'process-mapper' }, ports: [{ name: 'intake', port: 9464 }] } } });
    // And a token Secret of its own in the tenant's namespace.
    await core().createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'web-1-ids-intake', labels: { 'hyperspector.io/monitored-server': 'web-1', 'hyperspector.io/role': 'ids-intake', 'app.kubernetes.io/managed-by': 'hyperspector' } }, stringData: { token: 'hsi1.1.old' } } });
    await env.createMonitoredServer(monitoredServer('web-1', NS, { server: { template: vmTemplate({ app: 'web-1' }), deletionPolicy: 'Delete' }, response: { onAlert: 'Pause' } }));
    await env.waitForCondition(NS, 'web-1', 'Ready', 'True', 'Monitoring', 180_000);
    const ms = (await env.get(MS, NS, 'web-1')) as unknown as MonitoredServer;
    const keySecret = await core().readNamespacedSecret({ namespace: OPNS, name: intakeKeySecretName(ms) });
    assert.equal(keySecret.metadata?.labels?.['hyperspector.io/role'], 'ids-intake-key');
    key = Buffer.from(Buffer.from(keySecret.data!.key!, 'base64').toString('utf8'), 'base64');
    // The token is in the IDS VM's Secret: the older version's token Secret is gone.
    await waitFor(async () => ((await core().listNamespacedSecret({ namespace: NS, labelSelector: 'hyperspector.io/role=ids-intake' })).items.length === 0 ? true : undefined), { timeoutMs: 30_000, description: `the older version's token Secret ${NS}/web-1-ids-intake to be deleted` });
    // No Service per MonitoredServer: the older version's is gone, and none is made.
    await waitFor(async () => ((await core().listNamespacedService({ namespace: OPNS, labelSelector: 'hyperspector.io/role=ids-intake' })).items.length === 0 ? true : undefined), { timeoutMs: 30_000, description: `the older version's Service ${OPNS}/${legacyName} to be deleted` });
    const secret = await tokenSecret();
    // The mapper pod's DNS name: its hostname under the chart's headless Service (subdomain).
    assert.equal(secret.url, `http://${processMapperHostname(ms)}.hyperspector-process-mappers.${OPNS}.svc:9464`);
    const mapperPod = (await core().listNamespacedPod({ namespace: OPNS, labelSelector: 'hyperspector.io/role=process-mapper' })).items[0];
    assert.equal(mapperPod?.spec?.hostname, processMapperHostname(ms));
    assert.equal(mapperPod?.spec?.subdomain, 'hyperspector-process-mappers');
    assert.equal(secret.renewSeconds, '10');
    assert.match(secret.token, /^hsi1\.\d+\./);
    // The IDS VM has its Secret (with the token) as a disk; the server VM has nothing of it.
    const ids = await env.get(VM, NS, 'web-1-ids');
    assert.deepEqual(ids?.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'hyperspector-intake'), { name: 'hyperspector-intake', secret: { secretName: 'web-1-ids-cloud-init' } });
    assert.ok(!JSON.stringify((await env.get(VM, NS, 'web-1-server'))?.spec).includes('ids-intake'));
    // The mapper pod gets the key by reference only.
    const pods = await core().listNamespacedPod({ namespace: OPNS, labelSelector: 'hyperspector.io/role=process-mapper' });
    const keyEnv = pods.items[0]?.spec?.containers[0]?.env?.find((e) => e.name === 'IDS_INTAKE_KEY');
    assert.deepEqual({ ...keyEnv?.valueFrom?.secretKeyRef }, { name: intakeKeySecretName(ms), key: 'key' });

    // The real sidecar, as the mapper pod runs it: the mapper's ServiceAccount, the key from the Secret.
    const saToken = (await core().createNamespacedServiceAccountToken({ namespace: OPNS, name: 'hyperspector-process-mapper', body: { spec: { audiences: [], expirationSeconds: 3600 } } })).status!.token!;
    const kubeconfig = writeKubeconfig(join(work, 'kubeconfig-mapper'), { url: env.cluster.apiServerUrl, caFile: env.cluster.apiServer.caFile }, 'mapper', saToken).path;
    sidecar = await startSidecar(['--namespace', NS, '--name', 'web-1-server', '--monitored-server', 'web-1', '--kubeconfig', kubeconfig], { IDS_INTAKE_KEY: Buffer.from(keySecret.data!.key!, 'base64').toString('utf8'), IDS_CREDENTIAL_ROTATION_MS: String(ROTATION_MS) });

    const epoch = rotationEpoch(Date.now(), ROTATION_MS);
    for (const [what, token] of [
      ['no token', undefined],
      ['a wrong token', 'hsi1.1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'],
      ['another MonitoredServer’s token', deriveIntakeToken(key, { namespace: NS, name: 'db-1' }, epoch)],
      ['a token two epochs old', deriveIntakeToken(key, subject, epoch - 2)],
      ['a token of another key', deriveIntakeToken(Buffer.alloc(32, 1), subject, epoch)],
    ] as const) {
      assert.equal((await post('/intake/v1/alerts', JSON.stringify(EVE_ALERT), token)).status, 401, what);
      assert.equal((await post('/intake/v1/credential', '', token)).status, 401, what);
    }
    const metrics = await (await fetch(`${sidecar.url}/metrics`)).text();
    assert.match(metrics, /hyperspector_process_mapper_intake_requests_total\{result="unauthorized"\} 10/);
    assert.doesNotMatch(metrics, /hyperspector_process_mapper_alerts_total\{rule="SuricataAlert"\}/);
    assert.equal((await alertEvents()).length, 0, 'nothing recorded');
    assert.equal((await alertsStatus())?.count ?? 0, 0);
  });

  it('an eve.json alert posted with the Secret’s token: Warning Event, metric, status.alerts — and the server is paused once', async function () {
    const { token } = await tokenSecret();
    const alerted = Date.now();
    const res = await post('/intake/v1/alerts', [JSON.stringify({ event_type: 'flow' }), JSON.stringify(EVE_ALERT)].join('\n'), token);
    assert.equal(res.status, 202);
    assert.deepEqual(await res.json(), { accepted: 1, skipped: 1 });
    const event = await waitFor(async () => (await alertEvents()).find((e) => e.reason === 'SuricataAlert'), { timeoutMs: 30_000, description: 'the SuricataAlert Event' });
    assert.equal(event.type, 'Warning');
    assert.match(event.note ?? '', /\[1:2100498:7\] GPL ATTACK_RESPONSE id check returned root, severity 2.*TCP 10\.0\.0\.66:4444 -> 10\.0\.0\.5:80/);
    const alerts = await waitFor(async () => ((await alertsStatus())?.count === 1 ? alertsStatus() : undefined), { timeoutMs: 30_000, description: 'status.alerts count 1' });
    assert.equal(alerts?.recent?.[0]?.rule, 'SuricataAlert');
    assert.match(await (await fetch(`${sidecar!.url}/metrics`)).text(), /hyperspector_process_mapper_alerts_total\{rule="SuricataAlert"\} 1/);

    const paused = async () => ((await env.get(VMI, NS, 'web-1-server'))?.status?.conditions ?? []).some((c: { type: string; status: string }) => c.type === 'Paused' && c.status === 'True');
    await waitFor(() => paused().then((p) => p || undefined), { timeoutMs: 60_000, description: 'the server VMI to be paused' });
    process.stderr.write(`[intake] server paused ${((Date.now() - alerted) / 1000).toFixed(1)} s after the intake POST\n`);
    const pausedEvent = await env.waitForEvent(NS, 'web-1', 'ServerPaused');
    assert.match(pausedEvent.note, /SuricataAlert/);
    // A second alert of the burst: no second pause.
    assert.equal((await post('/intake/v1/alerts', JSON.stringify({ source: 'suricata', rule: 'x', message: 'again' }), token)).status, 202);
    await waitFor(async () => {
      const m = (await env.get(MS, NS, 'web-1')) as unknown as MonitoredServer;
      return m.status?.alerts?.count === 2 && m.status.response?.alertTime === m.status.alerts.lastAlertTime ? true : undefined;
    }, { timeoutMs: 30_000, description: 'the second alert recorded as responded to' });
    const pauses = auditRequests(env.cluster.auditLogPath, { username: env.cluster.users.operator.name, writesOnly: false }).filter((r) => r.requestURI.endsWith('/virtualmachineinstances/web-1-server/pause'));
    assert.equal(pauses.length, 1, 'one pause for the burst');
  });

  it('renews; after an epoch the previous token still works, after two it does not; the rotated Secret does not restart the IDS VM', async function () {
    const first = await tokenSecret();
    const idsVmi = await env.get(VMI, NS, 'web-1-ids');
    const renewed = await post('/intake/v1/credential', '', first.token);
    assert.equal(renewed.status, 200);
    const body = (await renewed.json()) as { token: string; epoch: number };
    assert.equal(body.token, deriveIntakeToken(key, subject, rotationEpoch(Date.now(), ROTATION_MS)));
    // The operator rewrites the Secret at the next epoch's start (no write in between).
    const second = await waitFor(async () => {
      const s = await tokenSecret();
      return s.epoch === first.epoch + 1 ? s : undefined;
    }, { timeoutMs: ROTATION_MS + 15_000, description: 'the IDS VM’s Secret rotated to the next epoch' });
    assert.notEqual(second.token, first.token);
    assert.equal((await post('/intake/v1/credential', '', first.token)).status, 200, 'the previous epoch’s token still works');
    await waitFor(async () => ((await tokenSecret()).epoch === first.epoch + 2 ? true : undefined), { timeoutMs: ROTATION_MS + 15_000, description: 'one more rotation' });
    assert.equal((await post('/intake/v1/credential', '', first.token)).status, 401, 'two epochs old');
    assert.equal((await post('/intake/v1/credential', '', second.token)).status, 200);
    const writes = auditRequests(env.cluster.auditLogPath, { username: env.cluster.users.operator.name, writesOnly: true }).filter((r) => r.objectRef?.resource === 'secrets' && r.objectRef.name === 'web-1-ids-cloud-init');
    assert.ok(writes.length >= 3 && writes.length <= 4, `${writes.length} writes of the IDS VM's Secret: one at creation (with the network data and the token) and one per rotation`);
    const after = await env.get(VMI, NS, 'web-1-ids');
    assert.equal(after?.metadata.uid, idsVmi?.metadata.uid, 'the IDS VMI was not restarted');
    assert.equal((await env.get(VM, NS, 'web-1-ids'))?.status?.printableStatus, 'Running');
  });

  for (const shell of [['sh'], ['busybox', 'sh']]) {
    it(`the shipped forwarder under ${shell.join(' ')}: renews, posts eve.json lines and an AIDE report`, async function () {
      const secret = await tokenSecret();
      const dir = join(work, shell.join('-'));
      const conf = join(dir, 'conf');
      mkdirSync(conf, { recursive: true });
      writeFileSync(join(conf, 'url'), sidecar!.url); // the mapper's DNS name in a guest
      writeFileSync(join(conf, 'token'), secret.token);
      writeFileSync(join(conf, 'hyperspector-intake'), secret.forwarder);
      chmodSync(join(conf, 'hyperspector-intake'), 0o755);
      writeFileSync(join(dir, 'eve.json'), `${JSON.stringify({ event_type: 'stats' })}\n${JSON.stringify({ ...EVE_ALERT, alert: { ...EVE_ALERT.alert, signature: `forwarded by ${shell.join(' ')}` } })}\n`);
      writeFileSync(join(dir, 'aide.report'), AIDE_REPORT);
      // busybox sh with busybox's wget (no curl on its PATH); plain sh with the host's curl.
      const path = shell[0] === 'busybox' ? join(dir, 'bin') : process.env.PATH!;
      if (shell[0] === 'busybox') {
        mkdirSync(path, { recursive: true });
        for (const tool of ['sh', 'cat', 'mkdir', 'chmod', 'sed', 'mv', 'wget', 'tail', 'printf', 'sleep', 'echo']) writeFileSync(join(path, tool), `#!/usr/bin/busybox sh\nexec /usr/bin/busybox ${tool} "$@"\n`, { mode: 0o755 });
      }
      const run = (...args: string[]) =>
        new Promise<{ code: number | null; out: string }>((resolve) => {
          const child = spawn(shell[0] === 'busybox' ? '/usr/bin/busybox' : 'sh', [...shell.slice(1), join(conf, 'hyperspector-intake'), ...args], { env: { PATH: path, HYPERSPECTOR_INTAKE_DIR: conf, HYPERSPECTOR_INTAKE_STATE: join(dir, 'state') }, stdio: ['ignore', 'pipe', 'pipe'] });
          let out = '';
          child.stdout.on('data', (d: Buffer) => (out += d.toString()));
          child.stderr.on('data', (d: Buffer) => (out += d.toString()));
          child.on('exit', (code) => resolve({ code, out }));
        });
      const renew = await run('renew');
      assert.equal(renew.code, 0, renew.out);
      assert.equal(readFileSync(join(dir, 'state', 'token'), 'utf8'), deriveIntakeToken(key, subject, rotationEpoch(Date.now(), ROTATION_MS)));
      const eve = await run('post-json', join(dir, 'eve.json'));
      assert.equal(eve.code, 0, eve.out);
      const aide = await run('post-text', 'aide', join(dir, 'aide.report'));
      assert.equal(aide.code, 0, aide.out);
      await waitFor(async () => (await alertEvents()).find((e) => e.reason === 'SuricataAlert' && (e.note ?? '').includes(`forwarded by ${shell.join(' ')}`)), { timeoutMs: 30_000, description: 'the forwarded eve.json alert Event' });
      const fim = await waitFor(async () => (await alertEvents()).find((e) => e.reason === 'FileIntegrityChanged'), { timeoutMs: 30_000, description: 'the AIDE Event' });
      assert.match(fim.note ?? '', /1 added, 0 removed, 1 changed: added \/srv\/server\/root\/etc\/cron\.d\/evil; changed \/srv\/server\/root\/etc\/passwd/);
      // follow-eve: once its tail reads the file, an alert line appended to eve.json is posted.
      const eveFile = join(dir, 'follow.json');
      writeFileSync(eveFile, '');
      const follower = spawn(shell[0] === 'busybox' ? '/usr/bin/busybox' : 'sh', [...shell.slice(1), join(conf, 'hyperspector-intake'), 'follow-eve', eveFile], { env: { PATH: path, HYPERSPECTOR_INTAKE_DIR: conf, HYPERSPECTOR_INTAKE_STATE: join(dir, 'state') }, stdio: 'ignore', detached: true });
      try {
        const tailing = () => readdirSync('/proc').filter((p) => /^\d+$/.test(p)).some((p) => {
          try {
            const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
            return argv.includes('tail') && readdirSync(`/proc/${p}/fd`).some((fd) => readlinkSync(`/proc/${p}/fd/${fd}`) === eveFile);
          } catch {
            return false;
          }
        });
        await waitFor(() => tailing() || undefined, { timeoutMs: 10_000, intervalMs: 50, description: 'the follower’s tail to open eve.json' });
        appendFileSync(eveFile, `${JSON.stringify({ event_type: 'flow' })}\n${JSON.stringify({ ...EVE_ALERT, alert: { ...EVE_ALERT.alert, signature: `followed by ${shell.join(' ')}` } })}\n`);
        await waitFor(async () => (await alertEvents()).find((e) => (e.note ?? '').includes(`followed by ${shell.join(' ')}`)), { timeoutMs: 30_000, description: 'the followed eve.json alert Event' });
      } finally {
        process.kill(-follower.pid!, 'SIGTERM');
      }
      // A wrong token on the disk and none kept: the forwarder fails, loudly.
      writeFileSync(join(conf, 'token'), 'hsi1.1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
      rmSync(join(dir, 'state', 'token'));
      const refused = await run('post-json', join(dir, 'eve.json'));
      assert.notEqual(refused.code, 0);
    });
  }

  it('the example IDS VM (Suricata and AIDE forwarding to the intake) is accepted by the API server', async function () {
    const example = parse(readFileSync(join(REPO_ROOT, 'examples/ids-vm/suricata-aide.yaml'), 'utf8')) as MonitoredServer;
    example.metadata.namespace = NS;
    await env.custom.createNamespacedCustomObject({ ...MS, namespace: NS, body: example, dryRun: 'All' });
    const userData = (example.spec.ids.template.spec as { template: { spec: { volumes: Array<{ cloudInitNoCloud?: { userData: string } }> } } }).template.spec.volumes.find((v) => v.cloudInitNoCloud)!.cloudInitNoCloud!.userData;
    const cloudConfig = parse(userData) as { write_files: Array<{ path: string; content: string }>; runcmd: unknown[] };
    const suricata = parse(cloudConfig.write_files.find((f) => f.path === '/etc/suricata/hyperspector.yaml')!.content, { version: '1.1' }) as { 'af-packet': Array<Record<string, unknown>>; stream: Record<string, unknown> };
    assert.deepEqual([suricata['af-packet'][0]!.interface, suricata['af-packet'][0]!['checksum-checks'], suricata['af-packet'][0]!.snaplen, suricata.stream['checksum-validation']], ['hsmirror0', false, 65535, false]);
    assert.match(cloudConfig.write_files.find((f) => f.path === '/usr/local/sbin/hyperspector-ids-start')!.content, /virtio-hs-intake[\s\S]*follow-eve \/var\/log\/suricata\/eve\.json/);
    // Merged with what the operator adds (the read-only mounts of spec.server.disks): both survive.
    const merged = parse(mergeDiskInspectionUserData(userData, buildDiskInspectionCloudInit({ disks: [{ volumeName: 'data', serial: diskSerialForVolume('shop-1', 'data') }], mountPath: '/.serverfs', mode: 'Live', remountIntervalSeconds: 60 }))) as { write_files: Array<{ path: string }>; runcmd: unknown[]; packages: string[] };
    const paths = merged.write_files.map((f) => f.path);
    for (const path of ['/etc/suricata/hyperspector.yaml', '/usr/local/sbin/hyperspector-ids-start', '/etc/aide/hyperspector.conf', '/etc/cron.d/hyperspector-aide', MOUNT_SCRIPT_PATH]) assert.ok(paths.includes(path), path);
    assert.deepEqual(merged.packages, ['suricata', 'aide']);
    assert.ok(JSON.stringify(merged.runcmd).includes('hyperspector-ids.service') && JSON.stringify(merged.runcmd).includes(MOUNT_SCRIPT_PATH), JSON.stringify(merged.runcmd));
  });
});
