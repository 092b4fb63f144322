import assert from 'node:assert/strict';
import { formatCommand } from '../../../src/dataplane/kernel-commands.ts';
import { linkTableFromJson, type ObservedLink } from '../../../src/dataplane/links.ts';
import { planMirrorLink, planMirrorLinkRemoval, type MirrorLinkSpec } from '../../../src/dataplane/mirror-link-plan.ts';
import { namedNetns } from '../../../src/dataplane/netns.ts';

const spec: MirrorLinkSpec = {
  serverNetns: namedNetns('srvpod'),
  idsNetns: namedNetns('idspod'),
  serverSideName: 'hsm0',
  idsSideName: 'mirror-in',
  idsBridge: 'k6t-mirror',
  mtu: 1500,
};

function veth(ifname: string, extra: Partial<ObservedLink> = {}): ObservedLink {
  return { ifname, mtu: 1500, flags: ['BROADCAST'], inet6_addr_gen_mode: 'eui64', linkinfo: { info_kind: 'veth' }, ...extra };
}
const bridgeLink: ObservedLink = { ifname: 'k6t-mirror', mtu: 1500, flags: ['UP'], linkinfo: { info_kind: 'bridge' } };

describe('mirror link planning', () => {
  it('creates the veth pair across the two namespaces when it is missing', () => {
    const plan = planMirrorLink(spec, linkTableFromJson([]), linkTableFromJson([bridgeLink]));
    assert.deepEqual(plan.server.map(formatCommand), ['ip link add hsm0 mtu 1500 type veth peer name mirror-in mtu 1500 netns idspod']);
    assert.deepEqual(plan.ids, []);
  });

  it('recreates a half pair left by an interrupted run', () => {
    const plan = planMirrorLink(spec, linkTableFromJson([]), linkTableFromJson([bridgeLink, veth('mirror-in')]));
    assert.deepEqual(plan.ids.map(formatCommand), ['ip link del dev mirror-in']);
    assert.equal(plan.server.length, 1);
  });

  it('silences both ends, joins the IDS bridge without learning and brings them up', () => {
    const plan = planMirrorLink(spec, linkTableFromJson([veth('hsm0')]), linkTableFromJson([bridgeLink, veth('mirror-in')]));
    assert.deepEqual(plan.server.map(formatCommand), [
      'ip link set dev hsm0 addrgenmode none',
      'ip link set dev hsm0 arp off',
      'ip link set dev hsm0 up',
    ]);
    assert.deepEqual(plan.ids.map(formatCommand), [
      'ip link set dev mirror-in addrgenmode none',
      'ip link set dev mirror-in arp off',
      'ip link set dev mirror-in master k6t-mirror',
      'bridge link set dev mirror-in learning off flood on',
      'ip link set dev mirror-in up',
    ]);
  });

  it('plans nothing once converged, and unbridges a server end someone enslaved', () => {
    const done = { flags: ['UP', 'NOARP'], inet6_addr_gen_mode: 'none' };
    const idsEnd = veth('mirror-in', { ...done, master: 'k6t-mirror', linkinfo: { info_kind: 'veth', info_slave_data: { learning: false, flood: true } } });
    const plan = planMirrorLink(spec, linkTableFromJson([veth('hsm0', done)]), linkTableFromJson([bridgeLink, idsEnd]));
    assert.deepEqual(plan, { server: [], ids: [] });
    const bridged = planMirrorLink(spec, linkTableFromJson([veth('hsm0', { ...done, master: 'k6t-eth0' })]), linkTableFromJson([bridgeLink, idsEnd]));
    assert.deepEqual(bridged.server.map(formatCommand), ['ip link set dev hsm0 nomaster']);
  });

  it('refuses a name taken by another kind of device, a missing IDS bridge, and bad names', () => {
    assert.throws(() => planMirrorLink(spec, linkTableFromJson([{ ...veth('hsm0'), linkinfo: { info_kind: 'bridge' } }]), linkTableFromJson([bridgeLink])), /not our mirror veth/);
    assert.throws(() => planMirrorLink(spec, linkTableFromJson([]), linkTableFromJson([])), /k6t-mirror of the IDS mirror NIC is missing/);
    assert.throws(() => planMirrorLink({ ...spec, serverSideName: 'a-name-longer-than-15' }, linkTableFromJson([]), linkTableFromJson([bridgeLink])), /1-15 bytes/);
  });

  it('removes the pair from whichever side still has it', () => {
    assert.deepEqual(planMirrorLinkRemoval(spec, linkTableFromJson([veth('hsm0')]), linkTableFromJson([])).server.map(formatCommand), ['ip link del dev hsm0']);
    assert.deepEqual(planMirrorLinkRemoval(spec, linkTableFromJson([]), linkTableFromJson([veth('mirror-in')])).ids.map(formatCommand), ['ip link del dev mirror-in']);
    assert.deepEqual(planMirrorLinkRemoval(spec, linkTableFromJson([]), linkTableFromJson([])), { server: [], ids: [] });
  });
});
