import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  MESSAGES, NinePProtocolError, decodeDirEntries, decodeMessage, encodeDirEntry, encodeMessage, encodeRaw, type Message,
} from '../../../src/procfs/ninep-codec.ts';

const qid = { type: 0x80, version: 3, path: 2 ** 52 + 17 };
/** One sample per message type the codec knows. */
const SAMPLES: Message[] = [
  { kind: 'Rlerror', tag: 1, ecode: 30 },
  { kind: 'Tstatfs', tag: 2, fid: 9 },
  { kind: 'Rstatfs', tag: 2, fsType: 0x01021997, bsize: 4096, blocks: 1, bfree: 2, bavail: 3, files: 4, ffree: 5, fsid: 6, namelen: 255 },
  { kind: 'Tlopen', tag: 3, fid: 9, flags: 0o100000 },
  { kind: 'Rlopen', tag: 3, qid, iounit: 8181 },
  { kind: 'Treadlink', tag: 4, fid: 1 },
  { kind: 'Rreadlink', tag: 4, target: '/usr/bin/ünïcode' },
  { kind: 'Tgetattr', tag: 5, fid: 1, requestMask: 0x3fff },
  {
    kind: 'Rgetattr', tag: 5, valid: 0x7ff, qid, mode: 0o40555, uid: 1001, gid: 50, nlink: 2, rdev: 0, size: 123, blksize: 4096, blocks: 1,
    atimeSec: 1, atimeNsec: 2, mtimeSec: 3, mtimeNsec: 4, ctimeSec: 5, ctimeNsec: 6, btimeSec: 7, btimeNsec: 8, gen: 9, dataVersion: 10,
  },
  { kind: 'Txattrwalk', tag: 6, fid: 1, newfid: 2, name: 'security.selinux' },
  { kind: 'Treaddir', tag: 7, fid: 1, offset: 5, count: 8000 },
  { kind: 'Rreaddir', tag: 7, data: encodeDirEntry({ qid, offset: 1, type: 4, name: '42' }) },
  { kind: 'Tversion', tag: 0xffff, msize: 131072, version: '9P2000.L' },
  { kind: 'Rversion', tag: 0xffff, msize: 65536, version: '9P2000.L' },
  { kind: 'Tauth', tag: 8, afid: 1, uname: 'root', aname: 'tok', nUname: 0 },
  { kind: 'Tattach', tag: 9, fid: 0, afid: 0xffffffff, uname: '', aname: 'eyJhbGciOi.token', nUname: 0xffffffff },
  { kind: 'Rattach', tag: 9, qid },
  { kind: 'Tflush', tag: 10, oldtag: 9 },
  { kind: 'Rflush', tag: 10 },
  { kind: 'Twalk', tag: 11, fid: 0, newfid: 1, wnames: ['42', 'task', '42', 'stat'] },
  { kind: 'Rwalk', tag: 11, qids: [qid, { ...qid, type: 0 }] },
  { kind: 'Tread', tag: 12, fid: 1, offset: 4096, count: 4096 },
  { kind: 'Rread', tag: 12, data: Buffer.from('1 (init) S 0\n') },
  { kind: 'Twrite', tag: 13, fid: 1, offset: 0, data: Buffer.from('x') },
  { kind: 'Tclunk', tag: 14, fid: 1 },
  { kind: 'Rclunk', tag: 14 },
  { kind: 'Tremove', tag: 15, fid: 1 },
];

/** Byte fields compare by content: decoded ones are Buffers over the message, samples may be copies. */
function normalise(m: unknown): unknown {
  return JSON.parse(JSON.stringify(m));
}

describe('9P2000.L codec', () => {
  it('has a sample for every message type it knows', () => {
    assert.deepEqual(new Set(SAMPLES.map((s) => s.kind)), new Set(Object.values(MESSAGES).map(([kind]) => kind)));
  });

  for (const sample of SAMPLES) {
    it(`round-trips ${sample.kind}`, () => {
      const bytes = encodeMessage(sample);
      assert.equal(bytes.readUInt32LE(0), bytes.length);
      assert.deepEqual(normalise(decodeMessage(bytes)), normalise(sample));
    });
  }

  it('encodes Tversion byte for byte as the kernel sends it', () => {
    assert.equal(encodeMessage({ kind: 'Tversion', tag: 0xffff, msize: 8192, version: '9P2000.L' }).toString('hex'), '1500000064ffff002000000800395032303030' + '2e4c');
  });

  it('decodes unknown types to their number and tag', () => {
    assert.deepEqual(decodeMessage(encodeRaw(74, 5, Buffer.from([1, 2, 3]))), { kind: 'unknown', type: 74, tag: 5 });
  });

  const malformed: Array<[string, Buffer]> = [
    ['shorter than a header', Buffer.from([5, 0, 0, 0, 100])],
    ['a size field that is not the length', (() => { const b = encodeMessage({ kind: 'Tclunk', tag: 1, fid: 1 }); b.writeUInt32LE(99, 0); return b; })()],
    ['a truncated body', encodeRaw(120, 1, Buffer.from([1, 2]))],
    ['trailing bytes', encodeRaw(120, 1, Buffer.from([1, 2, 3, 4, 5]))],
    ['a string longer than the message', encodeRaw(100, 1, Buffer.from([0, 0, 1, 0, 0xff, 0xff, 0x39]))],
    ['invalid UTF-8', (() => { const body = Buffer.from([0, 0, 1, 0, 2, 0, 0xc3, 0x28]); return encodeRaw(100, 1, body); })()],
    ['more than 16 walk names', encodeRaw(110, 1, Buffer.concat([Buffer.alloc(8), Buffer.from([17, 0]), ...Array.from({ length: 17 }, () => Buffer.from([1, 0, 0x61]))]))],
    ['a 64-bit offset above 2^53', (() => { const b = encodeMessage({ kind: 'Tread', tag: 1, fid: 1, offset: 0, count: 1 }); b.writeBigUInt64LE(2n ** 63n, 11); return b; })()],
    ['data longer than the message', encodeRaw(117, 1, Buffer.from([0xff, 0xff, 0, 0, 1]))],
  ];
  for (const [what, bytes] of malformed) {
    it(`refuses ${what} with a protocol error`, () => assert.throws(() => decodeMessage(bytes), NinePProtocolError));
  }

  it('never throws anything but a protocol error on random and truncated input', () => {
    const valid = SAMPLES.map(encodeMessage);
    for (let i = 0; i < 5000; i++) {
      let bytes: Buffer;
      if (i % 3 === 0) bytes = randomBytes(i % 64);
      else {
        const base = Buffer.from(valid[i % valid.length]!);
        bytes = i % 3 === 1 ? base.subarray(0, i % base.length) : base;
        if (i % 3 === 2 && base.length > 7) {
          const at = 7 + (i % (base.length - 7));
          bytes[at] = base[at]! ^ 0xff;
        }
        if (bytes.length >= 4) bytes.writeUInt32LE(bytes.length, 0);
      }
      try {
        decodeMessage(bytes);
      } catch (err) {
        assert.ok(err instanceof NinePProtocolError, `input ${bytes.toString('hex')} threw ${String(err)}`);
      }
    }
  });

  it('round-trips directory entries and refuses truncated ones', () => {
    const entries = [{ qid, offset: 1, type: 4, name: '1' }, { qid: { ...qid, type: 0 }, offset: 2, type: 8, name: 'uptime' }];
    assert.deepEqual(decodeDirEntries(Buffer.concat(entries.map(encodeDirEntry))), entries);
    assert.throws(() => decodeDirEntries(encodeDirEntry(entries[1]!).subarray(0, 26)), NinePProtocolError);
  });
});
