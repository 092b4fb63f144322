// Test-only static guest programs (gcc, libc6-dev: hack/deps/introspection.packages): a guest that
// can reboot into another kernel inside the same QEMU process (as a guest applying a kernel update
// does), with kexec_file_load(2); the next kernel and its initramfs are files inside the first
// initramfs. And a multi-threaded workload with open files and a socket (workload/hs-workload.c).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { GUEST_CACHE } from './debian-kernel.ts';
import type { GuestFile } from './initramfs.ts';
import type { QemuGuest } from './qemu-guest.ts';
import { READY_MARKER } from './initramfs.ts';

/** Builds (once, cached by source hash) a static test-only guest program from testenv/guest/<dir>/<name>.c. */
export function buildStaticGuestProgram(dir: string, name: string, libraries: string[] = []): string {
  const source = join(import.meta.dirname, dir, `${name}.c`);
  const key = createHash('sha256').update(readFileSync(source)).digest('hex').slice(0, 12);
  const out = join(GUEST_CACHE, `${name}-${key}`);
  if (existsSync(out)) return out;
  mkdirSync(GUEST_CACHE, { recursive: true });
  execFileSync('gcc', ['-static', '-O2', '-o', `${out}.tmp`, source, ...libraries], { stdio: ['ignore', 'inherit', 'inherit'] });
  renameSync(`${out}.tmp`, out);
  return out;
}

/** The static kexec helper. */
export function buildKexecHelper(): string {
  return buildStaticGuestProgram('kexec', 'hs-kexec');
}

export const NEXT_KERNEL = '/boot/vmlinuz-next';
export const NEXT_INITRD = '/boot/initrd-next.img';

/** Files that let the guest kexec into `kernel` with `initrd` (paths on the host). */
export function kexecFiles(kernel: string, initrd: string): Record<string, GuestFile> {
  return {
    '/bin/hs-kexec': { fromFile: buildKexecHelper(), mode: 0o755 },
    [NEXT_KERNEL]: { fromFile: kernel },
    [NEXT_INITRD]: { fromFile: initrd },
  };
}

/** Reboots the guest into the next kernel and waits until its init reads commands again. */
export async function kexecIntoNextKernel(guest: QemuGuest, options: { kaslr: boolean; timeoutMs: number }): Promise<void> {
  const from = guest.serial.length;
  const append = ['console=ttyS0', 'panic=-1', 'quiet', 'loglevel=1', options.kaslr ? 'kaslr' : 'nokaslr'].join(' ');
  guest.send(`/bin/hs-kexec ${NEXT_KERNEL} ${NEXT_INITRD} '${append}'`);
  await guest.waitForText(READY_MARKER, options.timeoutMs, from);
}
