// The nmap report reader of the Table 2 tests (testenv/netns/nmap.ts): IPv4 and IPv6 hosts, the MAC
// an on-link host answered from, and what counts as found.
import assert from 'node:assert/strict';
import { foundOf, parseNmapXml, type NmapHost } from '../../../testenv/netns/nmap.ts';

const report = (hosts: string, up: number) => `<?xml version="1.0"?><nmaprun scanner="nmap">${hosts}
<runstats><finished time="1" summary="Nmap done; ${up} host up" elapsed="0.5" exit="success"/><hosts up="${up}" down="0" total="${up}"/></runstats></nmaprun>`;

describe('nmap reports (test world)', () => {
  it('reads IPv4 and IPv6 hosts with the MAC they answered from', () => {
    const parsed = parseNmapXml(
      report(
        `<host><status state="up" reason="arp-response"/><address addr="10.128.0.2" addrtype="ipv4"/><address addr="52:54:00:AB:CD:EF" addrtype="mac"/></host>
<host><status state="up" reason="nd-response"/><address addr="fe80::5054:ff:feab:cdef" addrtype="ipv6"/><address addr="52:54:00:AB:CD:EF" addrtype="mac"/></host>
<host><status state="up" reason="user-set"/><address addr="10.99.0.1" addrtype="ipv4"/><ports><extraports state="filtered" count="1027"></extraports></ports></host>`,
        3,
      ),
    );
    assert.equal(parsed.hostsUp, 3);
    assert.deepEqual(
      parsed.hosts.map((h) => [h.address, h.mac, h.state]),
      [
        ['10.128.0.2', '52:54:00:ab:cd:ef', 'up'],
        ['fe80::5054:ff:feab:cdef', '52:54:00:ab:cd:ef', 'up'],
        ['10.99.0.1', undefined, 'up'],
      ],
    );
  });

  it('refuses a report nmap did not finish', () => {
    assert.throws(() => parseNmapXml('<nmaprun><host></host>'), /did not finish/);
  });

  const host = (state: string, ports: NmapHost['ports'], extraPorts: NmapHost['extraPorts'] = {}): NmapHost => ({ address: '10.0.0.1', state, ports, extraPorts, timedOut: false });
  const table: Array<[string, NmapHost, boolean, string[]]> = [
    ['a host up in discovery', host('up', []), true, ['up']],
    ['a host up in a -Pn port scan (nmap assumes it)', host('up', []), false, []],
    ['a closed TCP port (RST)', host('up', [{ port: 22, protocol: 'tcp', state: 'closed' }]), false, ['22/tcp closed']],
    ['filtered TCP ports', host('up', [{ port: 22, protocol: 'tcp', state: 'filtered' }], { filtered: 1026 }), false, []],
    ['an unanswered UDP port', host('up', [{ port: 53, protocol: 'udp', state: 'open|filtered' }]), false, []],
    ['closed UDP ports summarised', host('up', [], { closed: 7 }), false, ['7 ports closed']],
    ['an open port', host('up', [{ port: 7000, protocol: 'tcp', state: 'open' }]), false, ['7000/tcp open']],
  ];
  for (const [name, h, discovery, found] of table) {
    it(`found: ${name}`, () => assert.deepEqual(foundOf(h, discovery), found));
  }
});
