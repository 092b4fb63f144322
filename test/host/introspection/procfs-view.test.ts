// The process view for unmodified tools (issue 17): guest A is the server, read by the real
// process-mapper sidecar with --procfs-listen; guest B is a second QEMU guest that mounts the view
// over TCP (QEMU user-mode networking to the host's loopback) with the kernel's own 9P client and
// runs unmodified busybox `ps` and `top` with the view on /proc. What guest B's ps shows must be
// guest A's own ps; writes fail; a wrong token is refused.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QemuGuest } from '../../../testenv/guest/qemu-guest.ts';
import { CONFIGURE_USER_NETWORK, HOST_FROM_GUEST, PROCFS_MODULES_FAILED_MARKER, VIEW_MOUNT, mountViewCommand, procfsReaderGuestAssets, userNetworkArgs } from '../../../testenv/guest/procfs-guest.ts';
import { guestPs, KNOWN_COMMS, START_KNOWN_PROCESSES, waitForGuestPs, type PsRow } from '../../../testenv/guest/scenario.ts';
import { SidecarProcess } from '../../../testenv/guest/sidecar-process.ts';
import { currentIntakeToken, DEFAULT_ROTATION_MS } from '../../../src/sidecar/intake-credential.ts';
import { testGuestAssets } from '../../../testenv/guest/test-guest.ts';

const POLL_MS = 500;
const log = (msg: string) => process.stderr.write(`[procfs] ${msg}\n`);
/** A shell line that also prints how long it took on the guest's clock (/proc/uptime: 10 ms steps; busybox date has no %N). */
const timedLine = (line: string) => `t0=$(cut -d' ' -f1 /proc/uptime); ${line}; t1=$(cut -d' ' -f1 /proc/uptime); echo "took=$t0..$t1"`;
function tookMs(out: string): number {
  const m = /took=([\d.]+)\.\.([\d.]+)/.exec(out);
  if (!m) throw new Error(`no timing in ${out}`);
  return Math.round((Number(m[2]) - Number(m[1])) * 1000);
}

describe('process view: a second guest runs unmodified ps on the server guest\'s processes', function () {
  this.timeout(600_000);
  const vmi = { namespace: 'hs-e2e', name: 'web-1', uid: randomUUID() };
  const token = randomBytes(24).toString('hex');
  /** The IDS VM's credential: the intake signing key the operator gives the mapper pod. */
  const intakeKey = randomBytes(32);
  let tmp: string;
  let server: QemuGuest;
  let reader: QemuGuest;
  let sidecar: SidecarProcess;
  let port: number;
  /** Guest B's ps as seen through the view (the scenario's ps line, run by server-ps). */
  const viewPs = () => guestPs({ run: (c: string, t?: number) => reader.run(c.replace(/\bps -o /, 'server-ps -o '), t) });

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'hs-procfs-'));
    writeFileSync(join(tmp, 'token'), `${token}\n`, { mode: 0o600 });
    const a = testGuestAssets();
    const b = procfsReaderGuestAssets();
    // Both guests boot at once (TCG: the slowest step of the test).
    [server, reader] = await Promise.all([
      QemuGuest.boot({ kernel: a.kernel.vmlinuz, initrd: a.initrd, kaslr: true, memoryMiB: 256, ...vmi }),
      QemuGuest.boot({ kernel: b.kernel.vmlinuz, initrd: b.initrd, kaslr: true, memoryMiB: 192, name: 'ids-reader', extraArgs: userNetworkArgs() }),
    ]);
    assert.ok(!reader.serial.includes(PROCFS_MODULES_FAILED_MARKER), `9P modules did not load:\n${reader.serial.slice(-2000)}`);
    assert.match(await reader.run(CONFIGURE_USER_NETWORK), /@@NIC-UP/);
    for (const line of START_KNOWN_PROCESSES) await server.run(line);
    await waitForGuestPs(server, (rows) => KNOWN_COMMS.every((c) => rows.some((r) => r.comm === c)), 60_000);
    sidecar = await SidecarProcess.start([
      '--namespace', vmi.namespace, '--name', vmi.name, '--uid', vmi.uid, '--poll-interval', String(POLL_MS),
      '--procfs-listen', '127.0.0.1:0', '--procfs-token-file', join(tmp, 'token'),
    ], 60_000, [], { IDS_INTAKE_KEY: intakeKey.toString('base64') });
    await sidecar.waitForEvent((e) => e.type === 'guest-attached', 120_000);
    const deadline = Date.now() + 10_000;
    let m: RegExpExecArray | null;
    while (!(m = /"procfsListen":"127\.0\.0\.1:(\d+)"/.exec(sidecar.output))) {
      if (Date.now() > deadline) throw new Error(`no procfsListen in the sidecar log:\n${sidecar.output.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50)); // polling period
    }
    port = Number(m[1]);
  });

  afterEach(function () {
    // A guest that died (a kernel panic in the 9P client) says why on its console.
    if (this.currentTest?.state === 'failed') log(`guest B console (last lines):\n${reader?.serial.slice(-3000)}\n--- sidecar ---\n${sidecar?.output.slice(-1500)}`);
  });

  after(async () => {
    await sidecar?.stop();
    await Promise.all([server?.stop(), reader?.stop()]);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('refuses a mount with a wrong token', async () => {
    const out = await reader.run(`${mountViewCommand(port, 'not-the-token')} 2>&1; echo "exit=$?"`);
    assert.match(out, /exit=[1-9]/, out);
    assert.match(out, /denied|EACCES|13/i, out);
    assert.doesNotMatch(await reader.run('cat /proc/mounts'), new RegExp(VIEW_MOUNT));
    const metrics = await (await fetch(`${sidecar.baseUrl}/metrics`)).text();
    assert.match(metrics, /hyperspector_process_mapper_procfs_attaches_total\{result="refused"\} [1-9]/);
  });

  it('mounts the view read-only with the right token', async () => {
    const out = await reader.run(timedLine(`${mountViewCommand(port, token)} 2>&1; echo "exit=$?"`));
    assert.match(out, /exit=0/, out);
    log(`attach (mount) took ${tookMs(out)} ms on guest B's clock`);
    assert.match(await reader.run('cat /proc/mounts'), new RegExp(`${VIEW_MOUNT} 9p ro`));
  });

  it('shows guest A\'s processes to guest B\'s unmodified ps, as guest A\'s own ps shows them', async () => {
    // The mapper polls every POLL_MS; both lists are taken after the known processes settled.
    const own = await guestPs(server);
    const started = Date.now();
    const viewed = await viewPs();
    log(`ps through the view: ${Date.now() - started} ms on the host clock (console round trips included), ${viewed.length} rows`);
    const local = await reader.run(timedLine('ps -o pid,ppid,user,args > /dev/null'));
    const timed = await reader.run(timedLine('server-ps -o pid,ppid,user,args > /dev/null'));
    log(`ps through the view took ${tookMs(timed)} ms on guest B's clock (its own ps: ${tookMs(local)} ms)`);
    // A kernel worker's name carries the work queue it runs now (kworker/0:2-events): that may change between two looks.
    const worker = (s: string) => s.replace(/^(\[?kworker\/[^-\]]+)-[^\]]*/, '$1');
    const key = (r: PsRow) => `${r.pid} ${r.ppid} ${r.uid} ${worker(r.comm)} ${worker(r.args)}`;
    const seen = new Map(viewed.map((r) => [r.pid, r]));
    // Every process both saw is shown the same: pid, ppid, user, comm and command line.
    const common = own.filter((r) => seen.has(r.pid));
    assert.deepEqual(common.map(key), common.map((r) => key(seen.get(r.pid)!)));
    // Guest A's ps differs only by what started or ended between the two looks (its own ps and shell).
    const missing = own.filter((r) => !seen.has(r.pid));
    assert.ok(missing.length <= 3, `missing from the view: ${missing.map(key).join('; ')}`);
    assert.ok(common.length >= own.length - 3 && common.length > 20, `${common.length} of ${own.length} in common`);
    for (const comm of KNOWN_COMMS) assert.ok(viewed.some((r) => r.comm === comm), `${comm} not in the view`);
    assert.ok(viewed.some((r) => r.comm === 'batch-worker' && r.uid === 1000), 'the user comes from the pid directory\'s owner');
    // And it is guest A's process table, not guest B's: B has no web-frontend of its own.
    assert.ok(!(await guestPs(reader)).some((r) => r.comm === 'web-frontend'));
  });

  it('shows them to unmodified top in batch mode', async () => {
    const out = await reader.run('COLUMNS=200 server-top -b -n 1 2>&1; echo "exit=$?"');
    assert.match(out, /exit=0/, out);
    for (const comm of ['web-frontend', 'log-shipper']) assert.match(out, new RegExp(comm), out);
  });

  it("the IDS VM's own forwarder mounts it with its intake token, and `hyperspector-intake server ps` shows the server's processes", async () => {
    // What the intake disk gives the IDS VM (builders/ids-intake.ts): url, token, procfs-port.
    const intakeToken = (name: string) => currentIntakeToken(intakeKey, { namespace: vmi.namespace, name }, Date.now(), DEFAULT_ROTATION_MS);
    const configure = (t: string) => `mkdir -p /run/hyperspector-intake && echo http://${HOST_FROM_GUEST}:${new URL(sidecar.baseUrl).port} > /run/hyperspector-intake/url && echo ${port} > /run/hyperspector-intake/procfs-port && echo ${t} > /run/hyperspector-intake/token && rm -rf /var/lib/hyperspector-intake`;
    await reader.run(configure(intakeToken('another-server')));
    const refused = await reader.run('hyperspector-intake mount-proc 2>&1; echo "exit=$?"');
    assert.match(refused, /exit=1\n/, `another MonitoredServer's token is refused: ${refused}`);
    await reader.run(configure(intakeToken(vmi.name)));
    assert.match(await reader.run('hyperspector-intake mount-proc 2>&1; echo "exit=$?"'), /exit=0/);
    assert.match(await reader.run('cat /proc/mounts'), /\/run\/hyperspector\/server-proc 9p ro,/);
    const out = await reader.run('hyperspector-intake server ps -o pid,user,args 2>&1; echo "exit=$?"');
    assert.match(out, /exit=0/, out);
    for (const comm of ['web-frontend', 'log-shipper']) assert.match(out, new RegExp(comm), out);
    assert.doesNotMatch(await reader.run('ps -o args'), /web-frontend/, "the reader's own ps is untouched");
    await reader.run('umount /run/hyperspector/server-proc');
  });

  it('fails every write: the kernel refuses on the read-only mount, the server on a writable one', async () => {
    const pid = (await viewPs()).find((r) => r.comm === 'web-frontend')!.pid;
    const ro = await reader.run(`touch ${VIEW_MOUNT}/${pid}/comm 2>&1; echo "exit=$?"; echo x > ${VIEW_MOUNT}/${pid}/comm 2>&1; echo "exit=$?"; mkdir ${VIEW_MOUNT}/x 2>&1; echo "exit=$?"`);
    assert.equal(ro.match(/exit=[1-9]/g)?.length, 3, ro);
    assert.match(ro, /Read-only file system/, ro);
    // Without `ro` the kernel forwards the writes: the server answers EROFS itself.
    await reader.run('mkdir -p /tmp/rw-view');
    assert.match(await reader.run(`${mountViewCommand(port, token, '/tmp/rw-view', false)} 2>&1; echo "exit=$?"`), /exit=0/);
    const rw = await reader.run(`echo x > /tmp/rw-view/${pid}/comm 2>&1; echo "exit=$?"; touch /tmp/rw-view/new 2>&1; echo "exit=$?"; rm -f /tmp/rw-view/${pid}/stat 2>&1; echo "exit=$?"`);
    assert.equal(rw.match(/exit=[1-9]/g)?.length, 3, rw);
    assert.match(rw, /Read-only file system/, rw);
    assert.match(await reader.run(`cat /tmp/rw-view/${pid}/comm`), /^web-frontend$/m);
    await reader.run('umount /tmp/rw-view');
  });
});
