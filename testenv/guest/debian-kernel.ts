// Debian's own kernel package, downloaded (not installed into the host's /boot) and unpacked into
// a cache keyed by package version: ~/.cache/hyperspector/guest/<package>_<version>/.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { unxzSync } from 'node-liblzma';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface DebianKernel {
  packageName: string;
  version: string;
  vmlinuz: string;
  config: string;
}

export const GUEST_CACHE = process.env.HYPERSPECTOR_GUEST_CACHE ?? join(homedir(), '.cache', 'hyperspector', 'guest');

const log = (msg: string) => process.stderr.write(`[guest-kernel] ${msg}\n`);

/**
 * Debian meta-packages naming a kernel series and flavour: bookworm's default 6.1, and the 6.12
 * series bookworm carries (bookworm-security) in its generic, cloud and PREEMPT_RT flavours.
 */
export const DEBIAN_KERNELS = {
  'bookworm-6.1': 'linux-image-amd64',
  'bookworm-6.12': 'linux-image-6.12-amd64',
  'bookworm-6.12-cloud': 'linux-image-6.12-cloud-amd64',
  'bookworm-6.12-rt': 'linux-image-6.12-rt-amd64',
} as const;

/** The package a meta-package currently depends on, e.g. linux-image-amd64 → linux-image-6.1.0-56-amd64. */
function resolveKernelPackage(metaPackage: string): { packageName: string; version: string } {
  let depends = execFileSync('apt-cache', ['depends', metaPackage], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  if (!/Depends: linux-image-/.test(depends) && process.getuid?.() === 0) {
    // A fresh machine may not have package lists yet.
    log(`apt-cache knows no ${metaPackage}; running apt-get update`);
    execFileSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'ignore', 'inherit'] });
    depends = execFileSync('apt-cache', ['depends', metaPackage], { encoding: 'utf8' });
  }
  const packageName = /Depends: (linux-image-[^\s]+-amd64)/.exec(depends)?.[1];
  if (!packageName) throw new Error(`apt-cache cannot resolve ${metaPackage} (run apt-get update)`);
  const policy = execFileSync('apt-cache', ['policy', packageName], { encoding: 'utf8' });
  const version = /Candidate: (\S+)/.exec(policy)?.[1];
  if (!version || version === '(none)') throw new Error(`no candidate version for ${packageName}`);
  return { packageName, version };
}

/** Downloads (once) the kernel a Debian meta-package points to; bookworm's default kernel without an argument. */
export function ensureDebianKernel(metaPackage: string = DEBIAN_KERNELS['bookworm-6.1']): DebianKernel {
  const { packageName, version } = resolveKernelPackage(metaPackage);
  const dir = join(GUEST_CACHE, `${packageName}_${version}`);
  const release = packageName.replace(/^linux-image-/, '');
  const vmlinuz = join(dir, 'boot', `vmlinuz-${release}`);
  const result = { packageName, version, vmlinuz, config: join(dir, 'boot', `config-${release}`) };
  if (existsSync(vmlinuz)) return result;

  mkdirSync(GUEST_CACHE, { recursive: true });
  const work = join(GUEST_CACHE, `.tmp-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  log(`downloading ${packageName} ${version}`);
  // apt's sandbox user cannot write to root's home; -o APT::Sandbox::User=root keeps it quiet.
  execFileSync('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', `${packageName}=${version}`], { cwd: work, stdio: ['ignore', 'ignore', 'inherit'] });
  const deb = readdirSync(work).find((f) => f.endsWith('.deb'));
  if (!deb) throw new Error(`apt-get download ${packageName} produced no .deb`);
  log(`unpacking /boot of ${deb}`);
  mkdirSync(join(work, 'x'));
  execFileSync('sh', ['-c', 'dpkg-deb --fsys-tarfile "$1" | tar -x -C x ./boot', 'sh', deb], { cwd: work, stdio: 'inherit' });
  rmSync(dir, { recursive: true, force: true });
  renameSync(join(work, 'x'), dir); // atomic: a half-unpacked kernel is never seen as cached
  rmSync(work, { recursive: true, force: true });
  log(`cached in ${dir}`);
  return result;
}

/**
 * One module of a cached Debian kernel (e.g. "drivers/net/dummy.ko"), extracted from the same
 * package into <cache>/<package>_<version>/modules/ on first use (the package is downloaded again).
 */
export function ensureDebianKernelModule(kernel: DebianKernel, relativePath: string): string {
  const dir = join(GUEST_CACHE, `${kernel.packageName}_${kernel.version}`, 'modules');
  const out = join(dir, relativePath.split('/').pop()!);
  if (existsSync(out)) return out;
  const release = kernel.packageName.replace(/^linux-image-/, '');
  const work = join(GUEST_CACHE, `.tmp-module-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, 'x'), { recursive: true });
  try {
    log(`downloading ${kernel.packageName} ${kernel.version} for ${relativePath}`);
    execFileSync('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', `${kernel.packageName}=${kernel.version}`], { cwd: work, stdio: ['ignore', 'ignore', 'inherit'] });
    const deb = readdirSync(work).find((f) => f.endsWith('.deb'))!;
    // 6.1 ships modules as .ko, 6.12 as .ko.xz (CONFIG_MODULE_COMPRESS_XZ): busybox insmod needs
    // the plain ELF, so a compressed one is decompressed here.
    const member = `./lib/modules/${release}/kernel/${relativePath}`;
    execFileSync('sh', ['-c', 'dpkg-deb --fsys-tarfile "$1" | tar -x -C x --wildcards "$2" "$2.*" 2>/dev/null; true', 'sh', deb, member], { cwd: work, stdio: 'inherit' });
    mkdirSync(dir, { recursive: true });
    if (existsSync(join(work, 'x', member))) renameSync(join(work, 'x', member), out);
    else if (existsSync(join(work, 'x', `${member}.xz`))) writeFileSync(out, unxzSync(readFileSync(join(work, 'x', `${member}.xz`))));
    else throw new Error(`${member} (or .xz) not in ${deb}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return out;
}
