// The kernel profile: everything the introspector must know about one guest kernel build, taken
// from that build's own image and never from the (untrusted) guest. Stored as JSON, typically in a
// ConfigMap (docs/process-mapping.md documents the format). Addresses are hex strings because
// kernel addresses do not fit in a JSON number.
import { Type, type Static, type TInteger } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

export const KERNEL_PROFILE_FORMAT = 'hyperspector.io/kernel-profile/v1';

const Hex = Type.String({ pattern: '^0x[0-9a-f]+$' });

const Member = Type.Object({
  offset: Type.Integer({ minimum: 0 }),
  size: Type.Integer({ minimum: 1 }),
  /** The BTF member name when it differs from the profile's name (e.g. task_struct.__state). */
  btfName: Type.Optional(Type.String()),
});

const StructLayout = <K extends string>(members: readonly K[]) =>
  Type.Object({
    size: Type.Integer({ minimum: 1 }),
    members: Type.Object(Object.fromEntries(members.map((m) => [m, Member])) as Record<K, typeof Member>),
  });

export const TASK_STRUCT_MEMBERS = [
  'tasks', 'pid', 'tgid', 'comm', 'real_parent', 'mm', 'active_mm', 'cred', 'start_time', 'exit_state', 'flags', 'state',
] as const;
export const MM_STRUCT_MEMBERS = ['pgd', 'arg_start', 'arg_end'] as const;
export const CRED_MEMBERS = ['uid', 'euid', 'gid'] as const;
export const LIST_HEAD_MEMBERS = ['next', 'prev'] as const;

/** struct.member pairs the detailed process view needs; the profile key is the pair with the dot removed. */
export const DETAIL_MEMBERS = [
  'task_struct.signal', 'task_struct.thread_node', 'signal_struct.thread_head', 'task_struct.files',
  'files_struct.fdt', 'fdtable.fd', 'fdtable.max_fds', 'mm_struct.exe_file', 'file.f_path', 'file.f_inode',
  'inode.i_ino', 'dentry.d_parent', 'dentry.d_name', 'qstr.name', 'vfsmount.mnt_root', 'vfsmount.mnt_sb',
  'mount.mnt', 'mount.mnt_parent', 'mount.mnt_mountpoint', 'super_block.s_type', 'file_system_type.name',
  // The PID map (an IDR, i.e. an XArray of struct pid) for hidden-process detection.
  'pid_namespace.idr', 'xarray.xa_head', 'xa_node.shift', 'xa_node.slots', 'pid.tasks', 'task_struct.pid_links',
  // Loaded modules (the `modules` list) and their sysfs kobjects (module_kset) for hidden modules.
  'module.list', 'module.name', 'module.state', 'module.mkobj', 'module_kobject.mod', 'kobject.entry', 'kset.list',
] as const;
/**
 * struct.member pairs the socket view needs (what `ss -tanp` shows of a socket an fd points to):
 * file->private_data is the struct socket, socket->sk the struct sock, whose first member
 * (sock.__sk_common) holds addresses, ports, family and state. A separate group: a kernel whose
 * sockets differ keeps the rest of the detailed view.
 */
export const SOCKET_MEMBERS = [
  'file.private_data', 'socket.sk', 'sock.__sk_common', 'sock.sk_type', 'sock.sk_protocol',
  'sock_common.skc_daddr', 'sock_common.skc_rcv_saddr', 'sock_common.skc_dport', 'sock_common.skc_num',
  'sock_common.skc_family', 'sock_common.skc_state', 'sock_common.skc_v6_daddr', 'sock_common.skc_v6_rcv_saddr',
] as const;
type OffsetKey<S> = S extends `${infer A}.${infer B}` ? `${A}__${B}` : never;
export type DetailOffset = OffsetKey<(typeof DETAIL_MEMBERS)[number]>;
export const DETAIL_OFFSETS = DETAIL_MEMBERS.map((m) => m.replace('.', '__')) as DetailOffset[];
export type SocketOffset = OffsetKey<(typeof SOCKET_MEMBERS)[number]>;
export const SOCKET_OFFSETS = SOCKET_MEMBERS.map((m) => m.replace('.', '__')) as SocketOffset[];

export const KernelProfileSchema = Type.Object({
  format: Type.Literal(KERNEL_PROFILE_FORMAT),
  kernel: Type.Object({
    release: Type.String({ minLength: 1 }),
    /** linux_banner exactly as in the image, matched byte for byte against the running guest. */
    banner: Type.String({ minLength: 1 }),
    architecture: Type.Literal('x86_64'),
  }),
  source: Type.Object({
    file: Type.String(),
    sha256: Type.String(),
    compression: Type.String(),
    /** guest-memory: built at attach time from the running kernel's own .BTF and kallsyms. */
    addressesFrom: Type.Union([Type.Literal('static-structures'), Type.Literal('system-map'), Type.Literal('guest-memory')]),
  }),
  /** Link-time (unrandomized) virtual addresses. */
  addresses: Type.Object({
    startKernelMap: Hex,
    text: Hex,
    initTask: Hex,
    initMm: Hex,
    linuxBanner: Hex,
    /** jiffies_64, when known (profiles from guest memory): tells a live kernel from a stale image. */
    jiffies: Type.Optional(Hex),
    /** init_pid_ns, when known (profiles from guest memory): its PID map finds hidden processes. */
    initPidNs: Type.Optional(Hex),
    /** `modules` (list head) and `module_kset` (a pointer), when known: loaded and hidden modules. */
    modules: Type.Optional(Hex),
    moduleKset: Type.Optional(Hex),
  }),
  /**
   * Optional: how /proc names work-queue workers ("kworker/0:1-events", wq_worker_comm()). Kernels
   * before 5.17 keep the kthread pointer elsewhere; without this section workers show task->comm.
   */
  workqueueWorkers: Type.Optional(Type.Object({
    taskKthreadOffset: Type.Integer({ minimum: 0 }),
    kthreadDataOffset: Type.Integer({ minimum: 0 }),
    workerDesc: Member,
    workerCurrentWorkOffset: Type.Integer({ minimum: 0 }),
    workerPoolOffset: Type.Integer({ minimum: 0 }),
    /**
     * Whether /proc builds a worker's name on the kthread's full name rather than task->comm:
     * seen on 6.12 ("kworker/R-kvfree_rcu_reclaim") and not on 6.1 ("quota_events_un"); taken as
     * kernels from 6.9 on, where rescuers were renamed "kworker/R-<queue>".
     */
    fullName: Type.Optional(Type.Boolean()),
  })),
  /**
   * Optional: where a kernel thread's full name lives (kthread->full_name, 5.17+), which /proc shows
   * instead of the 15-character task->comm. Without it such names are marked as cut.
   */
  kthreadFullName: Type.Optional(Type.Object({
    taskKthreadOffset: Type.Integer({ minimum: 0 }),
    fullNameOffset: Type.Integer({ minimum: 0 }),
  })),
  /**
   * Optional: offsets for the detailed view of a process (threads, executable, open files), from
   * BTF. Absent in profiles built before they existed: the detailed view is then unavailable.
   */
  details: Type.Optional(Type.Object(Object.fromEntries(DETAIL_OFFSETS.map((k) => [k, Type.Integer({ minimum: 0 })])) as Record<DetailOffset, TInteger>)),
  /** Optional: offsets for the socket view (SOCKET_MEMBERS); without them sockets show only their inode. */
  sockets: Type.Optional(Type.Object(Object.fromEntries(SOCKET_OFFSETS.map((k) => [k, Type.Integer({ minimum: 0 })])) as Record<SocketOffset, TInteger>)),
  structs: Type.Object({
    task_struct: StructLayout(TASK_STRUCT_MEMBERS),
    mm_struct: StructLayout(MM_STRUCT_MEMBERS),
    cred: StructLayout(CRED_MEMBERS),
    list_head: StructLayout(LIST_HEAD_MEMBERS),
  }),
});

export type KernelProfile = Static<typeof KernelProfileSchema>;

export class KernelProfileError extends Error {}

export function parseKernelProfile(json: string, where = 'profile'): KernelProfile {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    throw new KernelProfileError(`${where}: not JSON: ${(err as Error).message}`);
  }
  const format = (value as { format?: unknown } | null)?.format;
  if (format !== KERNEL_PROFILE_FORMAT) {
    throw new KernelProfileError(`${where}: unsupported profile format ${JSON.stringify(format)} (expected ${KERNEL_PROFILE_FORMAT}; rebuild it with "kubectl-hyperspector profile build")`);
  }
  const firstError = Value.Errors(KernelProfileSchema, value).First();
  if (firstError) throw new KernelProfileError(`${where}: invalid at ${firstError.path || '/'}: ${firstError.message}`);
  return value as KernelProfile;
}

export const hex = (v: bigint): string => `0x${v.toString(16)}`;
export const addr = (v: string): bigint => BigInt(v);
