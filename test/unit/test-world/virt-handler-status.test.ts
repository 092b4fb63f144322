// The virt-handler stand-in's pure steps follow KubeVirt v1.8's virt-handler (see the module's references).
import assert from 'node:assert/strict';
import { attachFailedMessage, diskTargets, hotplugStatus, liveMigratable, migrationStep, pausedStatus, runningStatus, volumesToAttach, type Vmi } from '../../../testenv/kubevirt/virt-handler-status.ts';

const NOW = '2026-12-01T10:00:00Z';

function vmi(extra: { spec?: object; status?: object } = {}): Vmi {
  return {
    metadata: { name: 'v', namespace: 'ns', uid: 'u1' },
    spec: {
      domain: { devices: { disks: [{ name: 'root', disk: { bus: 'virtio' } }, { name: 'data', disk: { bus: 'scsi' } }], interfaces: [{ name: 'default', masquerade: {} }] } },
      networks: [{ name: 'default', pod: {} }],
      volumes: [{ name: 'root', containerDisk: { image: 'x' } }, { name: 'data', persistentVolumeClaim: { claimName: 'pvc-1' } }],
      ...extra.spec,
    },
    status: { phase: 'Scheduled', nodeName: 'node-a', phaseTransitionTimestamps: [{ phase: 'Pending', phaseTransitionTimestamp: NOW }], ...extra.status },
  };
}

describe('virt-handler stand-in (test double) status steps', () => {
  it('names disk targets per bus, as the converter does', () => {
    assert.deepEqual([...diskTargets(vmi())], [['root', 'vda'], ['data', 'sda']]);
  });

  it('reports Running with the transition timestamp, interfaces and migratability', () => {
    const status = runningStatus(vmi({ status: { volumeStatus: [{ name: 'data', persistentVolumeClaimInfo: { accessModes: ['ReadWriteOnce'] } }] } }), { status: { podIP: '10.0.0.7' } }, NOW);
    assert.equal(status.phase, 'Running');
    assert.deepEqual(status.phaseTransitionTimestamps.at(-1), { phase: 'Running', phaseTransitionTimestamp: NOW });
    assert.equal(status.interfaces[0].ipAddress, '10.0.0.7');
    assert.equal(status.selinuxContext, 'none');
    const live = status.conditions.find((c: { type: string }) => c.type === 'LiveMigratable');
    assert.equal(live.status, 'False');
    assert.equal(live.reason, 'DisksNotLiveMigratable');
    assert.match(live.message, /PVC pvc-1 is not shared/);
  });

  it('refuses live migration of a bridge-bound pod network, as KubeVirt does', () => {
    const v = vmi({ spec: { domain: { devices: { disks: [], interfaces: [{ name: 'default', bridge: {} }] } }, volumes: [] } });
    assert.equal(liveMigratable(v).condition.reason, 'InterfaceNotLiveMigratable');
  });

  it('adds and removes the Paused condition once', () => {
    const running = vmi({ status: { phase: 'Running', conditions: [] } });
    const paused = pausedStatus(running, true, NOW);
    assert.equal(paused.conditions[0].reason, 'PausedByUser');
    assert.equal(pausedStatus({ ...running, status: paused }, true, NOW), undefined);
    assert.deepEqual(pausedStatus({ ...running, status: paused }, false, NOW).conditions, []);
  });

  it('moves a hotplugged volume to MountedToPod, then Ready with its target, and detaches it when gone from the spec', () => {
    const plugged = vmi({ status: { phase: 'Running', volumeStatus: [{ name: 'data', phase: 'AttachedToNode', hotplugVolume: { attachPodName: 'hp', attachPodUID: 'p' } }] } });
    const mounted = hotplugStatus(plugged);
    assert.equal(mounted.volumeStatus[0].phase, 'MountedToPod');
    const ready = hotplugStatus({ ...plugged, status: mounted });
    assert.equal(ready.volumeStatus[0].phase, 'Ready');
    assert.equal(ready.volumeStatus[0].target, 'sda');
    assert.equal(hotplugStatus({ ...plugged, status: ready }), undefined);
    const unplugged = hotplugStatus({ ...plugged, spec: { ...plugged.spec, volumes: [] }, status: ready });
    assert.equal(unplugged.volumeStatus[0].phase, 'UnMountedFromPod');
    assert.equal(unplugged.volumeStatus[0].target, '');
  });

  it('attaches only volumes mounted into the pod; one the domain refused stays MountedToPod with the error, never Ready', () => {
    const entry = { name: 'data', phase: 'MountedToPod', hotplugVolume: { attachPodName: 'hp', attachPodUID: 'p' } };
    const mounted = vmi({ status: { phase: 'Running', volumeStatus: [entry] } });
    assert.deepEqual(volumesToAttach(mounted), ['data']);
    assert.deepEqual(volumesToAttach(vmi({ status: { phase: 'Running', volumeStatus: [{ ...entry, phase: 'AttachedToNode' }] } })), []);
    assert.deepEqual(volumesToAttach(vmi({ spec: { volumes: [] }, status: { phase: 'Running', volumeStatus: [entry] } })), [], 'gone from the spec');
    const error = 'device_add: Failed to get shared "write" lock';
    const refused = hotplugStatus(mounted, new Map([['data', error]]));
    assert.equal(refused.volumeStatus[0].phase, 'MountedToPod');
    assert.equal(refused.volumeStatus[0].target, undefined);
    assert.equal(refused.volumeStatus[0].message, attachFailedMessage('data', error));
    assert.equal(hotplugStatus({ ...mounted, status: refused }, new Map([['data', error]])), undefined, 'the same refusal writes nothing again');
    const ready = hotplugStatus({ ...mounted, status: refused });
    assert.equal(ready.volumeStatus[0].phase, 'Ready', 'attached on a later try');
  });

  it('drives a migration to completion on the target node, or to failure', () => {
    let v = vmi({ status: { phase: 'Running', migrationState: { targetNode: 'node-b', targetPod: 'virt-launcher-v-2', sourceNode: 'node-a' } } });
    const seen: string[] = [];
    for (let i = 0; i < 10; i++) {
      const step = migrationStep(v, NOW);
      if (!step) break;
      v = { ...v, status: step.status };
      seen.push(Object.keys(step.labels ?? {}).join(','));
    }
    assert.equal(v.status.migrationState.completed, true);
    assert.equal(v.status.nodeName, 'node-b');
    assert.ok(seen.includes('kubevirt.io/nodeName,kubevirt.io/outdatedLauncherImage'));
    let f = vmi({ status: { phase: 'Running', migrationState: { targetNode: 'node-b', targetPod: 'p2', startTimestamp: NOW, targetNodeAddress: '127.0.0.1', targetNodeDomainDetected: true } } });
    f = { ...f, status: migrationStep(f, NOW, 'boom')!.status };
    assert.equal(f.status.migrationState.failed, true);
    assert.equal(f.status.migrationState.failureReason, 'boom');
    assert.equal(f.status.nodeName, 'node-a');
  });
});
