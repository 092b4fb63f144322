// Table-driven tests of disk inspection in Snapshot mode: the rotation of snapshot copies as the
// planner reads it back from the objects (no memory: a restarted operator plans the same), the
// actions it asks for, DiskAttached and status.diskInspection.snapshots, and the teardown.
import assert from 'node:assert/strict';
import type { MonitoredServer } from '../../../src/api/v1alpha1/monitoredserver-types.ts';
import { idsVolumeName, withDiskInspection } from '../../../src/builders/disk-inspection.ts';
import { buildSnapshotCopyDisk, snapshotCopyName, type VolumeSnapshot } from '../../../src/builders/disk-snapshot.ts';
import { FINALIZER } from '../../../src/builders/names.ts';
import { Outcomes, type Action, type CreateAction, type DeleteAction, type SubresourceAction } from '../../../src/controllers/monitoredserver/actions.ts';
import { diskAttached, snapshotStatuses } from '../../../src/controllers/monitoredserver/disk-inspection-status.ts';
import type { ObservedState } from '../../../src/controllers/monitoredserver/observed-state.ts';
import { planDiskHotplug, resolveDiskInspection } from '../../../src/controllers/monitoredserver/planners/disk-inspection.ts';
import { planSnapshotMode, type SnapshotClock } from '../../../src/controllers/monitoredserver/planners/disk-snapshot.ts';
import { planTeardown } from '../../../src/controllers/monitoredserver/planners/teardown.ts';
import type { KubeVirt, PersistentVolumeClaim, VirtualMachine, VirtualMachineInstance } from '../../../src/kube/client/objects.ts';
import { monitoredServer, vmTemplate } from '../../../testenv/fixtures/monitoredservers.ts';

const NS = 'shop';
const T0 = Date.parse('2026-12-01T10:00:00Z');
const MINUTE = 60_000;
/** intervalMinutes 30, readyTimeoutMinutes 5. */
const INTERVAL = 30 * MINUTE;
const TIMEOUT = 5 * MINUTE;
/** One guest remount round (60 s) and 10 s. */
const HANDOVER = 70_000;
const READY_AT = (ms: number) => ({ 'hyperspector.io/copy-ready-at': new Date(T0 + ms).toISOString() });
const HANDED_OVER = { 'hyperspector.io/handover-done': 'true' };

const KUBEVIRT: KubeVirt = { metadata: { name: 'kubevirt', namespace: 'kubevirt' }, spec: { configuration: { developerConfiguration: { featureGates: ['DeclarativeHotplugVolumes'] } } }, status: { observedKubeVirtVersion: 'v1.8.2' } };

function ms(mode: 'Snapshot' | 'Live' = 'Snapshot', disks = ['data']): MonitoredServer {
  const server = vmTemplate({ app: 'web-1' });
  server.spec.template!.spec!.domain.devices.disks!.push({ name: 'data', disk: { bus: 'virtio' } });
  server.spec.template!.spec!.volumes!.push({ name: 'data', persistentVolumeClaim: { claimName: 'web-data' } });
  const m = monitoredServer('web-1', NS, {
    server: { template: server, disks },
    diskInspection: mode === 'Snapshot' ? { mode, snapshot: { intervalMinutes: 30, readyTimeoutMinutes: 5, volumeSnapshotClassName: 'fast' } } : { mode },
  });
  m.metadata = { ...m.metadata, uid: 'ms-uid', generation: 1, finalizers: [FINALIZER] };
  return m;
}

const M = ms();
const at = (offsetMs: number): SnapshotClock => ({ now: new Date(T0 + offsetMs), minuteMs: MINUTE });
const name = (g: number) => snapshotCopyName(M, 'data', g);

function meta(g: number, createdMs: number) {
  return {
    name: name(g),
    namespace: NS,
    uid: `uid-${g}`,
    creationTimestamp: new Date(T0 + createdMs).toISOString(),
    labels: { 'hyperspector.io/monitored-server': 'web-1', 'hyperspector.io/role': 'disk-snapshot' },
    annotations: { 'hyperspector.io/snapshot-generation': String(g), 'hyperspector.io/server-volume': 'data' },
  };
}

function snap(g: number, createdMs: number, state: { ready?: boolean; error?: string } = { ready: true }): VolumeSnapshot {
  return {
    metadata: meta(g, createdMs),
    spec: { source: { persistentVolumeClaimName: 'web-data' } },
    status: { readyToUse: state.ready === true, ...(state.ready ? { creationTime: new Date(T0 + createdMs).toISOString(), restoreSize: '2Gi' } : {}), ...(state.error ? { error: { message: state.error } } : {}) },
  };
}

function copy(g: number, createdMs: number, annotations: Record<string, string> = {}): PersistentVolumeClaim {
  const m = meta(g, createdMs);
  return { metadata: { ...m, annotations: { ...m.annotations, ...annotations } }, spec: { accessModes: ['ReadWriteOnce'], dataSource: { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: name(g) } } };
}

const SOURCE: PersistentVolumeClaim = { metadata: { name: 'web-data', namespace: NS }, spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'csi-fast', volumeMode: 'Filesystem', resources: { requests: { storage: '1Gi' } } } };

/** The IDS VM as KubeVirt stores it, holding copies `plugged`. */
function idsVm(plugged: number[]): VirtualMachine {
  const spec = withDiskInspection(structuredClone(M.spec.ids.template.spec.template!.spec!), {
    hotplug: plugged.map((g) => buildSnapshotCopyDisk(M, 'data', g)),
    cloudInitSecretName: 'web-1-ids-cloud-init',
  });
  return { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: 'web-1-ids', namespace: NS, labels: { 'hyperspector.io/monitored-server': 'web-1' } }, spec: { runStrategy: 'Always', template: { spec } } };
}

/** The IDS VMI with copies in these volumeStatus phases. */
function idsVmi(phases: Record<number, string>): VirtualMachineInstance {
  const entries = Object.entries(phases).map(([g, phase]) => ({ name: name(Number(g)), phase }));
  return {
    metadata: { name: 'web-1-ids', namespace: NS },
    spec: { domain: { devices: {} }, volumes: entries.map((e) => ({ name: e.name, persistentVolumeClaim: { claimName: e.name, hotpluggable: true } })) },
    status: { phase: 'Running', nodeName: 'node-a', volumeStatus: entries.map((e, i) => ({ name: e.name, phase: e.phase, target: e.phase === 'Ready' ? `vd${'bcd'[i]}` : '' })) },
  };
}

function world(extra: Partial<ObservedState> = {}, m: MonitoredServer = M): ObservedState {
  return {
    serverVm: { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: 'web-1-server', namespace: NS }, spec: structuredClone(m.spec.server.template!.spec) },
    claims: { 'web-data': SOURCE },
    kubevirt: KUBEVIRT,
    diskSnapshots: [],
    snapshotCopyClaims: [],
    ...extra,
  };
}

function describeActions(actions: Action[]): string[] {
  return actions.map((a) => {
    if (a.type === 'create' || a.type === 'apply') return `${a.type} ${a.object.kind} ${a.object.metadata?.name}`;
    if (a.type === 'delete') return `delete ${a.resource.kind} ${a.name}`;
    if (a.type === 'patch') return `patch ${a.resource.kind} ${a.name} ${JSON.stringify(a.body)}`;
    return a.type;
  });
}

function plan(o: ObservedState, offsetMs: number, m: MonitoredServer = M) {
  return planSnapshotMode(m, o, resolveDiskInspection(m, o), at(offsetMs));
}

const plugged = (o: ObservedState) => (resolveDiskInspection(M, o).ids?.hotplug ?? []).map((h) => h.volume.name);

describe('disk inspection (Snapshot)', () => {
  describe('the rotation, step by step, read back from the objects', () => {
    // [step, observed, now, actions, IDS VM copies, DiskAttached reason, recheck in ms]
    const cases: Array<[string, ObservedState, number, string[], number[], string, number | undefined]> = [
      ['nothing yet: the first snapshot', world(), 0, [`create VolumeSnapshot ${name(1)}`], [], 'DiskAttaching', undefined],
      ['the first snapshot not ready yet: wait, until its deadline', world({ diskSnapshots: [snap(1, 0, { ready: false })] }), MINUTE, [], [], 'DiskAttaching', TIMEOUT - MINUTE],
      ['the first snapshot ready: restore it', world({ diskSnapshots: [snap(1, 0)] }), MINUTE, [`create PersistentVolumeClaim ${name(1)}`], [], 'DiskAttaching', undefined],
      ['restored: plug the copy', world({ diskSnapshots: [snap(1, 0)], snapshotCopyClaims: [copy(1, 1000)] }), MINUTE, [], [1], 'DiskAttaching', undefined],
      [
        'plugged and Ready: attached; the next rotation is due an interval after the snapshot',
        world({ diskSnapshots: [snap(1, 0)], snapshotCopyClaims: [copy(1, 1000)], idsVm: idsVm([1]), idsVmi: idsVmi({ 1: 'Ready' }) }),
        2 * MINUTE,
        [],
        [1],
        'Attached',
        INTERVAL - 2 * MINUTE,
      ],
      [
        'the interval passed: the next snapshot',
        world({ diskSnapshots: [snap(1, 0)], snapshotCopyClaims: [copy(1, 1000)], idsVm: idsVm([1]), idsVmi: idsVmi({ 1: 'Ready' }) }),
        INTERVAL,
        [`create VolumeSnapshot ${name(2)}`],
        [1],
        'Attached',
        undefined,
      ],
      [
        'the new copy restored: plugged beside the old one, nothing unplugged or deleted',
        world({ diskSnapshots: [snap(1, 0), snap(2, INTERVAL)], snapshotCopyClaims: [copy(1, 1000), copy(2, INTERVAL + 1000)], idsVm: idsVm([1]), idsVmi: idsVmi({ 1: 'Ready' }) }),
        INTERVAL + 2000,
        [],
        [1, 2],
        'Attached',
        undefined,
      ],
      [
        'the new copy attaching: both stay',
        world({ diskSnapshots: [snap(1, 0), snap(2, INTERVAL)], snapshotCopyClaims: [copy(1, 1000), copy(2, INTERVAL + 1000)], idsVm: idsVm([1, 2]), idsVmi: idsVmi({ 1: 'Ready', 2: 'AttachedToNode' }) }),
        INTERVAL + 3000,
        [],
        [1, 2],
        'Attached',
        undefined,
      ],
      [
        'the new copy Ready: noted on its claim; the old one stays for one guest remount round',
        world({ diskSnapshots: [snap(1, 0), snap(2, INTERVAL)], snapshotCopyClaims: [copy(1, 1000), copy(2, INTERVAL + 1000)], idsVm: idsVm([1, 2]), idsVmi: idsVmi({ 1: 'Ready', 2: 'Ready' }) }),
        INTERVAL + 4000,
        [`patch PersistentVolumeClaim ${name(2)} {"metadata":{"annotations":{"hyperspector.io/copy-ready-at":"${new Date(T0 + INTERVAL + 4000).toISOString()}"}}}`],
        [1, 2],
        'Attached',
        HANDOVER,
      ],
      [
        'within the remount round: both stay',
        world({ diskSnapshots: [snap(1, 0), snap(2, INTERVAL)], snapshotCopyClaims: [copy(1, 1000), copy(2, INTERVAL + 1000, READY_AT(INTERVAL + 4000))], idsVm: idsVm([1, 2]), idsVmi: idsVmi({ 1: 'Ready', 2: 'Ready' }) }),
        INTERVAL + 30_000,
        [],
        [1, 2],
        'Attached',
        HANDOVER - 26_000,
      ],
      [
        'the remount round over: the handover is noted',
        world({ diskSnapshots: [snap(1, 0), snap(2, INTERVAL)], snapshotCopyClaims: [copy(1, 1000), copy(2, INTERVAL + 1000, READY_AT(INTERVAL + 4000))], idsVm: idsVm([1, 2]), idsVmi: idsVmi({ 1: 'Ready', 2: 'Ready' }) }),
        INTERVAL + 4000 + HANDOVER,
        [`patch PersistentVolumeClaim ${name(2)} {"metadata":{"annotations":{"hyperspector.io/handover-done":"true"}}}`],
        [1, 2],
        'Attached',
        INTERVAL - 4000 - HANDOVER,
      ],
      [
        'handed over: the old copy leaves the IDS VM spec, its objects stay while KubeVirt still holds it',
        world({ diskSnapshots: [snap(1, 0), snap(2, INTERVAL)], snapshotCopyClaims: [copy(1, 1000), copy(2, INTERVAL + 1000, { ...READY_AT(INTERVAL + 4000), ...HANDED_OVER })], idsVm: idsVm([1, 2]), idsVmi: idsVmi({ 1: 'Ready', 2: 'Ready' }) }),
        INTERVAL + 5000 + HANDOVER,
        [],
        [2],
        'Attached',
        INTERVAL - 5000 - HANDOVER,
      ],
      [
        'the old copy unplugged: its claim, then its snapshot, are deleted',
        world({ diskSnapshots: [snap(1, 0), snap(2, INTERVAL)], snapshotCopyClaims: [copy(1, 1000), copy(2, INTERVAL + 1000, { ...READY_AT(INTERVAL + 4000), ...HANDED_OVER })], idsVm: idsVm([2]), idsVmi: idsVmi({ 2: 'Ready' }) }),
        INTERVAL + 6000 + HANDOVER,
        [`delete PersistentVolumeClaim ${name(1)}`, `delete VolumeSnapshot ${name(1)}`],
        [2],
        'Attached',
        INTERVAL - 6000 - HANDOVER,
      ],
      [
        'a new snapshot past its deadline: SnapshotNotReady, the old copy stays, the next try an interval after it',
        world({ diskSnapshots: [snap(1, 0), snap(2, INTERVAL, { ready: false, error: 'quota exceeded' })], snapshotCopyClaims: [copy(1, 1000)], idsVm: idsVm([1]), idsVmi: idsVmi({ 1: 'Ready' }) }),
        INTERVAL + TIMEOUT,
        [],
        [1],
        'SnapshotNotReady',
        INTERVAL - TIMEOUT,
      ],
      [
        'the next try after a failed snapshot: a new one (the failed one goes once superseded)',
        world({ diskSnapshots: [snap(1, 0), snap(2, INTERVAL, { ready: false, error: 'quota exceeded' })], snapshotCopyClaims: [copy(1, 1000)], idsVm: idsVm([1]), idsVmi: idsVmi({ 1: 'Ready' }) }),
        2 * INTERVAL,
        [`create VolumeSnapshot ${name(3)}`],
        [1],
        'SnapshotNotReady',
        undefined,
      ],
      [
        'a failed snapshot superseded by a newer one: deleted, never plugged',
        world({ diskSnapshots: [snap(1, 0), snap(2, INTERVAL, { ready: false }), snap(3, 2 * INTERVAL, { ready: false })], snapshotCopyClaims: [copy(1, 1000)], idsVm: idsVm([1]), idsVmi: idsVmi({ 1: 'Ready' }) }),
        2 * INTERVAL + 1000,
        [`delete VolumeSnapshot ${name(2)}`],
        [1],
        'Attached',
        TIMEOUT - 1000,
      ],
    ];
    for (const [step, o, now, actions, copies, reason, recheck] of cases) {
      it(step, () => {
        const p = plan(o, now);
        assert.deepEqual(describeActions(p.actions), actions);
        assert.deepEqual(plugged(o), copies.map(name), 'the copies in the IDS VM spec');
        assert.equal(diskAttached(M, o, new Outcomes(), p)?.reason, reason);
        assert.equal(p.recheckAfterMs, recheck);
        // Level-triggered: planned again from the same objects (a restarted operator), the same.
        assert.deepEqual(describeActions(plan(structuredClone(o), now).actions), actions);
      });
    }
  });

  it('snapshots with the spec’s class and restores with the source claim’s class, modes, volume mode and the larger size, all owned and labelled', () => {
    const [create] = plan(world(), 0).actions as CreateAction[];
    assert.deepEqual((create!.object as { spec?: unknown }).spec, { source: { persistentVolumeClaimName: 'web-data' }, volumeSnapshotClassName: 'fast' });
    assert.equal(create!.object.metadata?.ownerReferences?.[0]?.uid, 'ms-uid');
    assert.equal(create!.object.metadata?.labels?.['hyperspector.io/role'], 'disk-snapshot');
    assert.equal(create!.object.metadata?.labels?.['hyperspector.io/disk-serial'], idsVolumeName(M, 'data'));
    const [restore] = plan(world({ diskSnapshots: [snap(1, 0)] }), MINUTE).actions as CreateAction[];
    assert.deepEqual((restore!.object as { spec?: unknown }).spec, {
      accessModes: ['ReadWriteOnce'],
      storageClassName: 'csi-fast',
      volumeMode: 'Filesystem',
      resources: { requests: { storage: '2Gi' } },
      dataSource: { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: name(1) },
    });
    // Without a class in the spec the snapshot controller picks the default for the driver.
    const noClass = ms();
    delete noClass.spec.diskInspection!.snapshot!.volumeSnapshotClassName;
    const [bare] = plan(world({}, noClass), 0, noClass).actions as CreateAction[];
    assert.deepEqual((bare!.object as { spec?: unknown }).spec, { source: { persistentVolumeClaimName: 'web-data' } });
  });

  it('the copy is plugged read-only, not shareable, under the server volume’s serial; every generation the same serial', () => {
    const one = buildSnapshotCopyDisk(M, 'data', 1);
    const two = buildSnapshotCopyDisk(M, 'data', 2);
    assert.deepEqual(one.disk, { name: name(1), disk: { bus: 'virtio', readonly: true }, serial: idsVolumeName(M, 'data') });
    assert.deepEqual(one.volume, { name: name(1), persistentVolumeClaim: { claimName: name(1), readOnly: true, hotpluggable: true } });
    assert.equal(two.disk.serial, one.disk.serial);
    assert.notEqual(two.disk.name, one.disk.name);
  });

  it('DiskAttached names the snapshot, its claim and time; status.diskInspection.snapshots shows the current copy', () => {
    const o = world({ diskSnapshots: [snap(1, 0)], snapshotCopyClaims: [copy(1, 1000)], idsVm: idsVm([1]), idsVmi: idsVmi({ 1: 'Ready' }) });
    const c = diskAttached(M, o, new Outcomes(), plan(o, MINUTE));
    assert.equal(c?.status, 'True');
    assert.match(c!.message, new RegExp(`data \\(snapshot ${name(1)} of claim web-data taken 2026-12-01T10:00:00.000Z, serial ${idsVolumeName(M, 'data')}, target vdb\\)`));
    assert.deepEqual(snapshotStatuses(M, o), [{ volume: 'data', volumeSnapshot: name(1), claim: name(1), creationTime: '2026-12-01T10:00:00.000Z' }]);
  });

  it('SnapshotNotReady names the snapshot, its error and the copy the IDS keeps reading', () => {
    const o = world({ diskSnapshots: [snap(1, 0), snap(2, INTERVAL, { ready: false, error: 'quota exceeded' })], snapshotCopyClaims: [copy(1, 1000)], idsVm: idsVm([1]), idsVmi: idsVmi({ 1: 'Ready' }) });
    const c = diskAttached(M, o, new Outcomes(), plan(o, INTERVAL + TIMEOUT + 1000));
    assert.equal(c?.status, 'False');
    assert.match(c!.message, new RegExp(`VolumeSnapshot shop/${name(2)} of claim web-data \\(server volume data\\), taken 2026-12-01T10:30:00.000Z, is not readyToUse within its deadline of 300 s: quota exceeded; the IDS VM keeps reading ${name(1)} \\(snapshot of 2026-12-01T10:00:00.000Z\\); the next snapshot is taken 1800 s after this one`));
    const first = world({ diskSnapshots: [snap(1, 0, { ready: false })] });
    assert.match(diskAttached(M, first, new Outcomes(), plan(first, TIMEOUT))!.message, /is not readyToUse within its deadline of 300 s; the IDS VM has no copy of it yet/);
    assert.deepEqual(snapshotStatuses(M, o)?.map((s) => s.volumeSnapshot), [name(1)]);
  });

  it('without the VolumeSnapshot API: DiskAttached says so, nothing is planned, the IDS VM keeps what it has', () => {
    const o = world({ diskSnapshots: undefined, snapshotApiUnavailable: 'listing VolumeSnapshots failed: 404 the server could not find the requested resource', idsVm: idsVm([1]) });
    const c = diskAttached(M, o, new Outcomes(), plan(o, 0));
    assert.equal(c?.reason, 'SnapshotAPIUnavailable');
    assert.match(c!.message, /needs CSI VolumeSnapshots \(snapshot\.storage\.k8s\.io\/v1\), which the operator cannot read: listing VolumeSnapshots failed: 404.*install the external-snapshotter CRDs/);
    assert.deepEqual(plan(o, 0).actions, []);
    assert.deepEqual(plugged(o), [name(1)]);
  });

  it('copies of a volume no longer inspected (mode switched to Live) are deleted once unplugged, never before', () => {
    const live = ms('Live');
    const objects = { diskSnapshots: [snap(1, 0)], snapshotCopyClaims: [copy(1, 1000)] };
    const stillPlugged = world({ ...objects, idsVm: idsVm([1]), idsVmi: idsVmi({ 1: 'Ready' }) }, live);
    assert.deepEqual(describeActions(plan(stillPlugged, MINUTE, live).actions), []);
    assert.deepEqual(resolveDiskInspection(live, stillPlugged).ids?.hotplug.map((h) => h.volume.name), [idsVolumeName(live, 'data')], 'Live mode plugs the server volume instead');
    const unplugged = world({ ...objects, idsVm: idsVm([]), idsVmi: idsVmi({}) }, live);
    assert.deepEqual(describeActions(plan(unplugged, MINUTE, live).actions), [`delete PersistentVolumeClaim ${name(1)}`, `delete VolumeSnapshot ${name(1)}`]);
  });

  it('where only HotplugVolumes is on: addvolume for the new copy (same serial), removevolume for the old one after the handover', () => {
    const legacy: KubeVirt = { ...KUBEVIRT, spec: { configuration: { developerConfiguration: { featureGates: ['HotplugVolumes'] } } } };
    const incoming = world({ kubevirt: legacy, diskSnapshots: [snap(1, 0), snap(2, INTERVAL)], snapshotCopyClaims: [copy(1, 1000), copy(2, INTERVAL + 1000)], idsVm: idsVm([1]), idsVmi: idsVmi({ 1: 'Ready' }) });
    const [add, ...rest] = planDiskHotplug(M, incoming) as SubresourceAction[];
    assert.equal(rest.length, 0);
    assert.match(add!.path, /\/virtualmachines\/web-1-ids\/addvolume$/);
    assert.deepEqual(add!.body, {
      name: name(2),
      disk: { name: name(2), disk: { bus: 'virtio', readonly: true }, serial: idsVolumeName(M, 'data') },
      volumeSource: { persistentVolumeClaim: { claimName: name(2), readOnly: true, hotpluggable: true } },
    });
    const handedOver = world({ kubevirt: legacy, diskSnapshots: [snap(1, 0), snap(2, INTERVAL)], snapshotCopyClaims: [copy(1, 1000), copy(2, INTERVAL + 1000, { ...READY_AT(INTERVAL), ...HANDED_OVER })], idsVm: idsVm([1, 2]), idsVmi: idsVmi({ 1: 'Ready', 2: 'Ready' }) });
    const [remove, ...others] = planDiskHotplug(M, handedOver) as SubresourceAction[];
    assert.equal(others.length, 0);
    assert.match(remove!.path, /\/removevolume$/);
    assert.deepEqual(remove!.body, { name: name(1) });
    assert.match(remove!.log, /a superseded snapshot copy/);
  });

  it('teardown: once the IDS VM is gone, every snapshot and copy of ours is deleted (preconditioned on its UID), never the server’s claim', () => {
    const deleting = { ...M, metadata: { ...M.metadata, deletionTimestamp: new Date(T0).toISOString() } };
    const o = world({ diskSnapshots: [snap(1, 0), snap(2, INTERVAL)], snapshotCopyClaims: [copy(1, 1000), copy(2, INTERVAL)], idsVm: idsVm([1, 2]) });
    const first = planTeardown(deleting, o, new Date(T0));
    assert.ok(!describeActions(first.actions).some((a) => a.includes(name(1))), 'nothing of ours while the IDS VM exists');
    const after = planTeardown(deleting, { ...o, idsVm: undefined }, new Date(T0));
    const deletes = after.actions.filter((a): a is DeleteAction => a.type === 'delete' && /-g\d+$/.test(a.name));
    assert.deepEqual(deletes.map((d) => `${d.resource.kind} ${d.name} ${d.preconditionUid}`), [
      `PersistentVolumeClaim ${name(1)} uid-1`,
      `PersistentVolumeClaim ${name(2)} uid-2`,
      `VolumeSnapshot ${name(1)} uid-1`,
      `VolumeSnapshot ${name(2)} uid-2`,
    ]);
    assert.ok(!after.actions.some((a) => a.type === 'delete' && a.name === 'web-data'));
  });
});
