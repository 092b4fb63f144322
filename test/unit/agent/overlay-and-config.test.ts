import assert from 'node:assert/strict';
import { CommanderError } from 'commander';
import { agentFieldManager, ownsMirrorCondition } from '../../../src/agent/agent.ts';
import { parseAgentConfig } from '../../../src/agent/config.ts';
import { interfaceHolding, overlayPeers, overlaySpec, type Node } from '../../../src/agent/overlay.ts';
import { IDS_SHAPE, mirroredServer, vmi } from '../../../testenv/fixtures/agent.ts';

const node = (name: string, address?: string): Node => ({
  metadata: { name },
  status: { addresses: [{ type: 'Hostname', address: name }, ...(address ? [{ type: 'InternalIP', address }] : [])] },
});
const settings = { nodeName: 'a', bridge: 'hsids0', vxlan: 'hsids0-vx', vni: 4242, port: 4789 };

describe('agent: IDS overlay peers and spec', () => {
  const nodes = [node('a', '198.18.0.1'), node('b', '198.18.0.2'), node('c', '198.18.0.3'), node('d')];

  it('peers are the InternalIPs of the other nodes running an IDS VMI', () => {
    const ids = [vmi('x', 'i1-ids', 'u1', 'a', IDS_SHAPE), vmi('x', 'i2-ids', 'u2', 'c', IDS_SHAPE), vmi('y', 'i3-ids', 'u3', 'c', IDS_SHAPE), vmi('y', 'i4-ids', 'u4', undefined, IDS_SHAPE), vmi('y', 'i5-ids', 'u5', 'd', IDS_SHAPE)];
    assert.deepEqual(overlayPeers(nodes, ids, 'a'), ['198.18.0.3']);
    assert.deepEqual(overlayPeers(nodes, ids, 'b'), ['198.18.0.1', '198.18.0.3']);
    const leaving = vmi('x', 'i2-ids', 'u2', 'c', IDS_SHAPE);
    leaving.metadata!.deletionTimestamp = '2025-01-01T00:00:00Z';
    assert.deepEqual(overlayPeers(nodes, [ids[0]!, leaving], 'b'), ['198.18.0.1']);
  });

  it('builds the spec on the interface holding the InternalIP, or waits with a reason', () => {
    const addrs = [{ ifname: 'lo', addr_info: [{ local: '127.0.0.1' }] }, { ifname: 'ens3', addr_info: [{ local: '198.18.0.1' }] }];
    assert.equal(interfaceHolding(addrs, '198.18.0.1'), 'ens3');
    const decision = overlaySpec(settings, nodes[0], ['198.18.0.3'], 'ens3');
    assert.deepEqual(decision, { spec: { bridge: 'hsids0', vxlan: 'hsids0-vx', vni: 4242, port: 4789, localAddress: '198.18.0.1', underlayDevice: 'ens3', peers: ['198.18.0.3'] } });
    const flagged = overlaySpec({ ...settings, underlayInterface: 'bond0' }, nodes[0], [], 'ens3');
    assert.equal('spec' in flagged && flagged.spec.underlayDevice, 'bond0', '--underlay-interface wins over detection');
    assert.match(JSON.stringify(overlaySpec(settings, undefined, [], 'ens3')), /not in the cache/);
    assert.match(JSON.stringify(overlaySpec(settings, node('a'), [], 'ens3')), /no InternalIP/);
    assert.match(JSON.stringify(overlaySpec(settings, nodes[0], [], undefined)), /--underlay-interface/);
  });
});

describe('agent: configuration', () => {
  it('takes the node from NODE_NAME and has defaults for the rest', () => {
    const c = parseAgentConfig([], { NODE_NAME: 'worker-1' });
    assert.equal(c.nodeName, 'worker-1');
    assert.equal(c.procRoot, '/proc');
    assert.equal(c.nodeNetns, '/proc/self/ns/net');
    assert.equal(c.idsNetwork, 'vxlan');
    assert.equal(c.vni, 4242);
    assert.equal(c.vxlanPort, 4789);
    assert.equal(c.underlayInterface, undefined);
    assert.equal(c.httpPort, 9478);
    assert.equal(c.mirroringProvider, 'tc');
  });

  it('takes the operator mirroring provider and refuses an unknown one', () => {
    assert.equal(parseAgentConfig(['--mirroring-provider', 'ovs-cni'], { NODE_NAME: 'n' }).mirroringProvider, 'ovs-cni');
    assert.throws(() => parseAgentConfig([], { NODE_NAME: 'n', MIRRORING_PROVIDER: 'span' }), /--mirroring-provider must be one of tc, ovs-cni, got "span"/);
  });

  it('lets flags win over the environment and checks them', () => {
    const c = parseAgentConfig(['--node-name', 'n2', '--vni', '77', '--underlay-interface', 'bond0', '--ids-network', 'none', '--proc-root', '/host/proc', '--resync-period', '30s'], { NODE_NAME: 'n1', VXLAN_VNI: '5' });
    assert.deepEqual([c.nodeName, c.vni, c.underlayInterface, c.idsNetwork, c.procRoot, c.resyncPeriodMs], ['n2', 77, 'bond0', 'none', '/host/proc', 30_000]);
    assert.throws(() => parseAgentConfig([], {}), /node name is required/);
    assert.throws(() => parseAgentConfig(['--vni', '0'], { NODE_NAME: 'n' }), CommanderError);
    assert.throws(() => parseAgentConfig(['--ids-network', 'ovs'], { NODE_NAME: 'n' }), /--ids-network must be one of vxlan, none/);
  });
});

describe('agent: its field manager on MonitoredServer status', () => {
  it('is per node, and knows when it owns MirrorAttached', () => {
    const manager = agentFieldManager('worker-1');
    assert.equal(manager, 'hyperspector-agent-worker-1');
    const ms = mirroredServer('web', 'shop', 'uid');
    assert.equal(ownsMirrorCondition(ms, manager), false);
    ms.metadata.managedFields = [
      { manager: 'hyperspector-operator', operation: 'Apply', subresource: 'status', fieldsV1: { 'f:status': { 'f:conditions': { 'k:{"type":"MirrorAttached"}': {} } } } },
      { manager, operation: 'Apply', subresource: 'status', fieldsV1: { 'f:status': {} } },
    ];
    assert.equal(ownsMirrorCondition(ms, manager), false, "another manager's condition is not ours");
    ms.metadata.managedFields[1]!.fieldsV1 = { 'f:status': { 'f:conditions': { 'k:{"type":"MirrorAttached"}': { '.': {}, 'f:status': {} } } } };
    assert.equal(ownsMirrorCondition(ms, manager), true);
  });
});
