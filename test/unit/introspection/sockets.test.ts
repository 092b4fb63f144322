// The socket view decoded from guest memory laid out as Debian's 6.1 kernel lays it out (offsets
// from its BTF, see kernel-profile.ts SOCKET_MEMBERS): addresses, ports and states as ss shows them.
import assert from 'node:assert/strict';
import type { KernelProfile } from '../../../src/introspection/kernel-profile.ts';
import { AddressSpace } from '../../../src/introspection/page-table.ts';
import { BufferPhysicalMemory } from '../../../src/introspection/physical-memory.ts';
import { ipv6, isListening, readSocket, type GuestSocket } from '../../../src/introspection/sockets.ts';

// Debian bookworm 6.1.0-57's offsets, as socketOffsets() reads them from its .BTF.
const SOCKETS: NonNullable<KernelProfile['sockets']> = {
  file__private_data: 200, socket__sk: 24, sock____sk_common: 0, sock__sk_type: 514, sock__sk_protocol: 516,
  sock_common__skc_daddr: 0, sock_common__skc_rcv_saddr: 4, sock_common__skc_dport: 12, sock_common__skc_num: 14,
  sock_common__skc_family: 16, sock_common__skc_state: 18, sock_common__skc_v6_daddr: 56, sock_common__skc_v6_rcv_saddr: 72,
};
const profile = { sockets: SOCKETS } as KernelProfile;
const BASE = 0xffff888000000000n;
const FILE = 0x1000;
const SOCKET = 0x2000;
const SK = 0x3000;

interface Layout {
  family: number;
  type: number;
  protocol: number;
  state: number;
  local: Buffer;
  remote: Buffer;
  localPort: number;
  remotePort: number;
}

function memoryWith(l: Layout): AddressSpace {
  const image = Buffer.alloc(0x10000);
  image.writeBigUInt64LE(BASE + BigInt(SOCKET), FILE + SOCKETS.file__private_data);
  image.writeBigUInt64LE(BASE + BigInt(SK), SOCKET + SOCKETS.socket__sk);
  const v4 = l.local.length === 4;
  (v4 ? l.remote : Buffer.alloc(4)).copy(image, SK + SOCKETS.sock_common__skc_daddr);
  (v4 ? l.local : Buffer.alloc(4)).copy(image, SK + SOCKETS.sock_common__skc_rcv_saddr);
  if (!v4) {
    l.remote.copy(image, SK + SOCKETS.sock_common__skc_v6_daddr);
    l.local.copy(image, SK + SOCKETS.sock_common__skc_v6_rcv_saddr);
  }
  image.writeUInt16BE(l.remotePort, SK + SOCKETS.sock_common__skc_dport);
  image.writeUInt16LE(l.localPort, SK + SOCKETS.sock_common__skc_num);
  image.writeUInt16LE(l.family, SK + SOCKETS.sock_common__skc_family);
  image.writeUInt8(l.state, SK + SOCKETS.sock_common__skc_state);
  image.writeUInt16LE(l.type, SK + SOCKETS.sock__sk_type);
  image.writeUInt16LE(l.protocol, SK + SOCKETS.sock__sk_protocol);
  return new AddressSpace(new BufferPhysicalMemory(image), 0n, 4, { base: BASE, size: BigInt(image.length) });
}

const v6 = (text: string): Buffer => {
  const [head, tail] = text.split('::') as [string, string | undefined];
  const words = (s: string | undefined) => (s ? s.split(':').map((w) => parseInt(w, 16)) : []);
  const h = words(head);
  const t = words(tail);
  const all = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill(0), ...t];
  const b = Buffer.alloc(16);
  all.forEach((w, i) => b.writeUInt16BE(w, 2 * i));
  return b;
};

describe('sockets read from guest memory (what ss shows)', () => {
  const read = (l: Layout) => readSocket(memoryWith(l), profile, BASE + BigInt(FILE), 4242);

  it('a TCP listener on 127.0.0.1:8080', () => {
    const s = read({ family: 2, type: 1, protocol: 6, state: 10, local: Buffer.from([127, 0, 0, 1]), remote: Buffer.alloc(4), localPort: 8080, remotePort: 0 });
    assert.deepEqual(s, { inode: 4242, family: 'inet', protocol: 'tcp', state: 'LISTEN', local: '127.0.0.1:8080', remote: '0.0.0.0:*', localPort: 8080, remotePort: 0 });
    assert.equal(isListening(s!), true);
  });

  it('an established TCP connection over IPv6 (network-order remote port)', () => {
    const s = read({ family: 10, type: 1, protocol: 6, state: 1, local: v6('fd00::5'), remote: v6('2001:db8::1:0:0:1'), localPort: 22, remotePort: 51234 });
    assert.equal(s?.state, 'ESTAB');
    assert.equal(s?.local, '[fd00::5]:22');
    assert.equal(s?.remote, '[2001:db8::1:0:0:1]:51234');
    assert.equal(isListening(s!), false);
  });

  it('a bound UDP socket with no peer listens; a connected one does not', () => {
    const bound = read({ family: 2, type: 2, protocol: 17, state: 7, local: Buffer.alloc(4), remote: Buffer.alloc(4), localPort: 53, remotePort: 0 });
    assert.deepEqual([bound?.protocol, bound?.state, bound?.local], ['udp', 'UNCONN', '0.0.0.0:53']);
    assert.equal(isListening(bound!), true);
    const connected = read({ family: 2, type: 2, protocol: 17, state: 1, local: Buffer.from([10, 0, 0, 2]), remote: Buffer.from([10, 0, 0, 1]), localPort: 40000, remotePort: 53 });
    assert.equal(isListening(connected!), false);
  });

  it('a unix socket: family and type, no addresses', () => {
    const s = read({ family: 1, type: 1, protocol: 0, state: 7, local: Buffer.alloc(4), remote: Buffer.alloc(4), localPort: 0, remotePort: 0 });
    assert.deepEqual(s, { inode: 4242, family: 'unix', protocol: 'stream' } satisfies GuestSocket);
    assert.equal(isListening(s!), false);
  });

  it('nothing without the profile offsets, or with a NULL sk', () => {
    const l: Layout = { family: 2, type: 1, protocol: 6, state: 10, local: Buffer.alloc(4), remote: Buffer.alloc(4), localPort: 1, remotePort: 0 };
    assert.equal(readSocket(memoryWith(l), { } as KernelProfile, BASE + BigInt(FILE), 1), undefined);
    assert.equal(readSocket(memoryWith(l), profile, BASE + 0x8000n, 1), undefined, 'private_data NULL');
  });

  it('prints IPv6 as RFC 5952 (longest zero run, IPv4-mapped)', () => {
    const cases: Array<[string, string]> = [
      ['0:0:0:0:0:0:0:0', '::'], ['0:0:0:0:0:0:0:1', '::1'], ['fe80:0:0:0:1:0:0:2', 'fe80::1:0:0:2'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2:3:4:5:6'], ['2001:0:1:2:3:4:5:6', '2001:0:1:2:3:4:5:6'],
    ];
    for (const [full, text] of cases) assert.equal(ipv6(v6(full), 0), text, full);
    assert.equal(ipv6(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1]), 0), '::ffff:192.0.2.1');
  });
});
