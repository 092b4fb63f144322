// What `ss -tanp` shows of a socket, read from guest memory: the struct file an fd points to
// holds the struct socket in file->private_data; socket->sk is the struct sock, whose first member
// (struct sock_common) keeps the addresses, ports, family and state the kernel's /proc/net/tcp,
// tcp6, udp and udp6 print. Every pointer is checked; a torn structure yields undefined.
import type { KernelProfile } from './kernel-profile.ts';
import type { AddressSpace } from './page-table.ts';

export type SocketFamily = 'unix' | 'inet' | 'inet6' | 'netlink' | 'packet' | `family-${number}`;

export interface GuestSocket {
  /** The socket's inode number, as in "socket:[ino]" and the inode column of /proc/net/tcp. */
  inode: number;
  family: SocketFamily;
  /** tcp, udp, udplite, raw, icmp…, or the socket type for families without an IP protocol (stream, dgram, seqpacket). */
  protocol: string;
  /** As ss names it (LISTEN, ESTAB, TIME-WAIT, UNCONN…); inet/inet6 only. */
  state?: string;
  /** "address:port" as ss prints it ([v6]:port for inet6); inet/inet6 only. */
  local?: string;
  remote?: string;
  localPort?: number;
  remotePort?: number;
}

const FAMILIES: Record<number, SocketFamily> = { 1: 'unix', 2: 'inet', 10: 'inet6', 16: 'netlink', 17: 'packet' };
const IP_PROTOCOLS: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6', 136: 'udplite', 255: 'raw' };
const SOCKET_TYPES: Record<number, string> = { 1: 'stream', 2: 'dgram', 3: 'raw', 4: 'rdm', 5: 'seqpacket', 10: 'packet' };
/** include/net/tcp_states.h, named as ss names them; UDP and raw sockets use the same numbers. */
const STATES: Record<number, string> = {
  1: 'ESTAB', 2: 'SYN-SENT', 3: 'SYN-RECV', 4: 'FIN-WAIT-1', 5: 'FIN-WAIT-2', 6: 'TIME-WAIT', 7: 'UNCONN',
  8: 'CLOSE-WAIT', 9: 'LAST-ACK', 10: 'LISTEN', 11: 'CLOSING', 12: 'NEW-SYN-RECV',
};

/** The socket behind a sockfs file, or undefined when the profile lacks the offsets or memory is torn. */
export function readSocket(kernel: AddressSpace, profile: KernelProfile, file: bigint, inode: number): GuestSocket | undefined {
  const o = profile.sockets;
  if (!o) return undefined;
  const socket = kernel.readU64(file + BigInt(o.file__private_data));
  const sk = socket ? kernel.readU64(socket + BigInt(o.socket__sk)) : undefined;
  if (!sk) return undefined;
  const common = sk + BigInt(o.sock____sk_common);
  const head = kernel.read(common, o.sock_common__skc_v6_rcv_saddr + 16);
  const typeAndProtocol = kernel.read(sk + BigInt(o.sock__sk_type), 4);
  if (!head || !typeAndProtocol) return undefined;
  const familyNumber = head.readUInt16LE(o.sock_common__skc_family);
  const family = FAMILIES[familyNumber] ?? `family-${familyNumber}`;
  const type = typeAndProtocol.readUInt16LE(0);
  const protocolNumber = typeAndProtocol.readUInt16LE(o.sock__sk_protocol - o.sock__sk_type);
  if (family !== 'inet' && family !== 'inet6') return { inode, family, protocol: SOCKET_TYPES[type] ?? `type-${type}` };
  const protocol = IP_PROTOCOLS[protocolNumber] ?? `ip-${protocolNumber}`;
  const stateNumber = head.readUInt8(o.sock_common__skc_state);
  const localPort = head.readUInt16LE(o.sock_common__skc_num);
  const remotePort = head.readUInt16BE(o.sock_common__skc_dport);
  const [local, remote] = family === 'inet'
    ? [ipv4(head, o.sock_common__skc_rcv_saddr), ipv4(head, o.sock_common__skc_daddr)]
    : [`[${ipv6(head, o.sock_common__skc_v6_rcv_saddr)}]`, `[${ipv6(head, o.sock_common__skc_v6_daddr)}]`];
  return {
    inode, family, protocol,
    state: STATES[stateNumber] ?? `state-${stateNumber}`,
    local: `${local}:${localPort === 0 ? '*' : localPort}`,
    remote: `${remote}:${remotePort === 0 ? '*' : remotePort}`,
    localPort, remotePort,
  };
}

/**
 * A socket that waits for others: a TCP socket in LISTEN, or a bound UDP socket with no peer (what
 * `ss -lntu` lists). Identified by protocol and port, not address: a service moved from loopback
 * to every address still listens on its port.
 */
export function isListening(s: GuestSocket): boolean {
  if (s.family !== 'inet' && s.family !== 'inet6') return false;
  if (s.protocol === 'tcp') return s.state === 'LISTEN';
  return (s.protocol === 'udp' || s.protocol === 'udplite') && s.state === 'UNCONN' && (s.localPort ?? 0) !== 0 && s.remotePort === 0;
}

function ipv4(b: Buffer, offset: number): string {
  return [...b.subarray(offset, offset + 4)].join('.');
}

/** RFC 5952 text (longest zero run compressed), as ss prints it; IPv4-mapped addresses as ::ffff:a.b.c.d. */
export function ipv6(b: Buffer, offset: number): string {
  const words = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(offset + 2 * i));
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) return `::ffff:${ipv4(b, offset + 12)}`;
  let best = { start: -1, length: 0 };
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > best.length && j - i > 1) best = { start: i, length: j - i };
    i = j;
  }
  const hexes = words.map((w) => w.toString(16));
  if (best.start < 0) return hexes.join(':');
  return `${hexes.slice(0, best.start).join(':')}::${hexes.slice(best.start + best.length).join(':')}`;
}
