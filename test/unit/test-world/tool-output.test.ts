// The process-view host test reads procps-ng ps and psmisc pstree output with these parsers
// (testenv/guest/tool-output.ts): what they return is what the test compares with guest A.
import assert from 'node:assert/strict';
import { bracketedName, parseProcpsPs, parsePstree } from '../../../testenv/guest/tool-output.ts';

describe('test world: procps-ng and psmisc output', () => {
  it('reads procps-ng ps rows with users mapped to uids and arguments whole', () => {
    const out = '    PID    PPID USER     COMMAND\n      1       0 root     /bin/sh /init\n      2       0 root     [kthreadd]\n    143       1 alice    /bin/sh /usr/bin/batch-worker --queue reports --nice 5\n    150       1 1002     sleep 5\n';
    assert.deepEqual(parseProcpsPs(out), [
      { pid: 1, ppid: 0, uid: 0, args: '/bin/sh /init' },
      { pid: 2, ppid: 0, uid: 0, args: '[kthreadd]' },
      { pid: 143, ppid: 1, uid: 1000, args: '/bin/sh /usr/bin/batch-worker --queue reports --nice 5' },
      { pid: 150, ppid: 1, uid: 1002, args: 'sleep 5' },
    ]);
    assert.throws(() => parseProcpsPs('  7 1 mallory x\n'), /unknown user mallory/);
    assert.throws(() => parseProcpsPs('error: can not access /proc\n'), /no rows/);
  });

  const names: Array<[string, string | undefined]> = [['[rcu_tasks_rude_kthread]', 'rcu_tasks_rude_kthread'], ['/bin/sh /init', undefined], ['[x] <defunct>', undefined]];
  for (const [args, name] of names) it(`takes the kernel thread's name from ${args}`, () => assert.equal(bracketedName(args), name));

  it('reads pstree -p -l -A into parents: same line, later lines under +, threads, names with dashes and spaces', () => {
    const out = [
      'init(1)-+-hs-workload(160)-+-{hs-workload}(161)',
      '        |                  |-{hs-workload}(162)',
      '        |                  `-{hs-workload}(163)',
      '        |-web-frontend(140)---sleep(141)',
      '        |-npm run build(170)---sh(171)',
      '        `-sleep(150)',
      '',
    ].join('\n');
    const tree = parsePstree(out);
    assert.deepEqual(Object.fromEntries([...tree].map(([pid, n]) => [pid, `${n.name} under ${n.parent}`])), {
      1: 'init under undefined',
      160: 'hs-workload under 1', 161: '{hs-workload} under 160', 162: '{hs-workload} under 160', 163: '{hs-workload} under 160',
      140: 'web-frontend under 1', 141: 'sleep under 140',
      170: 'npm run build under 1', 171: 'sh under 170',
      150: 'sleep under 1',
    });
  });
});
