// A read-only 9P2000.L file server over TCP for the Linux kernel client
// (`mount -t 9p -o trans=tcp,port=<p>,version=9p2000.L,ro,aname=<token>`). It serves a ViewDir
// tree (view-tree.ts) and nothing else: no message changes anything, every write-like request is
// EROFS, an attach whose aname (the bearer token) the checker refuses is EACCES. Bounded: message
// size (msize), fids per connection, connections. A malformed frame closes that connection (9P
// cannot resynchronise a byte stream); it never throws out of the server.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import {
  Errno, HEADER_SIZE, NOFID, NinePProtocolError, decodeMessage, encodeDirEntry, encodeMessage, frameSize,
  type Message, type MessageByKind, type Qid, type UnknownMessage,
} from './ninep-codec.ts';
import { direntType, modeOf, qidOf, resolve, type ViewDir, type ViewNode } from './view-tree.ts';

export const NINEP_VERSION = '9P2000.L';
/** 9P message types that would change something: all refused with EROFS. */
export const WRITE_TYPES: ReadonlySet<number> = new Set([
  14, // Tlcreate
  16, // Tsymlink
  18, // Tmknod
  20, // Trename
  26, // Tsetattr
  32, // Txattrcreate
  70, // Tlink
  72, // Tmkdir
  74, // Trenameat
  76, // Tunlinkat
  118, // Twrite
  122, // Tremove
]);
const O_ACCMODE = 0o3;
const O_CREAT = 0o100;
const O_TRUNC = 0o1000;
const O_APPEND = 0o2000;
const P9_GETATTR_BASIC = 0x7ff;

export type AttachDecision = { allowed: true; user: string } | { allowed: false; reason: string };

/** Checks the aname of a Tattach (a bearer token); must not log the token. */
export interface AttachChecker {
  check(token: string): Promise<AttachDecision>;
}

export interface NinePServerEvents {
  connection?(remote: string): void;
  attach?(result: { allowed: boolean; remote: string; user?: string; reason?: string; durationMs: number }): void;
  protocolError?(remote: string, message: string): void;
}

export interface NinePServerOptions {
  root: () => ViewDir;
  checker: AttachChecker;
  /** Largest message accepted or sent; the client may ask for less. */
  maxMsize?: number;
  maxFidsPerConnection?: number;
  maxConnections?: number;
  events?: NinePServerEvents;
}

interface FidState {
  path: string[];
  /** Bytes rendered at open (files) or the listing (directories), so reads of one open are consistent. */
  opened?: { kind: 'file'; bytes: Buffer } | { kind: 'dir'; entries: Array<{ node: ViewNode; path: string[] }> };
}

type Reply = Message | { kind: 'lerror'; tag: number; ecode: number };
class LError extends Error {
  constructor(readonly ecode: number) { super(`errno ${ecode}`); }
}

/** One client connection's protocol state; `handle` is pure apart from the attach check. */
export class NinePSession {
  private msize: number;
  private versioned = false;
  private readonly fids = new Map<number, FidState>();

  constructor(private readonly options: NinePServerOptions, private readonly remote = 'test') {
    this.msize = options.maxMsize ?? 65_536;
  }

  get maxMessageSize(): number {
    return this.msize;
  }

  get fidCount(): number {
    return this.fids.size;
  }

  /** The reply to one decoded request; never throws. */
  async handle(m: Message | UnknownMessage): Promise<Buffer> {
    try {
      return encodeReply(await this.dispatch(m));
    } catch (err) {
      const ecode = err instanceof LError ? err.ecode : Errno.EIO;
      return encodeReply({ kind: 'lerror', tag: m.tag, ecode });
    }
  }

  private async dispatch(m: Message | UnknownMessage): Promise<Reply> {
    if (m.kind === 'unknown') {
      if (WRITE_TYPES.has(m.type)) throw new LError(Errno.EROFS);
      throw new LError(Errno.EOPNOTSUPP);
    }
    if (m.kind === 'Tversion') return this.version(m);
    if (!this.versioned) throw new LError(Errno.EPROTO);
    switch (m.kind) {
      case 'Tauth': throw new LError(Errno.EOPNOTSUPP); // the token travels in Tattach's aname
      case 'Tattach': return this.attach(m);
      case 'Tflush': return { kind: 'Rflush', tag: m.tag };
      case 'Twalk': return this.walk(m);
      case 'Tlopen': return this.lopen(m);
      case 'Tread': return this.read(m);
      case 'Treaddir': return this.readdir(m);
      case 'Tgetattr': return this.getattr(m);
      case 'Treadlink': return this.readlink(m);
      case 'Tstatfs': this.fid(m.fid); return { kind: 'Rstatfs', tag: m.tag, fsType: 0x01021997 /* V9FS_MAGIC */, bsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, fsid: 0, namelen: 255 };
      case 'Tclunk': this.fid(m.fid); this.fids.delete(m.fid); return { kind: 'Rclunk', tag: m.tag };
      case 'Txattrwalk': this.fid(m.fid); throw new LError(Errno.ENODATA);
      case 'Twrite': throw new LError(Errno.EROFS);
      case 'Tremove': this.fids.delete(m.fid); throw new LError(Errno.EROFS); // Tremove clunks even when it fails
      default: throw new LError(Errno.EOPNOTSUPP); // an R-message sent to the server
    }
  }

  private version(m: MessageByKind<'Tversion'>): Reply {
    this.fids.clear();
    if (m.msize < 4096) throw new LError(Errno.EINVAL);
    this.msize = Math.min(m.msize, this.options.maxMsize ?? 65_536);
    if (!m.version.startsWith(NINEP_VERSION)) return { kind: 'Rversion', tag: m.tag, msize: this.msize, version: 'unknown' };
    this.versioned = true;
    return { kind: 'Rversion', tag: m.tag, msize: this.msize, version: NINEP_VERSION };
  }

  private async attach(m: MessageByKind<'Tattach'>): Promise<Reply> {
    if (m.afid !== NOFID) throw new LError(Errno.EINVAL);
    if (this.fids.has(m.fid)) throw new LError(Errno.EBADF);
    this.reserveFid();
    const started = Date.now();
    let decision: AttachDecision;
    try {
      decision = m.aname ? await this.options.checker.check(m.aname) : { allowed: false, reason: 'no token: mount with aname=<bearer token>' };
    } catch (err) {
      decision = { allowed: false, reason: `the token could not be checked: ${(err as Error).message}` };
    }
    this.options.events?.attach?.({ allowed: decision.allowed, remote: this.remote, durationMs: Date.now() - started, ...(decision.allowed ? { user: decision.user } : { reason: decision.reason }) });
    if (!decision.allowed) throw new LError(Errno.EACCES);
    if (this.fids.has(m.fid)) throw new LError(Errno.EBADF);
    this.fids.set(m.fid, { path: [] });
    return { kind: 'Rattach', tag: m.tag, qid: qidOf(this.options.root(), []) };
  }

  private walk(m: MessageByKind<'Twalk'>): Reply {
    const from = this.fid(m.fid);
    if (from.opened) throw new LError(Errno.EBADF); // 9P: an open fid may not be walked
    if (m.newfid !== m.fid) {
      if (this.fids.has(m.newfid)) throw new LError(Errno.EBADF);
      this.reserveFid();
    }
    const root = this.options.root();
    if (!resolve(root, from.path)) throw new LError(Errno.ENOENT);
    const path = [...from.path];
    const qids: Qid[] = [];
    for (const name of m.wnames) {
      if (name === '' || name.includes('/')) break;
      if (name === '..') path.pop();
      else if (name !== '.') path.push(name);
      const node = resolve(root, path);
      if (!node) break;
      qids.push(qidOf(node, path));
    }
    if (m.wnames.length > 0 && qids.length === 0) throw new LError(Errno.ENOENT);
    // A partial walk answers the qids it found and does not create newfid.
    if (qids.length === m.wnames.length) this.fids.set(m.newfid, { path });
    return { kind: 'Rwalk', tag: m.tag, qids };
  }

  private lopen(m: MessageByKind<'Tlopen'>): Reply {
    const f = this.fid(m.fid);
    if (f.opened) throw new LError(Errno.EBADF);
    if ((m.flags & O_ACCMODE) !== 0 || (m.flags & (O_CREAT | O_TRUNC | O_APPEND)) !== 0) throw new LError(Errno.EROFS);
    const node = this.node(f);
    if (node.kind === 'file') f.opened = { kind: 'file', bytes: node.render() };
    else if (node.kind === 'dir') f.opened = { kind: 'dir', entries: node.list().map((n) => ({ node: n, path: [...f.path, n.name] })) };
    else throw new LError(Errno.EINVAL);
    return { kind: 'Rlopen', tag: m.tag, qid: qidOf(node, f.path), iounit: this.msize - HEADER_SIZE - 4 };
  }

  private read(m: MessageByKind<'Tread'>): Reply {
    const f = this.fid(m.fid);
    if (f.opened?.kind !== 'file') throw new LError(f.opened ? Errno.EISDIR : Errno.EBADF);
    const count = Math.min(m.count, this.msize - HEADER_SIZE - 4);
    return { kind: 'Rread', tag: m.tag, data: f.opened.bytes.subarray(Math.min(m.offset, f.opened.bytes.length), Math.min(m.offset + count, f.opened.bytes.length)) };
  }

  /** Offsets are entry indices: entry i carries offset i+1, where the next read resumes. */
  private readdir(m: MessageByKind<'Treaddir'>): Reply {
    const f = this.fid(m.fid);
    if (f.opened?.kind !== 'dir') throw new LError(f.opened ? Errno.ENOTDIR : Errno.EBADF);
    const limit = Math.min(m.count, this.msize - HEADER_SIZE - 4);
    const parts: Buffer[] = [];
    let used = 0;
    for (let i = m.offset; i < f.opened.entries.length; i++) {
      const { node, path } = f.opened.entries[i]!;
      const entry = encodeDirEntry({ qid: qidOf(node, path), offset: i + 1, type: direntType(node), name: node.name });
      if (used + entry.length > limit) {
        if (parts.length === 0) throw new LError(Errno.EINVAL); // not even one entry fits
        break;
      }
      parts.push(entry);
      used += entry.length;
    }
    return { kind: 'Rreaddir', tag: m.tag, data: Buffer.concat(parts) };
  }

  private getattr(m: MessageByKind<'Tgetattr'>): Reply {
    const f = this.fid(m.fid);
    const node = this.node(f);
    // Files report their rendered length, so clients that trust i_size read it all.
    const size = node.kind === 'file' ? (f.opened?.kind === 'file' ? f.opened.bytes : node.render()).length : node.kind === 'symlink' ? Buffer.byteLength(node.target) : 0;
    return {
      kind: 'Rgetattr', tag: m.tag, valid: P9_GETATTR_BASIC, qid: qidOf(node, f.path), mode: modeOf(node), uid: node.uid, gid: node.gid,
      nlink: node.kind === 'dir' ? 2 : 1, rdev: 0, size, blksize: 4096, blocks: Math.ceil(size / 512),
      atimeSec: node.mtimeSec, atimeNsec: 0, mtimeSec: node.mtimeSec, mtimeNsec: 0, ctimeSec: node.mtimeSec, ctimeNsec: 0, btimeSec: 0, btimeNsec: 0, gen: 0, dataVersion: 0,
    };
  }

  private readlink(m: MessageByKind<'Treadlink'>): Reply {
    const node = this.node(this.fid(m.fid));
    if (node.kind !== 'symlink') throw new LError(Errno.EINVAL);
    return { kind: 'Rreadlink', tag: m.tag, target: node.target };
  }

  private fid(fid: number): FidState {
    const f = this.fids.get(fid);
    if (!f) throw new LError(Errno.EBADF);
    return f;
  }

  private node(f: FidState): ViewNode {
    const node = resolve(this.options.root(), f.path);
    if (!node) throw new LError(Errno.ENOENT);
    return node;
  }

  private reserveFid(): void {
    if (this.fids.size >= (this.options.maxFidsPerConnection ?? 4096)) throw new LError(Errno.EMFILE);
  }
}

function encodeReply(r: Reply): Buffer {
  if (r.kind === 'lerror') return encodeMessage({ kind: 'Rlerror', tag: r.tag, ecode: r.ecode });
  return encodeMessage(r);
}

/**
 * Splits a byte stream into frames and answers each in order. Returns false when the stream is
 * broken (a size below a header or above msize, or an undecodable message): close the connection.
 */
export class NinePConnection {
  private pending: Buffer = Buffer.alloc(0);
  private chain: Promise<void> = Promise.resolve();
  private broken = false;

  constructor(private readonly session: NinePSession, private readonly send: (reply: Buffer) => void, private readonly fail: (message: string) => void) {}

  feed(chunk: Buffer): void {
    if (this.broken) return;
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    for (;;) {
      const size = frameSize(this.pending);
      if (size === undefined) return;
      if (size < HEADER_SIZE || size > this.session.maxMessageSize) return this.break(`message size ${size} outside ${HEADER_SIZE}..${this.session.maxMessageSize}`);
      if (this.pending.length < size) return;
      const frame = this.pending.subarray(0, size);
      this.pending = this.pending.subarray(size);
      let message: ReturnType<typeof decodeMessage>;
      try {
        message = decodeMessage(Buffer.from(frame));
      } catch (err) {
        return this.break(err instanceof NinePProtocolError ? err.message : `undecodable message: ${(err as Error).message}`);
      }
      // In order: a Twalk after a Tattach must see the attached fid.
      this.chain = this.chain.then(async () => {
        if (!this.broken) this.send(await this.session.handle(message));
      });
    }
  }

  /** Resolves once every request fed so far has been answered. */
  drained(): Promise<void> {
    return this.chain;
  }

  private break(message: string): void {
    this.broken = true;
    this.pending = Buffer.alloc(0);
    this.fail(message);
  }
}

export interface NinePServer {
  server: Server;
  address(): AddressInfo;
  connections(): number;
  close(): Promise<void>;
}

export async function startNinePServer(options: NinePServerOptions & { host: string; port: number }): Promise<NinePServer> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    if (sockets.size >= (options.maxConnections ?? 64)) {
      options.events?.protocolError?.(remote, 'too many connections');
      socket.destroy();
      return;
    }
    sockets.add(socket);
    options.events?.connection?.(remote);
    socket.setNoDelay(true);
    const connection = new NinePConnection(
      new NinePSession(options, remote),
      (reply) => { if (!socket.destroyed) socket.write(reply); },
      (message) => {
        options.events?.protocolError?.(remote, message);
        socket.destroy();
      },
    );
    socket.on('data', (chunk: Buffer) => connection.feed(chunk));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolvePromise();
    });
  });
  return {
    server,
    address: () => server.address() as AddressInfo,
    connections: () => sockets.size,
    close: () => new Promise<void>((resolvePromise) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolvePromise());
    }),
  };
}
