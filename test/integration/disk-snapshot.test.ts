// Disk inspection, Snapshot mode, against the real API server, KubeVirt's own virt-controller and
// virt-api (attachment pods, volumeStatus phases) and kube-controller-manager's PV binder; the CSI
// snapshotter stand-in (testenv/storage/snapshot-standin.ts) cuts the snapshots and provisions the
// restored claims. The operator runs with --snapshot-minute=1s: the CRD bounds stay real minutes,
// each lasts a second here.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import * as k8s from '@kubernetes/client-node';
import type { MonitoredServer } from '../../src/api/v1alpha1/monitoredserver-types.ts';
import { diskSerialForVolume } from '../../src/builders/disk-inspection-cloud-init.ts';
import { OperatorTestEnv, MS, VM, VMI } from '../../testenv/operator/operator-env.ts';
import { startOperatorProcess, type OperatorProcess } from '../../testenv/operator/operator-process.ts';
import { monitoredServer, vmTemplate } from '../../testenv/fixtures/monitoredservers.ts';
import { auditRequests, describeRequests, WRITE_VERBS } from '../../testenv/cluster/audit-log.ts';
import { controlPlaneBinaries } from '../../testenv/cluster/binaries.ts';
import { defaultSnapshotClass, SnapshotStandIn } from '../../testenv/storage/snapshot-standin.ts';
import { waitFor } from '../../testenv/wait.ts';

const NS = 'snapshots';
const VS = { group: 'snapshot.storage.k8s.io', version: 'v1', plural: 'volumesnapshots' };
/** Rotation every 20 "minutes" (20 s with --snapshot-minute=1s); a snapshot may take 15 to be ready. */
const INTERVAL = 20;
const READY_TIMEOUT = 15;

type VolumeStatus = { name: string; phase?: string; target?: string };
type VmiSeen = { at: number; volumes: string[]; ready: string[] };

function serverTemplate(name: string, claimName: string) {
  const t = vmTemplate({ app: name });
  t.spec.template!.spec!.domain.devices.disks!.push({ name: 'data', disk: { bus: 'virtio' } });
  t.spec.template!.spec!.volumes!.push({ name: 'data', persistentVolumeClaim: { claimName } });
  return t;
}

function snapshotServer(name: string, claimName: string): MonitoredServer {
  return monitoredServer(name, NS, {
    server: { template: serverTemplate(name, claimName), disks: ['data'] },
    diskInspection: { mode: 'Snapshot', snapshot: { intervalMinutes: INTERVAL, readyTimeoutMinutes: READY_TIMEOUT } },
  });
}

describe('disk inspection, Snapshot mode: rotated CSI snapshot copies hot-plugged read-only into the IDS VM', function () {
  let env: OperatorTestEnv;
  let operator: OperatorProcess;
  let standin: SnapshotStandIn;
  let stopVmiWatch: (() => void) | undefined;
  const seen: VmiSeen[] = [];

  before(async function () {
    env = await OperatorTestEnv.start(3, undefined, { featureGates: ['DeclarativeHotplugVolumes'] });
    await env.namespace(NS);
    await env.custom.createClusterCustomObject({ group: VS.group, version: VS.version, plural: 'volumesnapshotclasses', body: defaultSnapshotClass() });
    const log = env.cluster.logOf('snapshot-standin');
    standin = new SnapshotStandIn(env.cluster.kubeConfig, (line) => appendFileSync(log, `${new Date().toISOString()} ${line}\n`));
    standin.start();
    operator = await startOperatorProcess(env.cluster, { user: 'operator', extraArgs: ['--snapshot-minute=1s'] });
  });
  after(async function () {
    stopVmiWatch?.();
    await operator?.stop();
    standin?.stop();
    await env?.stop();
  });
  afterEach(function () {
    if (!operator?.process.running) throw new Error('the operator process must never crash');
  });

  async function boundClaim(name: string): Promise<k8s.V1PersistentVolumeClaim> {
    await env.core.createPersistentVolume({
      body: {
        metadata: { name: `${NS}-${name}` },
        spec: { capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], hostPath: { path: `/var/tmp/${NS}-${name}` }, persistentVolumeReclaimPolicy: 'Retain', storageClassName: 'manual' },
      },
    });
    await env.core.createNamespacedPersistentVolumeClaim({
      namespace: NS,
      body: { metadata: { name }, spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'manual', resources: { requests: { storage: '1Gi' } }, volumeName: `${NS}-${name}` } },
    });
    return waitFor(async () => {
      const pvc = await env.core.readNamespacedPersistentVolumeClaim({ namespace: NS, name });
      return pvc.status?.phase === 'Bound' ? pvc : undefined;
    }, { description: `PVC ${name} Bound` });
  }

  /** Every version of the IDS VMI, as a watch delivers them: which copies it holds and which are Ready. */
  async function watchIdsVmi(name: string): Promise<void> {
    const controller = await new k8s.Watch(env.cluster.kubeConfig).watch(
      `/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachineinstances`,
      { fieldSelector: `metadata.name=${name}` },
      (_type, vmi: { spec?: { volumes?: Array<{ name: string }> }; status?: { volumeStatus?: VolumeStatus[] } }) => {
        const volumes = (vmi.spec?.volumes ?? []).map((v) => v.name).filter((n) => /-g\d+$/.test(n));
        const ready = (vmi.status?.volumeStatus ?? []).filter((s) => s.phase === 'Ready' && /-g\d+$/.test(s.name)).map((s) => s.name);
        seen.push({ at: Date.now(), volumes, ready });
      },
      () => undefined,
    );
    stopVmiWatch = () => controller.abort();
  }

  const copyName = (generation: number) => `${diskSerialForVolume('web', 'data')}-g${generation}`;
  const operatorRequests = (since: Date) => auditRequests(env.cluster.auditLogPath, { username: env.cluster.users.operator.name, since });

  it('refuses an interval out of the CRD bounds and a snapshot block without mode Snapshot (kubectl apply)', function () {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ mode: 'Snapshot', snapshot: { intervalMinutes: 1 } }, /spec\.diskInspection\.snapshot\.intervalMinutes: Invalid value: 1: spec\.diskInspection\.snapshot\.intervalMinutes in body should be greater than or equal to 5/],
      [{ mode: 'Snapshot', snapshot: { intervalMinutes: 20000 } }, /intervalMinutes in body should be less than or equal to 10080/],
      [{ mode: 'Snapshot', snapshot: { readyTimeoutMinutes: 0 } }, /readyTimeoutMinutes in body should be greater than or equal to 1/],
      [{ mode: 'Live', snapshot: { intervalMinutes: 60 } }, /spec\.diskInspection\.snapshot: Invalid value: .*spec\.diskInspection\.snapshot is only valid with mode: Snapshot/],
    ];
    for (const [diskInspection, message] of cases) {
      const ms = monitoredServer('refused', NS, { server: { template: serverTemplate('refused', 'none'), disks: ['data'] }, diskInspection: diskInspection as never });
      const file = join(tmpdir(), `hs-snapshot-refused-${process.pid}.json`);
      writeFileSync(file, JSON.stringify(ms));
      const r = spawnSync(controlPlaneBinaries().kubectl, [`--kubeconfig=${env.cluster.kubeconfigPath}`, 'apply', '-f', file], { encoding: 'utf8' });
      assert.notEqual(r.status, 0, `kubectl apply must fail for ${JSON.stringify(diskInspection)}`);
      assert.match(r.stderr, message);
    }
  });

  it('snapshots the server volume, restores it into a claim and plugs the copy read-only: DiskAttached and Ready True', async function () {
    const claim = await boundClaim('web-data');
    const applied = Date.now();
    await env.createMonitoredServer(snapshotServer('web', 'web-data'));
    const ms = await env.waitForCondition(NS, 'web', 'DiskAttached', 'True', 'Attached', 180_000);
    console.log(`      apply → DiskAttached=True (Snapshot mode, first copy): ${((Date.now() - applied) / 1000).toFixed(1)} s`);
    await watchIdsVmi('web-ids');
    const serial = diskSerialForVolume('web', 'data');
    const name = copyName(1);
    assert.match(env.condition(ms, 'DiskAttached')!.message, new RegExp(`data \\(snapshot ${name} of claim web-data taken .*, serial ${serial}, target vd[a-z]\\)`));

    const snapshot = await env.custom.getNamespacedCustomObject({ ...VS, namespace: NS, name }) as { metadata: k8s.V1ObjectMeta; spec: { source: { persistentVolumeClaimName: string } }; status: { readyToUse: boolean; creationTime: string } };
    assert.equal(snapshot.spec.source.persistentVolumeClaimName, 'web-data');
    assert.equal(snapshot.status.readyToUse, true);
    assert.equal(snapshot.metadata.ownerReferences?.[0]?.uid, ms.metadata.uid);
    assert.equal(snapshot.metadata.labels?.['hyperspector.io/role'], 'disk-snapshot');
    const copy = await env.core.readNamespacedPersistentVolumeClaim({ namespace: NS, name });
    assert.deepEqual({ ...copy.spec?.dataSource }, { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name });
    assert.equal(copy.spec?.storageClassName, 'manual');
    assert.deepEqual(copy.spec?.accessModes, ['ReadWriteOnce']);
    assert.equal(copy.status?.phase, 'Bound');
    assert.equal(copy.metadata?.ownerReferences?.[0]?.uid, ms.metadata.uid);

    const ids = await env.get(VM, NS, 'web-ids');
    const disk = ids?.spec.template.spec.domain.devices.disks.find((d: { name: string }) => d.name === name);
    assert.deepEqual(disk, { name, disk: { bus: 'virtio', readonly: true }, serial });
    const volume = ids?.spec.template.spec.volumes.find((v: { name: string }) => v.name === name);
    assert.deepEqual(volume, { name, persistentVolumeClaim: { claimName: name, readOnly: true, hotpluggable: true } });
    assert.ok(!ids?.spec.template.spec.volumes.some((v: { persistentVolumeClaim?: { claimName: string } }) => v.persistentVolumeClaim?.claimName === 'web-data'), 'the server’s own claim is never plugged in Snapshot mode');
    assert.deepEqual(ms.status.diskInspection, { snapshots: [{ volume: 'data', volumeSnapshot: name, claim: name, creationTime: snapshot.status.creationTime }] });
    await env.waitForCondition(NS, 'web', 'Ready', 'True', 'Monitoring', 60_000);
    assert.equal(claim.metadata?.uid, (await env.core.readNamespacedPersistentVolumeClaim({ namespace: NS, name: 'web-data' })).metadata?.uid);
  });

  it('rotates on the interval: the new copy is plugged and Ready before the old one is unplugged, then its claim and snapshot are deleted', async function () {
    const since = new Date();
    const [g1, g2] = [copyName(1), copyName(2)];
    const ms = await waitFor(async () => {
      const m = await env.get(MS, NS, 'web');
      return m?.status?.diskInspection?.snapshots?.[0]?.volumeSnapshot === g2 && env.condition(m, 'DiskAttached')?.status === 'True' ? m : undefined;
    }, { timeoutMs: 120_000, description: 'the second copy current' });
    await waitFor(async () => !seen.at(-1)?.volumes.includes(g1) || undefined, { timeoutMs: 60_000, description: 'the first copy unplugged' });
    await waitFor(async () => {
      try {
        await env.core.readNamespacedPersistentVolumeClaim({ namespace: NS, name: g1 });
        return undefined;
      } catch {
        return true;
      }
    }, { timeoutMs: 60_000, description: `claim ${g1} deleted` });
    await waitFor(async () => (await env.custom.listNamespacedCustomObject({ ...VS, namespace: NS }) as { items: Array<{ metadata: { name: string } }> }).items.every((s) => s.metadata.name !== g1) || undefined, { timeoutMs: 30_000, description: `VolumeSnapshot ${g1} deleted` });

    // The order, from every version of the IDS VMI the watch delivered.
    const g2ReadyAt = seen.find((s) => s.ready.includes(g2))?.at;
    const g1GoneAt = seen.find((s) => !s.volumes.includes(g1))?.at;
    assert.ok(g2ReadyAt !== undefined && g1GoneAt !== undefined, JSON.stringify(seen));
    assert.ok(g2ReadyAt <= g1GoneAt, `copy 2 Ready (${g2ReadyAt}) before copy 1 unplugged (${g1GoneAt}): ${JSON.stringify(seen)}`);
    assert.ok(seen.every((s) => s.volumes.length > 0), `the IDS VMI always holds a copy: ${JSON.stringify(seen)}`);
    assert.ok(seen.some((s) => s.volumes.includes(g1) && s.volumes.includes(g2)), 'both copies plugged at once during the rotation');
    // And from the audit log: the old claim and snapshot are deleted only after the new copy was Ready.
    const writes = operatorRequests(since).filter((e) => WRITE_VERBS.has(e.verb));
    const created = writes.find((e) => e.verb === 'create' && e.objectRef?.resource === 'volumesnapshots' && (e.responseStatus?.code ?? 0) < 300);
    const deletions = writes.filter((e) => e.verb === 'delete' && (e.objectRef?.name === g1) && (e.responseStatus?.code ?? 0) < 300);
    assert.deepEqual(deletions.map((e) => e.objectRef?.resource).sort(), ['persistentvolumeclaims', 'volumesnapshots'], describeRequests(writes));
    for (const d of deletions) assert.ok(Date.parse(d.requestReceivedTimestamp) >= g2ReadyAt - 1000, `${d.objectRef?.resource} of ${g1} deleted after copy 2 was Ready`);
    assert.ok(writes.every((e) => e.objectRef?.resource !== 'persistentvolumeclaims' || /-g\d+$/.test(e.objectRef?.name ?? '') || e.verb === 'create'), `the operator writes no claim but its copies: ${describeRequests(writes)}`);
    const snapshot = await env.custom.getNamespacedCustomObject({ ...VS, namespace: NS, name: g2 }) as { metadata: { creationTimestamp: string } };
    console.log(`      rotation (VolumeSnapshot ${g2} created → Ready copy plugged): ${((g2ReadyAt - Date.parse(snapshot.metadata.creationTimestamp)) / 1000).toFixed(1)} s; → old copy unplugged: ${((g1GoneAt - Date.parse(snapshot.metadata.creationTimestamp)) / 1000).toFixed(1)} s`);
    assert.ok(created, 'the operator created the second snapshot');
    assert.equal(env.condition(ms, 'Ready')?.status, 'True');
  });

  it('a snapshot that is not ready in time: DiskAttached=False SnapshotNotReady with its error and a Warning Event, the previous copy stays plugged', async function () {
    const error = 'rpc error: code = ResourceExhausted desc = the test driver holds this snapshot';
    standin.holdSnapshots({ error });
    const g2 = copyName(2);
    const g3 = copyName(3);
    const held = await env.waitForCondition(NS, 'web', 'DiskAttached', 'False', 'SnapshotNotReady', 120_000);
    const message = env.condition(held, 'DiskAttached')!.message;
    assert.match(message, new RegExp(`VolumeSnapshot ${NS}/${g3} of claim web-data \\(server volume data\\), taken \\S+, is not readyToUse within its deadline of ${READY_TIMEOUT} s: ${error.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}; the IDS VM keeps reading ${g2}`));
    const event = await env.waitForEvent(NS, 'web', 'SnapshotNotReady');
    assert.equal(event.type, 'Warning');
    const vmi = await env.get(VMI, NS, 'web-ids');
    assert.equal((vmi?.status.volumeStatus as VolumeStatus[]).find((s) => s.name === g2)?.phase, 'Ready', 'the previous copy stays plugged');
    assert.ok(!vmi?.spec.volumes.some((v: { name: string }) => v.name === g3), 'nothing of the held snapshot is plugged');
    assert.equal(held.status.diskInspection.snapshots[0].volumeSnapshot, g2);

    // The driver recovers: the held snapshot becomes ready and rotates in (the IDS VMI shows it at
    // once; the status, whose progress writes are coalesced, may already show a later rotation).
    standin.release();
    await waitFor(async () => {
      const v = await env.get(VMI, NS, 'web-ids');
      return (v?.status.volumeStatus as VolumeStatus[] | undefined)?.some((s) => s.name === g3 && s.phase === 'Ready') || undefined;
    }, { timeoutMs: 60_000, description: 'the third copy plugged after the release' });
    await waitFor(async () => {
      const m = await env.get(MS, NS, 'web');
      const generation = Number(/-g(\d+)$/.exec(m?.status?.diskInspection?.snapshots?.[0]?.volumeSnapshot ?? '')?.[1] ?? 0);
      return generation >= 3 && env.condition(m, 'DiskAttached')?.status === 'True' ? m : undefined;
    }, { timeoutMs: 120_000, description: 'DiskAttached True again with the third copy or a later one' });
  });

  it('an operator killed mid-rotation: the restarted one carries on from the objects (no copy lost, none left behind)', async function () {
    const generationOf = (n: string) => Number(/-g(\d+)$/.exec(n)?.[1] ?? 0);
    const snapshotNames = async () => (await env.custom.listNamespacedCustomObject({ ...VS, namespace: NS }) as { items: Array<{ metadata: { name: string } }> }).items.map((s) => s.metadata.name);
    const plugged = async () => ((await env.get(VMI, NS, 'web-ids'))?.status.volumeStatus as VolumeStatus[]).filter((s) => s.phase === 'Ready').map((s) => s.name);
    const current = Math.max(...(await plugged()).map(generationOf));
    // A rotation has begun: a snapshot newer than the plugged copy exists.
    const next = await waitFor(async () => Math.max(...(await snapshotNames()).map(generationOf)) > current ? current + 1 : undefined, { timeoutMs: 60_000, intervalMs: 100, description: 'the next snapshot taken' });
    await operator.kill();
    const killedAt = Date.now();
    operator = await startOperatorProcess(env.cluster, { user: 'operator', extraArgs: ['--snapshot-minute=1s'] });
    await waitFor(async () => {
      const vmi = await env.get(VMI, NS, 'web-ids');
      const ready = (vmi?.status.volumeStatus as VolumeStatus[]).filter((s) => s.phase === 'Ready').map((s) => s.name);
      const volumes = (vmi?.spec.volumes as Array<{ name: string }>).map((v) => v.name);
      return ready.includes(copyName(next)) && !volumes.includes(copyName(current)) ? true : undefined;
    }, { timeoutMs: 90_000, description: `copy ${next} plugged and copy ${current} unplugged by the restarted operator` });
    await waitFor(async () => !(await snapshotNames()).includes(copyName(current)) || undefined, { timeoutMs: 30_000, description: `snapshot ${current} deleted` });
    console.log(`      operator killed mid-rotation (copy ${current} → ${next}); the restarted one finished it ${((Date.now() - killedAt) / 1000).toFixed(1)} s later`);
    assert.ok(seen.filter((s) => s.at >= killedAt).every((s) => s.volumes.length > 0), 'the IDS VMI held a copy throughout');
    const left = await snapshotNames();
    assert.ok(left.every((n) => generationOf(n) >= next), `no older snapshot left behind: ${left.join(', ')}`);
  });

  it('teardown removes the IDS VM, every snapshot and copy, and leaves the server’s claim and VM untouched', async function () {
    const claimBefore = await env.core.readNamespacedPersistentVolumeClaim({ namespace: NS, name: 'web-data' });
    const serverBefore = await env.get(VM, NS, 'web-server');
    await env.delete(MS, NS, 'web');
    await env.waitGone(MS, NS, 'web', 120_000);
    await env.waitGone(VM, NS, 'web-ids', 30_000);
    await waitFor(async () => {
      const snapshots = (await env.custom.listNamespacedCustomObject({ ...VS, namespace: NS }) as { items: unknown[] }).items;
      const copies = (await env.core.listNamespacedPersistentVolumeClaim({ namespace: NS, labelSelector: 'hyperspector.io/role=disk-snapshot' })).items;
      return snapshots.length === 0 && copies.length === 0 ? true : undefined;
    }, { timeoutMs: 60_000, description: 'every snapshot and copy claim gone' });
    const claimAfter = await env.core.readNamespacedPersistentVolumeClaim({ namespace: NS, name: 'web-data' });
    assert.equal(claimAfter.metadata?.uid, claimBefore.metadata?.uid);
    assert.equal(claimAfter.metadata?.deletionTimestamp, undefined);
    assert.equal(claimAfter.status?.phase, 'Bound');
    assert.equal(claimAfter.metadata?.resourceVersion, claimBefore.metadata?.resourceVersion, 'the server’s claim was not written');
    const serverAfter = await env.get(VM, NS, 'web-server');
    assert.equal(serverAfter?.metadata.uid, serverBefore?.metadata.uid, 'the server VM is kept (deletionPolicy Retain)');
    assert.deepEqual(serverAfter?.spec.template.spec.volumes, serverBefore?.spec.template.spec.volumes);
  });
});
