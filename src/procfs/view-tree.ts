// The read-only tree the 9P server serves: directories, files whose bytes are rendered on open,
// and symbolic links. Nodes are looked up by name from the root on every walk, so a process that
// has gone is ENOENT at once, as in /proc. Pure: no I/O.
import { QTDIR, QTFILE, QTSYMLINK, type Qid } from './ninep-codec.ts';

interface NodeBase {
  name: string;
  /** Permission bits (e.g. 0o555); the type bits come from the kind. */
  perm: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch (atime, mtime and ctime alike). */
  mtimeSec: number;
}

export interface ViewDir extends NodeBase {
  kind: 'dir';
  /** Entries in listing order. */
  list(): ViewNode[];
  lookup(name: string): ViewNode | undefined;
}

export interface ViewFile extends NodeBase {
  kind: 'file';
  render(): Buffer;
}

export interface ViewSymlink extends NodeBase {
  kind: 'symlink';
  target: string;
}

export type ViewNode = ViewDir | ViewFile | ViewSymlink;

export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const DT_DIR = 4;
export const DT_REG = 8;
export const DT_LNK = 10;

export function modeOf(node: ViewNode): number {
  return (node.kind === 'dir' ? S_IFDIR : node.kind === 'file' ? S_IFREG : S_IFLNK) | (node.perm & 0o7777);
}

export function direntType(node: ViewNode): number {
  return node.kind === 'dir' ? DT_DIR : node.kind === 'file' ? DT_REG : DT_LNK;
}

/** A stable 52-bit id of a path (FNV-1a), so the same file has the same qid across walks. */
export function pathId(path: readonly string[]): number {
  let h = 0xcbf29ce484222325n;
  const bytes = Buffer.from(`/${path.join('/')}`, 'utf8');
  for (const b of bytes) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n);
  return Number(h & 0xfffffffffffffn);
}

export function qidOf(node: ViewNode, path: readonly string[]): Qid {
  return { type: node.kind === 'dir' ? QTDIR : node.kind === 'symlink' ? QTSYMLINK : QTFILE, version: 0, path: pathId(path) };
}

/** Resolves names from a root; undefined when any step is missing or not a directory. */
export function resolve(root: ViewDir, path: readonly string[]): ViewNode | undefined {
  let node: ViewNode = root;
  for (const name of path) {
    if (node.kind !== 'dir') return undefined;
    const next: ViewNode | undefined = name === '..' ? undefined : node.lookup(name);
    if (!next) return undefined;
    node = next;
  }
  return node;
}

type Common = Omit<NodeBase, 'name'>;

export function staticDir(name: string, common: Common, entries: () => ViewNode[]): ViewDir {
  return {
    kind: 'dir', name, ...common,
    list: entries,
    lookup: (n) => entries().find((e) => e.name === n),
  };
}

export function textFile(name: string, common: Common, text: () => string | Buffer): ViewFile {
  return { kind: 'file', name, ...common, render: () => { const t = text(); return typeof t === 'string' ? Buffer.from(t, 'utf8') : t; } };
}
