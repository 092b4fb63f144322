// Disk inspection, Live mode, against the real API server and KubeVirt's own virt-controller and
// virt-api (attachment pods, volumeStatus phases, the subresources, the webhooks); the virt-handler
// stand-in reports the hot-plugged volume mounted and attached as virt-handler would.
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import type { MonitoredServer } from '../../src/api/v1alpha1/monitoredserver-types.ts';
import { diskSerialForVolume } from '../../src/builders/disk-inspection-cloud-init.ts';
import { OperatorTestEnv, useOperatorEnv, MS, VM, VMI } from '../../testenv/operator/operator-env.ts';
import { monitoredServer, vmTemplate } from '../../testenv/fixtures/monitoredservers.ts';
import { auditRequests, describeRequests, WRITE_VERBS } from '../../testenv/cluster/audit-log.ts';
import { waitFor } from '../../testenv/wait.ts';
import { createKubeApi } from '../../src/kube/client/rest.ts';

const NS = 'disks';
const USER_DATA = '#cloud-config\nruncmd:\n- [echo, the-users-own-runcmd]\n';

/** A server template with a container root disk and, for each claim, a PVC volume of that name. */
function serverTemplate(name: string, claims: Record<string, string>, extra: Array<Record<string, unknown>> = []) {
  const t = vmTemplate({ app: name });
  const spec = t.spec.template!.spec!;
  for (const [volume, claimName] of Object.entries(claims)) {
    spec.domain.devices.disks!.push({ name: volume, disk: { bus: 'virtio' } });
    spec.volumes!.push({ name: volume, persistentVolumeClaim: { claimName } });
  }
  for (const v of extra) {
    spec.domain.devices.disks!.push({ name: v.name as string, disk: { bus: 'virtio' } });
    spec.volumes!.push(v as never);
  }
  return t;
}

/** An IDS template whose cloud-init carries the user's own inline user data. */
function idsTemplate(name: string) {
  const t = vmTemplate({ app: `${name}-ids` }, '2Gi');
  t.spec.template!.spec!.domain.devices.disks!.push({ name: 'cloudinit', disk: { bus: 'virtio' } });
  t.spec.template!.spec!.volumes!.push({ name: 'cloudinit', cloudInitNoCloud: { userData: USER_DATA } });
  return t;
}

function withDisks(name: string, claims: Record<string, string>, disks: string[], extra: Array<Record<string, unknown>> = []): MonitoredServer {
  return monitoredServer(name, NS, { server: { template: serverTemplate(name, claims, extra), disks }, ids: { template: idsTemplate(name) } });
}

describe('disk inspection, Live mode: server volumes hot-plugged read-only into the IDS VM', function () {
  // Declarative hotplug only (KubeVirt 1.8 syncs the VM spec's hotpluggable volumes only when
  // HotplugVolumes is off); a later test switches HotplugVolumes on.
  const world = useOperatorEnv(NS, 3, { featureGates: ['DeclarativeHotplugVolumes'] });
  let env: OperatorTestEnv;
  before(() => {
    env = world.env();
  });

  /** A hostPath PV and a claim bound to it by kube-controller-manager's PV binder. */
  async function boundClaim(name: string, accessModes = ['ReadWriteOnce']): Promise<k8s.V1PersistentVolumeClaim> {
    await env.core.createPersistentVolume({
      body: {
        metadata: { name: `${NS}-${name}` },
        spec: { capacity: { storage: '1Gi' }, accessModes, hostPath: { path: `/var/tmp/${NS}-${name}` }, persistentVolumeReclaimPolicy: 'Retain', storageClassName: 'manual' },
      },
    });
    await env.core.createNamespacedPersistentVolumeClaim({
      namespace: NS,
      body: { metadata: { name }, spec: { accessModes, storageClassName: 'manual', resources: { requests: { storage: '1Gi' } }, volumeName: `${NS}-${name}` } },
    });
    return waitFor(async () => {
      const pvc = await env.core.readNamespacedPersistentVolumeClaim({ namespace: NS, name });
      return pvc.status?.phase === 'Bound' ? pvc : undefined;
    }, { description: `PVC ${name} Bound` });
  }

  function volumeStatus(vmi: { status?: { volumeStatus?: Array<{ name: string; phase?: string; target?: string }> } } | undefined, name: string) {
    return vmi?.status?.volumeStatus?.find((v) => v.name === name);
  }

  const operatorRequests = (since: Date) => auditRequests(env.cluster.auditLogPath, { username: env.cluster.users.operator.name, since });

  it('plugs a PVC volume read-only and shareable by declarative hotplug: attachment pod, volumeStatus Ready, DiskAttached and Ready True', async function () {
    const claim = await boundClaim('web-data');
    const applied = Date.now();
    await env.createMonitoredServer(withDisks('web', { data: 'web-data' }, ['data']));
    const ms = await env.waitForCondition(NS, 'web', 'DiskAttached', 'True', 'Attached', 120_000);
    const attachedMs = Date.now() - applied;
    console.log(`      apply → DiskAttached=True (declarative hotplug): ${(attachedMs / 1000).toFixed(1)} s`);
    const serial = diskSerialForVolume('web', 'data');
    const message = env.condition(ms, 'DiskAttached')!.message;
    assert.match(message, /declarative hotplug \(feature gate DeclarativeHotplugVolumes in KubeVirt CR kubevirt\/kubevirt\)/);
    assert.match(message, new RegExp(`data \\(claim web-data, serial ${serial}, target vd[a-z]\\)`));

    const ids = await env.get(VM, NS, 'web-ids');
    const disk = ids?.spec.template.spec.domain.devices.disks.find((d: { name: string }) => d.name === serial);
    assert.deepEqual(disk, { name: serial, disk: { bus: 'virtio', readonly: true }, shareable: true, serial });
    const volume = ids?.spec.template.spec.volumes.find((v: { name: string }) => v.name === serial);
    assert.deepEqual(volume, { name: serial, persistentVolumeClaim: { claimName: 'web-data', readOnly: true, hotpluggable: true } });

    const vmi = await env.get(VMI, NS, 'web-ids');
    const entry = volumeStatus(vmi, serial) as unknown as { phase: string; target: string; hotplugVolume: { attachPodName: string } };
    assert.equal(entry.phase, 'Ready');
    assert.match(entry.target, /^vd[a-z]$/);
    const attachment = await env.core.readNamespacedPod({ namespace: NS, name: entry.hotplugVolume.attachPodName });
    assert.equal(attachment.spec?.nodeName, vmi?.status.nodeName, 'virt-controller’s attachment pod runs on the IDS VMI’s node');
    const serverVmi = await env.get(VMI, NS, 'web-server');
    assert.equal(vmi?.status.nodeName, serverVmi?.status.nodeName, 'beside the server, which holds the RWO claim');
    // KubeVirt v1.8 mounts the claim into the attachment pod without readOnly (template.go
    // RenderHotplugAttachmentPodTemplate ignores it): read-only is the disk's, down to QEMU.
    assert.ok(attachment.spec?.volumes?.some((v) => v.persistentVolumeClaim?.claimName === 'web-data'), 'the attachment pod mounts the claim');

    // The user's inline user data is kept, merged with the mount script, in a Secret of the MonitoredServer
    // (which also carries the network data with the IDS-network address).
    const cloudInit = ids?.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'cloudinit');
    assert.deepEqual(cloudInit, { name: 'cloudinit', cloudInitNoCloud: { secretRef: { name: 'web-ids-cloud-init' }, networkDataSecretRef: { name: 'web-ids-cloud-init' } } });
    const secret = await env.core.readNamespacedSecret({ namespace: NS, name: 'web-ids-cloud-init' });
    assert.equal(secret.metadata?.ownerReferences?.[0]?.uid, ms.metadata.uid);
    const userData = Buffer.from(secret.data?.userdata ?? '', 'base64').toString('utf8');
    assert.match(userData, /^#cloud-config\n/);
    assert.match(userData, /the-users-own-runcmd/, 'the user’s runcmd is kept');
    assert.match(userData, new RegExp(`${serial} data`), 'the mount script knows the disk by its serial');
    assert.ok(userData.length > 2048, 'larger than KubeVirt’s inline limit: hence the Secret');

    const ready = await env.waitForCondition(NS, 'web', 'Ready', 'True', 'Monitoring', 60_000);
    assert.equal(env.condition(ready, 'Ready')?.status, 'True');
    assert.equal(claim.metadata?.uid, (await env.core.readNamespacedPersistentVolumeClaim({ namespace: NS, name: 'web-data' })).metadata?.uid);
  });

  it('unplugs a disk removed from spec.server.disks without restarting the IDS VM', async function () {
    const serial = diskSerialForVolume('web', 'data');
    const before = await env.get(VMI, NS, 'web-ids');
    await env.mergePatch(MS, NS, 'web', { spec: { server: { disks: [] } } });
    await waitFor(async () => {
      const vmi = await env.get(VMI, NS, 'web-ids');
      return vmi && !vmi.spec.volumes.some((v: { name: string }) => v.name === serial) && !volumeStatus(vmi, serial) ? vmi : undefined;
    }, { timeoutMs: 90_000, description: 'the disk unplugged from the IDS VMI' });
    const ids = await env.get(VM, NS, 'web-ids');
    assert.ok(!ids?.spec.template.spec.volumes.some((v: { name: string }) => v.name === serial), 'gone from the IDS VM spec');
    const ms = await env.waitForCondition(NS, 'web', 'Ready', 'True', 'Monitoring', 60_000);
    assert.equal(env.condition(ms, 'DiskAttached'), undefined, 'no disks, no DiskAttached');
    assert.equal((await env.get(VMI, NS, 'web-ids'))?.metadata.uid, before?.metadata.uid, 'the IDS VMI kept running');
  });

  it('refuses what cannot be plugged, with the reason and what to do, touching nothing and without a hot loop', async function () {
    await boundClaim('solo-data');
    await boundClaim('pod-only', ['ReadWriteOncePod']);
    await env.createMonitoredServer(withDisks('refused', { data: 'solo-data', podonly: 'pod-only' }, ['data']));
    await env.waitForCondition(NS, 'refused', 'DiskAttached', 'True', 'Attached', 120_000);
    const attachedIds = await env.get(VM, NS, 'refused-ids');
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ disks: ['data', 'nope'] }, 'DiskVolumeNotFound', /spec\.server\.disks names nope, which is not a volume of VirtualMachine disks\/refused-server \(its volumes: rootdisk, data, podonly\); name one of its PersistentVolumeClaim or DataVolume volumes/],
      [{ disks: ['rootdisk'] }, 'DiskVolumeUnsupported', /volume rootdisk of VirtualMachine disks\/refused-server is a containerDisk volume: only PersistentVolumeClaim and DataVolume volumes can be plugged into the IDS VM .*; remove rootdisk from spec\.server\.disks/],
      [{ disks: ['podonly'] }, 'DiskClaimReadWriteOncePod', /PersistentVolumeClaim disks\/pod-only behind volume podonly has access mode ReadWriteOncePod: only the server's pod may mount it.*use ReadWriteOnce or ReadWriteMany, or remove podonly/],
      // A claim that does not exist (the server's template names one; its running VMI is never restarted by us).
      [
        { template: serverTemplate('refused', { data: 'solo-data', podonly: 'pod-only', ghost: 'ghost-claim' }), disks: ['ghost'] },
        'DiskClaimNotFound',
        /PersistentVolumeClaim disks\/ghost-claim behind volume ghost of VirtualMachine disks\/refused-server does not exist; create it, or remove ghost from spec\.server\.disks/,
      ],
    ];
    for (const [server, reason, message] of cases) {
      await env.mergePatch(MS, NS, 'refused', { spec: { server } });
      const refused = await env.waitForCondition(NS, 'refused', 'DiskAttached', 'False', reason, 30_000);
      assert.match(env.condition(refused, 'DiskAttached')!.message, message);
      assert.equal(env.condition(refused, 'Ready')?.reason, reason, 'Ready says why');
      const ids = await env.get(VM, NS, 'refused-ids');
      assert.deepEqual(ids?.spec.template.spec.volumes, attachedIds?.spec.template.spec.volumes, `${reason}: the IDS VM keeps exactly the disks it had`);
      await env.waitForEvent(NS, 'refused', reason);
    }

    // No hot loop: while refused, the operator writes nothing (observed over a window of 10 s), once
    // the last case's own follow-up has landed (a child's change is reconciled 1 s after it: the
    // server VM's status after its template changed can still bring one status write).
    const ownWrites = (from: Date) => operatorRequests(from).filter((e) => WRITE_VERBS.has(e.verb) && e.objectRef?.resource !== 'events' && e.objectRef?.resource !== 'leases');
    await waitFor(() => ownWrites(new Date(Date.now() - 3_000)).length === 0, { timeoutMs: 30_000, intervalMs: 500, description: '3 s without an operator write' });
    const since = new Date();
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    const writes = ownWrites(since);
    assert.deepEqual(writes.map((e) => `${e.verb} ${e.requestURI}`), [], describeRequests(writes));

    // Fixed: back to a valid disk.
    await env.mergePatch(MS, NS, 'refused', { spec: { server: { disks: ['data'] } } });
    await env.waitForCondition(NS, 'refused', 'DiskAttached', 'True', 'Attached', 60_000);
  });

  it('says so when the KubeVirt CR enables no hotplug, and uses addvolume/removevolume when only HotplugVolumes is on', async function () {
    await boundClaim('db-data');
    await boundClaim('db-logs');
    await env.kubevirt.applyKubeVirtCr([]);
    await env.createMonitoredServer(withDisks('db', { data: 'db-data', logs: 'db-logs' }, ['data']));
    const none = await env.waitForCondition(NS, 'db', 'DiskAttached', 'False', 'HotplugUnavailable', 90_000);
    assert.match(env.condition(none, 'DiskAttached')!.message, /enables neither DeclarativeHotplugVolumes nor HotplugVolumes.*add DeclarativeHotplugVolumes to its spec\.configuration\.developerConfiguration\.featureGates/);

    await env.kubevirt.applyKubeVirtCr(['HotplugVolumes', 'DeclarativeHotplugVolumes']);
    const attached = await env.waitForCondition(NS, 'db', 'DiskAttached', 'True', 'Attached', 120_000);
    assert.match(env.condition(attached, 'DiskAttached')!.message, /addvolume\/removevolume subresources \(feature gate HotplugVolumes .*KubeVirt ignores DeclarativeHotplugVolumes while HotplugVolumes is on\)/);
    const firstIdsVmi = await env.get(VMI, NS, 'db-ids');

    // A second disk: plugged through the VM's addvolume subresource, the IDS VMI keeps running.
    const logs = diskSerialForVolume('db', 'logs');
    const since = new Date();
    const applied = Date.now();
    await env.mergePatch(MS, NS, 'db', { spec: { server: { disks: ['data', 'logs'] } } });
    await waitFor(async () => {
      const ms = await env.get(MS, NS, 'db');
      const c = env.condition(ms, 'DiskAttached');
      return c?.status === 'True' && c.message.includes(logs) ? ms : undefined;
    }, { timeoutMs: 120_000, description: 'logs attached too' });
    console.log(`      spec change → DiskAttached=True with a second disk (addvolume): ${((Date.now() - applied) / 1000).toFixed(1)} s`);
    // One accepted request; a reconcile that ran before the cache showed it may ask again and get 409.
    const tries = operatorRequests(since).filter((e) => e.objectRef?.subresource === 'addvolume');
    const adds = tries.filter((e) => (e.responseStatus?.code ?? 0) < 300);
    assert.equal(adds.length, 1, describeRequests(tries));
    assert.ok(tries.every((e) => (e.responseStatus?.code ?? 0) < 300 || e.responseStatus?.code === 409), describeRequests(tries));
    assert.ok(tries.length <= 3, `at most a couple of repeats before the cache catches up: ${describeRequests(tries)}`);
    assert.equal(adds[0]!.verb, 'update');
    assert.equal(adds[0]!.objectRef?.name, 'db-ids');
    const vmi = await env.get(VMI, NS, 'db-ids');
    assert.equal(vmi?.metadata.uid, firstIdsVmi?.metadata.uid, 'hot-plugged into the running IDS VMI');
    const disk = vmi?.spec.domain.devices.disks.find((d: { name: string }) => d.name === logs);
    assert.deepEqual(disk, { name: logs, disk: { bus: 'virtio', readonly: true }, shareable: true, serial: logs });
    assert.equal(volumeStatus(vmi, logs)?.phase, 'Ready');

    // Removed from the spec: removevolume.
    const removing = new Date();
    await env.mergePatch(MS, NS, 'db', { spec: { server: { disks: ['data'] } } });
    await waitFor(async () => {
      const v = await env.get(VMI, NS, 'db-ids');
      return v && !v.spec.volumes.some((x: { name: string }) => x.name === logs) && !volumeStatus(v, logs) ? v : undefined;
    }, { timeoutMs: 90_000, description: 'logs unplugged' });
    const removeTries = operatorRequests(removing).filter((e) => e.objectRef?.subresource === 'removevolume');
    const removes = removeTries.filter((e) => (e.responseStatus?.code ?? 0) < 300);
    assert.equal(removes.length, 1, describeRequests(removeTries));
    assert.ok(removeTries.every((e) => (e.responseStatus?.code ?? 0) < 300 || e.responseStatus?.code === 409), describeRequests(removeTries));
    await waitFor(async () => !(await env.get(VM, NS, 'db-ids'))?.spec.template.spec.volumes.some((x: { name: string }) => x.name === logs) || undefined, { description: 'logs gone from the IDS VM spec' });
    await env.waitForCondition(NS, 'db', 'Ready', 'True', 'Monitoring', 60_000);
    assert.equal((await env.get(VMI, NS, 'db-ids'))?.metadata.uid, firstIdsVmi?.metadata.uid, 'the IDS VMI kept running');
  });

  it('plugs a disk again that KubeVirt lost (in the IDS VM spec, not in its running VMI): removevolume, then addvolume, after the grace period', async function () {
    // The state KubeVirt 1.8 leaves when an addvolume reaches a VMI that is still starting: the VM
    // spec has the disk, the running VMI does not, no request is pending. Made here on purpose with
    // the VMI's own removevolume subresource, which leaves the VM spec alone.
    const serial = diskSerialForVolume('db', 'data');
    const firstIdsVmi = await env.get(VMI, NS, 'db-ids');
    const since = new Date();
    await createKubeApi(env.cluster.kubeConfig).request({ method: 'PUT', path: `/apis/subresources.kubevirt.io/v1/namespaces/${NS}/virtualmachineinstances/db-ids/removevolume`, body: { name: serial } });
    await waitFor(async () => {
      const v = await env.get(VMI, NS, 'db-ids');
      return v && !v.spec.volumes.some((x: { name: string }) => x.name === serial) && !volumeStatus(v, serial) ? v : undefined;
    }, { timeoutMs: 60_000, description: 'the disk gone from the IDS VMI' });
    const vm = await env.get(VM, NS, 'db-ids');
    assert.ok(vm?.spec.template.spec.volumes.some((x: { name: string }) => x.name === serial), 'still in the IDS VM spec');
    assert.deepEqual(vm?.status.volumeRequests ?? [], [], 'no request pending');
    await env.waitForCondition(NS, 'db', 'DiskAttached', 'False', 'DiskAttaching', 30_000);

    const repaired = await env.waitForCondition(NS, 'db', 'DiskAttached', 'True', 'Attached', 150_000);
    console.log(`      lost disk → DiskAttached=True again: ${((Date.now() - since.getTime()) / 1000).toFixed(1)} s (grace period 30 s)`);
    assert.match(env.condition(repaired, 'DiskAttached')!.message, new RegExp(serial));
    const calls = operatorRequests(since).filter((e) => e.objectRef?.subresource === 'addvolume' || e.objectRef?.subresource === 'removevolume');
    const accepted = calls.filter((e) => (e.responseStatus?.code ?? 0) < 300);
    assert.deepEqual(accepted.map((e) => `${e.objectRef?.resource}/${e.objectRef?.name} ${e.objectRef?.subresource}`), ['virtualmachines/db-ids removevolume', 'virtualmachines/db-ids addvolume'], describeRequests(calls));
    const removedAt = Date.parse(accepted[0]!.requestReceivedTimestamp);
    assert.ok(removedAt - since.getTime() >= 29_900, `not before the grace period: removevolume ${removedAt - since.getTime()} ms after the VMI lost the disk`);
    await waitFor(async () => (await env.events(NS, 'db')).find((e) => e.reason === 'DiskUnplugged' && /never into its running VMI/.test(e.note)), { description: 'the DiskUnplugged Event saying why' });
    const vmi = await env.get(VMI, NS, 'db-ids');
    assert.equal(vmi?.metadata.uid, firstIdsVmi?.metadata.uid, 'plugged into the running IDS VMI again, no restart');
    assert.equal(volumeStatus(vmi, serial)?.phase, 'Ready');
    await env.waitForCondition(NS, 'db', 'Ready', 'True', 'Monitoring', 60_000);
  });

  it('deletes the MonitoredServer and its IDS VM, and leaves the server’s PVC and VM untouched', async function () {
    const claimBefore = await env.core.readNamespacedPersistentVolumeClaim({ namespace: NS, name: 'db-data' });
    const serverBefore = await env.get(VM, NS, 'db-server');
    const since = new Date();
    await env.delete(MS, NS, 'db');
    await env.waitGone(MS, NS, 'db', 90_000);
    await env.waitGone(VM, NS, 'db-ids', 30_000);
    const claimAfter = await env.core.readNamespacedPersistentVolumeClaim({ namespace: NS, name: 'db-data' });
    assert.equal(claimAfter.metadata?.uid, claimBefore.metadata?.uid);
    assert.equal(claimAfter.metadata?.deletionTimestamp, undefined);
    assert.equal(claimAfter.status?.phase, 'Bound');
    const serverAfter = await env.get(VM, NS, 'db-server');
    assert.equal(serverAfter?.metadata.uid, serverBefore?.metadata.uid, 'the server VM is kept (deletionPolicy Retain)');
    assert.deepEqual(serverAfter?.spec.template.spec.volumes, serverBefore?.spec.template.spec.volumes, 'its volumes as they were');
    const claimWrites = operatorRequests(since).filter((e) => e.objectRef?.resource === 'persistentvolumeclaims' && WRITE_VERBS.has(e.verb));
    assert.deepEqual(claimWrites, [], 'the operator never writes a claim');
    await waitFor(async () => {
      try {
        await env.core.readNamespacedSecret({ namespace: NS, name: 'db-ids-cloud-init' });
        return undefined;
      } catch (err) {
        return (err as { code?: number }).code === 404 || undefined;
      }
    }, { timeoutMs: 60_000, description: 'the cloud-init Secret garbage-collected with its MonitoredServer' });
  });

  it('subresource mode: unplugs a disk the IDS VM was created with, the last one too, through removevolume (found on real guests)', async function () {
    await boundClaim('last-data');
    await env.createMonitoredServer(withDisks('last', { data: 'last-data' }, ['data']));
    await env.waitForCondition(NS, 'last', 'DiskAttached', 'True', 'Attached', 120_000);
    const serial = diskSerialForVolume('last', 'data');
    const firstIdsVmi = await env.get(VMI, NS, 'last-ids');
    const removing = new Date();
    await env.mergePatch(MS, NS, 'last', { spec: { server: { disks: [] } } });
    await waitFor(async () => {
      const v = await env.get(VMI, NS, 'last-ids');
      return v && !v.spec.volumes.some((x: { name: string }) => x.name === serial) && !volumeStatus(v, serial) ? v : undefined;
    }, { timeoutMs: 90_000, description: 'the last disk unplugged from the IDS VMI' }).catch(async (err: Error) => {
      const vm = await env.get(VM, NS, 'last-ids');
      const vmi = await env.get(VMI, NS, 'last-ids');
      throw new Error(`${err.message}\nVM volumes ${JSON.stringify(vm?.spec.template.spec.volumes)}\nVM status ${JSON.stringify(vm?.status)}\nVMI volumes ${JSON.stringify(vmi?.spec.volumes)}`);
    });
    const removeTries = operatorRequests(removing).filter((e) => e.objectRef?.subresource === 'removevolume');
    assert.equal(removeTries.filter((e) => (e.responseStatus?.code ?? 0) < 300).length, 1, describeRequests(removeTries));
    await waitFor(async () => !(await env.get(VM, NS, 'last-ids'))?.spec.template.spec.volumes.some((x: { name: string }) => x.name === serial) || undefined, { description: 'gone from the IDS VM spec' });
    await env.waitForCondition(NS, 'last', 'Ready', 'True', 'Monitoring', 60_000);
    assert.equal((await env.get(VMI, NS, 'last-ids'))?.metadata.uid, firstIdsVmi?.metadata.uid, 'the IDS VMI kept running');
  });
});
