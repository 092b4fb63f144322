import assert from 'node:assert/strict';
import type { MonitoredServerStatus } from '../../../src/api/v1alpha1/monitoredserver-types.ts';
import { NotReadyRecheck } from '../../../src/controllers/monitoredserver/not-ready-recheck.ts';

const T = '2026-12-01T10:00:00Z';
const status = (reason: string, message = reason): MonitoredServerStatus =>
  ({ observedGeneration: 1, conditions: [{ type: 'Ready', status: 'False', reason, message, lastTransitionTime: T }] }) as MonitoredServerStatus;

describe('the not-Ready safety-net recheck (backs off while nothing changes)', () => {
  it('starts at the base, doubles while the status stays the same, and stops at the cap', () => {
    const r = new NotReadyRecheck({ baseMs: 60_000, maxMs: 300_000 });
    const delays = [1, 2, 3, 4, 5].map(() => r.after('shop/web-1', status('IDSVMStarting')));
    assert.deepEqual(delays, [60_000, 120_000, 240_000, 300_000, 300_000]);
  });

  it('starts again from the base when the status changes (reason or message), per MonitoredServer', () => {
    const r = new NotReadyRecheck({ baseMs: 60_000, maxMs: 300_000 });
    r.after('shop/web-1', status('IDSVMStarting'));
    assert.equal(r.after('shop/web-1', status('IDSVMStarting')), 120_000);
    assert.equal(r.after('shop/web-2', status('IDSVMStarting')), 60_000, 'another key has its own delay');
    assert.equal(r.after('shop/web-1', status('IDSVMStarting', 'waiting on node n2')), 60_000, 'a new message is a change');
    assert.equal(r.after('shop/web-1', status('ServerVMStopped')), 60_000);
    assert.equal(r.after('shop/web-1', status('ServerVMStopped')), 120_000);
  });

  it('forgets a key that became Ready or was deleted, and everything on clear (a new leadership term)', () => {
    const r = new NotReadyRecheck({ baseMs: 5_000, maxMs: 20_000 });
    r.after('a', status('IDSVMStarting'));
    r.after('a', status('IDSVMStarting'));
    r.forget('a');
    assert.equal(r.after('a', status('IDSVMStarting')), 5_000);
    r.after('b', status('IDSVMStarting'));
    r.clear();
    assert.equal(r.size, 0);
  });

  it('never backs off when the cap is the base (the tests run it so: a fixed 5 s), nor below the base', () => {
    const fixed = new NotReadyRecheck({ baseMs: 5_000, maxMs: 5_000 });
    assert.deepEqual([1, 2, 3].map(() => fixed.after('a', status('IDSVMStarting'))), [5_000, 5_000, 5_000]);
    const inverted = new NotReadyRecheck({ baseMs: 60_000, maxMs: 1_000 });
    assert.deepEqual([1, 2].map(() => inverted.after('a', status('IDSVMStarting'))), [60_000, 60_000]);
  });
});
