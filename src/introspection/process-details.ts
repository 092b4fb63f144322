// The detailed view of one process, read from guest memory like the rest: its threads
// (signal->thread_head), its executable (mm->exe_file) and its open files (files->fdt->fd[]),
// named the way /proc/<pid>/exe and /proc/<pid>/fd show them. Paths are rebuilt from dentries
// and mounts (d_path()): names up the d_parent chain, crossing to the parent mount at each mount
// root; files of pseudo file systems are named as /proc names them ("socket:[ino]", "pipe:[ino]",
// "anon_inode:[eventfd]"). Every pointer is bounded and checked: a torn structure yields
// undefined, never garbage.
import type { KernelProfile } from './kernel-profile.ts';
import type { AddressSpace } from './page-table.ts';
import { stateLetter } from './process-info.ts';
import { readSocket, type GuestSocket } from './sockets.ts';

export interface GuestThread {
  tid: number;
  comm: string;
  state: string;
}

export interface GuestOpenFile {
  fd: number;
  /** What readlink(/proc/<pid>/fd/<fd>) shows. */
  target: string;
  /** For a socket, what ss shows of it (when the profile has the socket offsets). */
  socket?: GuestSocket;
}

export interface ProcessDetails {
  threads: GuestThread[];
  /** What readlink(/proc/<pid>/exe) shows; undefined for kernel threads. */
  exe?: string;
  openFiles: GuestOpenFile[];
}

const MAX_THREADS = 65536;
const MAX_FDS = 65536;
const MAX_PATH_DEPTH = 256;
const NAME_MAX = 255;

/** /proc's names for files of pseudo file systems, by file-system type (d_dname() of each). */
const PSEUDO_FS: Record<string, (name: string, ino: bigint) => string> = {
  sockfs: (_name, ino) => `socket:[${ino}]`,
  pipefs: (_name, ino) => `pipe:[${ino}]`,
  anon_inodefs: (name) => `anon_inode:${name}`,
};

export function readProcessDetails(kernel: AddressSpace, profile: KernelProfile, task: bigint, mm: bigint): ProcessDetails | undefined {
  const d = profile.details;
  if (!d) return undefined;
  const threads = readThreads(kernel, profile, task);
  if (!threads) return undefined;
  let exe: string | undefined;
  if (mm !== 0n) {
    const exeFile = kernel.readU64(mm + BigInt(d.mm_struct__exe_file));
    if (exeFile) exe = filePath(kernel, profile, exeFile);
  }
  const openFiles = readOpenFiles(kernel, profile, task) ?? [];
  return { threads, ...(exe !== undefined ? { exe } : {}), openFiles };
}

function readThreads(kernel: AddressSpace, profile: KernelProfile, task: bigint): GuestThread[] | undefined {
  const d = profile.details!;
  const t = profile.structs.task_struct.members;
  const signal = kernel.readU64(task + BigInt(d.task_struct__signal));
  if (!signal) return undefined;
  const head = signal + BigInt(d.signal_struct__thread_head);
  const nodeOffset = BigInt(d.task_struct__thread_node);
  const threads: GuestThread[] = [];
  const seen = new Set<bigint>();
  for (let node = kernel.readU64(head); node !== head; node = kernel.readU64(node)) {
    if (node === undefined || seen.has(node) || seen.size >= MAX_THREADS) return undefined;
    seen.add(node);
    const thread = node - nodeOffset;
    const pid = kernel.read(thread + BigInt(t.pid.offset), 4)?.readInt32LE(0);
    const comm = kernel.read(thread + BigInt(t.comm.offset), t.comm.size);
    const state = kernel.read(thread + BigInt(t.state.offset), 4)?.readUInt32LE(0);
    const exitState = kernel.read(thread + BigInt(t.exit_state.offset), 4)?.readInt32LE(0);
    if (pid === undefined || pid <= 0 || !comm || state === undefined || exitState === undefined) return undefined;
    threads.push({ tid: pid, comm: cString(comm), state: stateLetter(state, exitState) });
  }
  return threads.sort((a, b) => a.tid - b.tid);
}

/** The open files of a task (files->fdt->fd[]), sockets with what ss shows of them; undefined when torn or absent. */
export function readOpenFiles(kernel: AddressSpace, profile: KernelProfile, task: bigint): GuestOpenFile[] | undefined {
  if (!profile.details) return undefined;
  const d = profile.details!;
  const files = kernel.readU64(task + BigInt(d.task_struct__files));
  if (!files) return undefined;
  const fdt = kernel.readU64(files + BigInt(d.files_struct__fdt));
  if (!fdt) return undefined;
  const maxFds = kernel.read(fdt + BigInt(d.fdtable__max_fds), 4)?.readUInt32LE(0);
  const array = kernel.readU64(fdt + BigInt(d.fdtable__fd));
  if (maxFds === undefined || !array || maxFds > MAX_FDS) return undefined;
  const pointers = kernel.read(array, maxFds * 8);
  if (!pointers) return undefined;
  const out: GuestOpenFile[] = [];
  for (let fd = 0; fd < maxFds; fd++) {
    // The low bits of an fd-table entry are flags on some kernels (FDPUT_*), never on a struct file *.
    const file = pointers.readBigUInt64LE(fd * 8) & ~3n;
    if (file === 0n) continue;
    const target = filePath(kernel, profile, file);
    if (target === undefined) continue;
    const socketInode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    const socket = socketInode !== undefined ? readSocket(kernel, profile, file, Number(socketInode)) : undefined;
    out.push({ fd, target, ...(socket ? { socket } : {}) });
  }
  return out;
}

/** d_path() of a struct file, or /proc's name for a pseudo file system's file. */
export function filePath(kernel: AddressSpace, profile: KernelProfile, file: bigint): string | undefined {
  const d = profile.details!;
  let vfsmount = kernel.readU64(file + BigInt(d.file__f_path));
  let dentry = kernel.readU64(file + BigInt(d.file__f_path) + 8n);
  if (!vfsmount || !dentry) return undefined;
  const fsType = fileSystemType(kernel, profile, vfsmount);
  const pseudo = fsType !== undefined ? PSEUDO_FS[fsType] : undefined;
  if (pseudo) {
    const inode = kernel.readU64(file + BigInt(d.file__f_inode));
    const ino = inode ? kernel.readU64(inode + BigInt(d.inode__i_ino)) : undefined;
    const name = dentryName(kernel, profile, dentry);
    if (ino === undefined || name === undefined) return undefined;
    return pseudo(name, ino);
  }
  const parts: string[] = [];
  let mount = vfsmount - BigInt(d.mount__mnt);
  for (let depth = 0; depth < MAX_PATH_DEPTH; depth++) {
    const mountRoot = kernel.readU64(vfsmount + BigInt(d.vfsmount__mnt_root));
    if (mountRoot === undefined) return undefined;
    if (dentry === mountRoot) {
      const parent = kernel.readU64(mount + BigInt(d.mount__mnt_parent));
      if (parent === undefined) return undefined;
      if (parent === mount) return `/${parts.join('/')}`; // the root of the mount tree
      const mountpoint = kernel.readU64(mount + BigInt(d.mount__mnt_mountpoint));
      if (!mountpoint) return undefined;
      dentry = mountpoint;
      mount = parent;
      vfsmount = parent + BigInt(d.mount__mnt);
      continue;
    }
    const parentDentry = kernel.readU64(dentry + BigInt(d.dentry__d_parent));
    if (!parentDentry) return undefined;
    if (parentDentry === dentry) return `/${parts.join('/')}`; // a root not reached through its mount
    const name = dentryName(kernel, profile, dentry);
    if (name === undefined) return undefined;
    parts.unshift(name);
    dentry = parentDentry;
  }
  return undefined;
}

function dentryName(kernel: AddressSpace, profile: KernelProfile, dentry: bigint): string | undefined {
  const d = profile.details!;
  const pointer = kernel.readU64(dentry + BigInt(d.dentry__d_name) + BigInt(d.qstr__name));
  if (!pointer) return undefined;
  const bytes = kernel.read(pointer, NAME_MAX + 1) ?? kernel.read(pointer, 64);
  if (!bytes) return undefined;
  const nul = bytes.indexOf(0);
  if (nul < 0) return undefined;
  return bytes.toString('utf8', 0, nul);
}

function fileSystemType(kernel: AddressSpace, profile: KernelProfile, vfsmount: bigint): string | undefined {
  const d = profile.details!;
  const sb = kernel.readU64(vfsmount + BigInt(d.vfsmount__mnt_sb));
  const type = sb ? kernel.readU64(sb + BigInt(d.super_block__s_type)) : undefined;
  const namePointer = type ? kernel.readU64(type + BigInt(d.file_system_type__name)) : undefined;
  const name = namePointer ? kernel.read(namePointer, 32) : undefined;
  return name ? cString(name) : undefined;
}

function cString(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.toString('latin1', 0, nul < 0 ? b.length : nul);
}
