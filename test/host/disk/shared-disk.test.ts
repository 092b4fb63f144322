// Inter-VM disk mounting on real disks and two real QEMUs: a server guest writes its ext4 file
// systems continuously while an IDS guest has the same raw images plugged the way KubeVirt plugs a
// `readonly: true` + `shareable: true` disk (kubevirt-disk-options.ts says where each option comes
// from), and mounts them with the mount script of the IDS VM's merged cloud-init.
//
// The `it`s run in order on one pair of guests (two TCG boots are most of the cost); the last one
// kills the server.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { parse } from 'yaml';
import { join } from 'node:path';
import {
  buildDiskInspectionCloudInit,
  diskSerialForVolume,
  mergeDiskInspectionUserData,
  MOUNT_SCRIPT_PATH,
} from '../../../src/builders/disk-inspection-cloud-init.ts';
import { QemuGuest } from '../../../testenv/guest/qemu-guest.ts';
import { debugfsList, diskGuestAssets, PAUSE_WRITER, RESUME_WRITER, UDEV_BY_ID, ext4Features, makeExt4Image, makeXfsImage, mountScriptFromUserData, openImageFds, sha256File, type DiskGuestAssets } from './disk-guest.ts';
import { hotplugPortArgs, idsDisk, idsDiskArgs, kubevirtDiskArgs, kubevirtDiskSpec, serverDiskArgs, type KubeVirtDisk } from '../../../testenv/kubevirt/kubevirt-disk-options.ts';
import { Qmp } from '../../../testenv/guest/qmp.ts';

const MS = 'web-1';
const LIVE = { volume: 'rootdisk', serial: diskSerialForVolume(MS, 'rootdisk') };
const JOURNAL = { volume: 'journal', serial: diskSerialForVolume(MS, 'journal') };
const XFS = { volume: 'xfsdata', serial: diskSerialForVolume(MS, 'xfsdata') };
const MOUNT_ROOT = '/.serverfs';
/** What a user's IDS VM might already carry; the merge must keep it and add ours. */
const USER_DATA = '#cloud-config\npackages: [aide]\nruncmd:\n  - [aide, --init]\n';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const log = (msg: string) => process.stderr.write(`[disk] ${msg}\n`);

/** `sha256sum` over every file below <mount>/<dirs>, as path -> hash (what a checker compares). */
async function checksumTree(guest: QemuGuest, mount: string, dirs: string): Promise<Map<string, string>> {
  const out = await guest.run(`cd ${mount} && find ${dirs} -type f | sort | xargs -r sha256sum; echo "@@rc=$?"; cd /`);
  assert.match(out, /@@rc=0/, `checksum run over ${mount} failed:\n${out}`);
  return new Map(out.split('\n').filter((l) => /^[0-9a-f]{64} {2}/.test(l)).map((l) => [l.slice(66), l.slice(0, 64)] as [string, string]));
}

/** Files a checker would report between two checksum runs. */
function diffTrees(before: Map<string, string>, after: Map<string, string>) {
  return {
    added: [...after.keys()].filter((p) => !before.has(p)).sort(),
    removed: [...before.keys()].filter((p) => !after.has(p)).sort(),
    changed: [...after.keys()].filter((p) => before.has(p) && before.get(p) !== after.get(p)).sort(),
  };
}

/** Stops (SIGSTOP) or resumes a QEMU and waits until /proc says it is so. */
async function setStopped(pid: number, stopped: boolean): Promise<void> {
  process.kill(pid, stopped ? 'SIGSTOP' : 'SIGCONT');
  const deadline = Date.now() + 10_000;
  for (;;) {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '')[0];
    if ((state === 'T') === stopped) return;
    if (Date.now() > deadline) throw new Error(`QEMU ${pid} did not ${stopped ? 'stop' : 'resume'} (state ${state})`);
    await new Promise((r) => setImmediate(r));
  }
}

/** Starts a QEMU that only opens its disks (-S: no guest runs) and asks its monitor for them. */
function qemuOpenOnly(diskArgs: string[]): { status: number | null; output: string } {
  const r = spawnSync('qemu-system-x86_64', ['-S', '-nodefaults', '-display', 'none', '-machine', 'q35,accel=tcg', '-monitor', 'stdio', ...diskArgs], {
    input: 'info block\nquit\n',
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** Hot-plugs a disk into a running QEMU the way libvirt does: blockdev-add, then device_add on a free port. */
async function hotplug(qmp: Qmp, disk: KubeVirtDisk, port: string): Promise<void> {
  const { blockdevs, device } = kubevirtDiskSpec(disk);
  for (const b of blockdevs) await qmp.execute('blockdev-add', b);
  try {
    await qmp.execute('device_add', { ...device, bus: port });
  } catch (err) {
    for (const b of [...blockdevs].reverse()) await qmp.execute('blockdev-del', { 'node-name': b['node-name'] });
    throw err;
  }
}

/** Unplugs it again: device_del, the guest releases the PCIe slot (DEVICE_DELETED), blockdev-del. */
async function unplug(qmp: Qmp, disk: KubeVirtDisk): Promise<void> {
  const { blockdevs, device } = kubevirtDiskSpec(disk);
  await qmp.execute('device_del', { id: device.id });
  await qmp.event('DEVICE_DELETED', (d) => d.device === device.id, 120_000);
  for (const b of [...blockdevs].reverse()) await qmp.execute('blockdev-del', { 'node-name': b['node-name'] });
}

/** Waits in the guest (with a guest-side deadline) until a block device node exists. */
async function waitForDevice(guest: QemuGuest, dev: string): Promise<void> {
  const out = await guest.run(`i=0; while [ ! -b ${dev} ] && [ $i -lt 1200 ]; do usleep 50000; i=$((i + 1)); done; [ -b ${dev} ] && echo @@PRESENT`, 90_000);
  assert.match(out, /@@PRESENT/, `${dev} did not appear in the guest`);
}

describe('inter-VM disk mounting: two QEMUs on one raw image, as KubeVirt plugs a readonly + shareable disk', function () {
  this.timeout(900_000);
  let dir: string;
  let liveImage: string;
  let journalImage: string;
  let xfsImage: string;
  let assets: DiskGuestAssets;
  let server: QemuGuest;
  let ids: QemuGuest;
  let qmp: Qmp;
  let idsDisks: KubeVirtDisk[];
  let writerGenerationAtAttach = 0;
  const started = Date.now();

  const serverFiles: Record<string, string> = {
    'etc/passwd': 'root:x:0:0:root:/root:/bin/sh',
    'etc/hostname': 'web-1',
    'bin/tool': 'tool v1',
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hs-disk-'));
    liveImage = join(dir, 'rootdisk.img');
    journalImage = join(dir, 'journal.img');
    makeExt4Image(liveImage, 64, 'rootdisk');
    makeExt4Image(journalImage, 32, 'journal');
    xfsImage = join(dir, 'xfsdata.img');
    makeXfsImage(xfsImage, 320, 'xfsdata');
    const pieces = buildDiskInspectionCloudInit({
      disks: [LIVE, JOURNAL, XFS].map((d) => ({ volumeName: d.volume, serial: d.serial })),
      mountPath: MOUNT_ROOT,
      mode: 'Live',
      remountIntervalSeconds: 60,
    });
    const merged = mergeDiskInspectionUserData(USER_DATA, pieces);
    const mergedConfig = parse(merged.slice(merged.indexOf('\n') + 1)) as { packages: string[]; runcmd: unknown[] };
    assert.deepEqual([mergedConfig.packages, mergedConfig.runcmd[0]], [['aide'], ['aide', '--init']], 'the user\'s keys survived the merge');
    assets = diskGuestAssets(mountScriptFromUserData(merged));

    server = await QemuGuest.boot({
      kernel: assets.kernel.vmlinuz, initrd: assets.initrd, kaslr: false, name: 'server',
      extraArgs: [...serverDiskArgs(liveImage, LIVE.volume, 1), ...serverDiskArgs(journalImage, JOURNAL.volume, 2), ...serverDiskArgs(xfsImage, XFS.volume, 3)],
    });
    const files = Object.entries(serverFiles).map(([p, c]) => `echo '${c}' > /srv/live/${p}`).join(' && ');
    const setup = await server.run(
      'mkdir -p /srv/live /srv/journal /srv/xfs && mount -t ext4 /dev/vda /srv/live && mount -t ext4 /dev/vdb /srv/journal && mount -t xfs /dev/vdc /srv/xfs && ' +
        `mkdir -p /srv/live/etc /srv/live/bin /srv/journal/base && ${files} && ` +
        "echo 'checkpointed' > /srv/journal/base/a && echo 'also checkpointed' > /srv/journal/base/b && sync && echo @@SERVER-OK",
    );
    assert.match(setup, /@@SERVER-OK/, `server setup failed:\n${setup}`);
    await server.run('/usr/bin/server-writer /srv/live & echo $! > /tmp/writer.pid');
    log(`server up after ${((Date.now() - started) / 1000).toFixed(1)} s`);

    // The IDS VM boots without them; then they are hot-plugged into the running IDS VM as KubeVirt
    // + libvirt do it: readonly, shareable, with our serials, each on a free PCIe root port.
    const qmpPath = join(dir, 'ids-qmp.sock');
    ids = await QemuGuest.boot({
      kernel: assets.kernel.vmlinuz, initrd: assets.initrd, kaslr: false, name: 'ids',
      extraArgs: ['-qmp', `unix:${qmpPath},server=on,wait=off`, ...hotplugPortArgs(4)],
    });
    qmp = await Qmp.connect(qmpPath);
    idsDisks = [idsDisk(liveImage, LIVE.volume, LIVE.serial, 1), idsDisk(journalImage, JOURNAL.volume, JOURNAL.serial, 2), idsDisk(xfsImage, XFS.volume, XFS.serial, 3)];
    for (const [i, disk] of idsDisks.entries()) {
      await hotplug(qmp, disk, `pci.${i + 1}`);
      await waitForDevice(ids, `/dev/vd${'abc'[i]}`);
    }
    await ids.run(UDEV_BY_ID);
    writerGenerationAtAttach = Number(/generation (\d+)/.exec(await server.run('cat /srv/live/live/counter'))?.[1] ?? 0);
    log(`IDS up and its disks hot-plugged after ${((Date.now() - started) / 1000).toFixed(1)} s; server writer at generation ${writerGenerationAtAttach}`);
  });

  after(async () => {
    qmp?.close();
    await ids?.stop();
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    log(`whole run ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });

  it('QEMU image locking: read-only + share-rw opens beside the running server; without share-rw, or read-write, it is refused', async () => {
    // The IDS guest above runs with libvirt's current layout; the older one (raw format node over
    // an auto-read-only storage node) must open too.
    const older = qemuOpenOnly(idsDiskArgs(liveImage, LIVE.volume, LIVE.serial, 7, true));
    assert.equal(older.status, 0, older.output);
    assert.match(older.output, /libvirt-7-format.*\(raw, read-only\)/, older.output);

    // Hot-plugging the disk read-only but not shareable into the running IDS fails at device_add.
    const notShareable = await hotplug(qmp, { image: liveImage, nodeName: 'libvirt-8', diskName: 'not-shareable', readOnly: true, shareable: false, serial: 'x' }, 'pci.4').then(
      () => assert.fail('a non-shareable hot-plug beside the running server must fail'),
      (err: Error) => err.message,
    );
    assert.match(notShareable, /Failed to get shared "write" lock/);

    const readWrite = qemuOpenOnly(kubevirtDiskArgs({ image: liveImage, nodeName: 'libvirt-9', diskName: 'x', readOnly: false, shareable: true, serial: 'x' }));
    assert.notEqual(readWrite.status, 0);
    assert.match(readWrite.output, /Failed to get "write" lock/);
    log(`locking: ro+share-rw opens; ro without share-rw (hot-plug) -> "${notShareable}"; rw+share-rw -> "${/Failed to get[^\n]*/.exec(readWrite.output)?.[0]}"`);

    // The server holds the image open read-write and is still running; it never saw a lock error.
    assert.doesNotMatch(server.serial, /lock|Is another process using the image/i);
  });

  it('the IDS QEMU holds the image only through O_RDONLY descriptors (/proc/<pid>/fdinfo); the server through O_RDWR', () => {
    for (const image of [liveImage, journalImage, xfsImage]) {
      const idsFds = openImageFds(ids.pid, image);
      // Exactly one: the refused non-shareable hot-plug of the same image left nothing open.
      assert.equal(idsFds.length, 1, `IDS QEMU descriptors on ${image}: ${JSON.stringify(idsFds)}`);
      for (const fd of idsFds) assert.equal(fd.accessMode, 'O_RDONLY', `IDS fd ${fd.fd} flags 0${fd.flags.toString(8)}`);
      const serverFds = openImageFds(server.pid, image);
      assert.ok(serverFds.some((fd) => fd.accessMode === 'O_RDWR'), 'the server writes through an O_RDWR descriptor');
      log(`fdinfo ${image.split('/').pop()}: IDS ${idsFds.map((f) => `fd ${f.fd} flags 0${f.flags.toString(8)} ${f.accessMode}`).join(', ')}; server ${serverFds.map((f) => `fd ${f.fd} flags 0${f.flags.toString(8)} ${f.accessMode}`).join(', ')}`);
    }
  });

  it('the IDS guest finds the disks by serial, mounts them ro,noload and reads the files the server wrote', async () => {
    const byId = await ids.run('ls /dev/disk/by-id');
    for (const d of [LIVE, JOURNAL, XFS]) assert.match(byId, new RegExp(`virtio-${d.serial}`));
    const out = await ids.run(`${MOUNT_SCRIPT_PATH} mount 2>&1; echo "@@rc=$?"; cat /proc/mounts`);
    assert.match(out, /@@rc=0/, out);
    for (const volume of [LIVE.volume, JOURNAL.volume]) {
      const line = out.split('\n').find((l) => l.startsWith('/dev/') && l.includes(` ${MOUNT_ROOT}/${volume} `));
      assert.ok(line, `${volume} mounted:\n${out}`);
      assert.match(line, /^\/dev\/vd[ab] \S+ ext4 ro,nosuid,nodev,noexec,.*norecovery/, line); // the kernel shows noload as norecovery
    }
    const tree = await checksumTree(ids, `${MOUNT_ROOT}/${LIVE.volume}`, 'etc bin');
    assert.deepEqual(Object.fromEntries(tree), Object.fromEntries(Object.entries(serverFiles).map(([p, c]) => [p, sha256(`${c}\n`)])));
    assert.match(await ids.run('blockdev --getro /dev/vda; blockdev --getro /dev/vdb; blockdev --getro /dev/vdc'), /^1\n1\n1\n$/);
  });

  it('a refresh shows what the server changed since, and a checksum run over the mount reports the changed file', async () => {
    const mount = `${MOUNT_ROOT}/${LIVE.volume}`;
    const before = await checksumTree(ids, mount, 'etc bin');
    // The writer pauses while the change is made and synced: with the writer going, the blocks it
    // shares with the change (inode table, bitmaps) keep being re-logged in new transactions and
    // reach their home location only at a checkpoint, so a noload view can lag (see the docs).
    const change = await server.run(
      `${PAUSE_WRITER} && echo 'tool v2 (trojaned)' > /srv/live/bin/tool && echo 'added later' > /srv/live/etc/cron-backdoor && sync && echo @@CHANGED`,
    );
    assert.match(change, /@@CHANGED/);

    // A mounted read-only view does not follow the device: until the refresh, the IDS sees the past.
    const stale = await checksumTree(ids, mount, 'etc bin');
    assert.deepEqual(diffTrees(before, stale), { added: [], removed: [], changed: [] });

    const refresh = await ids.run(`${MOUNT_SCRIPT_PATH} refresh 2>&1; echo "@@rc=$?"`);
    assert.match(refresh, /@@rc=0/, refresh);
    const after = await checksumTree(ids, mount, 'etc bin');
    assert.deepEqual(diffTrees(before, after), { added: ['etc/cron-backdoor'], removed: [], changed: ['bin/tool'] });
    assert.equal(after.get('bin/tool'), sha256('tool v2 (trojaned)\n'));
    await server.run(RESUME_WRITER);
  });

  it('a refresh sees the change even while something else holds the device open (its cached blocks are dropped)', async () => {
    const mount = `${MOUNT_ROOT}/${LIVE.volume}`;
    // Something else holding the device open (a scanner, a udev probe) keeps the device's page
    // cache alive across umount, unless someone drops it. Observed on Debian's 6.1 kernel: ext4's
    // own umount already does (ext4_put_super -> invalidate_bdev), so even a bare umount + mount
    // sees the change; the script's `blockdev --flushbufs` before each mount does not rely on that.
    await ids.run('exec 7</dev/vda');
    try {
      assert.match(await server.run(`${PAUSE_WRITER} && echo 'second change' > /srv/live/etc/added-2 && sync && echo @@CHANGED`), /@@CHANGED/);
      const bare = await ids.run(`umount ${mount} && mount -t ext4 -o ro,noload /dev/vda ${mount} && ls ${mount}/etc; echo "@@rc=$?"`);
      assert.match(bare, /@@rc=0/, bare);
      assert.match(bare, /added-2/, 'ext4 umount dropped the cached blocks');
      assert.match(await server.run("echo 'third change' > /srv/live/etc/added-3 && sync && echo @@CHANGED"), /@@CHANGED/);
      const refresh = await ids.run(`${MOUNT_SCRIPT_PATH} refresh 2>&1; ls ${mount}/etc; echo "@@rc=$?"`);
      assert.match(refresh, /@@rc=0/, refresh);
      assert.match(refresh, /added-3/, `the script's refresh sees it:\n${refresh}`);
    } finally {
      await ids.run('exec 7<&-');
      await server.run(RESUME_WRITER);
    }
  });

  it('a refresh leaves a busy mount (a checker still reading) mounted, and finds disks through sysfs without udev\'s by-id links', async () => {
    const mount = `${MOUNT_ROOT}/${LIVE.volume}`;
    await ids.run(`(cd ${mount}/etc && exec sleep 100000) & echo $! > /tmp/busy.pid`);
    try {
      const busy = await ids.run(`${MOUNT_SCRIPT_PATH} refresh 2>&1; echo "@@rc=$?"; grep -c " ${mount} " /proc/mounts`);
      assert.match(busy, /volume rootdisk: \S+ is busy; left mounted until the next refresh/, busy);
      assert.match(busy, /@@rc=1\n1\n/, busy);
    } finally {
      await ids.run('kill $(cat /tmp/busy.pid); wait $(cat /tmp/busy.pid)');
    }
    // No udev (a minimal image, or before udev has run): the script reads /sys/block/*/serial.
    const sysfs = await ids.run(`rm -r /dev/disk/by-id && ${MOUNT_SCRIPT_PATH} umount && ${MOUNT_SCRIPT_PATH} mount 2>&1; echo "@@rc=$?"`);
    assert.match(sysfs, /@@rc=0/, sysfs);
    assert.match(sysfs, /volume rootdisk: mounted \/dev\/vda at \/\.serverfs\/rootdisk \(ext4 ro,noload\)/, sysfs);
    assert.match(sysfs, /volume journal: mounted \/dev\/vdb at \/\.serverfs\/journal \(ext4 ro,noload\)/, sysfs);
  });

  it('the IDS side writes nothing: with the server frozen, the image stays byte-identical through IDS mounts, reads and refreshes', async () => {
    await setStopped(server.pid, true);
    try {
      const images = [liveImage, journalImage, xfsImage];
      const before = images.map(sha256File);
      // Everything the IDS side ever does, plus a mount attempt without noload (refused below).
      const out = await ids.run(
        `${MOUNT_SCRIPT_PATH} refresh; find ${MOUNT_ROOT} -type f | xargs cat > /dev/null; ${MOUNT_SCRIPT_PATH} umount; ` +
          `mkdir -p /tmp/plain; mount -t ext4 -o ro /dev/vda /tmp/plain; echo "@@plain=$?"; ${MOUNT_SCRIPT_PATH} mount; echo "@@rc=$?"`,
      );
      assert.match(out, /@@plain=[1-9]/, 'a plain ro mount of a server-mounted ext4 is refused');
      assert.match(out, /@@rc=0/, out);
      assert.deepEqual(images.map(sha256File), before, 'the images changed while only the IDS side ran');
      log(`frozen server: image sha256 unchanged by the IDS side (${before.map((h) => h.slice(0, 16)).join(', ')})`);
    } finally {
      await setStopped(server.pid, false);
    }
  });

  it('xfs: mounted ro,norecovery,nouuid shows what is at home on disk; with the log dirty, a plain ro mount is refused', async () => {
    const mount = `${MOUNT_ROOT}/${XFS.volume}`;
    // xfs keeps committed metadata in its log until xfsaild writes it home (sync only forces the
    // log). A remount ro + rw quiesces the log (everything home, log clean); a file written after
    // that is, once synced, in the log only: the log worker is slowed so it stays there.
    const w = await server.run(
      'echo 360000 > /proc/sys/fs/xfs/xfssyncd_centisecs && ' +
        "echo 'on xfs' > /srv/xfs/file && mount -o remount,ro /srv/xfs && mount -o remount,rw /srv/xfs && " +
        "echo 'in the log only' > /srv/xfs/log-only && sync && echo @@XFS-OK",
    );
    assert.match(w, /@@XFS-OK/, w);
    const out = await ids.run(`${MOUNT_SCRIPT_PATH} refresh 2>&1; echo "@@rc=$?"; cat /proc/mounts; ls ${mount}`);
    assert.match(out, /@@rc=0/, out);
    const line = out.split('\n').find((l) => l.startsWith('/dev/') && l.includes(` ${mount} `));
    assert.ok(line, `${XFS.volume} mounted:\n${out}`);
    assert.match(line, /^\/dev\/vdc \S+ xfs ro,nosuid,nodev,noexec,.*nouuid,norecovery/, line);
    assert.doesNotMatch(out, /log-only/, 'norecovery shows the state at home, not the log');
    assert.deepEqual(Object.fromEntries(await checksumTree(ids, mount, 'file')), { file: sha256('on xfs\n') });

    const plain = await ids.run(`mkdir -p /tmp/plain; ${MOUNT_SCRIPT_PATH} umount; mount -t xfs -o ro /dev/vdc /tmp/plain; echo "@@plain=$?"; dmesg | tail -n 4; ${MOUNT_SCRIPT_PATH} mount; echo "@@rc=$?"`);
    assert.match(plain, /@@plain=[1-9]/, plain);
    assert.match(plain, /recovery required on read-only device/, plain);
    assert.match(plain, /@@rc=0/, plain);
  });

  it('the server never saw an error: its writer kept going, no I/O or file system errors, and e2fsck finds it clean', async () => {
    const generation = Number(/generation (\d+)/.exec(await server.run('cat /srv/live/live/counter'))?.[1] ?? 0);
    assert.ok(generation > writerGenerationAtAttach, `writer went on (${writerGenerationAtAttach} -> ${generation})`);
    assert.doesNotMatch(server.serial, /@@WRITER-FAILED/);
    const dmesg = await server.run('dmesg');
    assert.doesNotMatch(dmesg, /I\/O error|EXT4-fs error|Buffer I\/O|blk_update_request/, dmesg);
    // Stop the writer between two rounds, then the server unmounts.
    const stop = await server.run(`${PAUSE_WRITER} && kill $(cat /tmp/writer.pid) && umount /srv/live && echo @@UNMOUNTED`);
    assert.match(stop, /@@UNMOUNTED/, stop);
    // Unmounted cleanly by the server: a forced read-only check finds nothing to fix.
    execFileSync('e2fsck', ['-fn', liveImage], { stdio: 'ignore' });
    log(`server writer reached generation ${generation} (${writerGenerationAtAttach} when the IDS attached); e2fsck -fn clean`);
  });

  it('ext4 journal with committed, not yet checkpointed transactions: noload reads the checkpointed state, a mount without noload is refused, nothing is replayed', async () => {
    const mount = `${MOUNT_ROOT}/${JOURNAL.volume}`;
    // Keep metadata in the journal only: no periodic writeback, then fsync one new file (ext4
    // commits the transaction to the journal; the inode and directory blocks stay dirty in memory).
    const w = await server.run(
      'echo 0 > /proc/sys/vm/dirty_writeback_centisecs && echo 360000 > /proc/sys/vm/dirty_expire_centisecs && ' +
        "echo 'only in the journal' > /srv/journal/in-journal-only && sync /srv/journal/in-journal-only && echo @@FSYNCED",
    );
    assert.match(w, /@@FSYNCED/, w);
    // Killed mid-flight, as a crashed or force-stopped server would be.
    await server.stop();

    assert.ok(ext4Features(journalImage).includes('needs_recovery'), 'the journal needs recovery');
    assert.ok(!debugfsList(journalImage, '/').includes('in-journal-only'), 'the new file is not in its home blocks');
    const replayed = join(dir, 'journal-replayed.img');
    copyFileSync(journalImage, replayed);
    spawnSync('e2fsck', ['-fy', replayed], { stdio: 'ignore' }); // exit 1: "file system was modified" (the replay)
    assert.ok(debugfsList(replayed, '/').includes('in-journal-only'), 'a journal replay would add it');
    const before = sha256File(journalImage);

    const plain = await ids.run(`umount ${mount}; mount -t ext4 -o ro /dev/vdb /tmp/plain; echo "@@plain=$?"; dmesg | tail -n 5`);
    assert.match(plain, /@@plain=[1-9]/, plain);
    assert.match(plain, /write access unavailable, cannot proceed \(try mounting with noload\)/, plain);

    const out = await ids.run(`${MOUNT_SCRIPT_PATH} mount 2>&1; echo "@@rc=$?"; ls ${mount}`);
    assert.match(out, /@@rc=0/, out);
    assert.doesNotMatch(out, /in-journal-only/, 'noload shows the checkpointed state');
    const tree = await checksumTree(ids, mount, 'base');
    assert.deepEqual(Object.fromEntries(tree), { 'base/a': sha256('checkpointed\n'), 'base/b': sha256('also checkpointed\n') });
    const idsDmesg = await ids.run('dmesg');
    assert.doesNotMatch(idsDmesg, /EXT4-fs error \(device vdb\)|I\/O error, dev vdb/, idsDmesg);
    // The busy live disk (vda) may have shown the IDS torn metadata earlier (see the docs); say so.
    const liveErrors = idsDmesg.split('\n').filter((l) => /EXT4-fs (error|warning) \(device vda\)/.test(l));
    log(`IDS kernel messages about the live disk vda: ${liveErrors.length === 0 ? 'none' : `\n  ${liveErrors.join('\n  ')}`}`);

    assert.equal(sha256File(journalImage), before, 'the IDS side replayed nothing');
    assert.ok(ext4Features(journalImage).includes('needs_recovery'), 'the journal is left for the server to replay');
    log(`journal: needs_recovery kept, in-journal-only visible only after a replay (e2fsck on a copy), image sha256 ${before.slice(0, 16)} unchanged`);
  });

  it('a server (re)starting while the IDS holds its disk is not locked out, and opening writes nothing', () => {
    // The server QEMU is gone (killed above); only the IDS QEMU holds journal.img, read-only + shared.
    const before = sha256File(journalImage);
    const restart = qemuOpenOnly(serverDiskArgs(journalImage, JOURNAL.volume, 5));
    assert.equal(restart.status, 0, restart.output);
    assert.doesNotMatch(restart.output, /Failed to get|another process/);
    assert.match(restart.output, /libvirt-5-storage: \S+journal\.img \(file\)\r?\n\s+Attached to:\s+\S+ua-journal/, 'opened read-write (no "read-only" mark)');
    assert.equal(sha256File(journalImage), before);
  });

  it('unplugging gives the images back: after device_del and blockdev-del the IDS QEMU holds no descriptor on them', async () => {
    assert.match(await ids.run(`${MOUNT_SCRIPT_PATH} umount 2>&1; echo "@@rc=$?"`), /@@rc=0/);
    for (const disk of idsDisks) await unplug(qmp, disk);
    for (const image of [liveImage, journalImage, xfsImage]) assert.deepEqual(openImageFds(ids.pid, image), []);
    assert.doesNotMatch(await ids.run('ls /sys/block'), /vd[a-z]/, 'the guest released both disks');
  });
});
