// Packet captures with tcpdump (what an IDS's NIDS would read through AF_PACKET) and a minimal
// reader of the classic pcap file format to compare captures frame by frame.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ProcessGroup, TestNetns, waitForOutput } from './netns-host.ts';
import type { ChildProcess } from 'node:child_process';

export interface Capture {
  readonly file: string;
  readonly child: ChildProcess;
}

/** Starts tcpdump on `iface` writing every frame whole (-s 0), unbuffered (-U); resolves once listening. */
export async function startCapture(ns: TestNetns, iface: string, file: string, group: ProcessGroup): Promise<Capture> {
  // -Z root: Debian's tcpdump would switch to its own user before writing into our root-only temp dir.
  const child = group.add(ns.spawn(['tcpdump', '-Z', 'root', '-i', iface, '-n', '-U', '-s', '0', '-w', file]));
  await waitForOutput(child, 'listening on', `tcpdump on ${ns.name}/${iface}`);
  return { file, child };
}

export async function stopCapture(capture: Capture, group: ProcessGroup): Promise<void> {
  await group.stop(capture.child, 'SIGINT');
}

/** Frames of a pcap file (microsecond or nanosecond, either byte order). */
export function parsePcap(data: Buffer): Buffer[] {
  if (data.length < 24) return [];
  const magic = data.readUInt32LE(0);
  const little = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!little && data.readUInt32BE(0) !== 0xa1b2c3d4 && data.readUInt32BE(0) !== 0xa1b23c4d) throw new Error('Not a pcap file');
  const u32 = (off: number) => (little ? data.readUInt32LE(off) : data.readUInt32BE(off));
  const frames: Buffer[] = [];
  let off = 24;
  // A record still being written (capture running) is simply not counted yet.
  while (off + 16 <= data.length) {
    const capLen = u32(off + 8);
    if (off + 16 + capLen > data.length) break;
    frames.push(data.subarray(off + 16, off + 16 + capLen));
    off += 16 + capLen;
  }
  return frames;
}

export async function readFrames(file: string): Promise<Buffer[]> {
  return parsePcap(await readFile(file).catch(() => Buffer.alloc(0)));
}

/** Frame digest → how many times it was seen. */
export function frameMultiset(frames: readonly Buffer[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const frame of frames) {
    const key = createHash('sha256').update(frame).digest('hex');
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

export interface TcpFlowCount {
  frames: number;
  /** TCP payload bytes, from the IP total length (a GSO super-frame counts all of its segments). */
  payloadBytes: number;
  /** Frames longer than a 1500-byte MTU allows (1514 with the Ethernet header): GSO/GRO super-frames. */
  superFrames: number;
  largest: number;
}

/** The TCP frames from IPv4 address `from` (4 bytes) to port `dstPort` in Ethernet frames. */
export function tcpFlow(frames: readonly Buffer[], from: Buffer, dstPort: number): TcpFlowCount {
  const count: TcpFlowCount = { frames: 0, payloadBytes: 0, superFrames: 0, largest: 0 };
  for (const f of frames) {
    if (f.length < 34 || f.readUInt16BE(12) !== 0x0800 || f[23] !== 6 || !f.subarray(26, 30).equals(from)) continue;
    const ihl = (f[14]! & 0x0f) * 4;
    if (f.length < 14 + ihl + 20 || f.readUInt16BE(14 + ihl + 2) !== dstPort) continue;
    const tcpHeader = (f[14 + ihl + 12]! >> 4) * 4;
    count.frames++;
    count.payloadBytes += f.readUInt16BE(16) - ihl - tcpHeader;
    if (f.length > 1514) count.superFrames++;
    count.largest = Math.max(count.largest, f.length);
  }
  return count;
}
