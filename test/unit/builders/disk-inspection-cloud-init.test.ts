import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { parse } from 'yaml';
import {
  buildDiskInspectionCloudInit,
  buildMountScript,
  diskSerialForVolume,
  mergeDiskInspectionUserData,
  MOUNT_SCRIPT_PATH,
  REMOUNT_UNIT,
  VIRTIO_SERIAL_MAX,
  type DiskInspectionCloudInitInput,
} from '../../../src/builders/disk-inspection-cloud-init.ts';

const input: DiskInspectionCloudInitInput = {
  disks: [
    { volumeName: 'rootdisk', serial: diskSerialForVolume('web-1', 'rootdisk') },
    { volumeName: 'data', serial: diskSerialForVolume('web-1', 'data') },
  ],
  mountPath: '/.serverfs',
  mode: 'Live',
  remountIntervalSeconds: 120,
};
const pieces = buildDiskInspectionCloudInit(input);

/** The YAML of a #cloud-config document (PyYAML reads YAML 1.1). */
function cloudConfig(userData: string): Record<string, unknown> {
  assert.ok(userData.startsWith('#cloud-config\n'), `starts with #cloud-config: ${userData.slice(0, 40)}`);
  return parse(userData.slice('#cloud-config\n'.length), { version: '1.1' }) as Record<string, unknown>;
}

/** The parts of a MIME multipart user data: content type and body. */
function mimeParts(userData: string): Array<{ type: string; body: string }> {
  const boundary = /boundary="([^"]+)"/.exec(userData)?.[1];
  assert.ok(boundary, 'multipart has a boundary');
  assert.ok(userData.trimEnd().endsWith(`--${boundary}--`), 'multipart is closed');
  return userData
    .split(`--${boundary}`)
    .slice(1, -1)
    .map((p) => {
      const [head, ...body] = p.replace(/^\n/, '').split('\n\n');
      return { type: /^Content-Type: ([^;\n]+)/m.exec(head ?? '')?.[1] ?? '', body: body.join('\n\n') };
    });
}

describe('disk inspection cloud-init builder', () => {
  describe('diskSerialForVolume', () => {
    it('is deterministic, at most 20 characters of [a-z0-9-], and names the volume', () => {
      assert.equal(diskSerialForVolume('web-1', 'rootdisk'), diskSerialForVolume('web-1', 'rootdisk'));
      assert.match(diskSerialForVolume('web-1', 'rootdisk'), /^hs-rootdi-[0-9a-f]{10}$/);
      const long = diskSerialForVolume('a'.repeat(253), `${'v'.repeat(62)}x`);
      assert.ok(long.length <= VIRTIO_SERIAL_MAX, long);
      for (const s of [long, diskSerialForVolume('m', '0'), diskSerialForVolume('m', '---')]) assert.match(s, /^[a-z0-9-]{1,20}$/);
    });

    it('differs between volumes, MonitoredServers, and names that share a prefix', () => {
      const serials = new Set<string>();
      for (let ms = 0; ms < 50; ms++) {
        for (let v = 0; v < 40; v++) serials.add(diskSerialForVolume(`server-${ms}`, `datavolume-${v}`));
      }
      assert.equal(serials.size, 2000);
      // The readable hint is cut at 6 characters; the hash still tells these apart.
      assert.notEqual(diskSerialForVolume('web-1', 'datavolume-a'), diskSerialForVolume('web-1', 'datavolume-b'));
      // No ambiguity from joining the two names.
      assert.notEqual(diskSerialForVolume('a-b', 'c'), diskSerialForVolume('a', 'b-c'));
    });
  });

  describe('mount script', () => {
    const script = pieces.mountScript;

    it('parses as sh (sh -n; dash on Debian), for both modes and a mount path with spaces and quotes', () => {
      for (const variant of [input, { ...input, mode: 'Snapshot' as const, mountPath: "/srv/server's disks" }]) {
        execFileSync('sh', ['-n'], { input: buildMountScript(variant) });
      }
    });

    it('mounts ext* ro,noload and xfs ro,norecovery, anything else plain ro, always nosuid,nodev,noexec', () => {
      assert.match(script, /ext2\|ext3\|ext4\) t=ext4; o=ro,noload ;;/);
      assert.match(script, /xfs\) t=xfs; o=ro,norecovery,nouuid ;;/);
      assert.match(script, /\*\) t=auto; o=ro ;;/);
      assert.match(script, /mount -t "\$t" -o "\$o,nosuid,nodev,noexec" "\$dev" "\$dir"/);
    });

    it('sets the device read-only before probing or mounting it, and drops its cached blocks before each mount', () => {
      const body = script.slice(script.indexOf('mount_disk() {'));
      const setro = body.indexOf('blockdev --setro "$dev"');
      assert.ok(setro > 0);
      assert.ok(setro < body.indexOf('fs_type "$dev"'), 'setro before the file system probe');
      assert.ok(body.indexOf('blockdev --flushbufs "$dev"') < body.indexOf('if mount -t'), 'flushbufs before mount');
      // A device that cannot be made read-only is not mounted at all.
      assert.match(body, /blockdev --setro "\$dev" \|\| \{ log [^}]*; return 1; \}/);
    });

    it('never opens a device for writing: no rw mount, no write redirection to a device, no fsck or journal tools', () => {
      assert.doesNotMatch(script, /\brw\b|remount,rw|--setrw/);
      assert.doesNotMatch(script, /(fsck|e2fsck|xfs_repair|tune2fs|debugfs|dd [^\n]*of=)/);
      assert.doesNotMatch(script, />\s*"?\$dev/);
    });

    it('finds disks by serial under /dev/disk/by-id (virtio, then scsi), else from sysfs', () => {
      assert.match(script, /"\/dev\/disk\/by-id\/virtio-\$1" "\/dev\/disk\/by-id\/scsi-0QEMU_QEMU_HARDDISK_\$1"/);
      assert.match(script, /\/sys\/block\/\*\/serial/);
      assert.match(script, new RegExp(`DISKS='${input.disks[0]!.serial} rootdisk\n${input.disks[1]!.serial} data'`));
    });

    it('quotes the mount path for sh and refuses paths and names it cannot use safely', () => {
      assert.match(buildMountScript({ ...input, mountPath: "/srv/it's here" }), /MOUNT_ROOT='\/srv\/it'\\''s here'/);
      assert.throws(() => buildMountScript({ ...input, mountPath: 'relative' }), /absolute path/);
      assert.throws(() => buildMountScript({ ...input, mountPath: '/a/../b' }), /absolute path/);
      assert.throws(() => buildMountScript({ ...input, disks: [{ volumeName: 'Bad_Name', serial: 'hs-1' }] }), /not a DNS label/);
      assert.throws(() => buildMountScript({ ...input, disks: [{ volumeName: 'v', serial: 'x'.repeat(21) }] }), /1-20 characters/);
      assert.throws(() => buildMountScript({ ...input, disks: [{ volumeName: 'v', serial: "a'b" }] }), /1-20 characters/);
      assert.throws(() => buildMountScript({ ...input, disks: [{ volumeName: 'v', serial: 's1' }, { volumeName: 'w', serial: 's1' }] }), /duplicate serial s1/);
      assert.throws(() => buildMountScript({ ...input, remountIntervalSeconds: 5 }), />= 10/);
    });

    it('re-mounts on every refresh in Live mode; in Snapshot mode only when the disk behind the serial changed', () => {
      assert.match(script, /^MODE=Live$/m);
      const snapshot = buildMountScript({ ...input, mode: 'Snapshot' });
      assert.match(snapshot, /^MODE=Snapshot$/m);
      assert.match(snapshot, /\[ "\$MODE" = Snapshot \] && \[ "\$\(find_device "\$1"\)" = "\$dev" \]; then return 0; fi/);
    });
  });

  describe('cloud-init pieces', () => {
    it('writes the script and a systemd timer at the interval, and starts both from runcmd (cron without systemd, a loop without either)', () => {
      assert.deepEqual(pieces.writeFiles.map((f) => [f.path, f.permissions]), [
        [MOUNT_SCRIPT_PATH, '0755'],
        [`/etc/systemd/system/${REMOUNT_UNIT}.service`, '0644'],
        [`/etc/systemd/system/${REMOUNT_UNIT}.timer`, '0644'],
      ]);
      assert.equal(pieces.writeFiles[0]!.content, pieces.mountScript);
      assert.match(pieces.writeFiles[1]!.content, new RegExp(`ExecStart=${MOUNT_SCRIPT_PATH} refresh`));
      assert.match(pieces.writeFiles[2]!.content, /OnUnitActiveSec=120s/);
      assert.deepEqual(pieces.runcmd[0], [MOUNT_SCRIPT_PATH, 'mount']);
      assert.match(pieces.runcmd[1]![2]!, /systemctl enable --now hyperspector-serverfs\.timer/);
      assert.match(pieces.runcmd[1]![2]!, /elif \[ -d \/etc\/cron\.d \]; then echo '\*\/2 \* \* \* \* root \/usr\/local\/sbin\/hyperspector-serverfs refresh'/);
      assert.match(pieces.runcmd[1]![2]!, /else .*setsid sh -c 'while sleep 120; do \/usr\/local\/sbin\/hyperspector-serverfs refresh; done' >> \/var\/log\/hyperspector-serverfs\.log 2>&1 < \/dev\/null & fi$/);
    });
  });

  describe('mergeDiskInspectionUserData', () => {
    it('without user data, writes a #cloud-config of its own', () => {
      for (const none of [undefined, '', '  \n']) {
        const config = cloudConfig(mergeDiskInspectionUserData(none, pieces));
        assert.deepEqual(Object.keys(config), ['write_files', 'runcmd']);
        assert.equal((config.write_files as Array<{ content: string }>)[0]!.content, pieces.mountScript);
      }
    });

    it('keeps every key, value and comment of a #cloud-config and appends to its write_files and runcmd', () => {
      const user = [
        '#cloud-config',
        '# the user\'s own comment',
        'hostname: ids-1',
        'packages: [aide, clamav]',
        'ssh_pwauth: yes',
        'write_files:',
        '  - path: /etc/aide/aide.conf.d/99-serverfs',
        '    permissions: 0644',
        '    content: "/.serverfs R"',
        'runcmd:',
        '  - [aide, --init]',
        'users:',
        '  - name: analyst',
        '    groups: [adm]',
        '',
      ].join('\n');
      const merged = mergeDiskInspectionUserData(user, pieces);
      assert.match(merged, /# the user's own comment/);
      assert.match(merged, /permissions: 0644/, 'octal stays octal for PyYAML');
      assert.match(merged, /ssh_pwauth: yes/, 'YAML 1.1 booleans stay as written');
      const config = cloudConfig(merged);
      assert.equal(config.hostname, 'ids-1');
      assert.deepEqual(config.packages, ['aide', 'clamav']);
      assert.equal(config.ssh_pwauth, true);
      assert.deepEqual(config.users, [{ name: 'analyst', groups: ['adm'] }]);
      const files = config.write_files as Array<{ path: string; permissions: unknown; content: string }>;
      assert.deepEqual(files.map((f) => f.path), ['/etc/aide/aide.conf.d/99-serverfs', ...pieces.writeFiles.map((f) => f.path)]);
      assert.equal(files[0]!.permissions, 0o644);
      assert.equal(files[1]!.content, pieces.mountScript);
      assert.deepEqual(config.runcmd, [['aide', '--init'], ...pieces.runcmd]);
    });

    it('refuses a #cloud-config that writes a file it needs, or whose lists are not lists', () => {
      assert.throws(() => mergeDiskInspectionUserData(`#cloud-config\nwrite_files:\n  - path: ${MOUNT_SCRIPT_PATH}\n    content: x\n`, pieces), /already writes \/usr\/local\/sbin\/hyperspector-serverfs/);
      assert.throws(() => mergeDiskInspectionUserData('#cloud-config\nruncmd: echo hi\n', pieces), /runcmd is not a list/);
      assert.throws(() => mergeDiskInspectionUserData('#cloud-config\n- a\n- b\n', pieces), /not a YAML mapping/);
      assert.throws(() => mergeDiskInspectionUserData('#cloud-config\nkey: [unclosed\n', pieces), /not valid YAML/);
    });

    it('turns a shell script into a multipart message: the script unchanged, then ours with list-append merging', () => {
      const script = '#!/bin/bash\nset -e\necho "--not-a-boundary"\napt-get install -y aide\n';
      const merged = mergeDiskInspectionUserData(script, pieces);
      assert.match(merged, /^Content-Type: multipart\/mixed; boundary="[^"]+"\nMIME-Version: 1\.0\n\n/);
      const parts = mimeParts(merged);
      assert.deepEqual(parts.map((p) => p.type), ['text/x-shellscript', 'text/cloud-config']);
      assert.equal(parts[0]!.body, script);
      const ours = cloudConfig(parts[1]!.body);
      assert.deepEqual(ours.merge_how, [{ name: 'list', settings: ['append'] }, { name: 'dict', settings: ['no_replace', 'recurse_list'] }]);
      assert.deepEqual(ours.runcmd, pieces.runcmd);
      assert.equal(mergeDiskInspectionUserData(script, pieces), merged, 'deterministic');
    });

    it('adds its part to a user multipart message before the closing boundary, keeping the user\'s parts', () => {
      const user = 'Content-Type: multipart/mixed; boundary="XYZ"\nMIME-Version: 1.0\n\n--XYZ\nContent-Type: text/cloud-config\n\n#cloud-config\nruncmd: [[aide, --init]]\n--XYZ\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho hi\n--XYZ--\n';
      const merged = mergeDiskInspectionUserData(user, pieces);
      assert.ok(merged.startsWith(user.slice(0, user.lastIndexOf('--XYZ--'))), 'user parts unchanged');
      const parts = mimeParts(merged);
      assert.deepEqual(parts.map((p) => p.type), ['text/cloud-config', 'text/x-shellscript', 'text/cloud-config']);
      assert.deepEqual(cloudConfig(parts[2]!.body).write_files, pieces.writeFiles);
    });

    it('wraps other single-part formats cloud-init knows in their own MIME type', () => {
      const include = mergeDiskInspectionUserData('#include\nhttps://example.com/user-data\n', pieces);
      assert.deepEqual(mimeParts(include).map((p) => p.type), ['text/x-include-url', 'text/cloud-config']);
      const boothook = mergeDiskInspectionUserData('#cloud-boothook\necho early\n', pieces);
      assert.deepEqual(mimeParts(boothook).map((p) => p.type), ['text/cloud-boothook', 'text/cloud-config']);
    });

    it('refuses what it cannot merge, saying why', () => {
      assert.throws(() => mergeDiskInspectionUserData('## template: jinja\n#cloud-config\nhostname: {{ v1.instance_id }}\n', pieces), /Jinja/);
      assert.throws(() => mergeDiskInspectionUserData('\x1f\x8b\x08\x00binary', pieces), /gzip/);
      assert.throws(() => mergeDiskInspectionUserData('hostname: x\n', pieces), /unrecognized user-data format/);
      assert.throws(() => mergeDiskInspectionUserData('Content-Type: multipart/mixed\n\nno boundary\n', pieces), /no boundary/);
    });
  });
});
