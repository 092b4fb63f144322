import assert from 'node:assert/strict';
import { parseProcfsListen, procfsAttachChecker } from '../../../src/procfs/procfs-service.ts';

describe('--procfs-listen', () => {
  const cases: Array<[string, { host: string; port: number }]> = [
    ['0.0.0.0:5640', { host: '0.0.0.0', port: 5640 }],
    ['127.0.0.1:0', { host: '127.0.0.1', port: 0 }],
    ['10.0.0.7', { host: '10.0.0.7', port: 5640 }],
    [':7000', { host: '0.0.0.0', port: 7000 }],
    ['[::1]:5641', { host: '::1', port: 5641 }],
  ];
  for (const [value, expected] of cases) it(`reads ${value}`, () => assert.deepEqual(parseProcfsListen(value), expected));
  it('refuses a port out of range', () => assert.throws(() => parseProcfsListen('0.0.0.0:70000'), /bad port/));
});

describe('who may attach the process view', () => {
  it('is nobody without an identity or a token file: refused at start', () => {
    assert.throws(() => procfsAttachChecker({ listen: '0.0.0.0:5640' }), /--procfs-listen 0\.0\.0\.0:5640: needs a Kubernetes identity .* or --procfs-token-file/);
  });

  it('is the shared token\'s holder, the Kubernetes user, or either', async () => {
    const authorizer = { authorizeToken: (t: string) => Promise.resolve(t === 'sa' ? { allowed: true as const, user: 'u' } : { allowed: false as const, status: 403 as const, message: 'no' }) };
    const cases: Array<[Parameters<typeof procfsAttachChecker>[0], Record<string, boolean>]> = [
      [{ listen: 'x', sharedToken: 'shared\n' }, { shared: true, sa: false, '': false }],
      [{ listen: 'x', authorizer }, { shared: false, sa: true }],
      [{ listen: 'x', authorizer, sharedToken: 'shared' }, { shared: true, sa: true, other: false }],
    ];
    for (const [options, expected] of cases) {
      const checker = procfsAttachChecker(options);
      for (const [token, allowed] of Object.entries(expected)) assert.equal((await checker.check(token)).allowed, allowed, `${token} with ${Object.keys(options).join(',')}`);
    }
  });
});
