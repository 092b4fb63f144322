// The audit log reader of the test world: kube-apiserver rotates its log at 100 MB, and a
// benchmark that read only the current file counted a fraction of the operator's writes.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { auditLogFiles, auditRequests } from '../../../testenv/cluster/audit-log.ts';

function entry(name: string, at: string): string {
  return JSON.stringify({ stage: 'ResponseComplete', verb: 'patch', user: { username: 'op' }, requestURI: `/api/v1/namespaces/a/pods/${name}`, objectRef: { resource: 'pods', namespace: 'a', name }, requestReceivedTimestamp: at });
}

describe('the audit log reader (test world)', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'audit-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reads the rotated files, oldest first, then the current one; nothing else beside them', () => {
    writeFileSync(join(dir, 'audit-2026-12-03T11-13-27.570.log'), `${entry('b', '2026-12-03T11:10:00Z')}\n`);
    writeFileSync(join(dir, 'audit-2026-12-03T11-02-01.001.log'), `${entry('a', '2026-12-03T11:00:00Z')}\n`);
    writeFileSync(join(dir, 'audit.log'), `${entry('c', '2026-12-03T11:20:00Z')}\n`);
    writeFileSync(join(dir, 'audit-2.log'), `${entry('x', '2026-12-03T11:20:00Z')}\n`);
    writeFileSync(join(dir, 'audit-policy.yaml'), 'rules: []\n');
    const path = join(dir, 'audit.log');
    assert.deepEqual(
      auditLogFiles(path).map((f) => f.slice(dir.length + 1)),
      ['audit-2026-12-03T11-02-01.001.log', 'audit-2026-12-03T11-13-27.570.log', 'audit.log'],
    );
    assert.deepEqual(
      auditRequests(path, { username: 'op', writesOnly: true }).map((e) => e.objectRef?.name),
      ['a', 'b', 'c'],
    );
    assert.deepEqual(auditLogFiles(join(dir, 'audit-2.log')).map((f) => f.slice(dir.length + 1)), ['audit-2.log']);
  });

  it('has no files before the API server wrote any', () => assert.deepEqual(auditLogFiles(join(dir, 'audit.log')), []));
});
