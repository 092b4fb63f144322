import assert from 'node:assert/strict';
import type { GuestProcess } from '../../../src/introspection/process-info.ts';
import { alertNote, alertSummary, parentChain, redactCommandLine, REDACTED, type AlertEvent } from '../../../src/sidecar/alert-message.ts';

function proc(pid: number, ppid: number, comm: string, cmdline: string[] = [comm], uid = 0): GuestProcess {
  return { pid, ppid, comm, commTruncated: false, uid, euid: uid, gid: uid, state: 'S', startTimeNs: pid, kernelThread: false, cmdline, cmdlineTruncated: false, args: cmdline.join(' ') };
}

describe('alert messages', () => {
  describe('redactCommandLine', () => {
    const cases: [string[], string[]][] = [
      [['mysql', '--password=hunter2', '-u', 'root'], ['mysql', `--password=${REDACTED}`, '-u', 'root']],
      [['app', '--api-token', 's3cr3t', '--verbose'], ['app', '--api-token', REDACTED, '--verbose']],
      [['env', 'DB_PASSWORD=x', 'AWS_SECRET=y', 'PATH=/bin'], ['env', `DB_PASSWORD=${REDACTED}`, `AWS_SECRET=${REDACTED}`, 'PATH=/bin']],
      [['curl', 'https://admin:pw@example.test/x'], ['curl', `https://admin:${REDACTED}@example.test/x`]],
      [['psql', '--auth', 'tok', 'db'], ['psql', '--auth', REDACTED, 'db']],
      [['sh', '-c', 'echo hello'], ['sh', '-c', 'echo hello']],
      [['sh', '-c', 'run --token abc --x 1 && DB_PASS=q cmd'], ['sh', '-c', `run --token ${REDACTED} --x 1 && DB_PASS=${REDACTED} cmd`]],
      [['tool', '--keyboard', 'us'], ['tool', '--keyboard', 'us']],
    ];
    for (const [input, expected] of cases) {
      it(`${input.join(' ')} → ${expected.join(' ')}`, () => assert.deepEqual(redactCommandLine(input), expected));
    }
  });

  it('names the parents, nearest first, and stops at a loop or the table’s end', () => {
    const table = [proc(1, 0, 'init'), proc(300, 1, 'sshd'), proc(400, 300, 'sshd'), proc(500, 400, 'bash')];
    assert.equal(parentChain(table[3]!, table), '400 sshd ← 300 sshd ← 1 init');
    assert.equal(parentChain(proc(9, 8, 'x'), []), '8 (not in the process table)');
    const loop = [proc(10, 11, 'a'), proc(11, 10, 'b')];
    assert.equal(parentChain(loop[0]!, loop), '11 b');
  });

  it('the note and summary carry rule, pid, comm, uid, parents and the redacted command line', () => {
    const table = [proc(1, 0, 'init'), proc(300, 1, 'sshd')];
    const shell = proc(500, 300, 'sh', ['sh', '-c', 'mysql --password=hunter2'], 0);
    const alert: AlertEvent = { type: 'alert', time: '2026-12-01T21:00:00.000Z', rule: 'RootShellFromNetworkService', message: 'root shell started by network service sshd', process: shell };
    const note = alertNote(alert, table);
    assert.equal(note, `root shell started by network service sshd: pid 500 (sh) uid 0, parents 300 sshd ← 1 init, command line: sh -c mysql --password=${REDACTED}`);
    const direct = alertNote({ ...alert, process: proc(501, 300, 'mysql', ['mysql', '--password=hunter2']) }, table);
    assert.ok(!direct.includes('hunter2') && direct.includes(`--password=${REDACTED}`), direct);
    assert.deepEqual(alertSummary(alert, table), { time: alert.time, rule: alert.rule, pid: 500, comm: 'sh', message: note });
  });

  it('a hidden module alert names the module', () => {
    const alert: AlertEvent = { type: 'alert', time: '2026-12-01T21:00:00.000Z', rule: 'HiddenModule', message: 'kernel module hidden from the module list', module: { name: 'rootkit', state: 'Live', address: '0xffffffffc0001000' } };
    assert.equal(alertNote(alert), 'kernel module hidden from the module list (module rootkit at 0xffffffffc0001000)');
    assert.equal(alertSummary(alert).pid, undefined);
  });
});
