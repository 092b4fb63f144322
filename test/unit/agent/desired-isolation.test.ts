import assert from 'node:assert/strict';
import { decideIsolation, isolationHolds } from '../../../src/agent/desired-isolation.ts';
import { decideMirror, mirrorLinkNames, type ClusterView } from '../../../src/agent/desired-mirrors.ts';
import { hashedPodInterfaceName } from '../../../src/agent/kubevirt-names.ts';
import type { MonitoredServer } from '../../../src/api/v1alpha1/monitoredserver-types.ts';
import type { Pod, VirtualMachineInstance } from '../../../src/kube/client/objects.ts';
import { IDS_MIRROR_NETWORK, IDS_SHAPE, launcherPod, mirroredServer, vmi, type VmiShape } from '../../../testenv/fixtures/agent.ts';

const NODE = 'node-a';
const MS_UID = '0a1b2c3d-0000-4000-8000-000000000001';
const SERVER_POD = '11111111-0000-4000-8000-000000000001';
const settings = { nodeName: NODE, idsMirrorNetwork: IDS_MIRROR_NETWORK };
const ISOLATED = { action: 'Isolate', alertTime: '2026-12-02T00:00:00Z', isolatedAt: '2026-12-02T00:00:01Z' };

function world(opts: { response?: NonNullable<MonitoredServer['status']>['response']; serverShape?: VmiShape; serverNode?: string; pod?: boolean; mirroring?: MonitoredServer['spec']['mirroring'] } = {}) {
  const ms = mirroredServer('web', 'shop', MS_UID, opts.mirroring ?? { enabled: true });
  if (opts.response) ms.status = { response: opts.response };
  const server = vmi('shop', 'web-server', 'vmi-server-uid', opts.serverNode ?? NODE, opts.serverShape);
  const ids = vmi('shop', 'web-ids', 'vmi-ids-uid', NODE, IDS_SHAPE);
  const pods: Pod[] = [launcherPod(ids, '22222222-0000-4000-8000-000000000002', NODE), ...(opts.pod === false ? [] : [launcherPod(server, SERVER_POD, NODE)])];
  const vmis: VirtualMachineInstance[] = [server, ids];
  const view: ClusterView = { vmi: (ns, name) => vmis.find((v) => v.metadata?.namespace === ns && v.metadata?.name === name), launcherPods: () => pods };
  return { ms, view, decide: () => decideIsolation(ms, view, NODE, decideMirror(ms, view, settings)) };
}

describe('node agent: which server taps the Isolate response cuts off', () => {
  it('the isolation holds only while status.response says Isolate, isolated and not released', () => {
    assert.equal(isolationHolds(world().ms), false);
    assert.equal(isolationHolds(world({ response: ISOLATED }).ms), true);
    assert.equal(isolationHolds(world({ response: { ...ISOLATED, releasedAt: '2026-12-02T00:00:05Z' } }).ms), false);
    assert.equal(isolationHolds(world({ response: { action: 'Pause', alertTime: ISOLATED.alertTime, pausedAt: ISOLATED.isolatedAt } }).ms), false);
  });

  it('isolates the mirrored tap with the mirror copy on both hooks, and every other network’s tap', () => {
    const shape: VmiShape = {
      networks: [{ name: 'default', pod: {} }, { name: 'storage', multus: { networkName: 'storage-net' } }],
      interfaces: [{ name: 'default', bridge: {} }, { name: 'storage', bridge: {} }],
    };
    const d = world({ response: ISOLATED, serverShape: shape }).decide();
    assert.equal(d.kind, 'isolate');
    const link = mirrorLinkNames(MS_UID).server;
    assert.deepEqual(d.kind === 'isolate' && d.taps, [
      { tap: 'tap0', mirrorTo: { ingress: link, egress: link }, sink: 'hsq0a1b2c3d' },
      { tap: `tap${hashedPodInterfaceName('storage').slice(3)}`, mirrorTo: {}, sink: 'hsq0a1b2c3d' },
    ]);
    assert.equal(d.kind === 'isolate' && d.serverPodUid, SERVER_POD);
  });

  it('copies only the mirrored direction, and nothing when mirroring is off', () => {
    const egress = world({ response: ISOLATED, mirroring: { enabled: true, direction: 'Egress' } }).decide();
    assert.deepEqual(egress.kind === 'isolate' && egress.taps[0]?.mirrorTo, { ingress: mirrorLinkNames(MS_UID).server });
    const off = world({ response: ISOLATED, mirroring: { enabled: false } }).decide();
    assert.deepEqual(off.kind === 'isolate' && off.taps[0]?.mirrorTo, {});
  });

  it('without an isolation: none, naming the server pod whose leftovers are removed', () => {
    assert.deepEqual(world().decide(), { kind: 'none', key: 'shop/web', serverPodUid: SERVER_POD });
  });

  it('another node’s server is none of this agent’s business; a missing launcher pod is waited for; a tapless binding is said', () => {
    assert.deepEqual(world({ response: ISOLATED, serverNode: 'node-b' }).decide(), { kind: 'none', key: 'shop/web' });
    assert.equal(world({ response: ISOLATED, pod: false }).decide().kind, 'waiting');
    const sriov = world({ response: ISOLATED, serverShape: { networks: [{ name: 'default', pod: {} }, { name: 'fast', multus: { networkName: 'vf' } }], interfaces: [{ name: 'default', bridge: {} }, { name: 'fast', sriov: {} }] } }).decide();
    assert.equal(sriov.kind === 'waiting' && sriov.reason, 'TapNotIsolable');
  });
});
