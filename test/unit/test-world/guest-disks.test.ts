// Which disks a real guest gets from its VMI, and libvirt's QEMU objects for them.
import assert from 'node:assert/strict';
import { bootDiskArgs, claimDisks, libvirtDisk } from '../../../testenv/real-guests/guest-disks.ts';
import type { Vmi } from '../../../testenv/kubevirt/virt-handler-status.ts';

function vmi(disks: object[], volumes: object[], volumeStatus: object[] = []): Vmi {
  return { metadata: { name: 'v', namespace: 'ns', uid: 'u1' }, spec: { domain: { devices: { disks } }, volumes }, status: { volumeStatus } };
}

describe('real-guest disks (test double)', () => {
  it('takes PVC and DataVolume disks, at boot or hot-plugged, and leaves other volumes out', () => {
    const disks = claimDisks(
      vmi(
        [
          { name: 'rootdisk', disk: { bus: 'virtio' } },
          { name: 'data', disk: { bus: 'virtio' } },
          { name: 'dv', disk: {} },
          { name: 'hs-data-1', disk: { bus: 'virtio', readonly: true }, shareable: true, serial: 'hs-data-1' },
          { name: 'added', disk: { bus: 'virtio' } },
        ],
        [
          { name: 'rootdisk', containerDisk: { image: 'x' } },
          { name: 'data', persistentVolumeClaim: { claimName: 'pvc-a' } },
          { name: 'dv', dataVolume: { name: 'dv-b' } },
          { name: 'hs-data-1', persistentVolumeClaim: { claimName: 'pvc-a', readOnly: true, hotpluggable: true } },
          { name: 'added', persistentVolumeClaim: { claimName: 'pvc-c' } },
          { name: 'cloudinit', cloudInitNoCloud: { userData: '' } },
        ],
        [{ name: 'added', hotplugVolume: { attachPodName: 'hp' } }],
      ),
    );
    assert.deepEqual(disks, [
      { volumeName: 'data', claimName: 'pvc-a', readOnly: false, shareable: false, hotplug: false },
      { volumeName: 'dv', claimName: 'dv-b', readOnly: false, shareable: false, hotplug: false },
      { volumeName: 'hs-data-1', claimName: 'pvc-a', readOnly: true, shareable: true, serial: 'hs-data-1', hotplug: true },
      { volumeName: 'added', claimName: 'pvc-c', readOnly: false, shareable: false, hotplug: true },
    ]);
  });

  it('refuses a disk on a bus the test guest does not attach, rather than dropping it', () => {
    assert.throws(() => claimDisks(vmi([{ name: 'data', disk: { bus: 'sata' } }], [{ name: 'data', persistentVolumeClaim: { claimName: 'c' } }])), /only virtio disks \(this one is bus sata\)/);
    assert.throws(() => claimDisks(vmi([{ name: 'data', lun: {} }], [{ name: 'data', persistentVolumeClaim: { claimName: 'c' } }])), /this one is lun/);
  });

  it('gives libvirt’s objects: the IDS disk read-only + share-rw with its serial, the server’s read-write at boot', () => {
    const ids = libvirtDisk({ volumeName: 'hs-data-1', claimName: 'c', readOnly: true, shareable: true, serial: 'hs-data-1', hotplug: true }, '/img', 3);
    assert.deepEqual(ids, { image: '/img', nodeName: 'libvirt-3', diskName: 'hs-data-1', readOnly: true, shareable: true, serial: 'hs-data-1' });
    const args = bootDiskArgs([{ disk: { volumeName: 'data', claimName: 'c', readOnly: false, shareable: false, hotplug: false }, image: '/srv.img' }]);
    assert.deepEqual(args.filter((_, i) => i % 2 === 0), ['-blockdev', '-device']);
    assert.deepEqual(JSON.parse(args[1]!), { driver: 'file', filename: '/srv.img', 'node-name': 'libvirt-1-storage', 'read-only': false, cache: { direct: true, 'no-flush': false }, discard: 'unmap' });
    const device = JSON.parse(args[3]!) as Record<string, unknown>;
    assert.equal(device.id, 'ua-data');
    assert.equal(device.drive, 'libvirt-1-storage');
    assert.equal(device['share-rw'], undefined);
    assert.equal('locking' in JSON.parse(args[1]!), false, 'libvirt sets no locking key: QEMU locks the image');
  });
});
