// Kernel modules for test guests whose drivers Debian builds as modules (virtio_blk, ext4, xfs):
// taken from the same Debian kernel package as the guest's vmlinuz, so they always match it.
// The .deb carries no modules.dep (depmod runs at install), so load order comes from each
// module's own `depends=` modinfo field. Cached beside the kernel: <kernel dir>/modules/.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { GUEST_CACHE, type DebianKernel } from './debian-kernel.ts';
import type { GuestFile } from './initramfs.ts';

const log = (msg: string) => process.stderr.write(`[guest-modules] ${msg}\n`);

/** Module trees extracted from the package: enough for block devices and file systems. */
const EXTRACTED_TREES = ['fs', 'drivers/block', 'drivers/virtio', 'lib', 'crypto', 'arch/x86/crypto'];
/** Single modules from other trees (the virtio NIC of network guests, the 9P client's transport), added to a cached tree when missing. */
const EXTRACTED_FILES = ['drivers/net/virtio_net.ko', 'drivers/net/net_failover.ko', 'net/core/failover.ko', 'net/9p/9pnet.ko', 'net/9p/9pnet_fd.ko'];

function downloadKernelDeb(kernel: DebianKernel, work: string): string {
  log(`downloading ${kernel.packageName} ${kernel.version} for its modules`);
  execFileSync('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', `${kernel.packageName}=${kernel.version}`], { cwd: work, stdio: ['ignore', 'ignore', 'inherit'] });
  const deb = readdirSync(work).find((f) => f.endsWith('.deb'));
  if (!deb) throw new Error(`apt-get download ${kernel.packageName} produced no .deb`);
  return deb;
}

/** Adds EXTRACTED_FILES missing from a cached tree, each renamed into place (atomic per file). */
function ensureExtraModules(kernel: DebianKernel, tree: string): void {
  const missing = EXTRACTED_FILES.filter((f) => !existsSync(join(tree, f)));
  if (missing.length === 0) return;
  const release = kernel.packageName.replace(/^linux-image-/, '');
  const work = join(GUEST_CACHE, `.tmp-modules-extra-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, 'x'), { recursive: true });
  try {
    const deb = downloadKernelDeb(kernel, work);
    const members = missing.map((f) => `./lib/modules/${release}/kernel/${f}`);
    execFileSync('sh', ['-c', 'deb="$1"; shift; dpkg-deb --fsys-tarfile "$deb" | tar -x -C x "$@"', 'sh', deb, ...members], { cwd: work, stdio: ['ignore', 'ignore', 'inherit'] });
    for (const f of missing) {
      mkdirSync(dirname(join(tree, f)), { recursive: true });
      renameSync(join(work, 'x', 'lib', 'modules', release, 'kernel', f), join(tree, f));
    }
    log(`added ${missing.join(', ')} to ${tree}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function kernelDir(kernel: DebianKernel): string {
  return dirname(dirname(kernel.vmlinuz));
}

function ensureModuleTree(kernel: DebianKernel): string {
  const release = kernel.packageName.replace(/^linux-image-/, '');
  const tree = join(kernelDir(kernel), 'modules', release, 'kernel');
  if (existsSync(tree)) {
    ensureExtraModules(kernel, tree);
    return tree;
  }
  const work = join(GUEST_CACHE, `.tmp-modules-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, 'x'), { recursive: true });
  try {
    const deb = downloadKernelDeb(kernel, work);
    const patterns = [...EXTRACTED_TREES.map((t) => `./lib/modules/${release}/kernel/${t}/*`), ...EXTRACTED_FILES.map((f) => `./lib/modules/${release}/kernel/${f}`)];
    execFileSync('sh', ['-c', 'deb="$1"; shift; dpkg-deb --fsys-tarfile "$deb" | tar -x -C x --wildcards "$@"', 'sh', deb, ...patterns], { cwd: work, stdio: ['ignore', 'ignore', 'inherit'] });
    mkdirSync(join(kernelDir(kernel), 'modules'), { recursive: true });
    renameSync(join(work, 'x', 'lib', 'modules', release), join(kernelDir(kernel), 'modules', release)); // atomic
    log(`cached modules in ${dirname(tree)}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return tree;
}

function indexModules(tree: string): Map<string, string> {
  const byName = new Map<string, string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(path);
      else if (entry.endsWith('.ko')) byName.set(entry.slice(0, -3).replace(/-/g, '_'), path);
    }
  };
  walk(tree);
  return byName;
}

/** The module's `depends=` field from its .modinfo section (comma-separated names, may be empty). */
function moduleDepends(ko: Buffer): string[] {
  const at = ko.indexOf('\0depends=');
  if (at < 0) return [];
  const end = ko.indexOf(0, at + 1);
  return ko.toString('latin1', at + '\0depends='.length, end).split(',').filter(Boolean).map((d) => d.replace(/-/g, '_'));
}

export interface GuestKernelModules {
  /** Initramfs files: /lib/modules/hs/<name>.ko for each module. */
  files: Record<string, GuestFile>;
  /** Module names in load order (dependencies first). */
  loadOrder: string[];
  /** A shell line for the guest's /setup that loads them all, in order. */
  loadCommand: string;
}

/**
 * The named modules and everything they depend on, in load order, as initramfs files. Names use
 * underscores (`virtio_blk`, `crc32c_generic`). Soft dependencies (ext4 asks the crypto API for
 * "crc32c") are not in `depends=`: name such providers explicitly.
 */
export function guestKernelModules(kernel: DebianKernel, names: string[]): GuestKernelModules {
  const byName = indexModules(ensureModuleTree(kernel));
  const loadOrder: string[] = [];
  const files: Record<string, GuestFile> = {};
  const visit = (name: string, chain: string[]) => {
    if (loadOrder.includes(name)) return;
    if (chain.includes(name)) throw new Error(`module dependency cycle: ${[...chain, name].join(' -> ')}`);
    const path = byName.get(name);
    if (!path) throw new Error(`kernel module ${name} is not in ${kernel.packageName} (extracted: ${EXTRACTED_TREES.join(', ')})`);
    const ko = readFileSync(path);
    for (const dep of moduleDepends(ko)) visit(dep, [...chain, name]);
    loadOrder.push(name);
    files[`/lib/modules/hs/${name}.ko`] = { content: ko };
  };
  for (const name of names) visit(name.replace(/-/g, '_'), []);
  const loadCommand = loadOrder.map((m) => `insmod /lib/modules/hs/${m}.ko`).join(' && ');
  return { files, loadOrder, loadCommand };
}
