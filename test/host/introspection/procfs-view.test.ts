// The process view for unmodified tools (issue 17): guest A is the server, read by the real
// process-mapper sidecar with --procfs-listen; guest B is a second QEMU guest that mounts the view
// over TCP (QEMU user-mode networking to the host's loopback) with the kernel's own 9P client and
// runs unmodified busybox `ps` and `top`, and Debian's procps-ng `ps` and `top` and psmisc
// `pstree`, with the view on /proc. What guest B's tools show must be guest A's own view (its ps,
// its /proc/<pid>/task and comm); writes fail; a wrong token is refused.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QemuGuest } from '../../../testenv/guest/qemu-guest.ts';
import { CONFIGURE_USER_NETWORK, HOST_FROM_GUEST, PROCFS_MODULES_FAILED_MARKER, PROCPS_NG, VIEW_MOUNT, mountViewCommand, procfsReaderGuestAssets, userNetworkArgs } from '../../../testenv/guest/procfs-guest.ts';
import { bracketedName, parseProcpsPs, parsePstree, type ProcpsRow } from '../../../testenv/guest/tool-output.ts';
import { GUEST_USERS, guestCommandOutput, guestPs, KNOWN_COMMS, START_KNOWN_PROCESSES, waitForGuestPs, type PsRow } from '../../../testenv/guest/scenario.ts';
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
/** A kernel worker's name carries the work queue it runs now (kworker/0:2-events): that may change between two looks. */
const worker = (s: string) => s.replace(/^(\[?kworker\/[^-\]]+)-[^\]]*/, '$1');
/** The scenario's threaded workload (three threads besides its leader), started in guest A. */
const WORKLOAD = 'hs-workload';

/**
 * The view's rows against guest A's own ps, by pid: every process both saw is shown the same (as
 * `key` renders it), and the two differ only by what started or ended between the looks (its own
 * ps and shell).
 */
function assertSameProcesses<V extends { pid: number }>(own: PsRow[], viewed: V[], key: (r: PsRow | V) => string): void {
  const seen = new Map(viewed.map((r) => [r.pid, r]));
  const common = own.filter((r) => seen.has(r.pid));
  assert.deepEqual(common.map(key), common.map((r) => key(seen.get(r.pid)!)));
  const missing = own.filter((r) => !seen.has(r.pid));
  assert.ok(missing.length <= 3, `missing from the view: ${missing.map(key).join('; ')}`);
  assert.ok(common.length >= own.length - 3 && common.length > 20, `${common.length} of ${own.length} in common`);
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
    await server.run(`ip link set lo up; /usr/bin/${WORKLOAD} 8090 > /dev/null &`);
    await waitForGuestPs(server, (rows) => [...KNOWN_COMMS, WORKLOAD].every((c) => rows.some((r) => r.comm === c)), 60_000);
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
    const key = (r: PsRow) => `${r.pid} ${r.ppid} ${r.uid} ${worker(r.comm)} ${worker(r.args)}`;
    // Every process both saw is shown the same: pid, ppid, user, comm and command line.
    assertSameProcesses(own, viewed, key);
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

  it("shows them to procps-ng's unmodified ps, as guest A's own ps shows them, kernel threads by their full names", async () => {
    const own = await guestPs(server);
    const viewed = parseProcpsPs(await guestCommandOutput(reader, 'server-procps-ps -e -ww -o pid,ppid,user,args'));
    const local = await reader.run(timedLine(`${PROCPS_NG.ps} -e -ww -o pid,ppid,user,args > /dev/null`));
    const timed = await reader.run(timedLine('server-procps-ps -e -ww -o pid,ppid,user,args > /dev/null'));
    log(`procps-ng ps through the view took ${tookMs(timed)} ms on guest B's clock for ${viewed.length} rows (its own procps-ng ps: ${tookMs(local)} ms)`);
    // Guest A's busybox ps cuts a kernel thread's [name] at 15 characters; procps-ng shows it whole.
    // procps-ng marks a zombie's args with <defunct>, busybox does not.
    const cut = (args: string) => args.replace(/ <defunct>$/, '').replace(/^\[(.{15}).+\]$/, '[$1]');
    const key = (r: PsRow | ProcpsRow) => `${r.pid} ${r.ppid} ${r.uid} ${worker(cut(r.args))}`;
    assertSameProcesses(own, viewed, key);
    const extra = viewed.filter((r) => !own.some((o) => o.pid === r.pid));
    assert.ok(extra.length <= 3, `in the view, not in guest A's ps: ${extra.map(key).join('; ')}`);
    assert.ok(viewed.some((r) => r.args.startsWith('/bin/sh /usr/bin/batch-worker --queue reports') && r.uid === GUEST_USERS.alice), 'batch-worker as alice, with its arguments');
    // The full names are guest A's /proc/<pid>/comm (kernel workers aside: their work queue changes).
    const long = viewed.flatMap((r) => {
      const name = bracketedName(r.args);
      return name && name.length > 15 && !name.startsWith('kworker/') ? [`${r.pid} ${name}`] : [];
    });
    assert.ok(long.length > 0, 'guest A has kernel threads with names over 15 characters');
    const comms = await guestCommandOutput(server, `for p in ${long.map((l) => l.split(' ')[0]).join(' ')}; do echo "$p $(cat /proc/$p/comm)"; done`);
    assert.deepEqual(long, comms.trim().split('\n'));
    log(`procps-ng ps: kernel threads over 15 characters: ${long.slice(0, 4).join(', ')}`);
  });

  it("shows guest A's threads to procps-ng's ps -e -T, as guest A's /proc/<pid>/task lists them", async () => {
    const own = new Map<number, number[]>();
    for (const line of (await guestCommandOutput(server, '(cd /proc && for t in [0-9]*/task/[0-9]*; do echo "$t"; done)')).trim().split('\n')) {
      const [pid, , tid] = line.split('/').map(Number);
      own.set(pid!, [...(own.get(pid!) ?? []), tid!]);
    }
    const viewed = new Map<number, number[]>();
    for (const line of (await guestCommandOutput(reader, 'server-procps-ps -e -T -o pid=,spid=')).trim().split('\n')) {
      const [pid, tid] = line.trim().split(/\s+/).map(Number);
      viewed.set(pid!, [...(viewed.get(pid!) ?? []), tid!]);
    }
    const sorted = (tids: number[] | undefined) => [...(tids ?? [])].sort((a, b) => a - b);
    const common = [...own.keys()].filter((pid) => viewed.has(pid));
    assert.ok(common.length >= own.size - 3 && common.length > 20, `${common.length} of ${own.size} processes in common`);
    assert.deepEqual(common.map((pid) => `${pid}: ${sorted(viewed.get(pid)).join(' ')}`), common.map((pid) => `${pid}: ${sorted(own.get(pid)).join(' ')}`));
    const workload = (await guestPs(server)).find((r) => r.comm === WORKLOAD)!;
    assert.equal(viewed.get(workload.pid)?.length, 4, `${WORKLOAD} has its leader and three threads in the view`);
  });

  it("shows them to procps-ng's unmodified top in batch mode: every process of guest A, with its user", async () => {
    const own = await guestPs(server);
    const out = await guestCommandOutput(reader, `{ COLUMNS=512 server-procps-top -b -n 1 -w 512 2>&1; echo "exit=$?"; }`);
    assert.match(out, /exit=0\n/, out);
    assert.match(out, /^top - .* up .*load average/m, out);
    log(`procps-ng top's summary through the view:\n${out.split('\n').slice(0, 5).join('\n')}`);
    const tasks = Number(/^Tasks: +(\d+) total/m.exec(out)?.[1]);
    assert.ok(Math.abs(tasks - own.length) <= 3, `top counts ${tasks} tasks, guest A's ps ${own.length}`);
    const rows = [...out.matchAll(/^ *(\d+) +(\S+) +.* (\S+) *$/gm)].map((m) => ({ pid: Number(m[1]), user: m[2]!, command: m[3]! }));
    const byPid = new Map(rows.map((r) => [r.pid, r]));
    const common = own.filter((r) => byPid.has(r.pid));
    assert.ok(common.length >= own.length - 3 && common.length > 20, `${common.length} of ${own.length} in top`);
    const userName = (uid: number) => Object.entries(GUEST_USERS).find(([, u]) => u === uid)![0];
    assert.deepEqual(common.map((r) => `${r.pid} ${userName(r.uid)}`), common.map((r) => `${r.pid} ${byPid.get(r.pid)!.user}`));
    for (const comm of [...KNOWN_COMMS, WORKLOAD]) {
      const p = own.find((r) => r.comm === comm)!;
      assert.equal(byPid.get(p.pid)?.command, comm, `${comm} (pid ${p.pid}) in top:\n${out}`);
    }
  });

  it("shows guest A's process tree to psmisc's unmodified pstree -p: init at the root, every process under its parent, threads under their process", async () => {
    const own = await guestPs(server);
    const out = await guestCommandOutput(reader, `{ server-pstree -p -l -A 2>&1; echo "exit=$?"; }`);
    assert.match(out, /exit=0\n/, out);
    assert.match(out, /^init\(1\)/, out);
    const tree = parsePstree(out);
    // pstree draws the tree under pid 1: every process of guest A that descends from it.
    const ppidOf = new Map(own.map((r) => [r.pid, r.ppid]));
    const underInit = (pid: number): boolean => pid === 1 || (ppidOf.has(pid) && pid !== 0 && underInit(ppidOf.get(pid)!));
    const descendants = own.filter((r) => r.pid !== 1 && underInit(r.pid));
    const shown = descendants.filter((r) => tree.has(r.pid));
    assert.ok(shown.length >= descendants.length - 3, `${shown.length} of ${descendants.length} in the tree:\n${out}`);
    for (const comm of [...KNOWN_COMMS, WORKLOAD]) assert.ok(shown.some((r) => r.comm === comm), `${comm} in the tree:\n${out}`);
    assert.deepEqual(shown.map((r) => `${r.pid} under ${r.ppid}`), shown.map((r) => `${r.pid} under ${tree.get(r.pid)!.parent}`));
    const web = own.find((r) => r.comm === 'web-frontend')!;
    const sleeper = own.find((r) => r.ppid === web.pid && r.comm === 'sleep')!;
    assert.match(out, new RegExp(`web-frontend\\(${web.pid}\\)---sleep\\(${sleeper.pid}\\)`), out);
    // The workload's three threads, as guest A's /proc/<pid>/task has them besides the leader.
    const workload = own.find((r) => r.comm === WORKLOAD)!;
    const tids = (await guestCommandOutput(server, `ls /proc/${workload.pid}/task`)).trim().split(/\s+/).map(Number).filter((t) => t !== workload.pid);
    assert.equal(tids.length, 3);
    for (const tid of tids) assert.deepEqual(tree.get(tid), { parent: workload.pid, name: `{${WORKLOAD}}` }, `thread ${tid}:\n${out}`);
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
    // procps-ng's ps too (what a Debian IDS VM has): the forwarder gives it the pid namespace it needs.
    const ng = await reader.run(`hyperspector-intake server ${PROCPS_NG.ps} -ef -ww 2>&1; echo "exit=$?"`);
    assert.match(ng, /exit=0/, ng);
    for (const comm of ['web-frontend', 'log-shipper']) assert.match(ng, new RegExp(comm), ng);
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
