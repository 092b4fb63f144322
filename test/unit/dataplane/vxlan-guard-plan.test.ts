import assert from 'node:assert/strict';
import { formatCommand } from '../../../src/dataplane/kernel-commands.ts';
import { desiredGuardState, guardScript, guardTableName, parseGuardState, planVxlanGuard, planVxlanGuardRemoval } from '../../../src/dataplane/vxlan-guard-plan.ts';
import type { VxlanOverlaySpec } from '../../../src/dataplane/vxlan-overlay-plan.ts';

const spec: VxlanOverlaySpec = {
  bridge: 'hsids0',
  vxlan: 'hsids0-vx',
  vni: 4242,
  port: 4789,
  localAddress: '198.18.0.1',
  underlayDevice: 'eth0',
  peers: ['198.18.0.1', '198.18.0.3', '198.18.0.2', 'fd00::2'],
};
const table = 'hyperspector_hsids0_vx';

/** What `nft -j list table inet hyperspector_hsids0_vx` printed for the guard (nft 1.0.6). */
function listed(peers4: string[], vni = 4242) {
  const rule = (family: string, set: string) => ({
    rule: {
      family: 'inet', table, chain: 'underlay_guard', handle: 4,
      expr: [
        { match: { op: '==', left: { meta: { key: 'nfproto' } }, right: family === 'ip' ? 'ipv4' : 'ipv6' } },
        { match: { op: '==', left: { payload: { protocol: 'udp', field: 'dport' } }, right: 4789 } },
        { match: { op: '==', left: { payload: { base: 'th', offset: 96, len: 24 } }, right: vni } },
        { match: { op: '!=', left: { payload: { protocol: family, field: 'saddr' } }, right: set } },
        { counter: { packets: 0, bytes: 0 } },
        { drop: null },
      ],
    },
  });
  return {
    nftables: [
      { metainfo: { version: '1.0.6' } },
      { table: { family: 'inet', name: table, handle: 3 } },
      { set: { family: 'inet', name: 'peers4', table, type: 'ipv4_addr', handle: 2, elem: peers4 } },
      { set: { family: 'inet', name: 'peers6', table, type: 'ipv6_addr', handle: 3, elem: ['fd00::2'] } },
      { chain: { family: 'inet', table, name: 'underlay_guard', handle: 1, type: 'filter', hook: 'prerouting', prio: -300, policy: 'accept' } },
      rule('ip', '@peers4'),
      rule('ip6', '@peers6'),
    ],
  };
}

describe('VXLAN underlay guard planning', () => {
  it('drops the overlay VNI from anything but peer nodes, replacing the table atomically', () => {
    assert.equal(guardTableName(spec), table);
    const script = guardScript(spec);
    assert.match(script, new RegExp(`^table inet ${table}\\ndelete table inet ${table}\\ntable inet ${table} \\{`));
    assert.match(script, /elements = \{ 198\.18\.0\.2, 198\.18\.0\.3 \}/);
    assert.match(script, /meta nfproto ipv4 udp dport 4789 @th,96,24 4242 ip saddr != @peers4 counter drop/);
    assert.match(script, /meta nfproto ipv6 udp dport 4789 @th,96,24 4242 ip6 saddr != @peers6 counter drop/);
    assert.match(script, /type filter hook prerouting priority raw; policy accept;/);
  });

  it('leaves out an empty element list (no peers: every packet of the VNI is dropped)', () => {
    const alone = guardScript({ ...spec, peers: [] });
    assert.doesNotMatch(alone, /elements/);
  });

  it('reads the listed table back into the same state it was made from, so a reconcile is a no-op', () => {
    const state = parseGuardState(listed(['198.18.0.2', '198.18.0.3']), table);
    assert.deepEqual(state, desiredGuardState(spec));
    assert.deepEqual(planVxlanGuard(spec, state), []);
  });

  it('replaces the table when it is missing, when peers change, or when a rule drifted', () => {
    assert.equal(parseGuardState({ nftables: [{ metainfo: {} }] as never }, table), undefined);
    assert.equal(planVxlanGuard(spec, undefined).length, 1);
    assert.equal(planVxlanGuard(spec, parseGuardState(listed(['198.18.0.2']), table)).length, 1);
    assert.equal(planVxlanGuard(spec, parseGuardState(listed(['198.18.0.2', '198.18.0.3'], 7), table)).length, 1);
  });

  it('removes only its own table', () => {
    assert.deepEqual(planVxlanGuardRemoval(spec, true).map(formatCommand), [`nft -f - <<<${JSON.stringify(`delete table inet ${table}\n`)}`]);
    assert.deepEqual(planVxlanGuardRemoval(spec, false), []);
  });
});
