// Builds a KernelProfile from a kernel image: struct layouts from BTF, link-time addresses either
// from a System.map or, without one, from the image's own static data.
//
// Why this works without symbols: the vmlinux inside a bzImage is stripped, but its .data holds the
// statically initialised `init_task`, whose `real_parent` points to itself and whose empty `tasks`
// list head points to itself (INIT_TASK in init/init_task.c). Those self-references, at offsets BTF
// gives us, pin down init_task's link-time address; its `active_mm` is `&init_mm`. The banner
// (`linux_banner`) is the "Linux version ..." string in .rodata.
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { Btf, BtfError, type BtfType } from './btf.ts';
import { parseElf, EM_X86_64, type ElfImage } from './elf.ts';
import { extractKernelElf } from './kernel-image.ts';
import {
  CRED_MEMBERS, DETAIL_MEMBERS, SOCKET_MEMBERS, KERNEL_PROFILE_FORMAT, LIST_HEAD_MEMBERS, MM_STRUCT_MEMBERS, TASK_STRUCT_MEMBERS,
  hex, type KernelProfile,
} from './kernel-profile.ts';
import { parseSystemMap } from './system-map.ts';

export class ProfileBuildError extends Error {}

export const START_KERNEL_MAP = 0xffffffff80000000n;

/** Profile member name → BTF member names to try, in order (fields renamed across kernel versions). */
const BTF_ALIASES: Record<string, string[]> = { state: ['__state', 'state'] };

export interface ProfileBuildInput {
  kernelImage: Buffer;
  fileName: string;
  systemMap?: string;
}

export function buildKernelProfile(input: ProfileBuildInput): KernelProfile {
  const { elf: elfBytes, compression } = extractKernelElf(input.kernelImage);
  const elf = parseElf(elfBytes);
  if (elf.machine !== EM_X86_64) throw new ProfileBuildError(`kernel ELF machine ${elf.machine} is not x86-64`);
  const btfSection = elf.sections.get('.BTF');
  if (!btfSection || btfSection.data.length === 0) {
    throw new ProfileBuildError('the kernel has no .BTF section (build it with CONFIG_DEBUG_INFO_BTF=y, or use a distribution kernel)');
  }
  const btf = new Btf(btfSection.data);
  const structs = structLayoutsFromBtf(btf);
  const banner = findBanner(elf);
  const text = elf.sections.get('.text')?.address;
  if (text === undefined) throw new ProfileBuildError('kernel ELF has no .text section');

  let addressesFrom: KernelProfile['source']['addressesFrom'] = 'static-structures';
  let initTask: bigint;
  let initMm: bigint;
  let linuxBanner = banner.address;
  if (input.systemMap !== undefined) {
    const symbols = parseSystemMap(input.systemMap);
    initTask = symbols.require('init_task');
    initMm = symbols.require('init_mm');
    linuxBanner = symbols.require('linux_banner');
    addressesFrom = 'system-map';
  } else {
    initTask = findInitTask(elf, structs);
    initMm = readU64At(elf, initTask + BigInt(structs.task_struct.members.active_mm.offset));
  }
  return {
    format: KERNEL_PROFILE_FORMAT,
    kernel: { release: banner.release, banner: banner.text, architecture: 'x86_64' },
    source: {
      file: basename(input.fileName),
      sha256: createHash('sha256').update(input.kernelImage).digest('hex'),
      compression,
      addressesFrom,
    },
    addresses: {
      startKernelMap: hex(START_KERNEL_MAP),
      text: hex(text),
      initTask: hex(initTask),
      initMm: hex(initMm),
      linuxBanner: hex(linuxBanner),
    },
    ...workqueueWorkers(btf, banner.release),
    ...kthreadFullName(btf),
    ...detailOffsets(btf),
    ...socketOffsets(btf),
    structs,
  };
}

/** The struct layouts of a profile, from the kernel's BTF (an image's .BTF section or the guest's own). */
export function structLayoutsFromBtf(btf: Btf): KernelProfile['structs'] {
  return {
    task_struct: layout(btf, 'task_struct', TASK_STRUCT_MEMBERS),
    mm_struct: layout(btf, 'mm_struct', MM_STRUCT_MEMBERS),
    cred: layout(btf, 'cred', CRED_MEMBERS),
    list_head: layout(btf, 'list_head', LIST_HEAD_MEMBERS),
  };
}

/** Offsets for threads, executable and open files (kernel-profile.ts DETAIL_MEMBERS); absent when any is missing. */
export function detailOffsets(btf: Btf): Pick<KernelProfile, 'details'> {
  const details = memberOffsets(btf, DETAIL_MEMBERS);
  return details ? { details: details as NonNullable<KernelProfile['details']> } : {};
}

/** Offsets for the socket view (kernel-profile.ts SOCKET_MEMBERS); absent when any is missing. */
export function socketOffsets(btf: Btf): Pick<KernelProfile, 'sockets'> {
  const sockets = memberOffsets(btf, SOCKET_MEMBERS);
  return sockets ? { sockets: sockets as NonNullable<KernelProfile['sockets']> } : {};
}

/** Byte offsets of struct.member pairs, keyed struct__member; undefined when any is missing or a bitfield. */
function memberOffsets(btf: Btf, pairs: readonly string[]): Record<string, number> | undefined {
  const offsets: Record<string, number> = {};
  for (const pair of pairs) {
    const [structName, member] = pair.split('.') as [string, string];
    let found;
    try {
      found = btf.findMember(btf.struct(structName), member);
    } catch (err) {
      if (err instanceof BtfError) return undefined;
      throw err;
    }
    if (!found) return undefined;
    offsets[pair.replace('.', '__')] = found.byteOffset;
  }
  return offsets;
}

/** Where kernel threads keep their full name (5.17+: task->worker_private → kthread->full_name). */
export function kthreadFullName(btf: Btf): Pick<KernelProfile, 'kthreadFullName'> {
  try {
    const task = btf.findMember(btf.struct('task_struct'), 'worker_private');
    const fullName = btf.findMember(btf.struct('kthread'), 'full_name');
    if (!task || !fullName) return {};
    return { kthreadFullName: { taskKthreadOffset: task.byteOffset, fullNameOffset: fullName.byteOffset } };
  } catch (err) {
    if (err instanceof BtfError) return {};
    throw err;
  }
}

/** Layout for naming work-queue workers like /proc does; absent when this kernel differs (pre-5.17). */
export function workqueueWorkers(btf: Btf, release: string): Pick<KernelProfile, 'workqueueWorkers'> {
  try {
    const task = btf.findMember(btf.struct('task_struct'), 'worker_private');
    const data = btf.findMember(btf.struct('kthread'), 'data');
    const worker = btf.struct('worker');
    const desc = btf.findMember(worker, 'desc');
    const currentWork = btf.findMember(worker, 'current_work');
    const pool = btf.findMember(worker, 'pool');
    if (!task || !data || !desc || !currentWork || !pool) return {};
    return {
      workqueueWorkers: {
        taskKthreadOffset: task.byteOffset,
        kthreadDataOffset: data.byteOffset,
        workerDesc: { offset: desc.byteOffset, size: desc.size },
        workerCurrentWorkOffset: currentWork.byteOffset,
        workerPoolOffset: pool.byteOffset,
        fullName: kernelAtLeast(release, 6, 9),
      },
    };
  } catch (err) {
    if (err instanceof BtfError) return {};
    throw err;
  }
}

/** Whether a release ("6.12.117+deb12-amd64") is at least major.minor. */
export function kernelAtLeast(release: string, major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return false;
  return Number(m[1]) > major || (Number(m[1]) === major && Number(m[2]) >= minor);
}

function layout<K extends string>(btf: Btf, structName: string, members: readonly K[]) {
  let type: BtfType;
  try {
    type = btf.struct(structName);
  } catch (err) {
    throw new ProfileBuildError((err as BtfError).message);
  }
  const out = {} as Record<K, { offset: number; size: number; btfName?: string }>;
  for (const name of members) {
    const candidates = BTF_ALIASES[name] ?? [name];
    const btfName = candidates.find((c) => btf.findMember(type, c));
    if (!btfName) throw new ProfileBuildError(`struct ${structName} has no member ${candidates.join(' or ')}`);
    const m = btf.findMember(type, btfName)!;
    out[name] = btfName === name ? { offset: m.byteOffset, size: m.size } : { offset: m.byteOffset, size: m.size, btfName };
  }
  return { size: type.sizeOrType, members: out };
}

interface Banner { text: string; release: string; address: bigint }

function findBanner(elf: ElfImage): Banner {
  // Since 6.1 the image holds two banners: init/version.c's weak placeholder ("... # SMP ...") and
  // the real linux_banner of init/version-timestamp.c ("... #1 SMP ..."), what /proc/version shows.
  const found: Banner[] = [];
  for (const name of ['.rodata', '.data', '.init.rodata']) {
    const s = elf.sections.get(name);
    if (!s) continue;
    const re = /Linux version (\d[^ \0]*) [^\0]*\n\0/g;
    // latin1 keeps byte offsets equal to string offsets.
    const text = s.data.toString('latin1');
    for (let m = re.exec(text); m; m = re.exec(text)) found.push({ text: m[0].slice(0, -1), release: m[1]!, address: s.address + BigInt(m.index) });
  }
  const banner = found.find((b) => /\) #\d/.test(b.text)) ?? found[0];
  if (!banner) throw new ProfileBuildError('no "Linux version" banner in the kernel image');
  return banner;
}

type Structs = KernelProfile['structs'];

function findInitTask(elf: ElfImage, structs: Structs): bigint {
  const t = structs.task_struct.members;
  const hits: bigint[] = [];
  for (const section of elf.sections.values()) {
    if (section.address < START_KERNEL_MAP || section.data.length < structs.task_struct.size) continue;
    const d = section.data;
    for (let off = 0; off + structs.task_struct.size <= d.length; off += 8) {
      const self = section.address + BigInt(off);
      if (d.readBigUInt64LE(off + t.real_parent.offset) !== self) continue;
      const tasks = self + BigInt(t.tasks.offset);
      if (d.readBigUInt64LE(off + t.tasks.offset) !== tasks || d.readBigUInt64LE(off + t.tasks.offset + 8) !== tasks) continue;
      if (d.toString('latin1', off + t.comm.offset, off + t.comm.offset + 7) !== 'swapper') continue;
      hits.push(self);
    }
  }
  if (hits.length !== 1) {
    throw new ProfileBuildError(`found ${hits.length} candidates for init_task in the image; pass --system-map from the kernel's -dbg package`);
  }
  return hits[0]!;
}

function readU64At(elf: ElfImage, address: bigint): bigint {
  for (const s of elf.sections.values()) {
    if (s.data.length > 0 && address >= s.address && address + 8n <= s.address + BigInt(s.data.length)) {
      return s.data.readBigUInt64LE(Number(address - s.address));
    }
  }
  throw new ProfileBuildError(`address ${hex(address)} is not in any section of the image`);
}
