import assert from 'node:assert/strict';
import { formatCommand } from '../../../src/dataplane/kernel-commands.ts';
import { linkTableFromJson, type ObservedLink } from '../../../src/dataplane/links.ts';
import { desiredPeers, overlayMtu, planVxlanOverlay, planVxlanOverlayRemoval, type VxlanOverlaySpec } from '../../../src/dataplane/vxlan-overlay-plan.ts';

const spec: VxlanOverlaySpec = {
  bridge: 'hsids0',
  vxlan: 'hsids0-vx',
  vni: 4242,
  port: 4789,
  localAddress: '198.18.0.1',
  underlayDevice: 'ul0',
  peers: ['198.18.0.3', '198.18.0.1', '198.18.0.2', '198.18.0.2'],
};
const underlay: ObservedLink = { ifname: 'ul0', mtu: 1500, flags: ['UP'], linkinfo: { info_kind: 'veth' } };
const converged = { flags: ['UP'], inet6_addr_gen_mode: 'none', mtu: 1450 };
const br: ObservedLink = { ifname: 'hsids0', ...converged, linkinfo: { info_kind: 'bridge' } };
const vxData = { id: 4242, local: '198.18.0.1', port: 4789, link: 'ul0', learning: false };
const vx: ObservedLink = { ifname: 'hsids0-vx', ...converged, master: 'hsids0', linkinfo: { info_kind: 'vxlan', info_data: vxData } };
const zero = '00:00:00:00:00:00';

describe('VXLAN IDS overlay planning', () => {
  it('takes the encapsulation overhead off the underlay MTU (IPv4 50, IPv6 70)', () => {
    assert.equal(overlayMtu(1500, '198.18.0.1'), 1450);
    assert.equal(overlayMtu(9000, 'fd00::1'), 8930);
  });

  it('keeps peers unique and never lists this node', () => {
    assert.deepEqual(desiredPeers(spec), ['198.18.0.2', '198.18.0.3']);
  });

  it('creates the bridge and a non-learning VXLAN device on a bare node', () => {
    assert.deepEqual(planVxlanOverlay(spec, linkTableFromJson([underlay]), []).map(formatCommand), [
      'ip link add hsids0 mtu 1450 type bridge',
      'ip link add hsids0-vx mtu 1450 type vxlan id 4242 local 198.18.0.1 dstport 4789 dev ul0 nolearning',
    ]);
  });

  it('enslaves, brings up and fills the head-end replication FDB in the next step', () => {
    const links = linkTableFromJson([underlay, { ...br, flags: [], inet6_addr_gen_mode: 'eui64' }, { ...vx, master: undefined, flags: [] }]);
    assert.deepEqual(planVxlanOverlay(spec, links, []).map(formatCommand), [
      'ip link set dev hsids0 addrgenmode none',
      'ip link set dev hsids0 up',
      'ip link set dev hsids0-vx master hsids0',
      'ip link set dev hsids0-vx up',
      `bridge fdb append ${zero} dev hsids0-vx dst 198.18.0.2`,
      `bridge fdb append ${zero} dev hsids0-vx dst 198.18.0.3`,
    ]);
  });

  it('plans nothing when converged, and follows nodes coming and going', () => {
    const links = linkTableFromJson([underlay, br, vx]);
    const fdb = [{ mac: 'aa:bb:cc:dd:ee:ff' }, { mac: zero, dst: '198.18.0.2' }, { mac: zero, dst: '198.18.0.3' }];
    assert.deepEqual(planVxlanOverlay(spec, links, fdb), []);
    assert.deepEqual(planVxlanOverlay({ ...spec, peers: ['198.18.0.3', '198.18.0.4'] }, links, fdb).map(formatCommand), [
      `bridge fdb append ${zero} dev hsids0-vx dst 198.18.0.4`,
      `bridge fdb del ${zero} dev hsids0-vx dst 198.18.0.2`,
    ]);
  });

  it('recreates a VXLAN device whose immutable attributes differ, and fixes MTU drift', () => {
    const stale = { ...vx, linkinfo: { info_kind: 'vxlan', info_data: { ...vxData, id: 1 } } };
    assert.deepEqual(planVxlanOverlay(spec, linkTableFromJson([underlay, br, stale]), []).map(formatCommand), [
      'ip link del dev hsids0-vx',
      'ip link add hsids0-vx mtu 1450 type vxlan id 4242 local 198.18.0.1 dstport 4789 dev ul0 nolearning',
    ]);
    assert.deepEqual(
      planVxlanOverlay(spec, linkTableFromJson([{ ...underlay, mtu: 9000 }, br, vx]), [{ mac: zero, dst: '198.18.0.2' }, { mac: zero, dst: '198.18.0.3' }]).map(formatCommand),
      ['ip link set dev hsids0 mtu 8950', 'ip link set dev hsids0-vx mtu 8950'],
    );
  });

  it('refuses foreign devices under its names and invalid specs', () => {
    assert.throws(() => planVxlanOverlay(spec, linkTableFromJson([underlay, { ...br, linkinfo: { info_kind: 'veth' } }]), []), /not a bridge/);
    assert.throws(() => planVxlanOverlay(spec, linkTableFromJson([]), []), /Underlay interface ul0/);
    assert.throws(() => planVxlanOverlay({ ...spec, vni: 0 }, linkTableFromJson([underlay]), []), /VXLAN id/);
  });

  it('removes exactly its two devices', () => {
    assert.deepEqual(planVxlanOverlayRemoval(spec, linkTableFromJson([underlay, br, vx])).map(formatCommand), ['ip link del dev hsids0-vx', 'ip link del dev hsids0']);
    assert.deepEqual(planVxlanOverlayRemoval(spec, linkTableFromJson([underlay])), []);
  });
});
