// Finding guest RAM in a QEMU process: command-line parsing (plain QEMU and KubeVirt's), candidate
// mappings, and the pc/q35 split of RAM around the 4 GiB PCI hole.
import assert from 'node:assert/strict';
import { guestPhysicalRanges, lowMemorySize, ramCandidates } from '../../../src/introspection/guest-ram-locator.ts';
import { parseMaps, parseQemuCommandLine, parseQemuSize } from '../../../src/introspection/qemu-process.ts';
import { BufferPhysicalMemory } from '../../../src/introspection/physical-memory.ts';
import { matchesVmi } from '../../../src/sidecar/qemu-finder.ts';

const GiB = 1024 ** 3;
const UID = '5f0a7c1e-8d5b-4c1a-9a51-3e0c2b7d9f10';
// Shape of a virt-launcher QEMU command line (abridged).
const KUBEVIRT_ARGS = [
  '/usr/libexec/qemu-kvm', '-name', 'guest=shop_web-1,debug-threads=on', '-S',
  '-object', '{"qom-type":"secret","id":"masterKey0","format":"raw","file":"/var/run/kubevirt-private/libvirt/qemu/lib/domain-1-shop_web-1/master-key.aes"}',
  '-machine', 'pc-q35-rhel9.4.0,usb=off,dump-guest-core=off,memory-backend=pc.ram',
  '-accel', 'kvm', '-cpu', 'host', '-m', 'size=6291456k', '-object', '{"qom-type":"memory-backend-ram","id":"pc.ram","size":6442450944}',
  '-chardev', `socket,id=charserial0,path=/var/run/kubevirt-private/${UID}/virt-serial0,server=on,wait=off`,
];

describe('QEMU command line', () => {
  it('reads name, RAM size and machine type of a KubeVirt QEMU', () => {
    const cmd = parseQemuCommandLine(KUBEVIRT_ARGS);
    assert.equal(cmd.guestName, 'shop_web-1');
    assert.equal(cmd.ramBytes, 6 * GiB);
    assert.equal(cmd.machineType, 'pc-q35-rhel9.4.0');
  });

  it('reads plain QEMU sizes and defaults', () => {
    assert.equal(parseQemuCommandLine(['qemu-system-x86_64', '-m', '256']).ramBytes, 256 << 20);
    assert.equal(parseQemuCommandLine(['qemu-system-x86_64', '-m', '2G', '-M', 'q35']).machineType, 'q35');
    assert.equal(parseQemuCommandLine(['qemu-system-x86_64']).ramBytes, 128 << 20);
    assert.equal(parseQemuSize('1.5G', 'M'), 1.5 * GiB);
    assert.throws(() => parseQemuSize('lots', 'M'), /cannot parse/);
  });

  it('matches a VMI by namespace_name and uid', () => {
    assert.ok(matchesVmi(KUBEVIRT_ARGS, { namespace: 'shop', name: 'web-1', uid: UID }));
    assert.ok(matchesVmi(KUBEVIRT_ARGS, { namespace: 'shop', name: 'web-1' }));
    assert.ok(!matchesVmi(KUBEVIRT_ARGS, { namespace: 'shop', name: 'web-1', uid: '00000000-0000-0000-0000-000000000000' }), 'an earlier VMI of the same name');
    assert.ok(!matchesVmi(KUBEVIRT_ARGS, { namespace: 'shop', name: 'web' }));
    assert.ok(!matchesVmi(['/usr/bin/tail', '-name', 'guest=shop_web-1'], { namespace: 'shop', name: 'web-1' }), 'not QEMU');
  });
});

describe('guest RAM layout', () => {
  it('puts all RAM low when it fits below the PCI hole', () => {
    assert.equal(lowMemorySize('q35', 256 << 20), 256 << 20);
    assert.equal(lowMemorySize('pc-i440fx-7.2', 3 * GiB), 3 * GiB);
    assert.deepEqual(guestPhysicalRanges(0x7f0000000000, 256 << 20, 'q35'), [{ guestPhysical: 0n, size: 256 << 20, backingOffset: 0x7f0000000000 }]);
  });

  it('splits q35 RAM of 2.75 GiB or more at 2 GiB and moves the rest above 4 GiB', () => {
    const ranges = guestPhysicalRanges(0x7f0000000000, 6 * GiB, 'pc-q35-rhel9.4.0');
    assert.deepEqual(ranges, [
      { guestPhysical: 0n, size: 2 * GiB, backingOffset: 0x7f0000000000 },
      { guestPhysical: BigInt(4 * GiB), size: 4 * GiB, backingOffset: 0x7f0000000000 + 2 * GiB },
    ]);
  });

  it('splits pc (i440fx) RAM of 3.5 GiB or more at 3 GiB', () => {
    assert.equal(lowMemorySize('pc', 4 * GiB), 3 * GiB);
    assert.equal(lowMemorySize('pc-i440fx-7.2', 0xe0000000 - 1), 0xe0000000 - 1);
  });

  it('reads across the split at the right host offsets', () => {
    // Host "RAM": low part filled with 'L', high part with 'H'; q35 with 3 GiB → 2 GiB low.
    const host = Buffer.alloc(4096 * 3);
    const ranges = [
      { guestPhysical: 0n, size: 8192, backingOffset: 0 },
      { guestPhysical: BigInt(4 * GiB), size: 4096, backingOffset: 8192 },
    ];
    host.fill('L', 0, 8192);
    host.fill('H', 8192);
    const mem = new BufferPhysicalMemory(host, ranges);
    assert.equal(mem.read(BigInt(4 * GiB) + 10n, 3)?.toString(), 'HHH');
    assert.equal(mem.read(8190n, 4), undefined); // the hole between the two ranges
  });

  it('chooses RAM-sized writable private or memfd mappings', () => {
    const maps = parseMaps([
      '55d4c9a00000-55d4c9c00000 r-xp 00000000 08:01 1234 /usr/bin/qemu-system-x86_64',
      '7f1000000000-7f1010000000 rw-p 00000000 00:00 0 ',
      '7f2000000000-7f2001000000 rw-p 00000000 00:00 0 ',
      '7f3000000000-7f3010000000 r--p 00000000 00:00 0 ',
      '7f4000000000-7f4010200000 rw-s 00000000 00:01 99 /memfd:pc.ram (deleted)',
    ].join('\n'));
    const candidates = ramCandidates(maps, parseQemuCommandLine(['qemu-system-x86_64', '-m', '256']));
    assert.deepEqual(candidates.map((c) => c.start.toString(16)), ['7f1000000000', '7f4000000000']);
  });
});
