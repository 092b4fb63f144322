// Benchmark: list every process of a guest with about 1000 of them, from outside, by reading its
// memory. Prints one JSON line: median time to list all processes over repeated runs, beside the
// floor measured in the same run (bench/introspection-floor.ts: the same walk with plain pread),
// how many were listed against the guest's own `ps`, and the zero-configuration attach time (no
// profile given: the guest kernel's own BTF and kallsyms) first and from the cache.
//   npm run bench:introspection [-- --processes 1000 --runs 21 --warmup 5 --kernel linux-image-amd64]
// The first --warmup rounds (listing and floor alike) are not timed: they run while V8 still compiles
// both walks, which a sidecar listing every few seconds does once.
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { GuestIntrospector, openGuestMemoryReadOnly } from '../src/introspection/guest-introspector.ts';
import { GuestProfileCache } from '../src/introspection/guest-kernel-discovery.ts';
import { closeSync } from 'node:fs';
import { floorWalk } from './introspection-floor.ts';
import { QemuGuest } from '../testenv/guest/qemu-guest.ts';
import { asPsRow, guestPs, waitForGuestPs } from '../testenv/guest/scenario.ts';
import { testGuestAssets } from '../testenv/guest/test-guest.ts';

const { values } = parseArgs({ options: { processes: { type: 'string', default: '1000' }, runs: { type: 'string', default: '21' }, warmup: { type: 'string', default: '5' }, kernel: { type: 'string', default: 'linux-image-amd64' } } });
const target = Number(values.processes);
const runs = Number(values.runs);
const warmup = Number(values.warmup);
const log = (msg: string) => process.stderr.write(`[bench:introspection] ${msg}\n`);

const assets = testGuestAssets(values.kernel);
const guest = await QemuGuest.boot({ kernel: assets.kernel.vmlinuz, initrd: assets.initrd, kaslr: true, memoryMiB: 512 });
try {
  const initial = (await guestPs(guest)).length - 1; // without the ps itself
  const extra = Math.max(0, target - initial);
  log(`guest has ${initial} processes; starting ${extra} more under ${guest.accelerator}`);
  await guest.run(`i=0; while [ $i -lt ${extra} ]; do sleep 100000 & i=$((i+1)); done`, 600_000);
  await waitForGuestPs(guest, (rows) => rows.length - 1 >= target, 600_000);

  const cache = new GuestProfileCache();
  const attachStart = performance.now();
  const introspector = GuestIntrospector.attachToQemu(guest.pid, [], { profileCache: cache });
  const attachMs = performance.now() - attachStart;
  const cachedStart = performance.now();
  GuestIntrospector.attachToQemu(guest.pid, [], { profileCache: cache }).close();
  const cachedAttachMs = performance.now() - cachedStart;
  const lister = GuestIntrospector.attachToQemu(guest.pid, [], { profileCache: cache, detectHidden: false });
  const floorFd = openGuestMemoryReadOnly(guest.pid);
  const times: number[] = [];
  const floorTimes: number[] = [];
  const listTimes: number[] = [];
  const batchTimes: number[] = [];
  const waitTimes: number[] = [];
  let consistentRuns = 0;
  let floor = { processes: 0, bytesRead: 0, reads: 0 };
  for (let i = 0; i < warmup; i++) {
    introspector.snapshot();
    lister.snapshot();
    floorWalk(introspector, floorFd);
  }
  // Interleaved, so both see the same machine load.
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    const s = introspector.snapshot();
    times.push(performance.now() - start);
    if (s.consistent) consistentRuns++;
    const listStart = performance.now();
    lister.snapshot();
    listTimes.push(performance.now() - listStart);
    if (lister.lastPrefetch) {
      batchTimes.push(lister.lastPrefetch.batchMs);
      waitTimes.push(lister.lastPrefetch.waitMs);
    }
    const floorStart = performance.now();
    floor = floorWalk(introspector, floorFd);
    floorTimes.push(performance.now() - floorStart);
  }
  closeSync(floorFd);
  // The guest's own view, bracketed by two reads from outside (the ps process itself excluded).
  const inside = (await guestPs(guest)).filter((r) => !(r.comm === 'ps' && r.ppid === 1));
  const snapshot = introspector.snapshot();
  introspector.close();
  const outside = new Set(snapshot.processes.map((p) => JSON.stringify(asPsRow(p))));
  const matched = inside.filter((r) => outside.has(JSON.stringify(r))).length;
  lister.close();
  times.sort((a, b) => a - b);
  listTimes.sort((a, b) => a - b);
  floorTimes.sort((a, b) => a - b);
  batchTimes.sort((a, b) => a - b);
  waitTimes.sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 100) / 100;
  const median = (xs: number[]) => round(xs[Math.floor(xs.length / 2)]!);
  process.stdout.write(`${JSON.stringify({
    benchmark: 'introspection',
    accelerator: guest.accelerator,
    kernel: snapshot.kernel.release,
    pagingLevels: snapshot.kernel.pagingLevels,
    guestProcesses: inside.length,
    listed: snapshot.processes.length,
    matched,
    runs,
    warmupRuns: warmup,
    consistentRuns,
    medianMs: median(times),
    minMs: round(times[0]!),
    maxMs: round(times.at(-1)!),
    listingOnlyMedianMs: median(listTimes),
    listingOnlyMinMs: round(listTimes[0]!),
    batchedReads: lister.batchedReads,
    ...(lister.batchedReads
      ? { prefetch: { ...lister.lastPrefetch, batchMs: undefined, waitMs: undefined }, batchMedianMs: median(batchTimes), batchWaitMedianMs: median(waitTimes) }
      : { chunkReads: lister.lastChunkReads }),
    floorMedianMs: median(floorTimes),
    floorMinMs: round(floorTimes[0]!),
    floorProcesses: floor.processes,
    floorReads: floor.reads,
    floorBytes: floor.bytesRead,
    profileSource: snapshot.kernel.profileSource,
    attachMs: round(attachMs),
    cachedAttachMs: round(cachedAttachMs),
    loadAverage: loadavg()[0],
  })}\n`);
} finally {
  await guest.stop();
}
