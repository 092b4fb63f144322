import assert from 'node:assert/strict';
import { KubeApiError } from '../../../src/kube/client/rest.ts';
import type { MonitoredServer } from '../../../src/api/v1alpha1/monitoredserver-types.ts';
import { buildAddressClaim, LABEL_CLAIM_UID } from '../../../src/builders/ids-address.ts';
import { buildNads, DEFAULT_NETWORKING, IDS_NETWORK, IDS_NETWORK_NAD, MIRROR_NETWORK } from '../../../src/builders/networking.ts';
import { Outcomes } from '../../../src/controllers/monitoredserver/actions.ts';
import type { ObservedState, VirtualMachineInstance } from '../../../src/controllers/monitoredserver/observed-state.ts';
import { planIdsCloudInit } from '../../../src/controllers/monitoredserver/planners/disk-inspection.ts';
import { planIdsVm } from '../../../src/controllers/monitoredserver/planners/ids-vm.ts';
import { planIdsNetworkData, planNetworking, planNetworkTeardown, type NetworkingContext } from '../../../src/controllers/monitoredserver/planners/networking.ts';
import { computeStatus, statusEqual } from '../../../src/controllers/monitoredserver/status.ts';
import type { KubeObject, VirtualMachine } from '../../../src/kube/client/objects.ts';
import { bridgeSlot, OVS_MAX_MIRRORS_PER_BRIDGE, type MirrorPeer } from '../../../src/controllers/monitoredserver/ovs-mirror-slots.ts';
import { observe, type CacheReader } from '../../../src/controllers/monitoredserver/observe.ts';
import { WARNING_REASONS } from '../../../src/controllers/monitoredserver/reasons.ts';
import { claimOwnerKey, orphanedClaimDeletion, orphanedClaims } from '../../../src/controllers/monitoredserver/planners/orphaned-address-claims.ts';
import { monitoredServer } from '../../../testenv/fixtures/monitoredservers.ts';

const T0 = new Date('2026-12-01T10:00:00Z');
const CTX: NetworkingContext = { settings: { ...DEFAULT_NETWORKING, idsCidr: '10.99.0.0/29' }, claimNamespace: 'hyperspector-system' };

function ms(name = 'web', uid = `${name}-uid`): MonitoredServer {
  const m = monitoredServer(name, 'shop', { mirroring: { enabled: true } });
  m.metadata.uid = uid;
  m.metadata.generation = 1;
  m.spec.processMapping = { enabled: false };
  return m;
}

function vm(name: string): VirtualMachine {
  return { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name, namespace: 'shop', labels: { 'hyperspector.io/monitored-server': 'web' } }, spec: { runStrategy: 'Always', template: { spec: { domain: { devices: {} } } } }, status: { printableStatus: 'Running' } };
}

function vmi(name: string, networks: VirtualMachineInstance['spec']['networks'] = []): VirtualMachineInstance {
  return { spec: { domain: { devices: {} }, networks }, metadata: { name, namespace: 'shop', uid: `${name}-uid` }, status: { phase: 'Running', nodeName: 'node-a', conditions: [{ type: 'Ready', status: 'True' }] } };
}

/** A cache with nothing in it (networking on), but what a test overrides. */
const emptyReader = (overrides: Partial<CacheReader>): CacheReader => ({
  monitoredServer: () => undefined,
  adoptersOf: () => [],
  virtualMachine: () => undefined,
  virtualMachineInstance: () => undefined,
  processMapperPod: () => undefined,
  persistentVolumeClaim: () => undefined,
  kubevirt: () => undefined,
  idsCloudInitSecret: () => undefined,
  networkAttachmentDefinition: () => undefined,
  idsAddressClaims: () => [],
  ...overrides,
});
const nadsOf = (m: MonitoredServer) => Object.fromEntries(buildNads(m, CTX.settings).map((n) => [n.metadata!.name!, n]));
const cond = (s: ReturnType<typeof computeStatus>, type: string) => s.conditions?.find((c) => c.type === type);

/** A server running on node-a, NADs in place, its address claimed, the IDS VM running with its NICs. */
function joined(m: MonitoredServer): ObservedState {
  return {
    serverVm: vm('web-server'),
    serverVmi: vmi('web-server', [{ name: 'default', pod: {} }]),
    idsVm: vm('web-ids'),
    idsVmi: vmi('web-ids', [
      { name: 'default', pod: {} },
      { name: MIRROR_NETWORK, multus: { networkName: 'hyperspector-mirror' } },
      { name: IDS_NETWORK, multus: { networkName: 'hyperspector-ids' } },
    ]),
    nads: nadsOf(m),
    addressClaim: buildAddressClaim(m, '10.99.0.1', 'hyperspector-system'),
  };
}

/** ovs-cni: the IDS VMI's mirror NIC is on the MonitoredServer's own consumer NAD. */
function ovsIdsVmi(): VirtualMachineInstance {
  return vmi('web-ids', [
    { name: 'default', pod: {} },
    { name: MIRROR_NETWORK, multus: { networkName: 'hyperspector-mirror-web' } },
    { name: IDS_NETWORK, multus: { networkName: 'hyperspector-ids' } },
  ]);
}

describe('networking planner', () => {
  it('applies the missing NADs and claims the lowest free address; the IDS VM waits for its address', () => {
    const m = ms();
    const o: ObservedState = { serverVm: vm('web-server'), serverVmi: vmi('web-server'), nads: {}, addressClaims: [buildAddressClaim(ms('other', 'o-uid'), '10.99.0.1', 'hyperspector-system')] };
    const actions = planNetworking(m, o, CTX);
    assert.deepEqual(actions.map((a) => [a.type, a.type === 'apply' || a.type === 'create' ? a.object.metadata?.name : '']), [
      ['apply', 'hyperspector-ids'],
      ['apply', 'hyperspector-mirror'],
      ['create', 'hyperspector-ids-addr-10-99-0-2'],
    ]);
    assert.deepEqual(planIdsNetworkData(m, o, CTX), { nics: { mirrorNad: 'hyperspector-mirror' } });
    assert.deepEqual(planIdsVm(m, o, planIdsNetworkData(m, o, CTX)), [], 'no IDS VM before its address is claimed');
    // Another MonitoredServer claimed 10.99.0.2 a moment earlier: a lost race, not a failure.
    const claim = actions[2]!;
    assert.equal(claim.event, undefined, 'the address goes with the MonitoringStarted Event, no Event of its own');
    assert.equal(claim.lostRaceWhen?.(new KubeApiError('already exists', 409, 'AlreadyExists')), true);
    assert.equal(claim.lostRaceWhen?.(new KubeApiError('forbidden', 403, 'Forbidden')), false);
  });

  it('the IDS VM is created with its address without an Event of its own (MonitoringStarted names the address), and its log line says it', () => {
    const m = ms();
    const o: ObservedState = { ...joined(m), idsVm: undefined, idsVmi: undefined };
    const data = planIdsNetworkData(m, o, CTX);
    assert.equal(data.address, '10.99.0.1/29');
    const [vmAction] = planIdsVm(m, o, data);
    assert.equal(vmAction?.type, 'apply');
    assert.equal(vmAction?.event, undefined);
    assert.match(vmAction?.log ?? '', /pinned to node .*, IDS-network address 10\.99\.0\.1\/29$/);
  });

  it('once claimed: nothing to apply, the network data in the cloud-init Secret, the IDS VM with both NICs reading it', () => {
    const m = ms();
    const o: ObservedState = { ...joined(m), idsVm: undefined, idsVmi: undefined };
    assert.deepEqual(planNetworking(m, o, CTX), []);
    const data = planIdsNetworkData(m, o, CTX);
    assert.match(data.networkData ?? '', /10\.99\.0\.1\/29/);
    const [secretAction] = planIdsCloudInit(m, o, data.networkData);
    assert.equal(secretAction?.type, 'apply');
    const secret = secretAction?.type === 'apply' ? (secretAction.object as { data: Record<string, string> }) : undefined;
    assert.match(Buffer.from(secret!.data.networkdata!, 'base64').toString(), /10\.99\.0\.1\/29/);
    const [vmAction] = planIdsVm(m, o, data);
    assert.equal(vmAction?.type, 'apply');
    const spec = vmAction?.type === 'apply' ? (vmAction.object as VirtualMachine).spec.template!.spec! : undefined;
    assert.deepEqual(spec?.networks?.map((n) => n.name), ['default', MIRROR_NETWORK, IDS_NETWORK]);
    const cloudInit = spec?.volumes?.find((v) => v.cloudInitNoCloud);
    assert.deepEqual(cloudInit?.cloudInitNoCloud?.networkDataSecretRef, { name: 'web-ids-cloud-init' });
  });

  it('says IDSNetworkFull when every address of the prefix is claimed, and claims nothing', () => {
    const m = ms();
    const claims = [1, 2, 3, 4, 5, 6].map((i) => buildAddressClaim(ms(`o${i}`, `o${i}`), `10.99.0.${i}`, 'hyperspector-system'));
    const o: ObservedState = { serverVm: vm('web-server'), serverVmi: vmi('web-server'), nads: nadsOf(m), addressClaims: claims };
    assert.deepEqual(planNetworking(m, o, CTX), []);
    const s = computeStatus(m, o, new Outcomes(), T0, undefined, CTX);
    assert.equal(cond(s, 'IDSNetworkJoined')?.reason, 'IDSNetworkFull');
    assert.equal(cond(s, 'Ready')?.reason, 'IDSNetworkFull', 'Ready names why no IDS VM is created');
    assert.match(cond(s, 'IDSNetworkJoined')!.message, /every address of the IDS network 10\.99\.0\.0\/29 is claimed/);
  });

  const deletes = (actions: ReturnType<typeof planNetworking>) => actions.map((a) => (a.type === 'delete' ? `${a.resource.kind}/${a.namespace}/${a.name}` : a.type));
  const gone = (o: ObservedState): ObservedState => ({ ...o, idsVm: undefined, idsVmi: undefined });

  it("teardown of the namespace's last MonitoredServer deletes the shared NADs and releases the address claim", () => {
    const m = ms();
    assert.deepEqual(deletes(planNetworkTeardown(m, gone(joined(m)), 'hyperspector-system', CTX.settings)), [
      'NetworkAttachmentDefinition/shop/hyperspector-ids',
      'NetworkAttachmentDefinition/shop/hyperspector-mirror',
      'ConfigMap/hyperspector-system/hyperspector-ids-addr-10-99-0-1',
    ]);
  });

  it('teardown keeps a shared NAD another MonitoredServer of the namespace needs: the IDS network always, the mirror only while one mirrors', () => {
    const m = ms();
    const mirroring = ms('db', 'db-uid');
    const notMirroring = ms('app', 'app-uid');
    notMirroring.spec.mirroring = { enabled: false };
    assert.deepEqual(deletes(planNetworkTeardown(m, { ...gone(joined(m)), namespacePeers: [mirroring] }, 'hyperspector-system', CTX.settings)), ['ConfigMap/hyperspector-system/hyperspector-ids-addr-10-99-0-1']);
    assert.deepEqual(deletes(planNetworkTeardown(m, { ...gone(joined(m)), namespacePeers: [notMirroring] }, 'hyperspector-system', CTX.settings)), [
      'NetworkAttachmentDefinition/shop/hyperspector-mirror',
      'ConfigMap/hyperspector-system/hyperspector-ids-addr-10-99-0-1',
    ]);
  });

  it('a MonitoredServer that stops mirroring deletes the shared mirror NAD only when no other one mirrors, and not while its IDS VMI still has the NIC', () => {
    const m = ms();
    m.spec.mirroring = { enabled: false };
    const o = joined(ms());
    assert.deepEqual(deletes(planNetworking(m, o, CTX)), [], 'its IDS VMI still has a NIC on hyperspector-mirror');
    const restarted: ObservedState = { ...o, idsVmi: vmi('web-ids', [{ name: 'default', pod: {} }, { name: IDS_NETWORK, multus: { networkName: 'hyperspector-ids' } }]) };
    assert.deepEqual(deletes(planNetworking(m, restarted, CTX)), ['NetworkAttachmentDefinition/shop/hyperspector-mirror']);
    assert.deepEqual(deletes(planNetworking(m, { ...restarted, namespacePeers: [ms('db', 'db-uid')] }, CTX)), [], 'db still mirrors');
  });

  it("an older version's per-MonitoredServer NADs are deleted once the IDS VMI has no NIC on them (the shared ones are applied first)", () => {
    const m = ms();
    const legacy = (name: string): KubeObject => ({ apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name, namespace: 'shop', uid: `${name}-uid`, labels: { 'hyperspector.io/monitored-server': 'web', 'hyperspector.io/role': 'network' } } });
    const o: ObservedState = {
      ...joined(m),
      nads: { 'hyperspector-ids-web': legacy('hyperspector-ids-web'), 'hyperspector-mirror-web': legacy('hyperspector-mirror-web') },
      idsVmi: vmi('web-ids', [{ name: 'default', pod: {} }, { name: MIRROR_NETWORK, multus: { networkName: 'hyperspector-mirror-web' } }, { name: IDS_NETWORK, multus: { networkName: 'shop/hyperspector-ids-web' } }]),
    };
    const actions = planNetworking(m, o, CTX);
    assert.deepEqual(actions.map((a) => (a.type === 'apply' ? a.object.metadata?.name : a.type)), ['hyperspector-ids', 'hyperspector-mirror'], 'the running IDS VMI keeps its old NADs until it restarts onto the shared ones');
    const moved: ObservedState = { ...o, nads: { ...o.nads, ...nadsOf(m) }, idsVmi: joined(m).idsVmi };
    const deletions = planNetworking(m, moved, CTX);
    assert.deepEqual(deletes(deletions), ['NetworkAttachmentDefinition/shop/hyperspector-ids-web', 'NetworkAttachmentDefinition/shop/hyperspector-mirror-web']);
    assert.deepEqual(deletions.map((a) => (a.type === 'delete' ? a.preconditionUid : undefined)), ['hyperspector-ids-web-uid', 'hyperspector-mirror-web-uid'], 'guarded by their UIDs');
  });
});

describe('networking status', () => {
  it('IDSNetworkJoined True with the address in status; Ready waits for the node agent, then follows its MirrorAttached', () => {
    const m = ms();
    const o = joined(m);
    const before = computeStatus(m, o, new Outcomes(), T0, undefined, CTX);
    assert.equal(cond(before, 'IDSNetworkJoined')?.status, 'True');
    assert.deepEqual(before.idsNetwork, { address: '10.99.0.1/29', provider: 'vxlan', networkAttachmentDefinition: 'hyperspector-ids' });
    assert.equal(cond(before, 'MirrorAttached'), undefined, "the operator never writes the agent's condition");
    assert.equal(cond(before, 'Ready')?.reason, 'WaitingForMirrorAgent');
    assert.match(cond(before, 'Ready')!.message, /hyperspector-agent DaemonSet running on node node-a/);

    const agent = (status: 'True' | 'False', reason: string) => ({ ...m, status: { ...before, conditions: [...before.conditions!, { type: 'MirrorAttached', status, reason, message: 'from the agent', lastTransitionTime: '2026-12-01T10:00:00Z' }] } });
    const waiting = computeStatus(agent('False', 'WaitingForServerPod'), o, new Outcomes(), T0, undefined, CTX);
    assert.equal(cond(waiting, 'Ready')?.reason, 'WaitingForServerPod');
    const attached = agent('True', 'Attached');
    const ready = computeStatus(attached, o, new Outcomes(), T0, undefined, CTX);
    assert.equal(cond(ready, 'Ready')?.status, 'True');
    assert.equal(cond(ready, 'MirrorAttached'), undefined);
    // The agent's condition is not a difference the operator would write.
    assert.ok(statusEqual({ ...attached.status, conditions: [...ready.conditions!, attached.status.conditions.at(-1)!] }, ready));
  });

  it('ovs-cni: the operator reports MirrorAttached, False until the server NIC uses the producer NAD', () => {
    const m = ms();
    const ctx: NetworkingContext = { ...CTX, settings: { ...CTX.settings, mirroring: 'ovs-cni' } };
    const o = { ...joined(m), idsVmi: ovsIdsVmi(), nads: Object.fromEntries(buildNads(m, ctx.settings).map((n) => [n.metadata!.name!, n])) };
    const not = computeStatus(m, o, new Outcomes(), T0, undefined, ctx);
    assert.equal(cond(not, 'MirrorAttached')?.reason, 'ServerNICNotMirrorable');
    assert.match(cond(not, 'MirrorAttached')!.message, /must use NetworkAttachmentDefinition hyperspector-mirror-producer-web.*never restarts your server/);
    const producer = { ...o, serverVmi: vmi('web-server', [{ name: 'default', multus: { networkName: 'hyperspector-mirror-producer-web' } }]) };
    assert.equal(cond(computeStatus(m, producer, new Outcomes(), T0, undefined, ctx), 'MirrorAttached')?.status, 'True');
  });

  it('a refused NAD (no Multus CRD) is IDSNetworkJoined=False NetworkAttachmentRefused', () => {
    const m = ms();
    const o: ObservedState = { serverVm: vm('web-server'), serverVmi: vmi('web-server'), nads: {}, addressClaims: [] };
    const [apply] = planNetworking(m, o, CTX);
    const s = computeStatus(m, o, new Outcomes([{ action: apply!, kind: 'refused', code: 404, message: 'the server could not find the requested resource' }]), T0, undefined, CTX);
    assert.equal(cond(s, 'IDSNetworkJoined')?.reason, 'NetworkAttachmentRefused');
    assert.match(cond(s, 'IDSNetworkJoined')!.message, /is Multus with its NetworkAttachmentDefinition CRD installed/);
  });

  it('without networking configured the operator keeps saying MirroringUnavailable (as before)', () => {
    const s = computeStatus(ms(), joined(ms()), new Outcomes(), T0);
    assert.equal(cond(s, 'MirrorAttached')?.reason, 'MirroringUnavailable');
    assert.equal(cond(s, 'IDSNetworkJoined'), undefined);
  });
});


describe('orphaned IDS-network address claims', () => {
  const claimOfWeb = buildAddressClaim(ms('web', 'web-uid'), '10.99.0.1', 'hyperspector-system');
  const claimOfOldWeb = buildAddressClaim(ms('web', 'old-web-uid'), '10.99.0.2', 'hyperspector-system');
  const claimOfDb = buildAddressClaim(ms('db', 'db-uid'), '10.99.0.3', 'hyperspector-system');
  const all = [claimOfWeb, claimOfOldWeb, claimOfDb];
  const names = (claims: KubeObject[]) => claims.map((c) => c.metadata?.name);

  const cases: Array<{ title: string; key: string; uid: string | undefined; orphans: string[] }> = [
    { title: 'the MonitoredServer exists with the claim’s UID: nothing', key: 'shop/db', uid: 'db-uid', orphans: [] },
    { title: 'no MonitoredServer under the key: all its claims', key: 'shop/web', uid: undefined, orphans: ['hyperspector-ids-addr-10-99-0-1', 'hyperspector-ids-addr-10-99-0-2'] },
    { title: 'a newer MonitoredServer of the same name: only the earlier one’s claim', key: 'shop/web', uid: 'web-uid', orphans: ['hyperspector-ids-addr-10-99-0-2'] },
    { title: 'another key’s claims are never touched', key: 'other/web', uid: undefined, orphans: [] },
  ];
  for (const c of cases) {
    it(c.title, () => assert.deepEqual(names(orphanedClaims(all, c.key, c.uid)), c.orphans));
  }

  it('reads the owner key from the annotation; a claim without one is nobody’s', () => {
    assert.equal(claimOwnerKey(claimOfWeb), 'shop/web');
    const bare = { ...claimOfWeb, metadata: { ...claimOfWeb.metadata, annotations: {} } };
    assert.equal(claimOwnerKey(bare), undefined);
    assert.deepEqual(orphanedClaims([bare], 'shop/web', undefined), []);
  });

  it('leaves a claim that is already being deleted', () => {
    const deleting = { ...claimOfOldWeb, metadata: { ...claimOfOldWeb.metadata, deletionTimestamp: T0.toISOString() } };
    assert.deepEqual(orphanedClaims([deleting], 'shop/web', undefined), []);
  });

  it('deletes exactly the claim looked at, tolerating it being gone, with an Event naming the address and the owner', () => {
    const live = { ...claimOfOldWeb, metadata: { ...claimOfOldWeb.metadata, uid: 'cm-uid' } };
    const action = orphanedClaimDeletion(live);
    assert.equal(action.type, 'delete');
    assert.equal(action.namespace, 'hyperspector-system');
    assert.equal(action.name, 'hyperspector-ids-addr-10-99-0-2');
    assert.equal(action.preconditionUid, 'cm-uid');
    assert.deepEqual(action.tolerate, [404, 409]);
    assert.equal(action.event?.reason, 'OrphanedIDSAddressReleased');
    assert.match(action.event!.message, /10\.99\.0\.2.*MonitoredServer shop\/web \(UID old-web-uid\) no longer exists/);
  });
});

describe('ovs-cni: at most 32 mirrors per OVS bridge', () => {
  const peer = (i: number, attached = false): MirrorPeer => ({ key: `shop/s${String(i).padStart(2, '0')}`, creationTimestamp: new Date(T0.getTime() + i * 1000).toISOString(), attached });
  const peers = (n: number) => Array.from({ length: n }, (_, i) => peer(i));

  const cases: Array<{ title: string; self: MirrorPeer; others: MirrorPeer[]; fits: boolean; mirrors: number }> = [
    { title: 'alone on the node', self: peer(0), others: [], fits: true, mirrors: 1 },
    { title: 'the 32nd mirror fits', self: peer(31), others: peers(31), fits: true, mirrors: 32 },
    { title: 'the 33rd (newest) does not', self: peer(32), others: peers(32), fits: false, mirrors: 33 },
    { title: 'the oldest fits however many come after it', self: peer(0), others: peers(40).slice(1), fits: true, mirrors: 40 },
    { title: 'a newer one whose mirror works keeps its slot over older ones that wait', self: peer(50, true), others: peers(32), fits: true, mirrors: 33 },
    { title: 'self listed among the peers is counted once', self: peer(31), others: [...peers(31), peer(31)], fits: true, mirrors: 32 },
  ];
  for (const c of cases) {
    it(c.title, () => {
      const slot = bridgeSlot(c.self, c.others);
      assert.equal(slot.fits, c.fits);
      assert.equal(slot.mirrors, c.mirrors);
      assert.equal(slot.holders.length, c.fits ? 0 : OVS_MAX_MIRRORS_PER_BRIDGE);
    });
  }

  it('a full bridge is MirrorAttached=False MirrorBridgeFull naming the node, the bridge and what to do, and Ready says so; a freed slot attaches it', () => {
    const m = ms();
    m.metadata.creationTimestamp = new Date(T0.getTime() + 3_600_000).toISOString();
    const ctx: NetworkingContext = { ...CTX, settings: { ...CTX.settings, mirroring: 'ovs-cni' } };
    const producer = vmi('web-server', [{ name: 'default', multus: { networkName: 'hyperspector-mirror-producer-web' } }]);
    const o: ObservedState = { ...joined(m), idsVmi: ovsIdsVmi(), nads: Object.fromEntries(buildNads(m, ctx.settings).map((n) => [n.metadata!.name!, n])), serverVmi: producer, mirrorPeers: peers(32) };
    const full = computeStatus(m, o, new Outcomes(), T0, undefined, ctx);
    const mirror = cond(full, 'MirrorAttached');
    assert.equal(mirror?.status, 'False');
    assert.equal(mirror?.reason, 'MirrorBridgeFull');
    assert.match(mirror!.message, /OVS bridge br-hyperspector on node node-a already applies 32 port mirrors/);
    assert.match(mirror!.message, /33 MonitoredServers.*held by shop\/s00, shop\/s01, shop\/s02, shop\/s03, shop\/s04 and 27 more/);
    assert.match(mirror!.message, /run the server VM on another node.*spec\.mirroring\.enabled: false/);
    assert.equal(cond(full, 'Ready')?.reason, 'MirrorBridgeFull');
    assert.ok(WARNING_REASONS.has('MirrorBridgeFull'), 'published as a Warning Event too');
    const freed = computeStatus(m, { ...o, mirrorPeers: peers(31) }, new Outcomes(), T0, undefined, ctx);
    assert.equal(cond(freed, 'MirrorAttached')?.status, 'True');
  });

  it('observe counts the other mirrored MonitoredServers on the server’s node (not itself, not those without mirroring or being deleted)', () => {
    const m = ms();
    const noMirror = ms('quiet', 'q-uid');
    noMirror.spec.mirroring = { enabled: false };
    const deleting = ms('gone', 'g-uid');
    deleting.metadata.deletionTimestamp = T0.toISOString();
    const other = ms('other', 'o-uid');
    const reader = emptyReader({
      virtualMachine: (_ns: string, name: string) => (name === 'web-server' ? vm('web-server') : undefined),
      virtualMachineInstance: (_ns: string, name: string) => (name === 'web-server' ? vmi('web-server') : undefined),
      monitoredServersOnNode: (node: string) => (node === 'node-a' ? [m, noMirror, deleting, other] : []),
    });
    assert.deepEqual(observe(m, reader).mirrorPeers?.map((p) => p.key), ['shop/other']);
    assert.equal(observe(m, { ...reader, monitoredServersOnNode: undefined } as unknown as CacheReader).mirrorPeers, undefined, 'not counted without ovs-cni');
  });

  it('observe reads the namespace’s other MonitoredServers only when this one may be the last to need an existing shared NAD', () => {
    const peer = ms('db', 'db-uid');
    const listed: string[] = [];
    const reader = (nads: Record<string, KubeObject>): CacheReader =>
      emptyReader({
        networkAttachmentDefinition: (_ns: string, name: string) => nads[name],
        monitoredServersIn: (ns: string) => {
          listed.push(ns);
          return [peer];
        },
      });
    const shared = nadsOf(ms());
    const idsOnly = Object.fromEntries(Object.entries(shared).filter(([name]) => name === IDS_NETWORK_NAD));
    const quiet = ms();
    quiet.spec.mirroring = { enabled: false };
    assert.equal(observe(quiet, reader(idsOnly)).namespacePeers, undefined, 'not mirroring, no shared mirror NAD: every MonitoredServer needs the IDS NAD');
    assert.deepEqual(observe(quiet, reader(shared)).namespacePeers?.map((p) => p.metadata.name), ['db'], 'not mirroring beside the shared mirror NAD');
    assert.equal(observe(ms(), reader(shared)).namespacePeers, undefined, 'mirroring: it needs every shared NAD itself');
    const deleting = ms();
    deleting.metadata.deletionTimestamp = T0.toISOString();
    assert.deepEqual(observe(deleting, reader(idsOnly)).namespacePeers?.map((p) => p.metadata.name), ['db'], 'being deleted beside a shared NAD');
    assert.equal(observe(deleting, reader({})).namespacePeers, undefined, 'being deleted, no shared NAD left');
    assert.deepEqual(listed, ['shop', 'shop']);
  });

  it('observe finds a MonitoredServer’s address claim through the index by its UID, and lists every claim only while it has none', () => {
    const m = ms();
    const mine = buildAddressClaim(m, '10.99.0.3', 'hyperspector-system');
    let listedAll = 0;
    const reader = (claimsOf: KubeObject[]): CacheReader =>
      emptyReader({
        idsAddressClaims: () => {
          listedAll++;
          return [mine];
        },
        idsAddressClaimsOf: (uid: string) => claimsOf.filter((c) => c.metadata?.labels?.[LABEL_CLAIM_UID] === uid),
      });
    assert.equal(observe(m, reader([mine])).addressClaim, mine);
    assert.equal(listedAll, 0, 'found through the index');
    const o = observe(m, reader([]));
    assert.equal(o.addressClaim, undefined);
    assert.equal(o.addressClaims?.length, 1, 'no claim yet: every claim, to pick a free address');
    assert.equal(listedAll, 1);
  });
});
