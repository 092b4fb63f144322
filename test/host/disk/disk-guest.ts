// Test guests for inter-VM disk mounting: Debian's kernel with the virtio-blk and ext4 modules of
// the same package, a busybox initramfs whose /setup loads them and names disks the way udev does
// (/dev/disk/by-id/virtio-<serial>), the mount script taken from the IDS VM's merged user data,
// and a server-side writer that keeps the server's file system busy.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { parse } from 'yaml';
import { MOUNT_SCRIPT_PATH } from '../../../src/builders/disk-inspection-cloud-init.ts';
import { ensureDebianKernel, type DebianKernel } from '../../../testenv/guest/debian-kernel.ts';
import { buildInitramfs } from '../../../testenv/guest/initramfs.ts';
import { guestKernelModules } from '../../../testenv/guest/kernel-modules.ts';

/** virtio transport and block driver; crc32c_generic: ext4, jbd2 and xfs ask the crypto API for crc32c. */
const MODULES = ['virtio_pci', 'virtio_blk', 'crc32c_generic', 'ext4', 'xfs'];

/** udev's 60-persistent-storage rule for virtio disks: /dev/disk/by-id/virtio-<serial>. */
export const UDEV_BY_ID = '/usr/sbin/udev-by-id';
const UDEV_BY_ID_SCRIPT = `#!/bin/sh
mkdir -p /dev/disk/by-id
for s in /sys/block/vd*/serial; do
  [ -r "$s" ] || continue
  serial=$(cat "$s"); [ -n "$serial" ] || continue
  d=\${s%/serial}; ln -sf "../../\${d##*/}" "/dev/disk/by-id/virtio-$serial"
done
`;

const SETUP = (loadModules: string) => `#!/bin/sh
${loadModules} || echo "@@MODULES-FAILED"
${UDEV_BY_ID}
`;

/**
 * The server guest's background writer: rewrites a counter and a rotating set of blobs on the
 * file system mounted at $1, forever, so the server's file system and journal are never idle
 * while the IDS reads. Exits (and says so on the console) on the first failed write. Pauses
 * between two rounds while /tmp/writer.pause exists (and says so with /tmp/writer.paused): a
 * cooperative pause, since a SIGSTOPped writer would leave its last dd an unreaped zombie.
 */
const SERVER_WRITER = `#!/bin/sh
mkdir -p "$1/live"
i=0
while :; do
  while [ -e /tmp/writer.pause ]; do touch /tmp/writer.paused; usleep 50000; done
  rm -f /tmp/writer.paused
  i=$((i + 1))
  echo "generation $i" > "$1/live/counter" || { echo "@@WRITER-FAILED at $i"; exit 1; }
  dd if=/dev/urandom of="$1/live/blob-$((i % 6))" bs=4k count=8 2>/dev/null || { echo "@@WRITER-FAILED at $i"; exit 1; }
  [ $((i % 10)) -eq 0 ] && sync
  usleep 200000
done
`;

/** Shell lines for the server guest: pause the writer (returns once it is idle) and resume it. */
export const PAUSE_WRITER = 'touch /tmp/writer.pause && while [ ! -e /tmp/writer.paused ]; do usleep 50000; done';
export const RESUME_WRITER = 'rm -f /tmp/writer.pause /tmp/writer.paused';

export interface DiskGuestAssets {
  kernel: DebianKernel;
  initrd: string;
}

/** The mount script as the IDS VM would get it: the write_files entry of the merged user data. */
export function mountScriptFromUserData(userData: string): string {
  const config = parse(userData.slice(userData.indexOf('\n') + 1), { version: '1.1' }) as { write_files?: Array<{ path: string; content: string }> };
  const file = config.write_files?.find((f) => f.path === MOUNT_SCRIPT_PATH);
  if (!file) throw new Error(`merged user data has no write_files entry for ${MOUNT_SCRIPT_PATH}`);
  return file.content;
}

export function diskGuestAssets(mountScript: string): DiskGuestAssets {
  const kernel = ensureDebianKernel();
  const modules = guestKernelModules(kernel, MODULES);
  const initrd = buildInitramfs({
    ...modules.files,
    '/setup': { content: SETUP(modules.loadCommand), mode: 0o755 },
    [UDEV_BY_ID]: { content: UDEV_BY_ID_SCRIPT, mode: 0o755 },
    [MOUNT_SCRIPT_PATH]: { content: mountScript, mode: 0o755 },
    '/usr/bin/server-writer': { content: SERVER_WRITER, mode: 0o755 },
  });
  return { kernel, initrd };
}

/** A fresh raw image with an empty ext4 file system, as a filesystem-mode PVC's disk.img. */
export function makeExt4Image(path: string, sizeMiB: number, label: string): void {
  execFileSync('truncate', ['-s', `${sizeMiB}M`, path]);
  // No lazy init: the inode tables are written here, not by a kernel thread in the server guest.
  execFileSync('mkfs.ext4', ['-q', '-F', '-L', label, '-E', 'lazy_itable_init=0,lazy_journal_init=0', path]);
}

/** A fresh raw image with an empty xfs (mkfs.xfs wants at least 300 MiB; the file stays sparse). */
export function makeXfsImage(path: string, sizeMiB: number, label: string): void {
  execFileSync('truncate', ['-s', `${sizeMiB}M`, path]);
  execFileSync('mkfs.xfs', ['-q', '-f', '-L', label, path]);
}

/** SHA-256 of a whole image (coreutils: streams it, no 320 MiB buffer in this process). */
export function sha256File(path: string): string {
  return execFileSync('sha256sum', ['-b', path], { encoding: 'utf8' }).slice(0, 64);
}

export interface OpenImageFd {
  fd: number;
  flags: number;
  /** O_RDONLY, O_WRONLY or O_RDWR from the access-mode bits. */
  accessMode: 'O_RDONLY' | 'O_WRONLY' | 'O_RDWR';
}

/** Every descriptor process `pid` holds on `image`, with its open flags from /proc/<pid>/fdinfo. */
export function openImageFds(pid: number, image: string): OpenImageFd[] {
  const fds: OpenImageFd[] = [];
  for (const name of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${name}`);
    } catch {
      continue; // closed meanwhile
    }
    if (target !== image) continue;
    const info = readFileSync(`/proc/${pid}/fdinfo/${name}`, 'utf8');
    const flags = Number.parseInt(/^flags:\s+([0-7]+)/m.exec(info)?.[1] ?? 'NaN', 8);
    const accessMode = (['O_RDONLY', 'O_WRONLY', 'O_RDWR'] as const)[flags & 3] ?? 'O_RDWR';
    fds.push({ fd: Number(name), flags, accessMode });
  }
  return fds;
}

/** Host-side view of an ext4 image without replaying its journal (debugfs never replays). */
export function debugfsList(image: string, dir: string): string[] {
  const out = execFileSync('debugfs', ['-R', `ls -p ${dir}`, image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  // -p lines: /inode/mode/uid/gid/name/size/
  return out.split('\n').map((l) => l.split('/')[5] ?? '').filter((n) => n && n !== '.' && n !== '..');
}

export function ext4Features(image: string): string[] {
  const out = execFileSync('dumpe2fs', ['-h', image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return (/^Filesystem features:\s+(.*)$/m.exec(out)?.[1] ?? '').split(/\s+/);
}
