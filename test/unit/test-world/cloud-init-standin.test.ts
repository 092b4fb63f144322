// The test guests' cloud-init double reads the user data the operator writes as cloud-init would:
// the files and commands of the user and of HyperSpector, in cloud-init's order, whatever format
// the user's own user data had; and it refuses what it cannot play instead of dropping it.
import assert from 'node:assert/strict';
import { buildDiskInspectionCloudInit, mergeDiskInspectionUserData, MOUNT_SCRIPT_PATH } from '../../../src/builders/disk-inspection-cloud-init.ts';
import { planCloudInit, resolveUserData } from '../../../testenv/real-guests/cloud-init-standin.ts';

const pieces = buildDiskInspectionCloudInit({ disks: [{ volumeName: 'data', serial: 'hs-data-0123456789' }], mountPath: '/.serverfs', mode: 'Live', remountIntervalSeconds: 60 });

describe('test world: the cloud-init double', () => {
  it('plays HyperSpector’s own cloud-config: the mount script byte for byte, then its runcmd', () => {
    const plan = planCloudInit(mergeDiskInspectionUserData(undefined, pieces));
    assert.equal(plan.files.find((f) => f.path === MOUNT_SCRIPT_PATH)?.content.toString(), pieces.mountScript);
    assert.equal(plan.files.find((f) => f.path === MOUNT_SCRIPT_PATH)?.permissions, '0755');
    assert.equal(plan.runcmd[0], `'${MOUNT_SCRIPT_PATH}' 'mount'`);
    assert.equal(plan.runcmd.length, 2);
    assert.deepEqual(plan.scripts, []);
  });

  it('keeps the user’s files and commands before ours in a merged #cloud-config', () => {
    const user = '#cloud-config\nwrite_files:\n  - path: /etc/motd\n    content: hello\nruncmd:\n  - echo user\n';
    const plan = planCloudInit(mergeDiskInspectionUserData(user, pieces));
    assert.deepEqual(plan.files.map((f) => f.path).slice(0, 2), ['/etc/motd', MOUNT_SCRIPT_PATH]);
    assert.equal(plan.runcmd[0], 'echo user');
    assert.equal(plan.runcmd[1], `'${MOUNT_SCRIPT_PATH}' 'mount'`);
  });

  it('runs a user’s shell script and our cloud-config part from the multipart message the operator makes of it', () => {
    const plan = planCloudInit(mergeDiskInspectionUserData('#!/bin/sh\necho from-user\n', pieces));
    assert.deepEqual(plan.scripts, ['#!/bin/sh\necho from-user\n']);
    assert.ok(plan.files.some((f) => f.path === MOUNT_SCRIPT_PATH));
    assert.equal(plan.runcmd.length, 2);
  });

  it('appends our lists to the user’s cloud-config part in a multipart message (merge_how list append)', () => {
    const boundary = 'XYZ';
    const user = `Content-Type: multipart/mixed; boundary="${boundary}"\nMIME-Version: 1.0\n\n--${boundary}\nContent-Type: text/cloud-config\n\n#cloud-config\nruncmd:\n  - echo first\n--${boundary}--\n`;
    const plan = planCloudInit(mergeDiskInspectionUserData(user, pieces));
    assert.equal(plan.runcmd[0], 'echo first');
    assert.equal(plan.runcmd.length, 3);
  });

  it('decodes base64 files and refuses what the test guest cannot play', () => {
    const plan = planCloudInit('#cloud-config\nwrite_files:\n  - path: /x\n    encoding: b64\n    content: aGk=\n    permissions: "0600"\n');
    assert.equal(plan.files[0]?.content.toString(), 'hi');
    assert.equal(plan.files[0]?.permissions, '0600');
    assert.throws(() => planCloudInit('#cloud-config\npackages: [aide]\n'), /packages is not supported/);
    assert.throws(() => planCloudInit('#cloud-config\nwrite_files:\n  - path: /x\n    encoding: gzip\n    content: x\n'), /encoding gzip/);
    assert.throws(() => planCloudInit('hello'), /unrecognized user data/);
  });

  it('reads the user data as virt-launcher does: inline, base64, or the Secret’s userdata key', async () => {
    const none = async () => undefined;
    assert.equal(await resolveUserData([{ name: 'a' }], none), undefined);
    assert.equal(await resolveUserData([{ name: 'c', cloudInitNoCloud: { userData: '#cloud-config\n' } }], none), '#cloud-config\n');
    assert.equal(await resolveUserData([{ name: 'c', cloudInitNoCloud: { userDataBase64: Buffer.from('#!/bin/sh\n').toString('base64') } }], none), '#!/bin/sh\n');
    const fromSecret = await resolveUserData([{ name: 'c', cloudInitNoCloud: { secretRef: { name: 's' } } }], async (name) =>
      name === 's' ? { userdata: Buffer.from('#cloud-config\nruncmd: []\n').toString('base64') } : undefined,
    );
    assert.equal(fromSecret, '#cloud-config\nruncmd: []\n');
    await assert.rejects(resolveUserData([{ name: 'c', cloudInitNoCloud: { secretRef: { name: 's' } } }], async () => ({ other: '' })), /no userdata/);
  });
});
