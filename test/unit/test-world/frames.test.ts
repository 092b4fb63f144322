// Pure helpers of the networking tests: EUI-64 link-local addresses and TCP flow counts in frames.
import assert from 'node:assert/strict';
import { tcpFlow } from '../../../testenv/netns/capture.ts';
import { linkLocalOf } from '../../../testenv/netns/ipv6.ts';

describe('networking test helpers (test world)', () => {
  const macs: Array<[string, string]> = [
    ['52:54:00:7f:49:63', 'fe80::5054:ff:fe7f:4963'],
    ['02:65:80:f3:f9:d8', 'fe80::65:80ff:fef3:f9d8'],
    ['02:00:80:f3:f9:d8', 'fe80::80ff:fef3:f9d8'],
    ['8A:E9:86:BA:40:48', 'fe80::88e9:86ff:feba:4048'],
  ];
  for (const [mac, address] of macs) it(`link-local of ${mac} is ${address}`, () => assert.equal(linkLocalOf(mac), address));
  it('refuses what is not a MAC', () => assert.throws(() => linkLocalOf('52:54:00'), /not a MAC/));

  /** An Ethernet/IPv4/TCP frame with `payload` bytes, padded on the wire as captured. */
  const frame = (src: string, dstPort: number, payload: number, protocol = 6) => {
    const f = Buffer.alloc(14 + 20 + 20 + payload);
    f.writeUInt16BE(0x0800, 12);
    f[14] = 0x45;
    f.writeUInt16BE(20 + 20 + payload, 16);
    f[23] = protocol;
    Buffer.from(src.split('.').map(Number)).copy(f, 26);
    f.writeUInt16BE(dstPort, 14 + 20 + 2);
    f[14 + 20 + 12] = 5 << 4;
    return f;
  };
  it('counts the frames, payload bytes and super-frames of one flow', () => {
    const from = Buffer.from([10, 128, 0, 2]);
    const frames = [frame('10.128.0.2', 5002, 1448), frame('10.128.0.2', 5002, 28960), frame('10.128.0.2', 5003, 100), frame('10.128.0.9', 5002, 100), frame('10.128.0.2', 5002, 8, 17), frame('10.128.0.2', 5002, 0)];
    assert.deepEqual(tcpFlow(frames, from, 5002), { frames: 3, payloadBytes: 1448 + 28960, superFrames: 1, largest: 14 + 40 + 28960 });
  });
});
