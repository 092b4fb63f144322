import assert from 'node:assert/strict';
import { decideMirror, launcherPodOf, mirrorLinkNames, MirrorReason, type ClusterView, type MirrorDecision } from '../../../src/agent/desired-mirrors.ts';
import { hashedPodInterfaceName, launcherDevices, podUsesOrdinalNames } from '../../../src/agent/kubevirt-names.ts';
import type { Pod, VirtualMachineInstance } from '../../../src/kube/client/objects.ts';
import { IDS_MIRROR_NETWORK, IDS_SHAPE, launcherPod, mirroredServer, vmi } from '../../../testenv/fixtures/agent.ts';

const NODE = 'node-a';
const settings = { nodeName: NODE, idsMirrorNetwork: IDS_MIRROR_NETWORK };
const MS_UID = '0a1b2c3d-0000-4000-8000-000000000001';

function view(vmis: VirtualMachineInstance[], pods: Pod[]): ClusterView {
  return {
    vmi: (ns, name) => vmis.find((v) => v.metadata?.namespace === ns && v.metadata?.name === name),
    launcherPods: () => pods,
  };
}

/** A server and IDS pair, both running on `NODE` with their launcher pods. */
function pair(options: { idsNode?: string; idsShape?: typeof IDS_SHAPE } = {}) {
  const server = vmi('shop', 'web-server', 'vmi-server-uid', NODE);
  const ids = vmi('shop', 'web-ids', 'vmi-ids-uid', options.idsNode ?? NODE, options.idsShape ?? IDS_SHAPE);
  const serverPod = launcherPod(server, '11111111-0000-4000-8000-000000000001', NODE);
  const idsPod = launcherPod(ids, '22222222-0000-4000-8000-000000000002', options.idsNode ?? NODE);
  return { server, ids, serverPod, idsPod };
}

function expectWaiting(decision: MirrorDecision, reason: string): string {
  assert.equal(decision.kind, 'waiting', JSON.stringify(decision));
  assert.equal(decision.kind === 'waiting' && decision.reason, reason);
  return decision.kind === 'waiting' ? decision.message : '';
}

describe('agent: which MonitoredServers this node mirrors', () => {
  it('mirrors the server tap into the IDS VM mirror NIC bridge, with link names from the UID', () => {
    const p = pair();
    const decision = decideMirror(mirroredServer('web', 'shop', MS_UID), view([p.server, p.ids], [p.serverPod, p.idsPod]), settings);
    assert.equal(decision.kind, 'mirror');
    assert.deepEqual(decision.kind === 'mirror' && decision.mirror, {
      key: 'shop/web',
      serverPodUid: p.serverPod.metadata!.uid,
      serverPod: `shop/${p.serverPod.metadata!.name}`,
      idsPodUid: p.idsPod.metadata!.uid,
      idsPod: `shop/${p.idsPod.metadata!.name}`,
      serverTap: 'tap0',
      idsBridge: `k6t-${hashedPodInterfaceName(IDS_MIRROR_NETWORK).slice(3)}`,
      linkName: 'hsm0a1b2c3d',
      idsLinkName: 'hsi0a1b2c3d',
      direction: 'Both',
    });
  });

  it('stands aside while the operator says this release cannot mirror (no fight over MirrorAttached)', () => {
    const p = pair();
    const ms = mirroredServer('web', 'shop', MS_UID);
    ms.status = { conditions: [{ type: 'MirrorAttached', status: 'False', reason: 'MirroringUnavailable', message: 'not in this release', lastTransitionTime: '2026-12-01T10:00:00Z' }] };
    assert.equal(decideMirror(ms, view([p.server, p.ids], [p.serverPod, p.idsPod]), settings).kind, 'none');
  });

  it('installs nothing when ovs-cni mirrors (the operator reports MirrorAttached then)', () => {
    const p = pair();
    assert.equal(decideMirror(mirroredServer('web', 'shop', MS_UID), view([p.server, p.ids], [p.serverPod, p.idsPod]), { ...settings, mirroringProvider: 'ovs-cni' }).kind, 'none');
  });

  it('honours spec.mirroring.direction', () => {
    const p = pair();
    for (const direction of ['Ingress', 'Egress'] as const) {
      const decision = decideMirror(mirroredServer('web', 'shop', MS_UID, { enabled: true, direction }), view([p.server, p.ids], [p.serverPod, p.idsPod]), settings);
      assert.equal(decision.kind === 'mirror' && decision.mirror.direction, direction);
    }
  });

  it('leaves alone what is not this node business: mirroring off, deleting, server elsewhere or unplaced', () => {
    const p = pair();
    const all = view([p.server, p.ids], [p.serverPod, p.idsPod]);
    assert.equal(decideMirror(mirroredServer('web', 'shop', MS_UID, { enabled: false }), all, settings).kind, 'none');
    const deleting = mirroredServer('web', 'shop', MS_UID);
    deleting.metadata.deletionTimestamp = '2025-01-01T00:00:00Z';
    assert.equal(decideMirror(deleting, all, settings).kind, 'none');
    assert.equal(decideMirror(mirroredServer('web', 'shop', MS_UID), all, { ...settings, nodeName: 'node-b' }).kind, 'none');
    const unplaced = vmi('shop', 'web-server', 'vmi-server-uid', undefined);
    assert.equal(decideMirror(mirroredServer('web', 'shop', MS_UID), view([unplaced, p.ids], []), settings).kind, 'none');
    assert.equal(decideMirror(mirroredServer('web', 'shop', MS_UID), view([], []), settings).kind, 'none');
  });

  it('says what it waits for: the server pod, the IDS VM on this node, its pod, its mirror NIC', () => {
    const ms = mirroredServer('web', 'shop', MS_UID);
    const p = pair();
    expectWaiting(decideMirror(ms, view([p.server, p.ids], [p.idsPod]), settings), MirrorReason.WaitingForServerPod);
    expectWaiting(decideMirror(ms, view([p.server], [p.serverPod]), settings), MirrorReason.WaitingForIDSVM);
    expectWaiting(decideMirror(ms, view([p.server, p.ids], [p.serverPod]), settings), MirrorReason.WaitingForIDSVM);
    const elsewhere = pair({ idsNode: 'node-b' });
    assert.match(expectWaiting(decideMirror(ms, view([elsewhere.server, elsewhere.ids], [elsewhere.serverPod]), settings), MirrorReason.WaitingForIDSVM), /runs on node node-b/);
    const noNic = pair({ idsShape: { networks: [{ name: 'default', pod: {} }], interfaces: [{ name: 'default', masquerade: {} }] } });
    expectWaiting(decideMirror(ms, view([noNic.server, noNic.ids], [noNic.serverPod, noNic.idsPod]), settings), MirrorReason.IDSMirrorNICMissing);
  });

  it('refuses a monitored network the server VM does not have, or one without a tap', () => {
    const p = pair();
    const ms = mirroredServer('web', 'shop', MS_UID);
    ms.spec.server.monitoredNetwork = 'backend';
    expectWaiting(decideMirror(ms, view([p.server, p.ids], [p.serverPod, p.idsPod]), settings), MirrorReason.MonitoredNetworkNotFound);
    const sriov = vmi('shop', 'web-server', 'vmi-server-uid', NODE, { networks: [{ name: 'default', multus: { networkName: 'sriov-net' } }], interfaces: [{ name: 'default', sriov: {} }] });
    expectWaiting(decideMirror(mirroredServer('web', 'shop', MS_UID), view([sriov, p.ids], [launcherPod(sriov, '33333333-0000-4000-8000-000000000003', NODE), p.idsPod]), settings), MirrorReason.UnsupportedBinding);
  });

  it('picks the running launcher pod, the older one while a migration runs both', () => {
    const server = vmi('shop', 'web-server', 'vmi-server-uid', NODE);
    const source = launcherPod(server, '44444444-0000-4000-8000-000000000004', NODE, { createdAt: '2025-01-01T00:00:00Z' });
    const target = launcherPod(server, '55555555-0000-4000-8000-000000000005', NODE, { createdAt: '2025-01-01T01:00:00Z' });
    const pending = launcherPod(server, '66666666-0000-4000-8000-000000000006', NODE, { phase: 'Pending' });
    const leaving = launcherPod(server, '77777777-0000-4000-8000-000000000007', NODE, { deleting: true, createdAt: '2024-01-01T00:00:00Z' });
    assert.equal(launcherPodOf(server, [target, pending, leaving, source]), source);
    assert.equal(launcherPodOf(server, [pending, leaving]), undefined);
  });
});

describe("agent: KubeVirt's device names in the launcher pod", () => {
  it('hashes secondary network names as KubeVirt does', () => {
    // KubeVirt's own test values (pkg/network/namescheme).
    assert.equal(hashedPodInterfaceName('blue'), 'pod16477688c0e');
    assert.equal(hashedPodInterfaceName('red'), 'podb1f51a511f1');
  });

  it('names tap and in-pod bridge of the primary and of a secondary network, hashed or ordinal', () => {
    const v = vmi('ns', 'v', 'uid', NODE, {
      networks: [{ name: 'default', pod: {} }, { name: 'blue', multus: { networkName: 'blue-nad' } }, { name: 'red', multus: { networkName: 'red-nad' } }],
      interfaces: [{ name: 'default', bridge: {} }, { name: 'blue', bridge: {} }, { name: 'red', bridge: {} }],
    });
    assert.deepEqual(launcherDevices(v, undefined), { devices: { podInterface: 'eth0', tap: 'tap0', bridge: 'k6t-eth0' } });
    assert.deepEqual(launcherDevices(v, 'blue'), { devices: { podInterface: 'pod16477688c0e', tap: 'tap16477688c0e', bridge: 'k6t-16477688c0e' } });
    assert.deepEqual(launcherDevices(v, 'red', true), { devices: { podInterface: 'net2', tap: 'tap2', bridge: 'k6t-net2' } });
    v.status!.interfaces = [{ name: 'default', podInterfaceName: 'ovn-udn1' }];
    assert.deepEqual(launcherDevices(v, 'default'), { devices: { podInterface: 'ovn-udn1', tap: 'tap0', bridge: 'k6t-ovn-udn1' } });
  });

  it('tells the ordinal naming scheme from the network-status annotation', () => {
    assert.equal(podUsesOrdinalNames(JSON.stringify([{ interface: 'eth0' }, { interface: 'net1' }])), true);
    assert.equal(podUsesOrdinalNames(JSON.stringify([{ interface: 'eth0' }, { interface: 'pod16477688c0e' }])), false);
    assert.equal(podUsesOrdinalNames('not json'), false);
    assert.equal(podUsesOrdinalNames(undefined), false);
  });

  it('derives link names of at most 15 bytes from the UID', () => {
    const names = mirrorLinkNames('ABCDEF01-2345-4678-9abc-def012345678');
    assert.deepEqual(names, { server: 'hsmabcdef01', ids: 'hsiabcdef01' });
    assert.ok(names.server.length <= 15);
  });
});
