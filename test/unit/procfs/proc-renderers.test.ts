import assert from 'node:assert/strict';
import {
  CLOCK_TICKS_PER_SECOND, PF_KTHREAD, renderCmdline, renderComm, renderLoadavg, renderStat, renderStatus, renderSystemStat, renderUptime, taskOfProcess, type TaskView,
} from '../../../src/procfs/proc-renderers.ts';
import type { GuestProcess } from '../../../src/introspection/process-info.ts';

// Real lines of this development host's /proc (2026-12-02): a user process and a kernel thread.
const HOST_STAT_PROCESS = '1 (process_api) S 0 0 0 0 -1 4194560 148815 509140830 0 28417 8095 49896 4475633 1568829 10 -10 14 0 20 44273664 2967 18446744073709551615 1 1 0 0 0 0 0 4096 1256 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n';
const HOST_STAT_KTHREAD = '2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 7 0 0 20 0 1 0 20 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n';
const HOST_STATUS = 'Name:\tprocess_api\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t1\nNgid:\t0\nPid:\t1\nPPid:\t0\nTracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nFDSize:\t512\nGroups:\t \nThreads:\t14\n';

/** How procps and busybox split a stat line: comm is between the first '(' and the LAST ')'. */
function parseStat(line: string): { pid: number; comm: string; rest: string[] } {
  const open = line.indexOf('(');
  const close = line.lastIndexOf(')');
  return { pid: Number(line.slice(0, open - 1)), comm: line.slice(open + 1, close), rest: line.slice(close + 2).trimEnd().split(' ') };
}

function fromHostStat(line: string): TaskView {
  const { pid, comm, rest } = parseStat(line);
  // rest[0] is field 3 (state); field n is rest[n - 3].
  const flags = Number(rest[9 - 3]);
  return {
    pid, tgid: pid, comm, state: rest[0]!, ppid: Number(rest[4 - 3]), uid: 0, euid: 0, gid: 0,
    startTimeNs: Number(rest[22 - 3]) * (1e9 / CLOCK_TICKS_PER_SECOND), kernelThread: (flags & PF_KTHREAD) !== 0, cmdline: [], threads: Number(rest[20 - 3]),
  };
}

describe('/proc renderers', () => {
  describe('stat', () => {
    for (const [what, line] of [['a process', HOST_STAT_PROCESS], ['a kernel thread', HOST_STAT_KTHREAD]] as const) {
      it(`renders ${what} with the host's field count and the known fields equal`, () => {
        const host = parseStat(line);
        const ours = parseStat(renderStat(fromHostStat(line)));
        assert.ok(renderStat(fromHostStat(line)).endsWith('\n'));
        assert.equal(ours.rest.length, host.rest.length, 'fields after comm');
        assert.equal(ours.rest.length + 2, 52);
        assert.deepEqual([ours.pid, ours.comm], [host.pid, host.comm]);
        for (const field of [3, 4, 20, 22]) assert.equal(ours.rest[field - 3], host.rest[field - 3], `field ${field}`);
        assert.equal(Number(ours.rest[9 - 3]) & PF_KTHREAD, Number(host.rest[9 - 3]) & PF_KTHREAD, 'PF_KTHREAD in flags');
        assert.ok(ours.rest.every((f) => /^-?\d+$/.test(f) || /^[RSDTtXZPI]$/.test(f)), 'numbers only after the state');
      });
    }

    it('keeps a comm with spaces and parentheses parseable at the last parenthesis', () => {
      const t = fromHostStat(HOST_STAT_PROCESS);
      const line = renderStat({ ...t, comm: 'evil) R 1 (x' });
      assert.deepEqual([parseStat(line).comm, parseStat(line).rest[0], parseStat(line).rest[1]], ['evil) R 1 (x', 'S', '0']);
    });

    it('gives start time in clock ticks', () => {
      const t = fromHostStat(HOST_STAT_PROCESS);
      assert.equal(parseStat(renderStat({ ...t, startTimeNs: 12_345_678_901 })).rest[22 - 3], '1234');
    });
  });

  describe('status', () => {
    it('prints the host\'s lines for the fields it knows, in the host\'s order and format', () => {
      const t = { ...fromHostStat(HOST_STAT_PROCESS), threads: 14 };
      const ours = renderStatus(t).split('\n').filter(Boolean);
      const host = HOST_STATUS.split('\n').filter(Boolean);
      for (const line of ours) assert.ok(host.includes(line), `"${line}" is not a line of the host's status`);
      const order = (lines: string[]) => lines.map((l) => l.slice(0, l.indexOf(':'))).filter((k) => ours.some((o) => o.startsWith(`${k}:`)));
      assert.deepEqual(order(ours), order(host));
    });

    const cases: Array<[Partial<TaskView>, RegExp]> = [
      [{ state: 'Z' }, /^State:\tZ \(zombie\)$/m],
      [{ state: 'I' }, /^State:\tI \(idle\)$/m],
      [{ uid: 1001, euid: 0, gid: 50 }, /^Uid:\t1001\t0\t0\t0\nGid:\t50\t50\t50\t50$/m],
      [{ comm: 'a\\b\nc' }, /^Name:\ta\\\\b\\nc$/m],
      [{ pid: 7, tgid: 5 }, /^Tgid:\t5\nNgid:\t0\nPid:\t7$/m],
    ];
    for (const [change, expected] of cases) {
      it(`renders ${JSON.stringify(change)}`, () => assert.match(renderStatus({ ...fromHostStat(HOST_STAT_PROCESS), ...change }), expected));
    }
  });

  describe('cmdline and comm', () => {
    const p: GuestProcess = { pid: 9, ppid: 1, comm: 'sh', commTruncated: false, uid: 0, euid: 0, gid: 0, state: 'S', startTimeNs: 0, kernelThread: false, cmdline: ['/bin/sh', '-c', 'echo hi'], cmdlineTruncated: false, args: '/bin/sh -c echo hi' };
    it('NUL-terminates each argument', () => assert.equal(renderCmdline(taskOfProcess(p)).toString('latin1'), '/bin/sh\0-c\0echo hi\0'));
    it('is empty for a kernel thread', () => assert.equal(renderCmdline(taskOfProcess({ ...p, cmdline: [], kernelThread: true })).length, 0));
    it('ends comm with a newline', () => assert.equal(renderComm(taskOfProcess(p)), 'sh\n'));
  });

  describe('global files', () => {
    const procs = [
      { pid: 1, state: 'S' }, { pid: 40, state: 'R' }, { pid: 7, state: 'D' },
    ].map((x) => ({ ...x, ppid: 0, comm: 'x', commTruncated: false, uid: 0, euid: 0, gid: 0, startTimeNs: 0, kernelThread: false, cmdline: [], cmdlineTruncated: false, args: '' }));
    it('uptime has two decimals, like the host\'s', () => {
      assert.equal(renderUptime(12.3456), '12.35 0.00\n');
      assert.match(renderUptime(1), /^\d+\.\d\d \d+\.\d\d\n$/);
    });
    it('loadavg counts running and all tasks and gives the last pid', () => assert.equal(renderLoadavg(procs), '0.00 0.00 0.00 1/3 40\n'));
    it('stat has a cpu line with ten counters and btime', () => {
      const text = renderSystemStat(procs, 1_700_000_000.7);
      assert.match(text, /^cpu {2}0 0 0 0 0 0 0 0 0 0\n/);
      assert.match(text, /^btime 1700000000$/m);
      assert.match(text, /^procs_running 1$/m);
      assert.match(text, /^procs_blocked 1$/m);
    });
  });
});
