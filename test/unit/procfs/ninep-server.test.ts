import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  Errno, MESSAGES, NOFID, decodeDirEntries, decodeMessage, encodeMessage, encodeRaw, type Message, type MessageByKind, type UnknownMessage,
} from '../../../src/procfs/ninep-codec.ts';
import { NinePConnection, NinePSession, WRITE_TYPES, startNinePServer, type AttachChecker, type NinePServerOptions } from '../../../src/procfs/ninep-server.ts';
import { sharedTokenChecker, anyAttachChecker, kubernetesAttachChecker } from '../../../src/procfs/attach-auth.ts';
import { staticDir, textFile, type ViewDir } from '../../../src/procfs/view-tree.ts';
import { NinePTestClient } from '../../../testenv/procfs/ninep-client.ts';

const common = { perm: 0o555, uid: 0, gid: 0, mtimeSec: 1_700_000_000 };
let statText = '42 (sleep) S 1\n';
let present = true;
const tree = (): ViewDir => staticDir('', common, () => [
  ...(present ? [staticDir('42', { ...common, uid: 1001, gid: 1001 }, () => [textFile('stat', { ...common, perm: 0o444 }, () => statText)])] : []),
  textFile('uptime', { ...common, perm: 0o444 }, () => '12.00 0.00\n'),
  ...Array.from({ length: 300 }, (_, i) => staticDir(String(1000 + i), common, () => [])),
  { kind: 'symlink' as const, name: 'link', ...common, target: '42' },
]);

const TOKEN = 'good-token';
const options = (over: Partial<NinePServerOptions> = {}): NinePServerOptions => ({ root: tree, checker: sharedTokenChecker(TOKEN), maxMsize: 8192, maxFidsPerConnection: 8, ...over });

/** Sends one message through a session and decodes the reply. */
async function ask(s: NinePSession, m: Message | UnknownMessage): Promise<ReturnType<typeof decodeMessage>> {
  return decodeMessage(await s.handle(m));
}
function errno(r: ReturnType<typeof decodeMessage>): number | undefined {
  return r.kind === 'Rlerror' ? r.ecode : undefined;
}
async function attached(over: Partial<NinePServerOptions> = {}): Promise<NinePSession> {
  const s = new NinePSession(options(over));
  assert.equal((await ask(s, { kind: 'Tversion', tag: 0xffff, msize: 65536, version: '9P2000.L' })).kind, 'Rversion');
  assert.equal((await ask(s, { kind: 'Tattach', tag: 1, fid: 0, afid: NOFID, uname: '', aname: TOKEN, nUname: 0 })).kind, 'Rattach');
  return s;
}
async function open(s: NinePSession, fid: number, names: string[], flags = 0): Promise<ReturnType<typeof decodeMessage>> {
  const w = await ask(s, { kind: 'Twalk', tag: 2, fid: 0, newfid: fid, wnames: names });
  assert.equal(w.kind, 'Rwalk');
  return ask(s, { kind: 'Tlopen', tag: 3, fid, flags });
}

describe('read-only 9P server', () => {
  beforeEach(() => {
    statText = '42 (sleep) S 1\n';
    present = true;
  });

  it('negotiates 9P2000.L and the smaller msize; refuses other versions', async () => {
    const s = new NinePSession(options());
    assert.deepEqual(await ask(s, { kind: 'Tversion', tag: 0xffff, msize: 512 * 1024, version: '9P2000.L' }), { kind: 'Rversion', tag: 0xffff, msize: 8192, version: '9P2000.L' });
    assert.equal((await ask(s, { kind: 'Tversion', tag: 0xffff, msize: 65536, version: '9P2000.u' }) as MessageByKind<'Rversion'>).version, 'unknown');
  });

  it('answers EPROTO before Tversion', async () => {
    assert.equal(errno(await ask(new NinePSession(options()), { kind: 'Tattach', tag: 1, fid: 0, afid: NOFID, uname: '', aname: TOKEN, nUname: 0 })), Errno.EPROTO);
  });

  describe('attach', () => {
    const cases: Array<[string, string, AttachChecker | undefined]> = [
      ['a wrong token', 'bad-token', undefined],
      ['no token', '', undefined],
      ['a checker that fails', TOKEN, { check: () => Promise.reject(new Error('API server down')) }],
      ['a Kubernetes refusal', TOKEN, kubernetesAttachChecker({ authorizeToken: () => Promise.resolve({ allowed: false, status: 403, message: 'cannot get' }) })],
    ];
    for (const [what, aname, checker] of cases) {
      it(`refuses ${what} with EACCES and keeps no fid`, async () => {
        const results: boolean[] = [];
        const s = new NinePSession(options({ ...(checker ? { checker } : {}), events: { attach: (r) => results.push(r.allowed) } }));
        await ask(s, { kind: 'Tversion', tag: 0xffff, msize: 65536, version: '9P2000.L' });
        assert.equal(errno(await ask(s, { kind: 'Tattach', tag: 1, fid: 0, afid: NOFID, uname: '', aname, nUname: 0 })), Errno.EACCES);
        assert.equal(s.fidCount, 0);
        assert.deepEqual(results, [false]);
        assert.equal(errno(await ask(s, { kind: 'Twalk', tag: 2, fid: 0, newfid: 1, wnames: ['42'] })), Errno.EBADF);
      });
    }

    it('accepts a Kubernetes-allowed token, or the shared one when either checker may decide', async () => {
      const k8s = kubernetesAttachChecker({ authorizeToken: (t) => Promise.resolve(t === 'sa-token' ? { allowed: true, user: 'system:serviceaccount:ids:vm' } : { allowed: false, status: 401, message: 'no' }) });
      for (const token of ['sa-token', TOKEN]) {
        assert.equal((await anyAttachChecker([k8s, sharedTokenChecker(TOKEN)]).check(token)).allowed, true, token);
      }
      assert.equal((await anyAttachChecker([k8s, sharedTokenChecker(TOKEN)]).check('other')).allowed, false);
    });

    it('refuses Tauth: the token travels in the attach name', async () => {
      const s = await attached();
      assert.equal(errno(await ask(s, { kind: 'Tauth', tag: 1, afid: 5, uname: '', aname: TOKEN, nUname: 0 })), Errno.EOPNOTSUPP);
    });
  });

  it('walks, opens and reads a file, and reports its rendered size', async () => {
    const s = await attached();
    const opened = await open(s, 1, ['42', 'stat']);
    assert.equal(opened.kind, 'Rlopen');
    const attr = await ask(s, { kind: 'Tgetattr', tag: 4, fid: 1, requestMask: 0x7ff }) as MessageByKind<'Rgetattr'>;
    assert.equal(attr.size, statText.length);
    assert.equal(attr.mode, 0o100444);
    const read = await ask(s, { kind: 'Tread', tag: 5, fid: 1, offset: 3, count: 100 }) as MessageByKind<'Rread'>;
    assert.equal(Buffer.from(read.data).toString(), statText.slice(3));
    const eof = await ask(s, { kind: 'Tread', tag: 5, fid: 1, offset: 1000, count: 100 }) as MessageByKind<'Rread'>;
    assert.equal(eof.data.length, 0);
  });

  it('keeps the bytes of one open while the source changes', async () => {
    const s = await attached();
    await open(s, 1, ['42', 'stat']);
    statText = '42 (sleep) R 1 changed\n';
    const read = await ask(s, { kind: 'Tread', tag: 5, fid: 1, offset: 0, count: 100 }) as MessageByKind<'Rread'>;
    assert.equal(Buffer.from(read.data).toString(), '42 (sleep) S 1\n');
  });

  it('gives a directory its owner (ps reads the user from it)', async () => {
    const s = await attached();
    await ask(s, { kind: 'Twalk', tag: 2, fid: 0, newfid: 1, wnames: ['42'] });
    const attr = await ask(s, { kind: 'Tgetattr', tag: 4, fid: 1, requestMask: 0x7ff }) as MessageByKind<'Rgetattr'>;
    assert.deepEqual([attr.mode, attr.uid, attr.gid, attr.qid.type], [0o40555, 1001, 1001, 0x80]);
  });

  it('answers ENOENT for a missing first name and a partial Rwalk for a later one', async () => {
    const s = await attached();
    assert.equal(errno(await ask(s, { kind: 'Twalk', tag: 2, fid: 0, newfid: 1, wnames: ['99'] })), Errno.ENOENT);
    const partial = await ask(s, { kind: 'Twalk', tag: 2, fid: 0, newfid: 1, wnames: ['42', 'nope'] }) as MessageByKind<'Rwalk'>;
    assert.equal(partial.qids.length, 1);
    assert.equal(errno(await ask(s, { kind: 'Tgetattr', tag: 4, fid: 1, requestMask: 0x7ff })), Errno.EBADF, 'a partial walk creates no fid');
  });

  it('makes a file of a process that exited ENOENT', async () => {
    const s = await attached();
    await ask(s, { kind: 'Twalk', tag: 2, fid: 0, newfid: 1, wnames: ['42', 'stat'] });
    present = false;
    assert.equal(errno(await ask(s, { kind: 'Tgetattr', tag: 4, fid: 1, requestMask: 0x7ff })), Errno.ENOENT);
  });

  it('lists a directory across several Treaddir calls without losing or repeating entries', async () => {
    const s = await attached();
    assert.equal((await ask(s, { kind: 'Tlopen', tag: 3, fid: 0, flags: 0o200000 })).kind, 'Rlopen');
    const names: string[] = [];
    let offset = 0;
    for (let calls = 0; ; calls++) {
      assert.ok(calls < 100);
      const r = await ask(s, { kind: 'Treaddir', tag: 6, fid: 0, offset, count: 1000 }) as MessageByKind<'Rreaddir'>;
      const entries = decodeDirEntries(r.data);
      if (entries.length === 0) break;
      assert.ok(r.data.length <= 1000);
      names.push(...entries.map((e) => e.name));
      offset = entries.at(-1)!.offset;
    }
    assert.deepEqual(names, tree().list().map((n) => n.name));
  });

  it('reads a symbolic link', async () => {
    const s = await attached();
    await ask(s, { kind: 'Twalk', tag: 2, fid: 0, newfid: 1, wnames: ['link'] });
    assert.deepEqual(await ask(s, { kind: 'Treadlink', tag: 7, fid: 1 }), { kind: 'Rreadlink', tag: 7, target: '42' });
  });

  describe('refuses every change with EROFS', () => {
    for (const [what, flags] of [['write-only', 1], ['read-write', 2], ['truncate', 0o1000], ['append', 0o2000], ['create', 0o100]] as const) {
      it(`Tlopen ${what}`, async () => {
        const s = await attached();
        assert.equal(errno(await open(s, 1, ['42', 'stat'], flags)), Errno.EROFS);
      });
    }
    // Twrite and Tremove are decoded (below); the others are refused by their type alone.
    for (const type of [...WRITE_TYPES].filter((t) => !(t in MESSAGES))) {
      it(`message type ${type}`, async () => {
        const s = await attached();
        assert.equal(errno(await ask(s, decodeMessage(encodeRaw(type, 9, Buffer.alloc(40))) as UnknownMessage)), Errno.EROFS);
      });
    }
    it('Twrite on an open file, and Tremove (which clunks the fid)', async () => {
      const s = await attached();
      await open(s, 1, ['42', 'stat']);
      assert.equal(errno(await ask(s, { kind: 'Twrite', tag: 8, fid: 1, offset: 0, data: Buffer.from('x') })), Errno.EROFS);
      assert.equal(errno(await ask(s, { kind: 'Tremove', tag: 8, fid: 1 })), Errno.EROFS);
      assert.equal(errno(await ask(s, { kind: 'Tclunk', tag: 8, fid: 1 })), Errno.EBADF);
    });
  });

  it('answers EOPNOTSUPP to unknown types and ENODATA to extended attributes', async () => {
    const s = await attached();
    assert.equal(errno(await ask(s, { kind: 'unknown', type: 52, tag: 1 })), Errno.EOPNOTSUPP);
    assert.equal(errno(await ask(s, { kind: 'Txattrwalk', tag: 1, fid: 0, newfid: 3, name: 'security.selinux' })), Errno.ENODATA);
  });

  it('bounds the fids of a connection (EMFILE) and frees them on clunk', async () => {
    const s = await attached({ maxFidsPerConnection: 3 });
    for (const fid of [1, 2]) assert.equal((await ask(s, { kind: 'Twalk', tag: 2, fid: 0, newfid: fid, wnames: [] })).kind, 'Rwalk');
    assert.equal(errno(await ask(s, { kind: 'Twalk', tag: 2, fid: 0, newfid: 3, wnames: [] })), Errno.EMFILE);
    await ask(s, { kind: 'Tclunk', tag: 2, fid: 2 });
    assert.equal((await ask(s, { kind: 'Twalk', tag: 2, fid: 0, newfid: 3, wnames: [] })).kind, 'Rwalk');
  });

  describe('byte stream', () => {
    it('answers messages split and joined across chunks, in order', async () => {
      const replies: Buffer[] = [];
      const c = new NinePConnection(new NinePSession(options()), (r) => replies.push(r), (m) => assert.fail(m));
      const stream = Buffer.concat([
        encodeMessage({ kind: 'Tversion', tag: 0xffff, msize: 8192, version: '9P2000.L' }),
        encodeMessage({ kind: 'Tattach', tag: 1, fid: 0, afid: NOFID, uname: '', aname: TOKEN, nUname: 0 }),
        encodeMessage({ kind: 'Twalk', tag: 2, fid: 0, newfid: 1, wnames: ['uptime'] }),
      ]);
      for (let i = 0; i < stream.length; i += 5) c.feed(stream.subarray(i, i + 5));
      await c.drained();
      assert.deepEqual(replies.map((r) => decodeMessage(r).kind), ['Rversion', 'Rattach', 'Rwalk']);
    });

    for (const [what, bytes] of [
      ['a size below a header', Buffer.from([3, 0, 0, 0])],
      ['a size above msize', Buffer.from([0, 0, 1, 0])],
      ['a malformed message', encodeRaw(120, 1, Buffer.from([1]))],
    ] as const) {
      it(`closes on ${what}`, async () => {
        const failures: string[] = [];
        const c = new NinePConnection(new NinePSession(options()), () => undefined, (m) => failures.push(m));
        c.feed(Buffer.from(bytes));
        await c.drained();
        assert.equal(failures.length, 1);
      });
    }

    it('never throws on random bytes after a valid handshake', async () => {
      for (let i = 0; i < 300; i++) {
        const c = new NinePConnection(new NinePSession(options()), () => undefined, () => undefined);
        c.feed(encodeMessage({ kind: 'Tversion', tag: 0xffff, msize: 8192, version: '9P2000.L' }));
        const junk = randomBytes(7 + (i % 200));
        junk.writeUInt32LE(junk.length, 0); // a well-framed message of random content
        c.feed(junk);
        c.feed(randomBytes(i % 50));
        await c.drained();
      }
    });
  });

  it('serves over TCP: a wrong token is refused, the right one reads', async () => {
    const attaches: boolean[] = [];
    const server = await startNinePServer({ ...options(), host: '127.0.0.1', port: 0, events: { attach: (r) => attaches.push(r.allowed) } });
    const client = await NinePTestClient.connect(server.address().port);
    try {
      assert.equal(errno(await client.attach('wrong')), Errno.EACCES);
      assert.equal((await client.call({ kind: 'Tattach', tag: 1, fid: 0, afid: NOFID, uname: '', aname: TOKEN, nUname: 0 })).kind, 'Rattach');
      await client.call({ kind: 'Twalk', tag: 2, fid: 0, newfid: 1, wnames: ['uptime'] });
      await client.call({ kind: 'Tlopen', tag: 3, fid: 1, flags: 0 });
      const read = await client.call({ kind: 'Tread', tag: 4, fid: 1, offset: 0, count: 100 }) as MessageByKind<'Rread'>;
      assert.equal(Buffer.from(read.data).toString(), '12.00 0.00\n');
      assert.deepEqual(attaches, [false, true]);
      assert.equal(server.connections(), 1);
    } finally {
      client.close();
      await server.close();
    }
  });
});
