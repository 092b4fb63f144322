// A strict codec for the subset of 9P2000.L the read-only process view serves (the Linux kernel
// client, fs/9p and net/9p): each message is size[4] type[1] tag[2] body, little-endian; strings
// are len[2] + UTF-8. Messages are described once as field layouts and encoded/decoded from them,
// so both directions of every message type share one definition. Decoding never trusts a length:
// a short, long or oversized message is a NinePProtocolError, never an out-of-bounds read.

export const NOTAG = 0xffff;
export const NOFID = 0xffffffff;
export const HEADER_SIZE = 7;

/** Linux errno values carried by Rlerror. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EBADF: 9,
  EACCES: 13,
  EEXIST: 17,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EMFILE: 24,
  EROFS: 30,
  ERANGE: 34,
  ENODATA: 61,
  EPROTO: 71,
  EOPNOTSUPP: 95,
} as const;

export interface Qid {
  /** QTDIR 0x80, QTSYMLINK 0x02, QTFILE 0x00. */
  type: number;
  version: number;
  /** Unique per file; at most 2^53-1 here. */
  path: number;
}
export const QTDIR = 0x80;
export const QTSYMLINK = 0x02;
export const QTFILE = 0x00;

export class NinePProtocolError extends Error {}

type FieldType = 'u8' | 'u16' | 'u32' | 'u64' | 'str' | 'strs' | 'qid' | 'qids' | 'data';
type Layout = ReadonlyArray<readonly [string, FieldType]>;

/** Every message type this codec knows, by number. Others decode to `{ kind: 'unknown' }`. */
export const MESSAGES = {
  7: ['Rlerror', [['ecode', 'u32']]],
  8: ['Tstatfs', [['fid', 'u32']]],
  9: ['Rstatfs', [['fsType', 'u32'], ['bsize', 'u32'], ['blocks', 'u64'], ['bfree', 'u64'], ['bavail', 'u64'], ['files', 'u64'], ['ffree', 'u64'], ['fsid', 'u64'], ['namelen', 'u32']]],
  12: ['Tlopen', [['fid', 'u32'], ['flags', 'u32']]],
  13: ['Rlopen', [['qid', 'qid'], ['iounit', 'u32']]],
  22: ['Treadlink', [['fid', 'u32']]],
  23: ['Rreadlink', [['target', 'str']]],
  24: ['Tgetattr', [['fid', 'u32'], ['requestMask', 'u64']]],
  25: ['Rgetattr', [['valid', 'u64'], ['qid', 'qid'], ['mode', 'u32'], ['uid', 'u32'], ['gid', 'u32'], ['nlink', 'u64'], ['rdev', 'u64'], ['size', 'u64'], ['blksize', 'u64'], ['blocks', 'u64'],
    ['atimeSec', 'u64'], ['atimeNsec', 'u64'], ['mtimeSec', 'u64'], ['mtimeNsec', 'u64'], ['ctimeSec', 'u64'], ['ctimeNsec', 'u64'], ['btimeSec', 'u64'], ['btimeNsec', 'u64'], ['gen', 'u64'], ['dataVersion', 'u64']]],
  30: ['Txattrwalk', [['fid', 'u32'], ['newfid', 'u32'], ['name', 'str']]],
  40: ['Treaddir', [['fid', 'u32'], ['offset', 'u64'], ['count', 'u32']]],
  41: ['Rreaddir', [['data', 'data']]],
  100: ['Tversion', [['msize', 'u32'], ['version', 'str']]],
  101: ['Rversion', [['msize', 'u32'], ['version', 'str']]],
  102: ['Tauth', [['afid', 'u32'], ['uname', 'str'], ['aname', 'str'], ['nUname', 'u32']]],
  104: ['Tattach', [['fid', 'u32'], ['afid', 'u32'], ['uname', 'str'], ['aname', 'str'], ['nUname', 'u32']]],
  105: ['Rattach', [['qid', 'qid']]],
  108: ['Tflush', [['oldtag', 'u16']]],
  109: ['Rflush', []],
  110: ['Twalk', [['fid', 'u32'], ['newfid', 'u32'], ['wnames', 'strs']]],
  111: ['Rwalk', [['qids', 'qids']]],
  116: ['Tread', [['fid', 'u32'], ['offset', 'u64'], ['count', 'u32']]],
  117: ['Rread', [['data', 'data']]],
  118: ['Twrite', [['fid', 'u32'], ['offset', 'u64'], ['data', 'data']]],
  120: ['Tclunk', [['fid', 'u32']]],
  121: ['Rclunk', []],
  122: ['Tremove', [['fid', 'u32']]],
} as const satisfies Record<number, readonly [string, Layout]>;

type Messages = typeof MESSAGES;
type FieldValue<T extends FieldType> = T extends 'str' ? string : T extends 'strs' ? string[] : T extends 'qid' ? Qid : T extends 'qids' ? Qid[] : T extends 'data' ? Uint8Array : number;
type Fields<L> = L extends ReadonlyArray<readonly [string, FieldType]> ? { [E in L[number] as E[0]]: FieldValue<E[1]> } : never;
export type MessageOf<N extends keyof Messages> = { kind: Messages[N][0]; tag: number } & Fields<Messages[N][1]>;
export type Message = { [N in keyof Messages]: MessageOf<N> }[keyof Messages];
export type MessageKind = Message['kind'];
export type MessageByKind<K extends MessageKind> = Extract<Message, { kind: K }>;
export interface UnknownMessage {
  kind: 'unknown';
  type: number;
  tag: number;
}

const TYPE_BY_KIND = new Map<string, number>(Object.entries(MESSAGES).map(([n, [kind]]) => [kind, Number(n)]));
/** 9P limits a walk to 16 names; strings within a message; 64 KiB keeps a Tversion honest. */
export const MAX_WALK_NAMES = 16;

class Reader {
  private at = HEADER_SIZE;
  constructor(private readonly buf: Buffer) {}
  private need(n: number): void {
    if (this.at + n > this.buf.length) throw new NinePProtocolError(`message too short: need ${n} byte(s) at offset ${this.at} of ${this.buf.length}`);
  }
  u8(): number { this.need(1); return this.buf.readUInt8(this.at++); }
  u16(): number { this.need(2); const v = this.buf.readUInt16LE(this.at); this.at += 2; return v; }
  u32(): number { this.need(4); const v = this.buf.readUInt32LE(this.at); this.at += 4; return v; }
  u64(): number {
    this.need(8);
    const v = this.buf.readBigUInt64LE(this.at);
    this.at += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new NinePProtocolError(`64-bit value ${v} is out of range`);
    return Number(v);
  }
  str(): string {
    const n = this.u16();
    this.need(n);
    const bytes = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    const s = bytes.toString('utf8');
    if (!Buffer.from(s, 'utf8').equals(bytes)) throw new NinePProtocolError('string is not valid UTF-8');
    return s;
  }
  qid(): Qid { return { type: this.u8(), version: this.u32(), path: this.u64() }; }
  data(): Uint8Array {
    const n = this.u32();
    this.need(n);
    const d = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return d;
  }
  list<T>(item: () => T, max: number): T[] {
    const n = this.u16();
    if (n > max) throw new NinePProtocolError(`${n} entries where at most ${max} are allowed`);
    return Array.from({ length: n }, item);
  }
  end(): void {
    if (this.at !== this.buf.length) throw new NinePProtocolError(`${this.buf.length - this.at} trailing byte(s)`);
  }
}

/** The size of the next message in a stream buffer, or undefined when its header is not complete. */
export function frameSize(buf: Buffer): number | undefined {
  return buf.length >= 4 ? buf.readUInt32LE(0) : undefined;
}

/** Decodes one complete message (size prefix included). Throws only NinePProtocolError. */
export function decodeMessage(buf: Buffer): Message | UnknownMessage {
  if (buf.length < HEADER_SIZE) throw new NinePProtocolError(`message of ${buf.length} byte(s) is shorter than a header`);
  if (buf.readUInt32LE(0) !== buf.length) throw new NinePProtocolError(`size field ${buf.readUInt32LE(0)} does not match the ${buf.length}-byte message`);
  const type = buf.readUInt8(4);
  const tag = buf.readUInt16LE(5);
  const known = (MESSAGES as Record<number, readonly [string, Layout]>)[type];
  if (!known) return { kind: 'unknown', type, tag };
  const r = new Reader(buf);
  const out: Record<string, unknown> = { kind: known[0], tag };
  for (const [name, t] of known[1]) {
    switch (t) {
      case 'u8': out[name] = r.u8(); break;
      case 'u16': out[name] = r.u16(); break;
      case 'u32': out[name] = r.u32(); break;
      case 'u64': out[name] = r.u64(); break;
      case 'str': out[name] = r.str(); break;
      case 'strs': out[name] = r.list(() => r.str(), MAX_WALK_NAMES); break;
      case 'qid': out[name] = r.qid(); break;
      case 'qids': out[name] = r.list(() => r.qid(), MAX_WALK_NAMES); break;
      case 'data': out[name] = r.data(); break;
    }
  }
  r.end();
  return out as Message;
}

function fieldSize(t: FieldType, v: unknown): number {
  switch (t) {
    case 'u8': return 1;
    case 'u16': return 2;
    case 'u32': return 4;
    case 'u64': return 8;
    case 'str': return 2 + Buffer.byteLength(v as string, 'utf8');
    case 'strs': return 2 + (v as string[]).reduce((s, x) => s + 2 + Buffer.byteLength(x, 'utf8'), 0);
    case 'qid': return 13;
    case 'qids': return 2 + 13 * (v as Qid[]).length;
    case 'data': return 4 + (v as Uint8Array).length;
  }
}

function writeQid(buf: Buffer, at: number, q: Qid): number {
  buf.writeUInt8(q.type, at);
  buf.writeUInt32LE(q.version >>> 0, at + 1);
  buf.writeBigUInt64LE(BigInt(q.path), at + 5);
  return at + 13;
}

/** Encodes a message of a known type; values must fit their fields (a programming error throws). */
export function encodeMessage(m: Message): Buffer {
  const type = TYPE_BY_KIND.get(m.kind)!;
  const layout = (MESSAGES as Record<number, readonly [string, Layout]>)[type]![1];
  const values: Readonly<Record<string, unknown>> = m;
  const size = HEADER_SIZE + layout.reduce((s, [name, t]) => s + fieldSize(t, values[name]), 0);
  const buf = Buffer.alloc(size);
  buf.writeUInt32LE(size, 0);
  buf.writeUInt8(type, 4);
  buf.writeUInt16LE(m.tag, 5);
  let at = HEADER_SIZE;
  for (const [name, t] of layout) {
    const v = values[name];
    switch (t) {
      case 'u8': at = buf.writeUInt8(v as number, at); break;
      case 'u16': at = buf.writeUInt16LE(v as number, at); break;
      case 'u32': at = buf.writeUInt32LE(v as number, at); break;
      case 'u64': at = buf.writeBigUInt64LE(BigInt(v as number), at); break;
      case 'str': at = buf.writeUInt16LE(Buffer.byteLength(v as string, 'utf8'), at); at += buf.write(v as string, at, 'utf8'); break;
      case 'strs':
        at = buf.writeUInt16LE((v as string[]).length, at);
        for (const s of v as string[]) { at = buf.writeUInt16LE(Buffer.byteLength(s, 'utf8'), at); at += buf.write(s, at, 'utf8'); }
        break;
      case 'qid': at = writeQid(buf, at, v as Qid); break;
      case 'qids': at = buf.writeUInt16LE((v as Qid[]).length, at); for (const q of v as Qid[]) at = writeQid(buf, at, q); break;
      case 'data': at = buf.writeUInt32LE((v as Uint8Array).length, at); buf.set(v as Uint8Array, at); at += (v as Uint8Array).length; break;
    }
  }
  return buf;
}

/** The header of a message of a type this codec does not describe (for tests and Rlerror replies). */
export function encodeRaw(type: number, tag: number, body: Uint8Array = new Uint8Array()): Buffer {
  const buf = Buffer.alloc(HEADER_SIZE + body.length);
  buf.writeUInt32LE(buf.length, 0);
  buf.writeUInt8(type, 4);
  buf.writeUInt16LE(tag, 5);
  buf.set(body, HEADER_SIZE);
  return buf;
}

export interface DirEntry {
  qid: Qid;
  /** The offset of the entry after this one (what the next Treaddir passes). */
  offset: number;
  /** DT_* type: DT_DIR 4, DT_REG 8, DT_LNK 10. */
  type: number;
  name: string;
}

/** One Treaddir entry: qid[13] offset[8] type[1] name[s]. */
export function encodeDirEntry(e: DirEntry): Buffer {
  const name = Buffer.from(e.name, 'utf8');
  const buf = Buffer.alloc(13 + 8 + 1 + 2 + name.length);
  let at = writeQid(buf, 0, e.qid);
  at = buf.writeBigUInt64LE(BigInt(e.offset), at);
  at = buf.writeUInt8(e.type, at);
  at = buf.writeUInt16LE(name.length, at);
  buf.set(name, at);
  return buf;
}

/** The entries of an Rreaddir payload (for clients and tests). */
export function decodeDirEntries(data: Uint8Array): DirEntry[] {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const out: DirEntry[] = [];
  let at = 0;
  while (at < buf.length) {
    if (at + 24 > buf.length) throw new NinePProtocolError('truncated directory entry');
    const qid = { type: buf.readUInt8(at), version: buf.readUInt32LE(at + 1), path: Number(buf.readBigUInt64LE(at + 5)) };
    const offset = Number(buf.readBigUInt64LE(at + 13));
    const type = buf.readUInt8(at + 21);
    const n = buf.readUInt16LE(at + 22);
    if (at + 24 + n > buf.length) throw new NinePProtocolError('truncated directory entry name');
    out.push({ qid, offset, type, name: buf.toString('utf8', at + 24, at + 24 + n) });
    at += 24 + n;
  }
  return out;
}
