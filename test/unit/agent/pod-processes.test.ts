import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PodProcessFinder, podUidOfCgroup } from '../../../src/agent/pod-processes.ts';

const UID_A = '3f1c2b7e-9a4d-4e21-8c3b-5d6e7f809a1b';
const UID_B = 'a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d';
const systemdV2 = (uid: string, qos = 'burstable') =>
  `0::/kubepods.slice/kubepods-${qos}.slice/kubepods-${qos}-pod${uid.replace(/-/g, '_')}.slice/cri-containerd-0123abcd.scope\n`;

describe('agent: pod UID from /proc/<pid>/cgroup', () => {
  it('reads the systemd driver layout (cgroup v2), with - written as _', () => {
    assert.equal(podUidOfCgroup(systemdV2(UID_A)), UID_A);
    assert.equal(podUidOfCgroup(systemdV2(UID_A, 'besteffort')), UID_A);
  });

  it('reads a Guaranteed pod (directly under kubepods.slice)', () => {
    assert.equal(podUidOfCgroup(`0::/kubepods.slice/kubepods-pod${UID_B.replace(/-/g, '_')}.slice/cri-containerd-ff.scope`), UID_B);
  });

  it('reads the cgroupfs driver layout and cgroup v1 lines', () => {
    const v1 = [`12:memory:/kubepods/burstable/pod${UID_B}/0123456789abcdef`, `11:cpu,cpuacct:/kubepods/burstable/pod${UID_B}/0123456789abcdef`, '0::/'].join('\n');
    assert.equal(podUidOfCgroup(v1), UID_B);
    assert.equal(podUidOfCgroup(`0::/kubepods/pod${UID_A}/crio-abc`), UID_A);
  });

  it('finds no pod for host processes and look-alikes', () => {
    assert.equal(podUidOfCgroup('0::/system.slice/kubelet.service\n'), undefined);
    assert.equal(podUidOfCgroup('0::/user.slice/user-0.slice/session-1.scope\n'), undefined);
    assert.equal(podUidOfCgroup('0::/kubepods.slice/kubepods-burstable.slice\n'), undefined);
    assert.equal(podUidOfCgroup('0::/mypod-not-a-uid.slice\n'), undefined);
  });
});

describe('agent: pod UID → pid → network namespace, on a fake /proc', () => {
  let proc: string;
  let clock: number;
  const writeProcess = (pid: number, cgroup: string) => {
    mkdirSync(join(proc, String(pid), 'ns'), { recursive: true });
    writeFileSync(join(proc, String(pid), 'cgroup'), cgroup);
  };

  beforeEach(() => {
    proc = mkdtempSync(join(tmpdir(), 'hs-fake-proc-'));
    clock = 1_000_000;
    writeProcess(1, '0::/init.scope\n');
    writeProcess(420, systemdV2(UID_A));
    writeProcess(77, systemdV2(UID_A)); // the pod's pause process, a lower pid
    writeProcess(9001, `0::/kubepods/besteffort/pod${UID_B}/c0ffee\n`);
    mkdirSync(join(proc, 'self'));
    writeFileSync(join(proc, 'uptime'), '1 1\n');
  });
  afterEach(() => rmSync(proc, { recursive: true, force: true }));

  const finder = () => new PodProcessFinder({ procRoot: proc, now: () => clock });

  it('finds the lowest pid of each pod and its namespace file under the proc root', async () => {
    const f = finder();
    assert.equal(await f.pidOfPod(UID_A), 77);
    assert.equal(await f.pidOfPod(UID_B.toUpperCase()), 9001);
    assert.deepEqual(await f.netnsOfPod(UID_A), { path: join(proc, '77', 'ns', 'net'), label: 'pid:77', ipNetnsArg: '77' });
  });

  it('says undefined for a pod without a process on this node', async () => {
    assert.equal(await finder().netnsOfPod('11111111-2222-4333-8444-555555555555'), undefined);
  });

  it('checks a remembered pid again: a reused pid leads to a new scan', async () => {
    const f = finder();
    assert.equal(await f.pidOfPod(UID_A), 77);
    // pid 77 exits and is reused by a host process; the pod still has pid 420.
    writeProcess(77, '0::/system.slice/cron.service\n');
    clock += 10_000;
    assert.equal(await f.pidOfPod(UID_A), 420);
    rmSync(join(proc, '420'), { recursive: true });
    assert.equal(await f.pidOfPod(UID_A), undefined);
  });

  it('scans /proc at most once for a burst of misses, and again once that scan is old', async () => {
    const f = finder();
    const missing = '11111111-2222-4333-8444-555555555555';
    assert.equal(await f.pidOfPod(missing), undefined);
    writeProcess(5000, systemdV2(missing));
    assert.equal(await f.pidOfPod(missing), undefined, 'within the reuse window the scan stands');
    clock += 1_000;
    assert.equal(await f.pidOfPod(missing), 5000);
  });
});
