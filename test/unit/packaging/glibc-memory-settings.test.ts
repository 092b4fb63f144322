// The chart's glibc settings (values mallocArenaMax, mallocMmapThreshold), as the tests and
// benchmarks give them to the operator: a process that frees the large blocks a list response
// needs must give their pages back. With glibc's dynamic mmap threshold the main heap kept them
// (36 MiB resident from the first list on, at 1000 MonitoredServers beside 2000 other VMs).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chartOperatorEnv } from '../../../testenv/operator/operator-process.ts';

/**
 * Allocates and frees 3 MiB blocks, then 1 MiB blocks between small ones that stay, as reading list
 * responses does between the objects a cache keeps; prints the main heap's resident KiB. A freed
 * ArrayBuffer's memory is released after the GC, on V8's sweeper: each phase waits for it.
 */
const PROGRAM = `
const { readFileSync } = require('node:fs');
const settle = async () => { for (let i = 0; i < 2; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 100)); } };
(async () => {
  for (let i = 0; i < 20; i++) Buffer.allocUnsafeSlow(3 << 20).fill(1);
  await settle();
  const kept = [];
  for (let i = 0; i < 100; i++) { Buffer.allocUnsafeSlow(1 << 20).fill(1); kept.push(Buffer.allocUnsafeSlow(4096).fill(1)); }
  await settle();
  const smaps = readFileSync('/proc/self/smaps', 'utf8');
  const at = smaps.indexOf('[heap]');
  console.log(at < 0 ? 0 : Number(/Rss:\\s+(\\d+)/.exec(smaps.slice(at))[1]), kept.length);
})();
`;

function mainHeapKiB(env: Record<string, string>): number {
  const { MALLOC_ARENA_MAX: _a, MALLOC_MMAP_THRESHOLD_: _m, ...rest } = process.env;
  return Number(execFileSync(process.execPath, ['--expose-gc', '-e', PROGRAM], { env: { ...rest, ...env }, encoding: 'utf8' }).trim().split(' ')[0]);
}

describe('the chart’s glibc memory settings', () => {
  it('set a fixed mmap threshold', () => assert.equal(chartOperatorEnv().MALLOC_MMAP_THRESHOLD_, '131072'));

  it('give freed list-sized blocks back: the main heap stays small, where glibc’s dynamic threshold keeps them', function () {
    this.timeout(30_000);
    const { NODE_OPTIONS: _n, ...glibc } = chartOperatorEnv();
    const withChart = mainHeapKiB(glibc);
    const dynamic = mainHeapKiB({ MALLOC_ARENA_MAX: glibc.MALLOC_ARENA_MAX ?? '2' });
    assert.ok(dynamic > 20 * 1024, `glibc's dynamic threshold keeps the blocks (${dynamic} KiB): the comparison means something`);
    assert.ok(withChart < 16 * 1024, `main heap ${withChart} KiB with the chart's settings`);
  });
});
