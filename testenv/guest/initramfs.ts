// A busybox initramfs for test guests: the static busybox from Debian's busybox-static, an /init
// that prepares /proc and then executes shell lines read from the serial console, and whatever
// extra files a test adds (scripts with distinct names, so their processes have distinct comms).
// Cached by content hash under GUEST_CACHE.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { GUEST_CACHE } from './debian-kernel.ts';

export interface GuestFile {
  /** Text, or bytes (e.g. a kernel module from kernel-modules.ts); or, with fromFile, omitted. */
  content?: string | Uint8Array;
  /** A host file copied in byte for byte (binaries, kernels). */
  fromFile?: string;
  mode?: number;
}

export const BUSYBOX = '/bin/busybox';

/** Printed by /init once it reads commands; also what the host waits for after boot. */
export const READY_MARKER = '@@GUEST-READY';

const INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
stty -echo 2>/dev/null
[ -x /setup ] && /setup
echo "${READY_MARKER}"
# One shell line per console line; the host frames output with markers (see qemu-guest.ts).
while read -r line; do eval "$line"; done
`;

export function buildInitramfs(files: Record<string, GuestFile> = {}): string {
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} missing: install busybox-static (hack/deps/introspection.packages)`);
  const all: Record<string, GuestFile> = { '/init': { content: INIT, mode: 0o755 }, ...files };
  // Copied files count by path, size and modification time; bytes by their hash; text as is, so
  // existing keys are unchanged.
  const identity = Object.fromEntries(Object.entries(all).map(([path, f]) => [path, f.fromFile ? { ...f, stat: [statSync(f.fromFile).size, statSync(f.fromFile).mtimeMs] } : f]));
  const keyJson = JSON.stringify({ layout: 2, all: identity }, function (this: Record<string, unknown>, k, v: unknown) {
    const raw = this[k];
    return raw instanceof Uint8Array ? { sha256: createHash('sha256').update(raw).digest('hex') } : v;
  });
  const key = createHash('sha256').update(keyJson).digest('hex').slice(0, 16);
  const out = join(GUEST_CACHE, `initramfs-${key}.cpio.gz`);
  if (existsSync(out)) return out;

  mkdirSync(GUEST_CACHE, { recursive: true });
  const root = mkdtempSync(join(GUEST_CACHE, '.initramfs-'));
  try {
    chmodSync(root, 0o755); // mkdtemp makes it 0700, which would lock non-root guest users out of /
    for (const d of ['bin', 'sbin', 'proc', 'sys', 'dev', 'tmp', 'etc', 'root']) mkdirSync(join(root, d));
    copyFileSync(BUSYBOX, join(root, 'bin', 'busybox'));
    chmodSync(join(root, 'bin', 'busybox'), 0o755);
    for (const [path, file] of Object.entries(all)) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      if (file.fromFile) {
        copyFileSync(file.fromFile, join(root, path));
        chmodSync(join(root, path), file.mode ?? 0o644);
      } else {
        writeFileSync(join(root, path), file.content ?? '', { mode: file.mode ?? 0o644 });
      }
    }
    execFileSync('sh', ['-c', 'find . | cpio -o -H newc --quiet | gzip -1 > "$1"', 'sh', `${out}.tmp`], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
    renameSync(`${out}.tmp`, out);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return out;
}
