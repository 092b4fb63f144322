// Table-driven tests of Live disk inspection: the hotplug mechanism from the KubeVirt CR, the
// refusals, the actions planned, and DiskAttached from the IDS VMI's volumeStatus.
import assert from 'node:assert/strict';
import type { MonitoredServer } from '../../../src/api/v1alpha1/monitoredserver-types.ts';
import { buildHotplugDisk, hotplugSupport, idsVolumeName, withDiskInspection } from '../../../src/builders/disk-inspection.ts';
import { Outcomes, type SubresourceAction } from '../../../src/controllers/monitoredserver/actions.ts';
import { diskAttached } from '../../../src/controllers/monitoredserver/disk-inspection-status.ts';
import type { ObservedState } from '../../../src/controllers/monitoredserver/observed-state.ts';
import { hasDisksToDrop, hotplugsMissingFromVmi, isRefusedHotplug, planDiskHotplug, planIdsCloudInit, resolveDiskInspection } from '../../../src/controllers/monitoredserver/planners/disk-inspection.ts';
import type { KubeVirt, PersistentVolumeClaim, VirtualMachine, VirtualMachineInstance } from '../../../src/kube/client/objects.ts';
import { KubeApiError } from '../../../src/kube/client/rest.ts';
import { monitoredServer, vmTemplate } from '../../../testenv/fixtures/monitoredservers.ts';

const NS = 'shop';

function kubevirt(featureGates: string[], version = 'v1.8.2', disabledFeatureGates: string[] = []): KubeVirt {
  return { metadata: { name: 'kubevirt', namespace: 'kubevirt' }, spec: { configuration: { developerConfiguration: { featureGates, disabledFeatureGates } } }, status: { observedKubeVirtVersion: version } };
}

function ms(disks: string[], idsUserData?: string, mode: 'Live' | 'Snapshot' = 'Live'): MonitoredServer {
  const server = vmTemplate({ app: 'web-1' });
  server.spec.template!.spec!.domain.devices.disks!.push({ name: 'data', disk: { bus: 'virtio' } }, { name: 'dv', disk: { bus: 'virtio' } });
  server.spec.template!.spec!.volumes!.push({ name: 'data', persistentVolumeClaim: { claimName: 'web-data' } }, { name: 'dv', dataVolume: { name: 'web-dv' } });
  const ids = vmTemplate({ app: 'web-1-ids' }, '2Gi');
  if (idsUserData !== undefined) {
    ids.spec.template!.spec!.domain.devices.disks!.push({ name: 'cloudinit', disk: { bus: 'virtio' } });
    ids.spec.template!.spec!.volumes!.push({ name: 'cloudinit', cloudInitNoCloud: { userData: idsUserData } });
  }
  const m = monitoredServer('web-1', NS, { server: { template: server, disks }, ids: { template: ids }, diskInspection: { mode } });
  m.metadata = { ...m.metadata, uid: 'ms-uid', generation: 1 };
  return m;
}

function claim(name: string, accessModes = ['ReadWriteOnce']): PersistentVolumeClaim {
  return { metadata: { name, namespace: NS }, spec: { accessModes } };
}

function serverVm(m: MonitoredServer): VirtualMachine {
  return { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: 'web-1-server', namespace: NS }, spec: structuredClone(m.spec.server.template!.spec) };
}

/** A live IDS VM holding `plugged` server volumes (as KubeVirt stores them) and reading our Secret. */
function idsVm(m: MonitoredServer, plugged: string[], requests: object[] = []): VirtualMachine {
  const claims: Record<string, string> = { data: 'web-data', dv: 'web-dv' };
  const spec = withDiskInspection(structuredClone(m.spec.ids.template.spec.template!.spec!), {
    hotplug: plugged.map((v) => buildHotplugDisk(m, { volumeName: v, claimName: claims[v]! })),
    cloudInitSecretName: 'web-1-ids-cloud-init',
  });
  return {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachine',
    metadata: { name: 'web-1-ids', namespace: NS, labels: { 'hyperspector.io/monitored-server': 'web-1' } },
    spec: { runStrategy: 'Always', template: { spec } },
    status: { volumeRequests: requests as never },
  };
}

function idsVmi(m: MonitoredServer, phases: Record<string, string>): VirtualMachineInstance {
  const names = Object.keys(phases).map((v) => idsVolumeName(m, v));
  return {
    metadata: { name: 'web-1-ids', namespace: NS },
    spec: { domain: { devices: {} }, volumes: names.map((name) => ({ name, persistentVolumeClaim: { claimName: 'x', hotpluggable: true } })) },
    status: {
      phase: 'Running',
      nodeName: 'node-a',
      volumeStatus: Object.entries(phases).map(([v, phase], i) => ({ name: idsVolumeName(m, v), phase, target: phase === 'Ready' ? `vd${'bc'[i]}` : '', message: `phase ${phase}` })),
    },
  };
}

function observed(m: MonitoredServer, extra: Partial<ObservedState> = {}): ObservedState {
  return { serverVm: serverVm(m), claims: { 'web-data': claim('web-data'), 'web-dv': claim('web-dv') }, kubevirt: kubevirt(['DeclarativeHotplugVolumes']), ...extra };
}

describe('disk inspection (Live)', () => {
  describe('hotplugSupport: the mechanism KubeVirt v1.8 uses for the KubeVirt CR', () => {
    const cases: Array<[string, KubeVirt | undefined, string | undefined, RegExp]> = [
      ['declarative only', kubevirt(['DeclarativeHotplugVolumes']), 'Declarative', /declarative hotplug \(feature gate DeclarativeHotplugVolumes in KubeVirt CR kubevirt\/kubevirt\)/],
      ['both gates: virt-controller skips declarative', kubevirt(['HotplugVolumes', 'DeclarativeHotplugVolumes']), 'Subresource', /KubeVirt ignores DeclarativeHotplugVolumes while HotplugVolumes is on/],
      ['HotplugVolumes only', kubevirt(['HotplugVolumes']), 'Subresource', /addvolume\/removevolume subresources \(feature gate HotplugVolumes/],
      ['no gate on 1.8 (both Alpha)', kubevirt([]), undefined, /enables neither DeclarativeHotplugVolumes nor HotplugVolumes/],
      ['no gate on 1.9 (declarative Beta, on by default)', kubevirt([], 'v1.9.0'), 'Declarative', /declarative hotplug/],
      ['declarative disabled on 1.9', kubevirt([], 'v1.9.0', ['DeclarativeHotplugVolumes']), undefined, /enables neither/],
      ['no KubeVirt CR', undefined, undefined, /no KubeVirt CR .* could be read/],
    ];
    for (const [name, cr, method, words] of cases) {
      it(name, () => {
        const s = hotplugSupport(cr);
        assert.equal(s.method, method);
        assert.match(s.method ? s.description : s.message, words);
      });
    }
  });

  describe('refusals: DiskAttached=False with what to do, and the IDS VM keeps what it has', () => {
    const base = ms(['data']);
    const cases: Array<[string, MonitoredServer, Partial<ObservedState>, string, RegExp]> = [
      ['a name that is not a volume of the server VM', ms(['nope']), {}, 'DiskVolumeNotFound', /names nope, which is not a volume of VirtualMachine shop\/web-1-server \(its volumes: rootdisk, data, dv\)/],
      ['a containerDisk', ms(['rootdisk']), {}, 'DiskVolumeUnsupported', /volume rootdisk .* is a containerDisk volume: only PersistentVolumeClaim and DataVolume volumes/],
      ['a claim that does not exist', base, { claims: {} }, 'DiskClaimNotFound', /PersistentVolumeClaim shop\/web-data behind volume data .* does not exist; create it, or remove data/],
      ['a ReadWriteOncePod claim', base, { claims: { 'web-data': claim('web-data', ['ReadWriteOncePod']) } }, 'DiskClaimReadWriteOncePod', /has access mode ReadWriteOncePod/],
      ['no hotplug gate', base, { kubevirt: kubevirt([]) }, 'HotplugUnavailable', /enables neither/],
      ['user data that cannot be merged', ms(['data'], '## template: jinja\n#cloud-config\n'), {}, 'IDSCloudInitUnmergeable', /Jinja-templated user data cannot be merged/],
    ];
    for (const [name, m, extra, reason, words] of cases) {
      it(name, () => {
        const plugged = idsVm(m, ['dv']);
        const o = observed(m, { idsVm: plugged, ...extra });
        const c = diskAttached(m, o, new Outcomes());
        assert.equal(c?.status, 'False');
        assert.equal(c?.reason, reason);
        assert.match(c!.message, words);
        assert.deepEqual(planIdsCloudInit(m, o), [], 'no Secret written');
        assert.deepEqual(planDiskHotplug(m, { ...o, kubevirt: extra.kubevirt ?? kubevirt(['HotplugVolumes']) }), [], 'nothing plugged or unplugged');
        assert.deepEqual(resolveDiskInspection(m, o).ids?.hotplug.map((h) => h.volume.name), [idsVolumeName(m, 'dv')], 'the IDS VM keeps the disk it has');
        assert.equal(hasDisksToDrop(m, o), false);
      });
    }
  });

  describe('plans', () => {
    it('declarative: the IDS VM holds exactly the wanted disks (read-only, shareable, serial, virtio), a DataVolume through its PVC', () => {
      const m = ms(['data', 'dv'], '#cloud-config\nruncmd:\n- [echo, mine]\n');
      const plan = resolveDiskInspection(m, observed(m));
      assert.equal(plan.method, 'Declarative');
      const serial = idsVolumeName(m, 'dv');
      assert.deepEqual(plan.ids?.hotplug[1], {
        disk: { name: serial, disk: { bus: 'virtio', readonly: true }, shareable: true, serial },
        volume: { name: serial, persistentVolumeClaim: { claimName: 'web-dv', readOnly: true, hotpluggable: true } },
      });
      const userData = Buffer.from(plan.secret!.data!.userdata!, 'base64').toString('utf8');
      assert.match(userData, /echo, mine/);
      assert.match(userData, /hyperspector-serverfs/);
      const spec = withDiskInspection(m.spec.ids.template.spec.template!.spec!, plan.ids!);
      assert.deepEqual(spec.volumes?.find((v) => v.name === 'cloudinit'), { name: 'cloudinit', cloudInitNoCloud: { secretRef: { name: 'web-1-ids-cloud-init' } } });
    });

    it('adds a cloud-init drive reading the Secret to an IDS template without one', () => {
      const m = ms(['data']);
      const spec = withDiskInspection(m.spec.ids.template.spec.template!.spec!, resolveDiskInspection(m, observed(m)).ids!);
      assert.deepEqual(spec.volumes?.find((v) => v.name === 'hs-cloudinit'), { name: 'hs-cloudinit', cloudInitNoCloud: { secretRef: { name: 'web-1-ids-cloud-init' } } });
      assert.ok(spec.domain.devices.disks?.some((d) => d.name === 'hs-cloudinit'));
    });

    it('declarative: a disk removed from the spec leaves the IDS VM spec, and the apply is forced', () => {
      const m = ms(['data']);
      const o = observed(m, { idsVm: idsVm(m, ['data', 'dv']) });
      assert.deepEqual(resolveDiskInspection(m, o).ids?.hotplug.map((h) => h.volume.name), [idsVolumeName(m, 'data')]);
      assert.equal(hasDisksToDrop(m, o), true);
      assert.equal(hasDisksToDrop(m, observed(m, { idsVm: idsVm(m, ['data']) })), false);
    });

    it('keeps the Secret and unplugs everything when the disks are removed', () => {
      const m = ms([]);
      const plan = resolveDiskInspection(m, { idsVm: idsVm(m, ['data']) });
      assert.deepEqual(plan.ids, { hotplug: [], cloudInitSecretName: 'web-1-ids-cloud-init' });
      assert.ok(plan.secret, 'the Secret stays, mounting nothing: switching back to inline user data would restart the IDS VM');
      assert.equal(resolveDiskInspection(ms([]), {}).ids, undefined, 'an IDS VM that never had disks is left as it is');
    });

    const subresource = kubevirt(['HotplugVolumes']);
    const put = (a: SubresourceAction) => `${a.path.split('/').pop()} ${JSON.stringify(a.body).slice(0, 40)}`;
    const cases: Array<[string, string[], string[], object[], string[]]> = [
      ['adds a wanted disk', ['data', 'dv'], ['data'], [], [`addvolume {"name":"${'hs-dv-'}`]],
      ['removes a disk no longer wanted', ['data'], ['data', 'dv'], [], ['removevolume {"name":"hs-dv-']],
      ['removes the last disk too (found on real guests: the apply alone unplugged nothing)', [], ['dv'], [], ['removevolume {"name":"hs-dv-']],
      ['sends nothing while KubeVirt holds the request', ['data', 'dv'], ['data'], [{ addVolumeOptions: { name: '' } }], []],
      ['sends nothing when all is plugged', ['data'], ['data'], [], []],
    ];
    for (const [name, wanted, plugged, requests, expected] of cases) {
      it(`subresource mode ${name}`, () => {
        const m = ms(wanted);
        const reqs = requests.map((r) => ('addVolumeOptions' in r ? { addVolumeOptions: { name: idsVolumeName(m, 'dv') } } : r));
        const o = observed(m, { kubevirt: subresource, idsVm: idsVm(m, plugged, reqs), idsVmi: idsVmi(m, Object.fromEntries(plugged.map((v) => [v, 'Ready']))) });
        const actions = planDiskHotplug(m, o) as SubresourceAction[];
        assert.deepEqual(actions.map(put).map((s) => s.slice(0, expected[0]?.length ?? 0)), expected);
        for (const a of actions) {
          assert.equal(a.capability, 'diskInspection');
          assert.match(a.path, /^\/apis\/subresources\.kubevirt\.io\/v1\/namespaces\/shop\/virtualmachines\/web-1-ids\/(add|remove)volume$/);
        }
        // The applied spec keeps what KubeVirt has: an apply never unplugs in this mode.
        assert.deepEqual(resolveDiskInspection(m, o).ids?.hotplug.map((h) => h.volume.name), plugged.map((v) => idsVolumeName(m, v)));
        assert.equal(hasDisksToDrop(m, o), false);
      });
    }

    it('subresource mode: sends nothing until the IDS VMI runs (KubeVirt drops a request that reaches a starting VMI)', () => {
      const m = ms(['data', 'dv']);
      const starting = { ...idsVmi(m, { data: 'Ready' }), status: { phase: 'Scheduled' } };
      for (const vmi of [undefined, starting]) {
        const o = observed(m, { kubevirt: subresource, idsVm: idsVm(m, ['data', 'dv']), ...(vmi ? { idsVmi: vmi } : {}) });
        assert.deepEqual(planDiskHotplug(m, { ...o, idsVm: idsVm(m, ['data']) }), [], 'no addvolume');
        assert.deepEqual(planDiskHotplug(ms(['data']), o), [], 'no removevolume');
        assert.deepEqual(hotplugsMissingFromVmi(m, o), [], 'nothing is missing from a VMI that does not run');
      }
    });

    it('subresource mode: a disk in the IDS VM spec that the running VMI lacks is missing; once judged lost, removevolume takes it out to plug it again', () => {
      const m = ms(['data', 'dv']);
      const dv = idsVolumeName(m, 'dv');
      // KubeVirt wrote dv into the VM spec, the running VMI has only data, no request is pending.
      const o = observed(m, { kubevirt: subresource, idsVm: idsVm(m, ['data', 'dv']), idsVmi: idsVmi(m, { data: 'Ready' }) });
      assert.deepEqual(hotplugsMissingFromVmi(m, o), [dv]);
      assert.deepEqual(planDiskHotplug(m, o), [], 'not lost yet: the VMI watch event may only lag');
      const [remove, ...rest] = planDiskHotplug(m, o, new Set([dv])) as SubresourceAction[];
      assert.equal(rest.length, 0);
      assert.match(remove!.path, /\/virtualmachines\/web-1-ids\/removevolume$/);
      assert.deepEqual(remove!.body, { name: dv });
      assert.match(remove!.log, /never into its running VMI .* plugged again next/);
      assert.deepEqual(remove!.tolerate, [409]);
      // KubeVirt took it out of the spec: it is wanted and not there, so addvolume plugs it.
      const removed = observed(m, { kubevirt: subresource, idsVm: idsVm(m, ['data']), idsVmi: idsVmi(m, { data: 'Ready' }) });
      assert.deepEqual(hotplugsMissingFromVmi(m, removed), []);
      assert.match((planDiskHotplug(m, removed, new Set([dv])) as SubresourceAction[])[0]!.path, /\/addvolume$/);
      // While KubeVirt holds a request for it, it is neither missing nor removed again.
      const pending = observed(m, { kubevirt: subresource, idsVm: idsVm(m, ['data', 'dv'], [{ removeVolumeOptions: { name: dv } }]), idsVmi: idsVmi(m, { data: 'Ready' }) });
      assert.deepEqual(hotplugsMissingFromVmi(m, pending), []);
      assert.deepEqual(planDiskHotplug(m, pending, new Set([dv])), []);
      // Declarative mode: KubeVirt syncs the spec into the VMI itself; nothing is judged missing.
      assert.deepEqual(hotplugsMissingFromVmi(m, { ...o, kubevirt: kubevirt(['DeclarativeHotplugVolumes']) }), []);
    });

    it('subresource mode: a new IDS VM is created with the disks (no addvolume before it exists)', () => {
      const m = ms(['data']);
      const o = observed(m, { kubevirt: subresource });
      assert.deepEqual(resolveDiskInspection(m, o).ids?.hotplug.map((h) => h.volume.name), [idsVolumeName(m, 'data')]);
      assert.deepEqual(planDiskHotplug(m, o), []);
    });

    it('applies the Secret once, and not again while it matches', () => {
      const m = ms(['data']);
      const [apply] = planIdsCloudInit(m, observed(m));
      assert.equal(apply?.type, 'apply');
      assert.equal(apply?.capability, 'idsVM', 'a failure holds back the IDS VM that would read it');
      assert.deepEqual(planIdsCloudInit(m, observed(m, { idsCloudInitSecret: resolveDiskInspection(m, observed(m)).secret! })), []);
    });
  });

  describe('DiskAttached from the IDS VMI volumeStatus', () => {
    const m = ms(['data', 'dv']);
    const cases: Array<[string, Partial<ObservedState>, Outcomes, string, string, RegExp]> = [
      ['waits for the IDS VM', {}, new Outcomes(), 'False', 'DiskAttaching', /plugged through KubeVirt's declarative hotplug .* once IDS VirtualMachine shop\/web-1-ids runs/],
      ['shows each volume’s phase', { idsVm: idsVm(m, ['data', 'dv']), idsVmi: idsVmi(m, { data: 'Ready', dv: 'MountedToPod' }) }, new Outcomes(), 'False', 'DiskAttaching', /data: Ready; dv: MountedToPod \(phase MountedToPod\)/],
      ['is True once every volume is Ready, with targets', { idsVm: idsVm(m, ['data', 'dv']), idsVmi: idsVmi(m, { data: 'Ready', dv: 'Ready' }) }, new Outcomes(), 'True', 'Attached', /data \(claim web-data, serial hs-data-[0-9a-f]{10}, target vdb\), dv \(claim web-dv, serial hs-dv-[0-9a-f]{10}, target vdc\) are plugged read-only and shareable .* mounts each read-only at \/\.serverfs\/<volume>/],
      [
        'says when KubeVirt refused a subresource request',
        { idsVm: idsVm(m, ['data']), idsVmi: idsVmi(m, { data: 'Ready' }), kubevirt: kubevirt(['HotplugVolumes']) },
        new Outcomes([{ action: { type: 'subresource', capability: 'diskInspection', failureReason: 'AddVolumeFailed', log: 'x', path: '/p', body: {} }, kind: 'refused', message: 'bus sata is not permitted' }]),
        'False',
        'HotplugRefused',
        /KubeVirt refused .* addvolume\/removevolume subresources .*: bus sata is not permitted/,
      ],
    ];
    for (const [name, extra, outcomes, status, reason, words] of cases) {
      it(name, () => {
        const c = diskAttached(m, observed(m, extra), outcomes);
        assert.equal(c?.status, status);
        assert.equal(c?.reason, reason);
        assert.match(c!.message, words);
      });
    }

    it('has no condition without disks; in Snapshot mode waits for the VolumeSnapshot cache (disk-snapshot.test.ts has the rest)', () => {
      assert.equal(diskAttached(ms([]), {}, new Outcomes()), undefined);
      const waiting = diskAttached(ms(['data'], undefined, 'Snapshot'), observed(ms(['data'])), new Outcomes());
      assert.equal(waiting?.reason, 'DiskAttaching');
      assert.match(waiting!.message, /waiting for the VolumeSnapshot cache/);
    });

    it('treats 400 and 422 from the subresources as refusals, others as retried failures', () => {
      assert.equal(isRefusedHotplug(new KubeApiError('bad', 400, undefined, undefined)), true);
      assert.equal(isRefusedHotplug(new KubeApiError('invalid', 422, undefined, undefined)), true);
      assert.equal(isRefusedHotplug(new KubeApiError('unavailable', 503, undefined, undefined)), false);
    });
  });
});
