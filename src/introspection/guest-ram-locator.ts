// Finds the guest's RAM inside a QEMU process's address space and lays it out as guest-physical
// ranges.
//
// QEMU allocates each RAM block as one host mapping (anonymous, or a memfd/hugetlbfs file with
// memory backends as KubeVirt uses). On the pc and q35 machine types the block is split in the
// guest-physical space: the low part sits at 0, the rest is moved above 4 GiB to leave room for
// the PCI hole (hw/i386/pc_piix.c, pc_q35.c). The choice among candidate mappings is confirmed
// later by content (the kernel found in it), see guest-introspector.ts.
import type { BackedRange } from './physical-memory.ts';
import type { MemoryMapping, QemuCommandLine } from './qemu-process.ts';

const GiB = 1024 ** 3;
const FOUR_GIB = 4 * GiB;

/** Bytes of RAM QEMU places below 4 GiB for this machine type and RAM size. */
export function lowMemorySize(machineType: string, ramBytes: number): number {
  if (/q35/.test(machineType)) {
    return ramBytes >= 0xb0000000 ? Math.min(ramBytes, 0x80000000) : ramBytes;
  }
  if (/^pc($|-i440fx|-\d)/.test(machineType) || machineType === 'pc') {
    // gigabyte_align has been on since pc-i440fx-1.7.
    return ramBytes >= 0xe0000000 ? Math.min(ramBytes, 0xc0000000) : ramBytes;
  }
  return ramBytes; // microvm and others: one range from 0 (confirmed by content anyway)
}

export function guestPhysicalRanges(hostStart: number, ramBytes: number, machineType: string): BackedRange[] {
  const low = lowMemorySize(machineType, ramBytes);
  const ranges: BackedRange[] = [{ guestPhysical: 0n, size: low, backingOffset: hostStart }];
  if (ramBytes > low) ranges.push({ guestPhysical: BigInt(FOUR_GIB), size: ramBytes - low, backingOffset: hostStart + low });
  return ranges;
}

/**
 * Mappings that may hold the guest RAM, best first: writable, private or memfd/hugetlbfs backed,
 * exactly the RAM size (QEMU may round up to a 2 MiB alignment).
 */
export function ramCandidates(maps: MemoryMapping[], cmd: QemuCommandLine): MemoryMapping[] {
  const size = cmd.ramBytes;
  return maps
    .filter((m) => m.perms.startsWith('rw'))
    .filter((m) => m.path === '' || m.path.startsWith('/memfd:') || m.path.includes('hugepages') || m.path.startsWith('[anon'))
    .filter((m) => m.end - m.start >= size && m.end - m.start <= size + (4 << 20))
    .sort((a, b) => (a.end - a.start - size) - (b.end - b.start - size));
}
