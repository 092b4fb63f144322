// The process-mapper sidecar against a real guest, with no kernel profile given (zero
// configuration: the guest kernel's own BTF and kallsyms): it finds the VMI's QEMU among all
// processes, publishes process start/exit within two poll intervals, alerts on processes outside
// the learned baseline and on a root shell spawned by a network service, picks up a reboot into
// another kernel series inside the same QEMU (kexec, 6.1 → 6.12), follows QEMU across a restart,
// and only ever holds guest memory open read-only.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { GuestIntrospector } from '../../../src/introspection/guest-introspector.ts';
import type { ProcessSnapshot } from '../../../src/introspection/process-info.ts';
import type { MapperEvent } from '../../../src/sidecar/events.ts';
import { QemuGuest, type BootOptions } from '../../../testenv/guest/qemu-guest.ts';
import { DEBIAN_KERNELS, ensureDebianKernelModule } from '../../../testenv/guest/debian-kernel.ts';
import { hideModuleFromList, hideProcessFromTaskList } from '../../../testenv/guest/dkom.ts';
import { buildInitramfs } from '../../../testenv/guest/initramfs.ts';
import { kexecFiles, kexecIntoNextKernel } from '../../../testenv/guest/kexec.ts';
import { KNOWN_COMMS, START_KNOWN_PROCESSES, waitForGuestPs } from '../../../testenv/guest/scenario.ts';
import { SidecarProcess } from '../../../testenv/guest/sidecar-process.ts';
import { SCENARIO_FILES_WITH_WORKLOAD, testGuestAssets } from '../../../testenv/guest/test-guest.ts';

const POLL_MS = 1000;

function describeEvent(r: { at: number; event: MapperEvent }): string {
  const e = r.event as MapperEvent & { process?: { pid: number; comm: string; state: string; args: string; startTimeNs: number }; rule?: string };
  return `${new Date(r.at).toISOString()} ${e.type} ${e.rule ?? ''} ${e.process ? `${e.process.pid} ${e.process.comm} ${e.process.state} ${e.process.startTimeNs} ${e.process.args}` : ''}`;
}
const BASELINE_MS = 3000;
const SOCKET_SCAN_MS = 2000;

describe('process-mapper sidecar against a running guest', function () {
  this.timeout(600_000);
  const vmi = { namespace: 'hs-e2e', name: 'web-1', uid: randomUUID() };
  let boot: BootOptions;
  let guest: QemuGuest;
  let sidecar: SidecarProcess;
  const first = () => testGuestAssets(DEBIAN_KERNELS['bookworm-6.1']);
  const next = () => testGuestAssets(DEBIAN_KERNELS['bookworm-6.12']);

  before(async () => {
    // The guest can kexec into the 6.12 kernel (with the plain scenario initramfs).
    const initrd = buildInitramfs({
      ...SCENARIO_FILES_WITH_WORKLOAD(),
      '/lib/modules/dummy.ko': { fromFile: ensureDebianKernelModule(first().kernel, 'drivers/net/dummy.ko') },
      ...kexecFiles(next().kernel.vmlinuz, first().initrd),
    });
    boot = { kernel: first().kernel.vmlinuz, initrd, kaslr: true, memoryMiB: 384, ...vmi };
    guest = await QemuGuest.boot(boot);
    for (const line of START_KNOWN_PROCESSES) await guest.run(line);
    await waitForGuestPs(guest, (rows) => KNOWN_COMMS.every((c) => rows.some((r) => r.comm === c)), 60_000);
    // No --profiles: the default /etc/hyperspector/kernel-profiles does not exist here (no ConfigMap).
    sidecar = await SidecarProcess.start([
      '--namespace', vmi.namespace, '--name', vmi.name, '--uid', vmi.uid,
      '--poll-interval', String(POLL_MS), '--baseline-window', String(BASELINE_MS), '--socket-scan-interval', String(SOCKET_SCAN_MS),
    ]);
  });

  after(async () => {
    await sidecar?.stop();
    await guest?.stop();
  });

  it('finds the QEMU of the VMI and serves its process table', async () => {
    const attached = await sidecar.waitForEvent((e) => e.type === 'guest-attached', 60_000);
    assert.equal(attached.event.type === 'guest-attached' && attached.event.qemuPid, guest.pid);
    const { status, body } = await sidecar.getJson<ProcessSnapshot & { qemuPid: number }>('/processes');
    assert.equal(status, 200);
    assert.equal(body.qemuPid, guest.pid);
    for (const comm of KNOWN_COMMS) assert.ok(body.processes.some((p) => p.comm === comm), `${comm} missing from /processes`);
    assert.equal(body.kernel.profileSource, 'guest-memory');
    const health = await sidecar.getJson<{ profileSource?: string; kernelRelease?: string }>('/healthz');
    assert.equal(health.status, 200);
    assert.deepEqual([health.body.profileSource, health.body.kernelRelease], ['guest-memory', first().profile.kernel.release]);
    assert.ok(attached.event.type === 'guest-attached' && attached.event.profileSource === 'guest-memory');
  });

  it('holds guest memory open read-only', () => {
    const memFds = readdirSync(`/proc/${sidecar.pid}/fd`).filter((fd) => {
      try {
        return readlinkSync(`/proc/${sidecar.pid}/fd/${fd}`) === `/proc/${guest.pid}/mem`;
      } catch {
        return false;
      }
    });
    assert.equal(memFds.length, 1, 'expected exactly one open guest-memory descriptor');
    // fdinfo "flags" is the open(2) flags in octal; the access mode (low two bits) must be O_RDONLY.
    const flags = parseInt(/flags:\s+([0-7]+)/.exec(readFileSync(`/proc/${sidecar.pid}/fdinfo/${memFds[0]}`, 'utf8'))![1]!, 8);
    process.stderr.write(`[introspection] sidecar opened /proc/${guest.pid}/mem with flags 0${flags.toString(8)}\n`);
    assert.equal(flags & 0o3, 0, `guest memory opened with access mode ${flags & 0o3}, not O_RDONLY`);
  });

  it('publishes a process start and its exit within two poll intervals', async () => {
    // Past the learning window, so the new process is also outside the baseline.
    await sidecar.waitForJson<{ baselineLearning?: boolean }>('/processes', (b) => b.baselineLearning === false, BASELINE_MS + 10_000);
    const from = sidecar.events.length;
    await guest.run('/usr/bin/intruder-tool --exfiltrate /etc/passwd &');
    const startedAt = Date.now();
    // A poll may catch the fork of the guest shell before its execve, or the execve itself after
    // the kernel set the new comm and before it set the new argument area (an empty command line,
    // seen in CI): a process-exec with the command line follows at the next poll.
    const start = await sidecar.waitForEvent(
      (e) => (e.type === 'process-start' || e.type === 'process-exec') && e.process.comm === 'intruder-tool' && e.process.cmdline.length > 0,
      2 * POLL_MS + 500,
      from,
    );
    assert.ok(start.at - startedAt <= 2 * POLL_MS + 500, `start event after ${start.at - startedAt} ms`);
    const started = (start.event as Extract<MapperEvent, { type: 'process-start' | 'process-exec' }>).process;
    const pid = started.pid;
    assert.deepEqual(started.cmdline, ['/bin/sh', '/usr/bin/intruder-tool', '--exfiltrate', '/etc/passwd']);

    const alert = await sidecar.waitForEvent((e) => e.type === 'alert' && e.rule === 'ProcessOutsideBaseline' && e.process.pid === pid, 2 * POLL_MS + 500, from);
    assert.match((alert.event as Extract<MapperEvent, { type: 'alert'; process: unknown }>).message, /intruder-tool/);

    await guest.run(`kill ${pid}`);
    const killedAt = Date.now();
    const exit = await sidecar.waitForEvent((e) => e.type === 'process-exit' && e.process.pid === pid, 2 * POLL_MS + 500, from);
    assert.ok(exit.at - killedAt <= 2 * POLL_MS + 500, `exit event after ${exit.at - killedAt} ms`);
  });

  it('does not alert on processes learned during the baseline window', async () => {
    const from = sidecar.events.length;
    await guest.run('/usr/bin/web-frontend --port 8081 &');
    await sidecar.waitForEvent((e) => (e.type === 'process-start' || e.type === 'process-exec') && e.process.comm === 'web-frontend', 2 * POLL_MS + 500, from);
    // The sleep child of the script is also known (learned); give the next poll a chance too.
    const marker = sidecar.events.length;
    await guest.run('sleep 100009 &');
    await sidecar.waitForEvent((e) => (e.type === 'process-start' || e.type === 'process-exec') && e.process.args === 'sleep 100009', 2 * POLL_MS + 500, marker);
    const alerts = sidecar.events.slice(from).filter((e) => e.event.type === 'alert');
    assert.deepEqual(alerts.map((a) => JSON.stringify(a.event)), [], `all events:\n${sidecar.events.map(describeEvent).join('\n')}`);
  });

  it('alerts on a root shell started by a network service', async () => {
    const from = sidecar.events.length;
    await guest.run('/usr/sbin/nginx &');
    const alert = await sidecar.waitForEvent((e) => e.type === 'alert' && e.rule === 'RootShellFromNetworkService', 2 * POLL_MS + 1500, from);
    const a = alert.event as Extract<MapperEvent, { type: 'alert'; process: unknown }>;
    assert.equal(a.process.comm, 'sh');
    assert.equal(a.parent?.comm, 'nginx');
  });

  it('serves one process in detail: threads, executable, open files', async () => {
    await guest.run('ip link set lo up; /usr/bin/hs-workload 8081 > /dev/null &');
    const body = await sidecar.waitForJson<{ processes: Array<{ pid: number; comm: string }> }>('/processes', (b) => b.processes?.some((p) => p.comm === 'hs-workload'), 30_000);
    const pid = body.processes.find((p) => p.comm === 'hs-workload')!.pid;
    const details = await sidecar.waitForJson<{ pid?: number; threads?: unknown[]; exe?: string; openFiles?: Array<{ target: string }> }>(`/processes/${pid}`, (d) => d.threads?.length === 4 && (d.openFiles ?? []).some((f) => f.target.startsWith('socket:[')), 30_000);
    assert.equal(details.exe, '/usr/bin/hs-workload');
    assert.ok(details.openFiles!.some((f) => f.target === '/etc/passwd'));
    assert.equal((await sidecar.getJson('/processes/999999')).status, 404);
  });

  it('alerts on a program listening on a port the baseline never saw (NewListeningSocket), and serves the socket scan', async () => {
    // hs-workload was started after the baseline window, listening on 127.0.0.1:8081 (previous test).
    const alert = await sidecar.waitForEvent((e) => e.type === 'alert' && e.rule === 'NewListeningSocket' && e.process.comm === 'hs-workload', 2 * SOCKET_SCAN_MS + 2 * POLL_MS + 1000, 0);
    const a = alert.event as Extract<MapperEvent, { type: 'alert'; process: unknown }>;
    assert.equal(a.socket?.local, '127.0.0.1:8081');
    assert.match(a.message, /^hs-workload \(pid \d+, uid 0\) listens on tcp 127\.0\.0\.1:8081, which the baseline did not have$/);
    const scan = await sidecar.getJson('/sockets');
    assert.equal(scan.status, 200);
    const sockets = (scan.body as { sockets: Array<{ pid: number; comm: string; state?: string; local?: string }> }).sockets;
    assert.ok(sockets.some((x) => x.pid === a.process.pid && x.state === 'LISTEN' && x.local === '127.0.0.1:8081'), JSON.stringify(sockets));
    const text = await (await fetch(`${sidecar.baseUrl}/metrics`)).text();
    assert.match(text, /hyperspector_process_mapper_alerts_total\{rule="NewListeningSocket"\} 1\n/);
  });

  it('is what kubectl-hyperspector ps --url prints', () => {
    const out = execFileSync(process.execPath, ['bin/kubectl-hyperspector.js', 'ps', '--url', sidecar.baseUrl], { encoding: 'utf8' });
    assert.match(out, /^PID\s+PPID\s+UID\s+STAT\s+START\s+COMMAND\s+ARGS\n/);
    assert.match(out, /\n\d+\s+1\s+1001\s+S\s+\S+\s+log-shipper\s+\/bin\/sh \/usr\/bin\/log-shipper \/var\/log\/app\.log\n/);
  });

  it('exports metrics', async () => {
    const text = await (await fetch(`${sidecar.baseUrl}/metrics`)).text();
    assert.match(text, /hyperspector_process_mapper_snapshots_total\{result="consistent"\} [1-9]/);
    assert.match(text, /hyperspector_process_mapper_alerts_total\{rule="ProcessOutsideBaseline"\} [1-9]/);
    assert.match(text, /hyperspector_process_mapper_guest_attached 1/);
    assert.match(text, /hyperspector_process_mapper_kernel_profile_info\{source="guest-memory",release="6\.1\.[^"]+"\} 1/);
  });

  it('alerts on a process hidden from the task list (DKOM, made by a test-only write)', async () => {
    await guest.run('sleep 100088 &');
    // A second, read-only reader in the test finds the task to unlink.
    const local = GuestIntrospector.attachToQemu(guest.pid, []);
    try {
      const deadline = Date.now() + 30_000;
      let p = local.snapshot().processes.find((x) => x.args === 'sleep 100088');
      while (!p) {
        if (Date.now() > deadline) throw new Error('sleep 100088 never showed up');
        await new Promise((resolve) => setTimeout(resolve, 100)); // polling period, not a wait for the world
        p = local.snapshot().processes.find((x) => x.args === 'sleep 100088');
      }
      const from = sidecar.events.length;
      hideProcessFromTaskList(guest.pid, local, p.pid);
      const alert = await sidecar.waitForEvent((e) => e.type === 'alert' && e.rule === 'HiddenProcess' && e.process.pid === p.pid, 4 * POLL_MS + 2000, from);
      assert.match((alert.event as Extract<MapperEvent, { type: 'alert'; process: unknown }>).message, /hidden from the task list/);
      const text = await (await fetch(`${sidecar.baseUrl}/metrics`)).text();
      assert.match(text, /hyperspector_process_mapper_alerts_total\{rule="HiddenProcess"\} 1/);
    } finally {
      local.close();
    }
  });

  it('alerts on a kernel module hidden from the module list (test-only write)', async () => {
    await guest.run('insmod /lib/modules/dummy.ko');
    const local = GuestIntrospector.attachToQemu(guest.pid, []);
    try {
      const from = sidecar.events.length;
      hideModuleFromList(guest.pid, local, 'dummy');
      const alert = await sidecar.waitForEvent((e) => e.type === 'alert' && e.rule === 'HiddenModule', 4 * POLL_MS + 2000, from);
      const a = alert.event as Extract<MapperEvent, { rule: 'HiddenModule' }>;
      assert.equal(a.module.name, 'dummy');
      assert.match(a.message, /hidden from the module list/);
    } finally {
      local.close();
    }
  });

  it('picks up a reboot into another kernel series inside the same QEMU process (kexec 6.1 → 6.12)', async () => {
    const from = sidecar.events.length;
    await kexecIntoNextKernel(guest, { kaslr: true, timeoutMs: 240_000 });
    const detached = await sidecar.waitForEvent((e) => e.type === 'guest-detached' && e.qemuPid === guest.pid, 120_000, from);
    const attached = await sidecar.waitForEvent((e) => e.type === 'guest-attached' && e.qemuPid === guest.pid && e.kernelRelease === next().profile.kernel.release, 120_000, from);
    assert.ok(attached.event.type === 'guest-attached' && attached.event.profileSource === 'guest-memory');
    process.stderr.write(`[introspection] kexec: detached (${(detached.event as { reason?: string }).reason}), re-attached to ${next().profile.kernel.release} ${attached.at - detached.at} ms later\n`);
    // The first snapshot of the new kernel follows the attach within a poll.
    const health = await sidecar.waitForJson<{ profileSource?: string; kernelRelease?: string }>('/healthz', (b) => b.kernelRelease !== undefined, 3 * POLL_MS);
    assert.deepEqual([health.profileSource, health.kernelRelease], ['guest-memory', next().profile.kernel.release]);
    assert.match(await guest.run('cat /proc/version'), new RegExp(next().profile.kernel.release.replace(/[.+]/g, '\\$&')));
    // And the new kernel's processes are mapped.
    const marker = sidecar.events.length;
    await guest.run('sleep 100033 &');
    await sidecar.waitForEvent((e) => (e.type === 'process-start' || e.type === 'process-exec') && e.process.args === 'sleep 100033', 2 * POLL_MS + 1500, marker);
  });

  it('follows the VMI across a QEMU restart', async () => {
    const from = sidecar.events.length;
    const oldPid = guest.pid;
    await guest.stop();
    await sidecar.waitForEvent((e) => e.type === 'guest-detached' && e.qemuPid === oldPid, 3 * POLL_MS, from);
    guest = await QemuGuest.boot(boot);
    // Attach attempts back off while the new guest boots (at most 30 s apart).
    const attached = await sidecar.waitForEvent((e) => e.type === 'guest-attached' && e.qemuPid === guest.pid, 120_000, from);
    assert.notEqual(guest.pid, oldPid);
    assert.ok(attached);
  });
});
