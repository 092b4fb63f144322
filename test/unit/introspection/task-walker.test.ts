// The task-list walk on a synthetic kernel: a healthy list, and the ways a list read from a running
// guest can be broken (cycle, torn links, unreadable entries, implausible tasks, too many entries).
// Each must end the walk and mark the result inconsistent, never loop.
import assert from 'node:assert/strict';
import type { KernelProfile } from '../../../src/introspection/kernel-profile.ts';
import { AddressSpace } from '../../../src/introspection/page-table.ts';
import { CmdlineMemo, walkTasks, type WalkOptions } from '../../../src/introspection/task-walker.ts';
import { PrefetchBuffers, PrefetchedSnapshotMemory, ReadPlan } from '../../../src/introspection/prefetched-snapshot-memory.ts';
import { BatchingMemory } from './batching-memory.ts';
import { SyntheticMemory } from './synthetic-memory.ts';

const m = (offset: number, size: number) => ({ offset, size });
// A made-up but self-consistent layout; the real one comes from BTF (kernel-profile.test.ts).
const profile: KernelProfile = {
  format: 'hyperspector.io/kernel-profile/v1',
  kernel: { release: 'synthetic', banner: 'Linux version synthetic\n', architecture: 'x86_64' },
  source: { file: 'none', sha256: '', compression: 'none', addressesFrom: 'static-structures' },
  addresses: { startKernelMap: '0xffffffff80000000', text: '0xffffffff81000000', initTask: '0xffffffff82000000', initMm: '0xffffffff82100000', linuxBanner: '0xffffffff82200000' },
  structs: {
    task_struct: {
      size: 0x100,
      members: {
        tasks: m(0x00, 16), pid: m(0x10, 4), tgid: m(0x14, 4), comm: m(0x20, 16), real_parent: m(0x30, 8), mm: m(0x38, 8),
        active_mm: m(0x40, 8), cred: m(0x48, 8), start_time: m(0x50, 8), exit_state: m(0x58, 4), flags: m(0x5c, 4), state: m(0x60, 4),
      },
    },
    mm_struct: { size: 0x40, members: { pgd: m(0, 8), arg_start: m(8, 8), arg_end: m(16, 8) } },
    cred: { size: 0x20, members: { uid: m(4, 4), gid: m(8, 4), euid: m(12, 4) } },
    list_head: { size: 16, members: { next: m(0, 8), prev: m(8, 8) } },
  },
};

const DIRECT_MAP = 0xffff888000000000n;
const PF_KTHREAD = 0x00200000;
const TASK_INTERRUPTIBLE = 1;
const virt = (phys: number) => DIRECT_MAP + BigInt(phys);

interface FakeTask {
  phys: number;
  pid: number;
  comm: string;
  parent: number; // index into tasks, -1 for init_task
  uid: number;
  kernelThread?: boolean;
  argv?: string[];
}

/** Lays out init_task + tasks in a direct-mapped image, linked into a proper circular list. */
function buildKernel(tasks: FakeTask[]) {
  const mem = new SyntheticMemory();
  const img = mem.image;
  const t = profile.structs.task_struct.members;
  const initTask = 0x1000;
  const all = [{ phys: initTask, pid: 0, comm: 'swapper/0', parent: -1, uid: 0, kernelThread: true } as FakeTask, ...tasks];
  let userPage = 0x300000;
  /** Each process's page table and argument address, by pid. */
  const userSpaces = new Map<number, { pgd: bigint; argVa: bigint }>();
  all.forEach((task, i) => {
    const base = task.phys;
    const next = all[(i + 1) % all.length]!.phys;
    const prev = all[(i - 1 + all.length) % all.length]!.phys;
    img.writeBigUInt64LE(virt(next + t.tasks.offset), base + t.tasks.offset);
    img.writeBigUInt64LE(virt(prev + t.tasks.offset), base + t.tasks.offset + 8);
    img.writeInt32LE(task.pid, base + t.pid.offset);
    img.writeInt32LE(task.pid, base + t.tgid.offset);
    img.write(`${task.comm}\0`, base + t.comm.offset, 'latin1');
    img.writeBigUInt64LE(virt(task.parent < 0 ? initTask : all[task.parent + 1]!.phys), base + t.real_parent.offset);
    const cred = base + 0x800;
    img.writeUInt32LE(task.uid, cred + 4);
    img.writeUInt32LE(task.uid, cred + 12);
    img.writeUInt32LE(task.uid, cred + 8);
    img.writeBigUInt64LE(virt(cred), base + t.cred.offset);
    img.writeBigUInt64LE(BigInt(1_000_000 * (i + 1)), base + t.start_time.offset);
    img.writeUInt32LE(task.kernelThread ? PF_KTHREAD : 0, base + t.flags.offset);
    img.writeUInt32LE(TASK_INTERRUPTIBLE, base + t.state.offset);
    if (task.argv) {
      // The process's own page tables map its argument area at a user address.
      const pgd = mem.allocTable();
      const argVa = 0x7ffc0000n + BigInt(i) * 0x10000n;
      mem.map(pgd, 4, argVa, BigInt(userPage), 1);
      userSpaces.set(task.pid, { pgd, argVa });
      const args = Buffer.from(`${task.argv.join('\0')}\0`, 'latin1');
      args.copy(img, userPage);
      userPage += 0x1000;
      const mm = base + 0xa00;
      img.writeBigUInt64LE(virt(Number(pgd)), mm);
      img.writeBigUInt64LE(argVa, mm + 8);
      img.writeBigUInt64LE(argVa + BigInt(args.length), mm + 16);
      img.writeBigUInt64LE(virt(mm), base + t.mm.offset);
    }
  });
  const memory = mem.memory();
  const kernel = new AddressSpace(memory, mem.allocTable(), 4, { base: DIRECT_MAP, size: BigInt(img.length) });
  const options: WalkOptions = { maxTasks: 1000, maxCmdline: 4096, userSpace: (pgd) => new AddressSpace(memory, pgd, 4) };
  return {
    img, mem, userSpaces,
    walk: (o: Partial<WalkOptions> = {}) => walkTasks(kernel, profile, virt(initTask), { ...options, ...o }),
    batched: () => batchedWalks(img, virt(initTask)),
  };
}

/** A snapshot's memory that counts the reads it copies out (those it could not answer in place). */
class CopyCountingMemory extends PrefetchedSnapshotMemory {
  copies = 0;

  override readInto(physical: bigint, into: Buffer, at: number, length: number): boolean {
    this.copies++;
    return super.readInto(physical, into, at, length);
  }
}

/**
 * Walks as the introspector makes them with the native reader: each through a new snapshot memory
 * that first reads in one batch what the previous walk read, with the command-line memo carried over.
 */
function batchedWalks(img: Buffer, initTask: bigint) {
  const backing = new BatchingMemory(img);
  const memo = new CmdlineMemo();
  const buffers = new PrefetchBuffers();
  let plan = ReadPlan.empty;
  const walk = () => {
    const memory = new CopyCountingMemory(backing, plan, buffers);
    const kernel = new AddressSpace(memory, 0n, 4, { base: DIRECT_MAP, size: BigInt(img.length) });
    backing.singleReads = 0;
    const result = walkTasks(kernel, profile, initTask, { maxTasks: 1000, maxCmdline: 4096, userSpace: (pgd) => new AddressSpace(memory, pgd, 4), cmdlineMemo: memo });
    memo.rotate();
    plan = memory.nextPlan();
    return { result, copies: memory.copies, singleReads: backing.singleReads };
  };
  return { backing, walk };
}

const rows = (r: ReturnType<typeof walkTasks>) => r.processes.map((p) => [p.pid, p.ppid, p.comm, p.uid, p.euid, p.gid, p.kernelThread, p.args, p.state, p.startTimeNs]);

const TASKS: FakeTask[] = [
  { phys: 0x10000, pid: 1, comm: 'init', parent: -1, uid: 0, argv: ['/sbin/init'] },
  { phys: 0x11000, pid: 2, comm: 'kthreadd', parent: -1, uid: 0, kernelThread: true },
  { phys: 0x12000, pid: 310, comm: 'nginx', parent: 0, uid: 33, argv: ['nginx:', 'worker', 'process'] },
];
const tasksOffset = profile.structs.task_struct.members.tasks.offset;

describe('task-list walk', () => {
  it('reads every task of a healthy list', () => {
    const result = buildKernel(TASKS).walk();
    assert.equal(result.consistent, true, result.problems.join('; '));
    assert.deepEqual(result.processes.map((p) => [p.pid, p.ppid, p.comm, p.uid, p.kernelThread, p.args, p.state]), [
      [1, 0, 'init', 0, false, '/sbin/init', 'S'],
      [2, 0, 'kthreadd', 0, true, '[kthreadd]', 'S'],
      [310, 1, 'nginx', 33, false, 'nginx: worker process', 'S'],
    ]);
  });

  it('marks a command line longer than the limit as cut, and keeps one at the limit whole', () => {
    const long = ['/usr/bin/app', 'a'.repeat(3000)];
    const k = buildKernel([{ phys: 0x10000, pid: 1, comm: 'app', parent: -1, uid: 0, argv: long }]);
    const whole = k.walk({ maxCmdline: 4096 }).processes[0]!;
    assert.deepEqual([whole.cmdline, whole.cmdlineTruncated], [long, false]);
    const cut = k.walk({ maxCmdline: 100 }).processes[0]!;
    assert.equal(cut.cmdlineTruncated, true);
    assert.equal(cut.cmdline.join('\0').length, 100);
  });

  it('with a memo, re-reads each argument page through its two lowest page-table entries and decodes only what changed', () => {
    const k = buildKernel(TASKS);
    const memo = new CmdlineMemo();
    const args = () => {
      const r = k.walk({ cmdlineMemo: memo });
      memo.rotate();
      return new Map(r.processes.map((p) => [p.pid, p.cmdline]));
    };
    const first = args();
    assert.deepEqual(first.get(310), ['nginx:', 'worker', 'process']);
    const second = args();
    assert.equal(second.get(310), first.get(310), 'unchanged bytes: the decoded arguments are reused');
    assert.deepEqual(second.get(1), ['/sbin/init']);

    // The bytes change in place (setproctitle): decoded again.
    const nginx = k.userSpaces.get(310)!;
    const page = Number(new AddressSpace(k.mem.memory(), nginx.pgd, 4).physicalOf(nginx.argVa)!);
    k.img.write('nginx:\0master\0', page, 'latin1');
    assert.deepEqual(args().get(310), ['nginx:', 'master', 'process']);

    // The page-table entry now maps another page (the page moved): the memo notices and follows it.
    Buffer.from('moved\0to\0another\0page\0', 'latin1').copy(k.img, 0x3f0000); // as long as before
    k.mem.map(nginx.pgd, 4, nginx.argVa, 0x3f0000n, 1);
    assert.deepEqual(args().get(310), ['moved', 'to', 'another', 'page']);
    assert.deepEqual(args().get(1), ['/sbin/init']);
  });

  it('through a snapshot batch, reads the structs in place and lists the same as plain reads', () => {
    const k = buildKernel(TASKS);
    const plain = rows(k.walk());
    const b = k.batched();
    const first = b.walk();
    assert.deepEqual(rows(first.result), plain);
    assert.ok(first.singleReads > 0, 'the first walk has no plan: everything is read singly');
    for (let i = 0; i < 2; i++) {
      const again = b.walk();
      assert.equal(again.result.consistent, true, again.result.problems.join('; '));
      assert.deepEqual(rows(again.result), plain);
      assert.equal(again.singleReads, 0, 'everything came from the batch');
      // Only init_task's two list pointers are copied out (read through readU64); task_structs,
      // creds, mm_structs, parents' tgids, page-table entries and argument bytes are read in place.
      assert.equal(again.copies, 2);
    }
  });

  it('through a snapshot batch, sees what changed since the previous walk (bytes are never carried over)', () => {
    const k = buildKernel(TASKS);
    const b = k.batched();
    b.walk();
    b.walk();
    const t = profile.structs.task_struct.members;
    k.img.writeUInt32LE(1000, 0x12000 + 0x800 + 12); // nginx's euid (cred)
    k.img.write('nginx-new\0', 0x12000 + t.comm.offset, 'latin1');
    const nginx = k.userSpaces.get(310)!;
    const page = Number(new AddressSpace(k.mem.memory(), nginx.pgd, 4).physicalOf(nginx.argVa)!);
    k.img.write('nginx:\0master\0', page, 'latin1');
    const changed = b.walk().result.processes.find((p) => p.pid === 310)!;
    assert.deepEqual([changed.comm, changed.euid, changed.uid, changed.cmdline], ['nginx-new', 1000, 33, ['nginx:', 'master', 'process']]);
    // The argument page moves: followed through the page table, not read at its old place.
    Buffer.from('moved\0to\0another\0page\0', 'latin1').copy(k.img, 0x3f0000);
    k.mem.map(nginx.pgd, 4, nginx.argVa, 0x3f0000n, 1);
    assert.deepEqual(b.walk().result.processes.find((p) => p.pid === 310)!.cmdline, ['moved', 'to', 'another', 'page']);
  });

  it('marks a kernel thread name of the full 15 characters as possibly cut when the profile has no full-name layout', () => {
    const result = buildKernel([{ phys: 0x10000, pid: 2, comm: 'rcu_tasks_rude_', parent: -1, uid: 0, kernelThread: true }, ...TASKS.slice(0, 1).map((t) => ({ ...t, phys: 0x11000 }))]).walk();
    const byPid = new Map(result.processes.map((p) => [p.pid, p]));
    assert.deepEqual([byPid.get(2)?.comm, byPid.get(2)?.commTruncated], ['rcu_tasks_rude_', true]);
    assert.equal(byPid.get(1)?.commTruncated, false);
  });

  it('detects a cycle that does not pass through init_task and stops', () => {
    const k = buildKernel(TASKS);
    // The last task's next points back into the middle of the list.
    k.img.writeBigUInt64LE(virt(0x11000 + tasksOffset), 0x12000 + tasksOffset);
    const result = k.walk();
    assert.equal(result.consistent, false);
    assert.match(result.problems.join('; '), /(cycle|does not point back)/);
    assert.ok(result.processes.length <= 3);
  });

  it('detects a torn link (prev not pointing back) from a task being unlinked', () => {
    const k = buildKernel(TASKS);
    k.img.writeBigUInt64LE(virt(0x5000), 0x11000 + tasksOffset + 8);
    const result = k.walk();
    assert.equal(result.consistent, false);
    assert.match(result.problems[0]!, /does not point back/);
    assert.deepEqual(result.processes.map((p) => p.pid), [1]);
  });

  it('stops at an unreadable next pointer', () => {
    const k = buildKernel(TASKS);
    k.img.writeBigUInt64LE(virt(0x7fff0000), 0x10000 + tasksOffset);
    const result = k.walk();
    assert.equal(result.consistent, false);
    assert.match(result.problems[0]!, /unreadable/);
  });

  it('bounds the walk', () => {
    const result = buildKernel(TASKS).walk({ maxTasks: 2 });
    assert.equal(result.consistent, false);
    assert.match(result.problems[0]!, /more than 2 entries/);
  });

  it('rejects implausible tasks (freed or half-initialised memory)', () => {
    const k = buildKernel(TASKS);
    k.img.writeInt32LE(-7, 0x12000 + profile.structs.task_struct.members.pid.offset);
    const result = k.walk();
    assert.equal(result.consistent, false);
    assert.match(result.problems.join('; '), /pid out of range/);
    assert.deepEqual(result.processes.map((p) => p.pid), [1, 2]);
  });

  it('reports a process without readable argument pages with an empty command line', () => {
    const k = buildKernel(TASKS);
    // Point arg_start into an unmapped user page.
    k.img.writeBigUInt64LE(0x10000000n, 0x12000 + 0xa00 + 8);
    k.img.writeBigUInt64LE(0x10000010n, 0x12000 + 0xa00 + 16);
    const nginx = k.walk().processes.find((p) => p.pid === 310)!;
    assert.deepEqual(nginx.cmdline, []);
    assert.equal(nginx.args, '[nginx]');
  });
});
