// The real-guest backend alone (no cluster): a VMI and its launcher pod as the virt-handler
// stand-in would hand them over; a real QEMU guest in a launcher-pod-shaped network namespace and a
// kubelet-shaped cgroup, found by the process mapper's own finder; paused and resumed over QMP;
// stopped without leaving anything behind.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { findQemuForVmi } from '../../../src/sidecar/qemu-finder.ts';
import { GuestIntrospector } from '../../../src/introspection/guest-introspector.ts';
import { testGuestAssets } from '../../../testenv/guest/test-guest.ts';
import { RealGuestBackend, type RealGuest } from '../../../testenv/real-guests/real-guest-backend.ts';
import type { Pod, Vmi } from '../../../testenv/kubevirt/virt-handler-status.ts';
import { removeLeftovers } from '../../../testenv/real-guests/leftovers.ts';
import { namespaceExists } from '../../../testenv/real-guests/node-network.ts';
import { waitFor } from '../../../testenv/wait.ts';

interface Link {
  ifname: string;
  master?: string;
  flags: string[];
  linkinfo?: { info_kind?: string };
  addr_info?: { local: string; prefixlen: number }[];
}

function testVmi(): { vmi: Vmi; pod: Pod } {
  const vmiUid = randomUUID();
  const vmi: Vmi = {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachineInstance',
    metadata: { namespace: 'shop', name: 'web-1', uid: vmiUid },
    spec: {
      // More than the machine gives a guest: capped to 256 MiB.
      domain: { memory: { guest: '1Gi' }, firmware: { uuid: randomUUID() }, devices: { interfaces: [{ name: 'default', bridge: {} }] } },
      networks: [{ name: 'default', pod: {} }],
    },
  };
  const pod: Pod = {
    metadata: { namespace: 'shop', name: 'virt-launcher-web-1-x7k2p', uid: randomUUID(), labels: { 'kubevirt.io/created-by': vmiUid } },
    spec: { nodeName: 'node-a', containers: [{ name: 'compute' }] },
    status: { phase: 'Running', podIP: '10.128.0.7', qosClass: 'Burstable' },
  };
  return { vmi, pod };
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('real-guest backend: a VMI backed by a real QEMU guest', function () {
  this.timeout(300_000);
  const backend = new RealGuestBackend({ log: (l) => process.stderr.write(`[real-guests] ${l}\n`) });
  const { vmi, pod } = testVmi();
  let guest: RealGuest;

  before(async () => {
    testGuestAssets(); // kernel download and initramfs build are not part of the boot time
    await backend.start(vmi, pod);
    guest = backend.guest('shop', 'web-1')!;
    assert.ok(guest, 'the backend knows the guest');
    const bootMs = await guest.waitForBoot();
    process.stderr.write(`[real-guests] guest booted ${bootMs} ms after QEMU started (TCG)\n`);
  });

  after(async () => {
    await backend.close();
  });

  it('starts QEMU with the command line virt-launcher gives it, once per VMI', async () => {
    const args = readFileSync(`/proc/${guest.pid}/cmdline`, 'utf8').split('\0');
    assert.equal(args[0], 'qemu-system-x86_64');
    assert.equal(args[args.indexOf('-name') + 1], 'guest=shop_web-1,debug-threads=on');
    assert.equal(args[args.indexOf('-uuid') + 1], vmi.spec.domain.firmware.uuid);
    assert.equal(args[args.indexOf('-m') + 1], 'size=262144k');
    assert.ok(args.some((a) => a.includes(`/kubevirt-private/${vmi.metadata.uid}/virt-serial0`)));
    await backend.start(vmi, pod); // virt-handler syncs again: nothing new starts
    assert.equal(backend.list().length, 1);
    assert.equal(backend.guest('shop', 'web-1')!.pid, guest.pid);
  });

  it('is found by the process mapper from the VMI name and UID, and its memory is readable', () => {
    assert.equal(findQemuForVmi({ namespace: 'shop', name: 'web-1', uid: vmi.metadata.uid! }), guest.pid);
    assert.equal(findQemuForVmi({ namespace: 'shop', name: 'web-1', uid: randomUUID() }), undefined, 'an earlier VMI of the same name is not this one');
    const introspector = GuestIntrospector.attachToQemu(guest.pid, [testGuestAssets().profile]);
    try {
      const snapshot = introspector.snapshot();
      assert.ok(snapshot.processes.some((p) => p.pid === 1 && p.comm === 'init'), JSON.stringify(snapshot.processes.slice(0, 5)));
    } finally {
      introspector.close();
    }
  });

  it('runs QEMU in a cgroup that names the launcher pod UID as a kubelet does', () => {
    const podSlice = `kubepods-burstable-pod${pod.metadata!.uid!.replace(/-/g, '_')}.slice`;
    const line = readFileSync(`/proc/${guest.pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'));
    assert.match(line ?? '', new RegExp(`^0::/kubepods\\.slice/kubepods-burstable\\.slice/${podSlice}/cri-containerd-[0-9a-z]+\\.scope$`));
    assert.ok(existsSync(guest.cgroup.path));
    assert.deepEqual(guest.cgroup.pids(), [guest.pid]);
  });

  it('runs QEMU in the launcher pod namespace: k6t-eth0 bridging eth0-nic and tap0, the pod IP on eth0, a route from the node', async () => {
    const ns = guest.launcher.ns;
    assert.equal(statSync(`/proc/${guest.pid}/ns/net`).ino, statSync(`/run/netns/${ns.name}`).ino, 'QEMU is in the launcher namespace');
    const links = await ns.json<Link[]>(['ip', '-j', '-d', 'addr', 'show']);
    const link = (name: string) => links.find((l) => l.ifname === name);
    assert.equal(link('k6t-eth0')?.linkinfo?.info_kind, 'bridge');
    assert.equal(link('tap0')?.master, 'k6t-eth0');
    assert.equal(link('tap0')?.linkinfo?.info_kind, 'tun');
    assert.ok(!link('tap0')?.flags.includes('NO-CARRIER'), 'QEMU holds the tap open');
    assert.equal(link('eth0-nic')?.master, 'k6t-eth0');
    assert.equal(link('eth0-nic')?.linkinfo?.info_kind, 'veth');
    assert.ok(['dummy', 'bridge'].includes(link('eth0')?.linkinfo?.info_kind ?? ''), 'eth0 is a dummy (or a port-less bridge where there is no dummy driver)');
    assert.equal(link('eth0')?.master, undefined);
    assert.deepEqual(link('eth0')?.addr_info?.map((a) => `${a.local}/${a.prefixlen}`), ['10.128.0.7/32']);
    const node = guest.launcher.node;
    const routes = await node.ns.json<{ dst: string; dev: string }[]>(['ip', '-j', 'route', 'show']);
    assert.ok(routes.some((r) => r.dst === '10.128.0.7' && r.dev === guest.launcher.nodeSideVeth), JSON.stringify(routes));
    assert.ok(await namespaceExists(`${backend.network.prefix}-underlay`), 'the node sits on the underlay');
    assert.equal(node.underlayAddress, '198.18.0.1');
  });

  it('pauses with QMP stop: the guest console and clock stand still until cont', async () => {
    await guest.console.send('(while :; do echo "tick $(cut -d" " -f1 /proc/uptime)"; usleep 200000; done) & TICKER=$!');
    const ticks = () => [...guest.console.output.matchAll(/^tick (\d+\.\d+)$/gm)].map((m) => Number(m[1]));
    await waitFor(() => ticks().length >= 3, { timeoutMs: 60_000, description: 'the guest ticker to print' });

    await backend.pause(vmi, true);
    const pausedAt = Date.now();
    assert.equal(await guest.status(), 'paused');
    const frozen = guest.console.output.length;
    const lastTick = ticks().at(-1)!;
    // A window of 15 ticker periods: the console must not move while paused.
    const moved = await waitFor(() => guest.console.output.length > frozen, { timeoutMs: 3000, intervalMs: 100 }).then(
      () => true,
      () => false,
    );
    assert.equal(moved, false, `the console moved while paused:\n${guest.console.output.slice(frozen)}`);

    await backend.pause(vmi, false);
    const pausedMs = Date.now() - pausedAt;
    assert.equal(await guest.status(), 'running');
    const count = ticks().length;
    await waitFor(() => ticks().length > count, { timeoutMs: 30_000, description: 'the ticker to resume' });
    const guestAdvance = ticks()[count]! - lastTick;
    assert.ok(guestAdvance < pausedMs / 1000 - 1.5, `the guest clock advanced ${guestAdvance} s over a ${pausedMs} ms pause`);
    await guest.console.send('kill $TICKER');
  });

  it('stops: no process, namespace, cgroup, tap or run directory left; then nothing of the nodes either', async () => {
    const { pid, cgroup, launcher, runDir } = guest;
    await backend.stop(vmi);
    assert.equal(processExists(pid), false, 'QEMU is gone');
    assert.equal(backend.guest('shop', 'web-1'), undefined);
    assert.equal(await namespaceExists(launcher.ns.name), false, 'the launcher namespace (and its tap) is gone');
    const nodeLinks = await launcher.node.ns.json<Link[]>(['ip', '-j', 'link', 'show']);
    assert.ok(!nodeLinks.some((l) => l.ifname === launcher.nodeSideVeth), 'the node side of the pod veth is gone');
    assert.equal(existsSync(cgroup.path), false, 'the container cgroup is gone');
    assert.equal(existsSync(`${cgroup.root}/${cgroup.segments.slice(0, 3).join('/')}`), false, 'the pod cgroup is gone');
    assert.equal(existsSync(runDir), false);
    await backend.stop(vmi); // again: nothing to do

    await backend.close();
    for (const name of backend.network.namespaceNames()) assert.equal(await namespaceExists(name), false, `${name} is gone`);
    const left = (JSON.parse(execFileSync('ip', ['-j', 'netns', 'list'], { encoding: 'utf8' }).trim() || '[]') as { name: string }[]).filter((n) => n.name.startsWith(backend.network.prefix));
    assert.deepEqual(left, [], 'no namespace of this backend is left');
  });
});

describe('real-guest backend: a harness killed with SIGKILL', function () {
  this.timeout(120_000);

  it('takes its QEMU with it, and the next harness removes its namespaces and cgroups', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/host/real-guests/fixtures/killed-harness.ts'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const made = await waitFor(() => (out.includes('\n') ? (JSON.parse(out.split('\n')[0]!) as { qemuPid: number; netns: string[]; cgroup: string; runDir: string }) : undefined), {
      timeoutMs: 60_000,
      description: 'the doomed harness to start its guest',
    });
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
    await waitFor(() => !processExists(made.qemuPid), { timeoutMs: 10_000, description: 'its QEMU to die with it (pdeathsig)' });
    for (const name of made.netns) assert.ok(await namespaceExists(name), `${name} outlived the harness`);
    assert.ok(existsSync(made.cgroup), 'the cgroup outlived the harness');
    assert.ok(existsSync(made.runDir), 'the launcher run directory outlived the harness');

    await removeLeftovers();
    for (const name of made.netns) assert.equal(await namespaceExists(name), false, `${name} removed`);
    assert.equal(existsSync(made.cgroup), false, 'the cgroup removed');
    assert.equal(existsSync(made.runDir), false, 'the run directory removed');
  });
});
