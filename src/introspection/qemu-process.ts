// What we learn about a QEMU process from /proc: its command line (guest name, RAM size, machine
// type, KubeVirt VMI uid) and its memory mappings.
import { readFileSync, readdirSync } from 'node:fs';

export interface QemuCommandLine {
  args: string[];
  /** From `-name guest=<name>` (KubeVirt: `<namespace>_<vmi>`). */
  guestName?: string;
  ramBytes: number;
  machineType: string;
}

export interface MemoryMapping {
  start: number;
  end: number;
  perms: string;
  path: string;
}

const DEFAULT_RAM = 128 << 20; // QEMU's default for -m

export function parseQemuCommandLine(args: string[]): QemuCommandLine {
  let guestName: string | undefined;
  let ramBytes = DEFAULT_RAM;
  let machineType = 'pc';
  for (let i = 0; i < args.length - 1; i++) {
    const flag = args[i]!.replace(/^--/, '-');
    const value = args[i + 1]!;
    if (flag === '-name') {
      const opts = value.split(',');
      const g = opts.find((o) => o.startsWith('guest='));
      guestName = g ? g.slice('guest='.length) : opts[0];
    } else if (flag === '-m') {
      const size = value.split(',').find((o) => !o.includes('=') || o.startsWith('size='))?.replace(/^size=/, '');
      if (size) ramBytes = parseQemuSize(size, 'M');
    } else if (flag === '-machine' || flag === '-M') {
      const first = value.split(',')[0]!;
      machineType = first.startsWith('type=') ? first.slice(5) : first;
    }
  }
  return { args, guestName, ramBytes, machineType };
}

/** QEMU size syntax: a number with an optional k/M/G/T suffix (default unit given). */
export function parseQemuSize(text: string, defaultUnit: 'B' | 'M'): number {
  const m = /^(\d+(?:\.\d+)?)([bkKmMgGtT]?)$/.exec(text.trim());
  if (!m) throw new Error(`cannot parse QEMU size ${JSON.stringify(text)}`);
  const unit = (m[2] || defaultUnit).toUpperCase();
  const mult = { B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[unit]!;
  return Math.round(Number(m[1]) * mult);
}

export function parseMaps(text: string): MemoryMapping[] {
  const out: MemoryMapping[] = [];
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+)\s+(\S+)\s+\S+\s+\S+\s+\S+\s*(.*)$/.exec(line);
    if (!m) continue;
    out.push({ start: parseInt(m[1]!, 16), end: parseInt(m[2]!, 16), perms: m[3]!, path: m[4]!.trim() });
  }
  return out;
}

export function readCommandLine(pid: number, procRoot = '/proc'): string[] | undefined {
  try {
    const raw = readFileSync(`${procRoot}/${pid}/cmdline`, 'utf8');
    return raw.split('\0').filter((a, i, all) => a !== '' || i < all.length - 1);
  } catch {
    return undefined; // gone, or a kernel thread
  }
}

export function listPids(procRoot = '/proc'): number[] {
  return readdirSync(procRoot).filter((n) => /^\d+$/.test(n)).map(Number);
}

export function isQemu(args: string[]): boolean {
  const exe = args[0]?.split('/').pop() ?? '';
  return exe.startsWith('qemu-system') || exe === 'qemu-kvm';
}
