import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AmbiguousQemuError, createQemuFinder, findQemuForVmi } from '../../../src/sidecar/qemu-finder.ts';

const VMI_UID = '6a1c9e3e-1111-4222-8333-444455556666';
const POD_UID = '0b5f2c1d-aaaa-4bbb-8ccc-ddddeeeeffff';
const OTHER_POD = '9e8d7c6b-1234-4567-89ab-cdef01234567';
const vmi = { namespace: 'shop', name: 'web-1-server', uid: VMI_UID, launcherPodUid: POD_UID };
const qemuArgs = ['/usr/bin/qemu-system-x86_64', '-name', 'guest=shop_web-1-server,debug-threads=on', '-chardev', `socket,id=charmonitor,path=/var/run/kubevirt-private/${VMI_UID}/monitor.sock`];
const podCgroup = (uid: string) => `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${uid.replace(/-/g, '_')}.slice/cri-containerd-abc.scope\n`;

describe('QEMU discovery (fake /proc)', () => {
  let proc: string;
  const add = (pid: number, args: string[], cgroup: string) => {
    mkdirSync(join(proc, String(pid)));
    writeFileSync(join(proc, String(pid), 'cmdline'), `${args.join('\0')}\0`);
    writeFileSync(join(proc, String(pid), 'cgroup'), cgroup);
  };
  beforeEach(() => (proc = mkdtempSync(join(tmpdir(), 'hs-fake-proc-'))));
  afterEach(() => rmSync(proc, { recursive: true, force: true }));

  it('picks the QEMU in the launcher pod, not a decoy with the same command line elsewhere (even a newer one)', () => {
    add(100, qemuArgs, podCgroup(POD_UID));
    add(200, qemuArgs, podCgroup(OTHER_POD)); // another pod imitating it
    add(300, qemuArgs, '0::/user.slice/user-0.slice/session-1.scope\n'); // a host process imitating it
    assert.equal(findQemuForVmi(vmi, proc), 100);
    assert.equal(findQemuForVmi({ ...vmi, launcherPodUid: OTHER_POD }, proc), 200);
  });

  it('finds nothing when only decoys run (the real QEMU is gone)', () => {
    add(200, qemuArgs, podCgroup(OTHER_POD));
    assert.equal(findQemuForVmi(vmi, proc), undefined);
  });

  it('refuses two claimants in the launcher pod as ambiguous', () => {
    add(100, qemuArgs, podCgroup(POD_UID));
    add(101, qemuArgs, podCgroup(POD_UID));
    assert.throws(() => findQemuForVmi(vmi, proc), (err: unknown) => err instanceof AmbiguousQemuError && err.pids.join() === '100,101');
  });

  it('the cached finder rescans periodically, so an impostor started later is noticed', () => {
    add(100, qemuArgs, podCgroup(POD_UID));
    const find = createQemuFinder(proc, 3);
    assert.equal(find(vmi), 100);
    add(150, qemuArgs, podCgroup(POD_UID));
    assert.equal(find(vmi), 100, 'cached between rescans');
    assert.throws(() => find(vmi), AmbiguousQemuError);
  });

  it('without a launcher pod UID (development) the newest match wins, as before', () => {
    add(100, qemuArgs, podCgroup(POD_UID));
    add(200, qemuArgs, podCgroup(OTHER_POD));
    assert.equal(findQemuForVmi({ namespace: 'shop', name: 'web-1-server', uid: VMI_UID }, proc), 200);
  });
});
