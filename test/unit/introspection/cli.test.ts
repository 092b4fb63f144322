// The two CLI commands of this area, run as a user would: `profile build` on bad input, and the
// `ps` table format.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatPsTable } from '../../../src/cli/commands/ps.ts';
import type { ProcessSnapshot } from '../../../src/introspection/process-info.ts';

describe('kubectl-hyperspector profile build', function () {
  this.timeout(60_000);
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'hs-cli-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a file that is not a kernel with a clear error and exit code 2', () => {
    const file = join(dir, 'notes.txt');
    writeFileSync(file, 'just some text, not a kernel\n'.repeat(50));
    const r = spawnSync(process.execPath, ['bin/kubectl-hyperspector.js', 'profile', 'build', '--kernel', file], { encoding: 'utf8' });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /cannot build a profile from .*notes\.txt: not a Linux kernel/);
    assert.equal(r.stdout, '');
  });
});

describe('ps table', () => {
  it('prints one aligned row per process and warns about an inconsistent snapshot', () => {
    const snapshot = {
      consistent: false,
      problems: ['task list: cycle'],
      processes: [
        { pid: 1, ppid: 0, euid: 0, state: 'S', startTimeNs: 1.2e9, comm: 'init', args: '/sbin/init' },
        { pid: 1234, ppid: 1, euid: 1000, state: 'R', startTimeNs: 65.04e9, comm: 'batch-worker', args: '/bin/sh /usr/bin/batch-worker --queue reports' },
      ],
    } as unknown as ProcessSnapshot;
    assert.equal(formatPsTable(snapshot), [
      'PID   PPID  UID   STAT  START  COMMAND       ARGS',
      '1     0     0     S     1.2s   init          /sbin/init',
      '1234  1     1000  R     65.0s  batch-worker  /bin/sh /usr/bin/batch-worker --queue reports',
      '# warning: the task list changed while it was read; some processes may be missing (task list: cycle)',
      '',
    ].join('\n'));
  });

  it('marks cut names and command lines', () => {
    const snapshot = {
      consistent: true,
      problems: [],
      processes: [
        { pid: 9, ppid: 2, euid: 0, state: 'I', startTimeNs: 0, comm: 'rcu_tasks_rude_', commTruncated: true, cmdlineTruncated: false, args: '[rcu_tasks_rude_]' },
        { pid: 70, ppid: 1, euid: 0, state: 'S', startTimeNs: 0, comm: 'app', commTruncated: false, cmdlineTruncated: true, args: '/usr/bin/app xxxx' },
      ],
    } as unknown as ProcessSnapshot;
    assert.equal(formatPsTable(snapshot), [
      'PID  PPID  UID  STAT  START  COMMAND           ARGS',
      '9    2     0    I     0.0s   rcu_tasks_rude_…  [rcu_tasks_rude_]',
      '70   1     0    S     0.0s   app               /usr/bin/app xxxx…',
      '# … marks a name or command line cut by the reader (see commTruncated and cmdlineTruncated in -o json)',
      '',
    ].join('\n'));
  });
});
