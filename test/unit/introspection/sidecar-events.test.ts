// The sidecar's pure parts: snapshot differences as events, the baseline and its alert rules, and
// the poll loop's handling of attach failures, inconsistent snapshots and QEMU restarts (with fakes
// for QEMU and the clock).
import assert from 'node:assert/strict';
import { FakeClock } from '../../../src/kube/testing/fake-clock.ts';
import { silentLogger } from '../../../src/kube/util/logger.ts';
import type { GuestProcess, ProcessSnapshot } from '../../../src/introspection/process-info.ts';
import { Baseline, DEFAULT_NETWORK_SERVICES, DEFAULT_SHELLS } from '../../../src/sidecar/baseline.ts';
import { diffProcesses, type MapperEvent } from '../../../src/sidecar/events.ts';
import { createMapperMetrics } from '../../../src/sidecar/metrics.ts';
import { ProcessMapper, type Introspector } from '../../../src/sidecar/process-mapper.ts';
import { AmbiguousQemuError } from '../../../src/sidecar/qemu-finder.ts';
import type { BaselineRecord, BaselineStore } from '../../../src/sidecar/baseline-store.ts';
import type { ProcessSocket } from '../../../src/introspection/guest-introspector.ts';

const listener = (pid: number, comm: string, port: number, o: Partial<ProcessSocket> = {}): ProcessSocket => ({
  pid, comm, fd: 3, inode: 1000 + port, family: 'inet', protocol: 'tcp', state: 'LISTEN', local: `0.0.0.0:${port}`, remote: '0.0.0.0:*', localPort: port, remotePort: 0, ...o,
});

const proc = (pid: number, comm: string, o: Partial<GuestProcess> = {}): GuestProcess => {
  const cmdline = o.cmdline ?? [comm];
  return { pid, ppid: 1, comm, commTruncated: false, uid: 0, euid: 0, gid: 0, state: 'S', startTimeNs: pid * 1000, kernelThread: false, cmdline, cmdlineTruncated: false, args: cmdline.join(' '), ...o };
};
const T = '2026-01-01T00:00:00.000Z';

describe('process events from snapshot differences', () => {
  it('reports starts, exits and execs', () => {
    const before = [proc(1, 'init'), proc(50, 'sshd'), proc(60, 'sh')];
    const after = [proc(1, 'init'), proc(60, 'curl', { cmdline: ['curl', 'http://x'] }), proc(70, 'cron')];
    const types = diffProcesses(before, after, T).map((e) => `${e.type}:${'process' in e ? e.process.pid : ''}`);
    assert.deepEqual(types.sort(), ['process-exec:60', 'process-exit:50', 'process-start:70']);
  });

  it('does not take an exiting process (zombie without mm) for an exec', () => {
    const events = diffProcesses([proc(90, 'job', { cmdline: ['job', '-x'] })], [proc(90, 'job', { cmdline: [], args: '[job]', state: 'Z' })], T);
    assert.deepEqual(events, []);
  });

  it('tells a reused pid from the same process by start time', () => {
    const events = diffProcesses([proc(80, 'job', { startTimeNs: 1 })], [proc(80, 'job', { startTimeNs: 2 })], T);
    assert.deepEqual(events.map((e) => e.type).sort(), ['process-exit', 'process-start']);
  });
});

describe('baseline', () => {
  const policy = { learningWindowMs: 60_000, shells: DEFAULT_SHELLS, networkServices: DEFAULT_NETWORK_SERVICES };

  it('learns during the window and alerts on unknown programs after it', async () => {
    const clock = new FakeClock();
    const b = new Baseline(policy, clock);
    const all = new Map<number, GuestProcess>();
    assert.deepEqual(b.judge([proc(10, 'nginx', { cmdline: ['/usr/sbin/nginx'] })], all), []);
    await clock.advance(61_000);
    assert.equal(b.learning, false);
    assert.deepEqual(b.judge([proc(11, 'nginx', { cmdline: ['/usr/sbin/nginx'] })], all), [], 'a known program');
    const alerts = b.judge([proc(12, 'xmrig', { cmdline: ['/tmp/xmrig'] }), proc(13, 'nginx', { cmdline: ['/usr/sbin/nginx'], euid: 1000 })], all);
    assert.deepEqual(alerts.map((a) => [a.rule, a.process.pid]), [['ProcessOutsideBaseline', 12], ['ProcessOutsideBaseline', 13]]);
  });

  it('judges a process caught inside execve (no command line yet, the old comm) by the program it runs at the next snapshot', async () => {
    const clock = new FakeClock();
    const b = new Baseline(policy, clock);
    const init = proc(1, 'init', { cmdline: ['/bin/sh', '/init'] });
    b.judge([init], new Map([[1, init]]));
    await clock.advance(61_000);
    const midExec = proc(94, 'init', { cmdline: [], args: '[init]' });
    assert.deepEqual(b.judge([midExec], new Map([[1, init], [94, midExec]])), [], 'not judged by the name it is leaving');
    const execed = proc(94, 'intruder-tool', { cmdline: ['/bin/sh', '/usr/bin/intruder-tool'] });
    const alerts = b.judge([execed], new Map([[1, init], [94, execed]]));
    assert.deepEqual(alerts.map((a) => [a.rule, a.process.pid, a.process.comm]), [['ProcessOutsideBaseline', 94, 'intruder-tool']]);
    assert.deepEqual(b.judge([], new Map([[1, init]])), [], 'judged once');
  });

  it('judges a process still without a command line at the next snapshot by what it shows; forgets one that exited', async () => {
    const clock = new FakeClock();
    const b = new Baseline(policy, clock);
    b.judge([], new Map());
    await clock.advance(61_000);
    const hidden = proc(95, 'miner', { cmdline: [], args: '[miner]' });
    const brief = proc(96, 'init', { cmdline: [], args: '[init]' });
    assert.deepEqual(b.judge([hidden, brief], new Map([[95, hidden], [96, brief]])), []);
    const alerts = b.judge([], new Map([[95, hidden]]));
    assert.deepEqual(alerts.map((a) => [a.rule, a.process.pid]), [['ProcessOutsideBaseline', 95]]);
    assert.deepEqual(b.judge([], new Map([[95, hidden]])), [], 'judged once');
    // Seen during the window and still without arguments after it: learned, as the window saw it.
    const late = new Baseline(policy, clock);
    const daemon = proc(97, 'agetty', { cmdline: [], args: '[agetty]' });
    late.judge([daemon], new Map([[97, daemon]]));
    await clock.advance(61_000);
    assert.deepEqual(late.judge([], new Map([[97, daemon]])), []);
    assert.deepEqual(late.judge([proc(98, 'agetty', { cmdline: [], args: '[agetty]' })], new Map()), [], 'learned');
  });

  it('never judges kernel threads', async () => {
    const clock = new FakeClock();
    const b = new Baseline(policy, clock);
    b.judge([], new Map());
    await clock.advance(61_000);
    assert.deepEqual(b.judge([proc(99, 'kworker/0:3-events', { kernelThread: true, cmdline: [] })], new Map()), []);
  });

  it('alerts on a root shell whose parent is a network service, even during learning', () => {
    const b = new Baseline(policy, new FakeClock());
    const nginx = proc(20, 'nginx');
    const all = new Map([[20, nginx]]);
    const alerts = b.judge([proc(21, 'sh', { ppid: 20 }), proc(22, 'sh', { ppid: 20, euid: 33 }), proc(23, 'ls', { ppid: 20 })], all);
    assert.deepEqual(alerts.map((a) => [a.rule, a.process.pid, a.parent?.comm]), [['RootShellFromNetworkService', 21, 'nginx']]);
  });
});

describe('process mapper poll loop', () => {
  function snapshot(processes: GuestProcess[], consistent = true): ProcessSnapshot {
    return {
      takenAt: T, durationMs: 1, consistent, problems: consistent ? [] : ['torn'], attempts: 1,
      kernel: { release: 'test', profileSource: 'guest-memory', pagingLevels: 4, virtualSlide: '0x0', physicalSlide: '0x0', kernelVirtualBase: '0x0', directMapBase: '0x0' },
      processes,
    };
  }

  function setup(store?: { baselineStore: BaselineStore; restoredBaseline?: BaselineRecord }) {
    const world = { qemuPid: undefined as number | undefined, ambiguous: undefined as number[] | undefined, snapshots: [] as ProcessSnapshot[], sockets: [] as ProcessSocket[], socketScans: 0, attachFails: false, closed: 0, attachCalls: 0 };
    const clock = new FakeClock();
    const mapper = new ProcessMapper({
      vmi: { namespace: 'ns', name: 'vm' }, profiles: [], pollIntervalMs: 1000,
      baseline: { learningWindowMs: 1000, shells: DEFAULT_SHELLS, networkServices: DEFAULT_NETWORK_SERVICES },
      clock, logger: silentLogger(), metrics: createMapperMetrics(false), socketScanIntervalMs: 5000,
      findQemu: (vmi) => {
        if (world.ambiguous) throw new AmbiguousQemuError(world.ambiguous, vmi);
        return world.qemuPid;
      },
      attach: (): Introspector => {
        world.attachCalls++;
        if (world.attachFails) throw new Error('kernel not found yet');
        return {
          snapshot: () => world.snapshots[0] ?? snapshot([]),
          listSockets: () => {
            world.socketScans++;
            return world.sockets;
          },
          close: () => world.closed++,
        };
      },
      ...(store ?? {}),
    });
    const events: MapperEvent[] = [];
    mapper.subscribe((e) => events.push(e.event));
    return { world, mapper, events, clock };
  }

  it('detaches and alerts once when two processes claim to be the QEMU, reads nothing meanwhile', () => {
    const { world, mapper, events } = setup();
    world.qemuPid = 100;
    world.snapshots = [snapshot([proc(1, 'init')])];
    mapper.pollOnce();
    world.ambiguous = [100, 666];
    mapper.pollOnce();
    mapper.pollOnce();
    assert.deepEqual(events.map((e) => (e.type === 'alert' ? e.rule : e.type)), ['guest-attached', 'guest-detached', 'AmbiguousQemu'], 'one alert for the same claimants');
    assert.equal(mapper.state().snapshot, undefined);
    assert.match(mapper.state().lastError!, /2 processes claim to be the QEMU of VMI ns\/vm \(pids 100, 666\)/);
    world.ambiguous = undefined;
    mapper.pollOnce();
    assert.equal(events.at(-1)?.type, 'guest-attached', 'back to the one QEMU once the impostor is gone');
  });

  it('waits for QEMU and for the kernel (backing off), then attaches', async () => {
    const { world, mapper, events, clock } = setup();
    mapper.pollOnce();
    assert.match(mapper.state().lastError!, /no QEMU process for VMI ns\/vm/);
    world.qemuPid = 100;
    world.attachFails = true;
    for (let second = 0; second < 8; second++) {
      mapper.pollOnce();
      await clock.advance(1000);
    }
    // Attempts at 0 s, then after 1, 2 and 4 s more: 0, 1, 3, 7.
    assert.equal(world.attachCalls, 4);
    assert.match(mapper.state().lastError!, /attach to QEMU pid 100 failed: kernel not found yet/);
    world.attachFails = false;
    world.snapshots = [snapshot([proc(1, 'init')])];
    await clock.advance(30_000);
    mapper.pollOnce();
    assert.deepEqual(events.map((e) => e.type), ['guest-attached']);
    assert.equal(mapper.state().snapshot?.processes.length, 1);
  });

  it('skips inconsistent snapshots instead of reporting false exits', async () => {
    const { world, mapper, events, clock } = setup();
    world.qemuPid = 100;
    world.snapshots = [snapshot([proc(1, 'init'), proc(5, 'sshd')])];
    mapper.pollOnce();
    world.snapshots = [snapshot([proc(1, 'init')], false)];
    mapper.pollOnce();
    assert.deepEqual(events.map((e) => e.type), ['guest-attached']);
    await clock.advance(2000); // past the learning window: bash is new to the baseline
    world.snapshots = [snapshot([proc(1, 'init'), proc(5, 'sshd'), proc(6, 'bash')])];
    mapper.pollOnce();
    assert.deepEqual(events.map((e) => e.type), ['guest-attached', 'process-start', 'alert']);
  });

  it('raises an alert once per process, also across a re-attach', async () => {
    const { world, mapper, events, clock } = setup();
    world.qemuPid = 100;
    world.snapshots = [snapshot([proc(1, 'init')])];
    mapper.pollOnce();
    await clock.advance(2000);
    world.snapshots = [snapshot([proc(1, 'init'), proc(7, 'miner')])];
    mapper.pollOnce();
    world.qemuPid = 101; // e.g. the finder briefly saw another pid: detach, re-attach, re-judge everything
    mapper.pollOnce();
    assert.deepEqual(events.map((e) => e.type), ['guest-attached', 'process-start', 'alert', 'guest-detached', 'guest-attached']);
  });

  it('follows QEMU to a new pid', () => {
    const { world, mapper, events } = setup();
    world.qemuPid = 100;
    mapper.pollOnce();
    world.qemuPid = 200;
    mapper.pollOnce();
    assert.deepEqual(events.map((e) => e.type), ['guest-attached', 'guest-detached', 'guest-attached']);
    assert.equal(world.closed, 1);
    assert.equal(mapper.state().qemuPid, 200);
    assert.deepEqual(mapper.eventsAfter(2).map((e) => e.event.type), ['guest-attached']);
  });

  /** A store in memory whose saves fail while `failing` is set. */
  function memoryStore(initial?: BaselineRecord) {
    const saved: Array<Omit<BaselineRecord, 'generation'>> = [];
    const store = {
      failing: false as boolean,
      saved,
      baselineStore: {
        location: 'memory',
        load: async () => initial,
        save: async (r: Omit<BaselineRecord, 'generation'>) => {
          if (store.failing) throw new Error('API down');
          saved.push(r);
        },
      } satisfies BaselineStore,
    };
    return store;
  }
  const flush = () => new Promise((r) => setImmediate(r));

  it('stores the baseline once the window has ended (once; a failed save is tried again)', async () => {
    const store = memoryStore();
    const { world, mapper, clock } = setup({ baselineStore: store.baselineStore });
    world.qemuPid = 100;
    world.snapshots = [snapshot([proc(1, 'init'), proc(5, 'nginx', { cmdline: ['/usr/sbin/nginx'] })])];
    mapper.pollOnce();
    await flush();
    assert.equal(store.saved.length, 0, 'nothing stored while learning');
    store.failing = true;
    await clock.advance(1500);
    mapper.pollOnce();
    await flush();
    assert.equal(store.saved.length, 0);
    store.failing = false;
    mapper.pollOnce();
    await flush();
    mapper.pollOnce();
    await flush();
    assert.equal(store.saved.length, 1, 'stored once');
    assert.deepEqual(store.saved[0]!.identities, [JSON.stringify(['init', 'init', 0]), JSON.stringify(['listeners-known']), JSON.stringify(['nginx', '/usr/sbin/nginx', 0])]);
  });

  it('NewListeningSocket: a program listening on a port the baseline never saw alerts once per process and port; scans are spaced', async () => {
    const { world, mapper, events, clock } = setup();
    world.qemuPid = 100;
    const nginx = proc(5, 'nginx', { cmdline: ['/usr/sbin/nginx'] });
    const nc = proc(6, 'nc', { cmdline: ['nc', '-l', '-p', '4444'] });
    world.snapshots = [snapshot([proc(1, 'init'), nginx])];
    world.sockets = [listener(5, 'nginx', 80), listener(5, 'nginx', 53, { protocol: 'udp', state: 'UNCONN' }), listener(5, 'nginx', 0, { state: 'ESTAB', localPort: 80, remotePort: 5555 })];
    mapper.pollOnce();
    assert.equal(world.socketScans, 1, 'the first poll scans');
    assert.equal(mapper.state().sockets?.sockets.length, 3, 'GET /sockets serves the scan');
    await clock.advance(1500);
    world.snapshots = [snapshot([proc(1, 'init'), nginx, nc])];
    world.sockets = [listener(5, 'nginx', 80), listener(5, 'nginx', 53, { protocol: 'udp', state: 'UNCONN' }), listener(6, 'nc', 4444), listener(5, 'nginx', 8080, { state: 'ESTAB', remotePort: 40000 })];
    mapper.pollOnce();
    assert.equal(world.socketScans, 1, 'no second scan within the interval');
    await clock.advance(5000);
    mapper.pollOnce();
    mapper.pollOnce();
    assert.equal(world.socketScans, 2);
    const alerts = events.filter((e) => e.type === 'alert' && e.rule === 'NewListeningSocket');
    assert.deepEqual(alerts.map((e) => e.type === 'alert' && 'process' in e ? [e.process.pid, e.socket?.localPort, e.message] : []), [
      [6, 4444, 'nc (pid 6, uid 0) listens on tcp 0.0.0.0:4444, which the baseline did not have'],
    ], 'learned listeners, connected sockets and the same alert again are not raised');
    await clock.advance(5000);
    mapper.pollOnce();
    assert.equal(events.filter((e) => e.type === 'alert' && e.rule === 'NewListeningSocket').length, 1, 'once per process and port');
  });

  it('a stored baseline judges listeners from the first scan; one stored before listeners were learned learns them first', () => {
    const known: BaselineRecord = { identities: [JSON.stringify(['init', 'init', 0]), JSON.stringify(['listeners-known'])], learnedAt: T, generation: '' };
    const older: BaselineRecord = { identities: [JSON.stringify(['init', 'init', 0])], learnedAt: T, generation: '' };
    const results = [known, older].map((stored) => {
      const { world, mapper, events } = setup({ baselineStore: memoryStore(stored).baselineStore, restoredBaseline: stored });
      world.qemuPid = 100;
      world.snapshots = [snapshot([proc(1, 'init', { cmdline: ['init'] }), proc(7, 'init', { cmdline: ['init'] })])];
      world.sockets = [listener(7, 'init', 31337)];
      mapper.pollOnce();
      return events.filter((e) => e.type === 'alert' && e.rule === 'NewListeningSocket').length;
    });
    assert.deepEqual(results, [1, 0]);
  });

  it('with a stored baseline, judges from the first snapshot: a program started at boot that it lacks alerts at once', async () => {
    const stored: BaselineRecord = { identities: [JSON.stringify(['init', 'init', 0])], learnedAt: T, generation: '' };
    const store = memoryStore(stored);
    const { world, mapper, events } = setup({ baselineStore: store.baselineStore, restoredBaseline: stored });
    assert.equal(mapper.state().baselineLearning, false);
    world.qemuPid = 100;
    world.snapshots = [snapshot([proc(1, 'init'), proc(9, 'backdoor', { cmdline: ['/tmp/backdoor'] })])];
    mapper.pollOnce();
    await flush();
    const alerts = events.filter((e) => e.type === 'alert');
    assert.deepEqual(alerts.map((e) => (e.type === 'alert' && 'process' in e ? [e.rule, e.process.pid] : [])), [['ProcessOutsideBaseline', 9]]);
    assert.equal(store.saved.length, 0, 'a restored baseline is not written again');
  });
});
