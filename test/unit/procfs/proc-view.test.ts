import assert from 'node:assert/strict';
import type { GuestThread } from '../../../src/introspection/process-details.ts';
import type { GuestProcess, ProcessSnapshot } from '../../../src/introspection/process-info.ts';
import { buildProcView, estimatedUptimeSeconds, type ProcViewSource } from '../../../src/procfs/proc-view.ts';
import { renderMeminfo } from '../../../src/procfs/proc-renderers.ts';
import { resolve, type ViewDir, type ViewNode } from '../../../src/procfs/view-tree.ts';

const proc = (pid: number, ppid: number, comm: string, over: Partial<GuestProcess> = {}): GuestProcess => ({
  pid, ppid, comm, commTruncated: false, uid: 0, euid: 0, gid: 0, state: 'S', startTimeNs: pid * 1e9, kernelThread: false, cmdline: [comm], cmdlineTruncated: false, args: comm, ...over,
});
const NOW = Date.parse('2026-12-02T03:00:10Z');

function snapshotOf(processes: GuestProcess[]): ProcessSnapshot {
  return {
    takenAt: '2026-12-02T03:00:00.000Z', durationMs: 1, consistent: true, problems: [], attempts: 1, processes,
    kernel: { release: '6.1.0-57-amd64', profileSource: 'guest-memory', pagingLevels: 4, virtualSlide: '0x0', physicalSlide: '0x0', kernelVirtualBase: '0x0', directMapBase: '0x0' },
  };
}

function view(processes: GuestProcess[], threads: (pid: number) => GuestThread[] | undefined = () => undefined, over: Partial<ProcViewSource> = {}): { root: () => ViewDir; threadReads: number[] } {
  const threadReads: number[] = [];
  const snapshot = snapshotOf(processes);
  const root = buildProcView({ snapshot: () => snapshot, threads: (pid) => { threadReads.push(pid); return threads(pid); }, now: () => NOW, ramBytes: () => 256 << 20, ...over });
  return { root, threadReads };
}
const text = (n: ViewNode | undefined) => {
  assert.ok(n?.kind === 'file', 'a file');
  return n.render().toString('utf8');
};
const names = (n: ViewNode | undefined) => {
  assert.ok(n?.kind === 'dir', 'a directory');
  return n.list().map((e) => e.name);
};

describe('process view layout', () => {
  const processes = [proc(1, 0, 'init'), proc(42, 1, 'batch-worker', { uid: 1000, euid: 1000, gid: 1000, cmdline: ['/bin/sh', '/usr/bin/batch-worker'] }), proc(2, 0, 'kthreadd', { kernelThread: true, cmdline: [] })];

  it('lists one decimal directory per process and the global files ps and top read', () => {
    assert.deepEqual(names(view(processes).root()), ['1', '42', '2', 'uptime', 'stat', 'loadavg', 'meminfo', 'version', 'cpuinfo', 'sys', 'self']);
    assert.equal(text(resolve(view(processes).root(), ['sys', 'kernel', 'pid_max'])), '4194304\n');
    assert.equal(text(resolve(view(processes).root(), ['sys', 'kernel', 'osrelease'])), '6.1.0-57-amd64\n', 'the release the mapper read');
    assert.equal(text(resolve(view(processes).root(), ['cpuinfo'])), '', 'the CPUs are not read');
  });

  it("links self to the server's init, which procps-ng's ps and top need to start", () => {
    const self = resolve(view(processes).root(), ['self']);
    assert.ok(self?.kind === 'symlink', 'a symbolic link');
    assert.equal(self.target, '1');
    assert.equal(resolve(view([proc(42, 1, 'orphan')]).root(), ['self']), undefined, 'no dangling link without a pid 1');
  });

  it('gives a process directory its effective uid and gid, and its files', () => {
    const dir = resolve(view(processes).root(), ['42'])!;
    assert.deepEqual([dir.uid, dir.gid, dir.perm], [1000, 1000, 0o555]);
    assert.deepEqual(names(dir), ['stat', 'status', 'cmdline', 'comm', 'task']);
    assert.match(text(resolve(view(processes).root(), ['42', 'stat'])), /^42 \(batch-worker\) S 1 /);
    assert.equal(text(resolve(view(processes).root(), ['42', 'cmdline'])), '/bin/sh\0/usr/bin/batch-worker\0');
    assert.equal(text(resolve(view(processes).root(), ['2', 'cmdline'])), '');
  });

  it('does not know a process that is not in the snapshot, nor names outside the layout', () => {
    for (const path of [['43'], ['42', 'environ'], ['42', 'stat', 'x'], ['..'], ['self', 'stat'], ['thread-self']]) assert.equal(resolve(view(processes).root(), path), undefined, path.join('/'));
  });

  it('lists threads under task/ only when it is read, and counts them in stat and status afterwards', () => {
    const v = view(processes, (pid) => (pid === 42 ? [{ tid: 42, comm: 'batch-worker', state: 'S' }, { tid: 43, comm: 'worker-1', state: 'R' }] : undefined));
    assert.match(text(resolve(v.root(), ['42', 'status'])), /^Threads:\t1$/m);
    assert.deepEqual(v.threadReads, [], 'stat and status read no threads');
    assert.deepEqual(names(resolve(v.root(), ['42', 'task'])), ['42', '43']);
    assert.match(text(resolve(v.root(), ['42', 'task', '43', 'stat'])), /^43 \(worker-1\) R 1 /);
    assert.match(text(resolve(v.root(), ['42', 'task', '43', 'status'])), /^Tgid:\t42\nNgid:\t0\nPid:\t43$/m);
    assert.match(text(resolve(v.root(), ['42', 'status'])), /^Threads:\t2$/m);
  });

  it('falls back to the leader when threads cannot be read', () => {
    const v = view(processes, () => { throw new Error('torn read'); });
    assert.deepEqual(names(resolve(v.root(), ['1', 'task'])), ['1']);
  });

  it('is empty apart from global files while not attached', () => {
    const root = buildProcView({ snapshot: () => undefined, threads: () => undefined, now: () => NOW, ramBytes: () => undefined });
    assert.deepEqual(names(root()), ['uptime', 'stat', 'loadavg', 'meminfo', 'version', 'cpuinfo', 'sys']);
    assert.match(text(resolve(root(), ['meminfo'])), /^MemTotal: +1 kB$/m);
  });

  it('estimates uptime from the newest start and the snapshot\'s age, and btime from it', () => {
    assert.equal(estimatedUptimeSeconds(snapshotOf(processes), NOW), 42 + 10);
    assert.equal(text(resolve(view(processes).root(), ['uptime'])), '52.00 0.00\n');
    assert.match(text(resolve(view(processes).root(), ['stat'])), new RegExp(`^btime ${NOW / 1000 - 52}$`, 'm'));
  });

  it('gives MemTotal as the guest RAM in kB', () => {
    assert.match(text(resolve(view(processes).root(), ['meminfo'])), /^MemTotal: +262144 kB$/m);
    assert.match(renderMeminfo(undefined), /^MemFree: +0 kB$/m);
  });
});
