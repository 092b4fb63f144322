// Benchmark of the paper's Fig. 7: requests/s of a web server for files of 0-8 KB with no
// mirroring (base), with tc port mirroring to an IDS VM (mirrored), and with mirroring while the
// IDS captures every packet (tcpdump on its mirror NIC, as a NIDS reads through AF_PACKET).
//
// It also measures what each configuration costs the kernel per packet: the machine's system and
// softirq time from /proc/stat (all CPUs) over each measurement, divided by the packets the server's
// NIC (tap0) sent and received in it. Less sensitive to this machine's noise than requests/s: a
// slower run moves fewer packets, not the cost of each. The difference mirrored − base is what a
// mirrored packet costs (the tc mirred copy, the veth, the IDS bridge and its NIC).
//
// Needs root (network namespaces) and Debian's wrk, tcpdump and gnuplot (hack/deps/dataplane.packages).
// Run: npm run bench:mirroring   (BENCH_MIRRORING_SECONDS per measurement, BENCH_MIRRORING_ROUNDS;
// the defaults, 1 s x 11 rounds x 5 sizes x 3 configurations, take about three minutes)
// Prints one JSON line and a table; writes bench/results/mirroring.{json,dat,png}.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NsenterKernelCommands, ensureServerMirror, removeServerMirror, type ServerMirrorSpec } from '../src/dataplane/index.ts';
import { buildCluster, type ServerPair } from '../testenv/netns/netns-cluster.ts';
import { ProcessGroup, deleteNamespaces, runPrefix, waitForOutput, type TestNetns } from '../testenv/netns/netns-host.ts';

const here = dirname(fileURLToPath(import.meta.url));
const resultsDir = join(here, 'results');
const SIZES_KB = [0, 1, 2, 4, 8] as const;
const CONFIGS = ['base', 'mirrored', 'mirroredCapture'] as const;
type Config = (typeof CONFIGS)[number];
const LABELS: Record<Config, string> = { base: 'no mirroring', mirrored: 'mirrored', mirroredCapture: 'mirrored + IDS capture' };
// Short measurements, many rounds: each round measures the three configurations back to back
// for every size (in a rotating order), and ratios are taken within a round, then the median over
// rounds. On a shared, loaded machine this cancels slow drift and outvotes bursts of other jobs.
const seconds = Number(process.env.BENCH_MIRRORING_SECONDS ?? 1);
const rounds = Number(process.env.BENCH_MIRRORING_ROUNDS ?? 11);
const PORT = 8080;

const kernel = new NsenterKernelCommands();
const processes = new ProcessGroup();

function mirrorSpec(pair: ServerPair): ServerMirrorSpec {
  return {
    server: { netns: pair.serverPod.ref, interface: 'tap0' },
    ids: { netns: pair.idsPod.ref, interface: 'mirror-in', bridge: 'k6t-mirror' },
    linkName: 'hsm0',
    direction: 'Both',
  };
}

async function wrk(client: TestNetns, url: string, durationS: number): Promise<number> {
  const out = await client.exec(['wrk', '-t1', '-c16', `-d${durationS}s`, '--timeout', '2s', url], (durationS + 30) * 1000);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out)?.[1];
  if (rps === undefined) throw new Error(`wrk printed no rate: ${out}`);
  if (/Non-2xx or 3xx responses/.test(out) || /Socket errors/.test(out)) throw new Error(`wrk saw errors against ${url}: ${out}`);
  return Number(rps);
}

/** Clock ticks per second of /proc/stat (USER_HZ). */
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** System and softirq time of all CPUs so far (µs), from the aggregate `cpu` line of /proc/stat. */
function kernelCpuUs(): { system: number; softirq: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith('cpu '));
  // cpu user nice system idle iowait irq softirq steal ...
  const f = (line ?? '').trim().split(/\s+/).slice(1).map(Number);
  const us = (ticks: number | undefined) => ((ticks ?? NaN) * 1e6) / CLK_TCK;
  return { system: us(f[2]), softirq: us(f[6]) };
}

/** Packets the server's NIC has sent and received so far. */
async function serverPackets(pair: ServerPair): Promise<number> {
  const [link] = await pair.serverPod.json<{ stats64: { rx: { packets: number }; tx: { packets: number } } }[]>(['ip', '-j', '-s', 'link', 'show', 'tap0']);
  return link!.stats64.rx.packets + link!.stats64.tx.packets;
}

/** Kernel CPU time per server packet in one measurement (µs). */
interface CpuPerPacket {
  system: number;
  softirq: number;
  packets: number;
}

async function mirroredPackets(pair: ServerPair): Promise<{ packets: number; dropped: number }> {
  const [link] = await pair.serverPod.json<{ stats64: { tx: { packets: number; dropped: number } } }[]>(['ip', '-j', '-s', 'link', 'show', 'hsm0']);
  return { packets: link!.stats64.tx.packets, dropped: link!.stats64.tx.dropped };
}

/** The q-quantile by linear interpolation between order statistics. */
function quantile(values: readonly number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (pos - lo);
}

function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

async function renderPlot(datFile: string, pngFile: string): Promise<void> {
  const script = [
    'set terminal pngcairo size 800,500 font "sans,11"',
    `set output "${pngFile}"`,
    'set title "Web server throughput with port mirroring (cf. HyperSpector Fig. 7)"',
    'set xlabel "file size (KB)"',
    'set ylabel "requests/s"',
    'set yrange [0:*]',
    'set xtics (0, 1, 2, 4, 8)',
    'set key bottom left',
    'set grid ytics',
    `plot "${datFile}" using 1:2 with linespoints lw 2 pt 7 title "${LABELS.base}", \\`,
    `     "${datFile}" using 1:3 with linespoints lw 2 pt 5 title "${LABELS.mirrored}", \\`,
    `     "${datFile}" using 1:4 with linespoints lw 2 pt 9 title "${LABELS.mirroredCapture}"`,
  ].join('\n');
  const gnuplot = spawn('gnuplot', [], { stdio: ['pipe', 'inherit', 'pipe'] });
  let stderr = '';
  gnuplot.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  gnuplot.stdin.end(script);
  const [code] = (await once(gnuplot, 'exit')) as [number];
  if (code !== 0) throw new Error(`gnuplot failed: ${stderr}`);
}

async function main(): Promise<void> {
  const started = Date.now();
  const prefix = runPrefix('bench');
  await deleteNamespaces(prefix);
  const loadBefore = loadavg();
  const samples: Record<Config, number[][]> = { base: SIZES_KB.map(() => []), mirrored: SIZES_KB.map(() => []), mirroredCapture: SIZES_KB.map(() => []) };
  const cpuSamples: Record<Config, CpuPerPacket[][]> = { base: SIZES_KB.map(() => []), mirrored: SIZES_KB.map(() => []), mirroredCapture: SIZES_KB.map(() => []) };
  const capture = { captured: 0, droppedByKernel: 0 };
  const mirror = { packets: 0, dropped: 0 };
  try {
    const cluster = await buildCluster(prefix, [1]);
    const pair = cluster.pairs[0]!;
    const server = processes.add(pair.serverVm.spawn([process.execPath, join(here, 'mirroring-http-server.ts'), pair.serverAddress, String(PORT)]));
    await waitForOutput(server, 'listening on', 'the benchmark web server');
    const url = (kb: number) => `http://${pair.serverAddress}:${PORT}/${kb}k.html`;
    await wrk(cluster.client, url(1), 2); // warm-up: JIT, ARP, TCP

    let mirrorOn = false;
    let tcpdump: { child: ChildProcess; stderr: string } | undefined;
    const stopTcpdump = async () => {
      if (!tcpdump) return;
      await processes.stop(tcpdump.child, 'SIGINT');
      capture.captured += Number(/(\d+) packets captured/.exec(tcpdump.stderr)?.[1] ?? NaN);
      capture.droppedByKernel += Number(/(\d+) packets dropped by kernel/.exec(tcpdump.stderr)?.[1] ?? NaN);
      tcpdump = undefined;
    };
    const enter = async (config: Config) => {
      if (config !== 'mirroredCapture') await stopTcpdump();
      if (config === 'base' && mirrorOn) await removeServerMirror(kernel, mirrorSpec(pair));
      if (config !== 'base' && !mirrorOn) await ensureServerMirror(kernel, mirrorSpec(pair));
      mirrorOn = config !== 'base';
      if (config === 'mirroredCapture' && !tcpdump) {
        const child = processes.add(pair.idsVm.spawn(['tcpdump', '-i', 'mirror0', '-n', '-s', '0', '-w', '/dev/null']));
        const started = { child, stderr: '' };
        child.stderr?.on('data', (c: Buffer) => (started.stderr += c.toString()));
        await waitForOutput(child, 'listening on', 'the IDS capture');
        tcpdump = started;
      }
    };

    for (let round = 0; round < rounds; round++) {
      for (const [i, kb] of SIZES_KB.entries()) {
        // Rotate the order so no configuration always runs first (or right after a warm cache).
        const shift = (round + i) % CONFIGS.length;
        for (const config of [...CONFIGS.slice(shift), ...CONFIGS.slice(0, shift)]) {
          await enter(config);
          const before = mirrorOn ? await mirroredPackets(pair) : undefined;
          const packetsBefore = await serverPackets(pair);
          const cpuBefore = kernelCpuUs();
          samples[config][i]!.push(await wrk(cluster.client, url(kb), seconds));
          const cpuAfter = kernelCpuUs();
          const packets = (await serverPackets(pair)) - packetsBefore;
          cpuSamples[config][i]!.push({ system: (cpuAfter.system - cpuBefore.system) / packets, softirq: (cpuAfter.softirq - cpuBefore.softirq) / packets, packets });
          if (before) {
            const after = await mirroredPackets(pair);
            mirror.packets += after.packets - before.packets;
            mirror.dropped += after.dropped - before.dropped;
          }
        }
      }
    }
    await stopTcpdump();
    if (mirrorOn) await removeServerMirror(kernel, mirrorSpec(pair));
  } finally {
    await processes.stopAll();
    await deleteNamespaces(prefix);
  }

  const rps = Object.fromEntries(CONFIGS.map((c) => [c, samples[c].map((s) => Math.round(median(s)))])) as Record<Config, number[]>;
  // Median over rounds of the within-round ratio (a paired comparison).
  const pairedRatios = (c: Config) => samples[c].map((perSize, i) => perSize.map((v, r) => v / samples.base[i]![r]!));
  const ratio = (c: Config) => pairedRatios(c).map((r) => Number(median(r).toFixed(3)));
  // The spread of the paired ratios says how far the medians can be trusted on a shared machine.
  const ratioIqr = (c: Config) => pairedRatios(c).map((r) => [quantile(r, 0.25), quantile(r, 0.75)].map((v) => Number(v.toFixed(3))));
  // Kernel CPU per server packet: median over rounds, per size; the extra of a mirrored packet is the
  // median of the within-round differences to base (paired, like the ratios).
  const round3 = (v: number) => Number(v.toFixed(3));
  const cpuPer = (c: Config, part: 'system' | 'softirq' | 'total') =>
    cpuSamples[c].map((perSize) => round3(median(perSize.map((m) => (part === 'total' ? m.system + m.softirq : m[part])))));
  const cpuExtra = (c: Config) => cpuSamples[c].map((perSize, i) => round3(median(perSize.map((m, r) => m.system + m.softirq - (cpuSamples.base[i]![r]!.system + cpuSamples.base[i]![r]!.softirq)))));
  const cpuPerPacket = {
    unit: 'µs of system+softirq CPU time (all CPUs, /proc/stat) per packet sent or received by the server NIC',
    clockTicksPerSecond: CLK_TCK,
    system: Object.fromEntries(CONFIGS.map((c) => [c, cpuPer(c, 'system')])),
    softirq: Object.fromEntries(CONFIGS.map((c) => [c, cpuPer(c, 'softirq')])),
    total: Object.fromEntries(CONFIGS.map((c) => [c, cpuPer(c, 'total')])) as Record<Config, number[]>,
    extraOverBase: { mirrored: cpuExtra('mirrored'), mirroredCapture: cpuExtra('mirroredCapture') },
    serverPacketsPerMeasurement: Object.fromEntries(CONFIGS.map((c) => [c, cpuSamples[c].map((perSize) => Math.round(median(perSize.map((m) => m.packets))))])),
  };
  const result = {
    bench: 'mirroring',
    unit: 'requests/s',
    fileSizesKB: SIZES_KB,
    requestsPerSecond: rps,
    ratioToBase: { mirrored: ratio('mirrored'), mirroredCapture: ratio('mirroredCapture') },
    ratioInterquartileRange: { mirrored: ratioIqr('mirrored'), mirroredCapture: ratioIqr('mirroredCapture') },
    target: { mirroredCaptureRatioAtLeast: 0.95, met: ratio('mirroredCapture').every((r) => r >= 0.95) },
    samples: Object.fromEntries(CONFIGS.map((c) => [c, samples[c].map((s) => s.map(Math.round))])),
    cpuPerPacket,
    mirrorLink: mirror,
    idsCapture: capture,
    secondsPerMeasurement: seconds,
    rounds,
    loadAverage: { before: loadBefore.map((l) => Number(l.toFixed(2))), after: loadavg().map((l) => Number(l.toFixed(2))) },
    cpus: cpus().length,
    wallSeconds: Math.round((Date.now() - started) / 1000),
  };
  console.log(JSON.stringify(result));

  const header = ['size', 'base req/s', 'mirrored req/s', 'ratio', '(IQR)', 'mirrored+capture req/s', 'ratio', '(IQR)'];
  const iqr = (c: 'mirrored' | 'mirroredCapture', i: number) => result.ratioInterquartileRange[c][i]!.map((v) => v.toFixed(2)).join('-');
  const rows = SIZES_KB.map((kb, i) =>
    [
      `${kb} KB`,
      rps.base[i],
      rps.mirrored[i],
      result.ratioToBase.mirrored[i]!.toFixed(3),
      iqr('mirrored', i),
      rps.mirroredCapture[i],
      result.ratioToBase.mirroredCapture[i]!.toFixed(3),
      iqr('mirroredCapture', i),
    ].map(String),
  );
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  for (const row of [header, ...rows]) console.log(row.map((cell, c) => cell.padStart(widths[c]!)).join('  '));
  console.log('(requests/s: median over rounds; ratio: median over rounds of the within-round ratio to base; IQR: its interquartile range)');
  const cpuHeader = ['size', 'base sys', 'softirq', 'mirrored sys', 'softirq', '+/pkt', 'capture sys', 'softirq', '+/pkt'];
  const cpuRows = SIZES_KB.map((kb, i) =>
    [
      `${kb} KB`,
      cpuPerPacket.system.base![i]!.toFixed(2),
      cpuPerPacket.softirq.base![i]!.toFixed(2),
      cpuPerPacket.system.mirrored![i]!.toFixed(2),
      cpuPerPacket.softirq.mirrored![i]!.toFixed(2),
      cpuPerPacket.extraOverBase.mirrored[i]!.toFixed(2),
      cpuPerPacket.system.mirroredCapture![i]!.toFixed(2),
      cpuPerPacket.softirq.mirroredCapture![i]!.toFixed(2),
      cpuPerPacket.extraOverBase.mirroredCapture[i]!.toFixed(2),
    ].map(String),
  );
  const cpuWidths = cpuHeader.map((h, c) => Math.max(h.length, ...cpuRows.map((r) => r[c]!.length)));
  console.log('');
  for (const row of [cpuHeader, ...cpuRows]) console.log(row.map((cell, c) => cell.padStart(cpuWidths[c]!)).join('  '));
  console.log(`(µs of kernel CPU per server packet, system and softirq from /proc/stat over all CPUs, median over rounds; +/pkt: median within-round extra over base, system+softirq; USER_HZ ${CLK_TCK})`);
  console.log(`mirrored packets ${mirror.packets} (dropped ${mirror.dropped}); IDS captured ${capture.captured}, dropped by kernel ${capture.droppedByKernel}; load ${result.loadAverage.before.join(' ')} → ${result.loadAverage.after.join(' ')}`);

  await mkdir(resultsDir, { recursive: true });
  const datFile = join(resultsDir, 'mirroring.dat');
  await writeFile(datFile, ['# sizeKB base mirrored mirroredCapture', ...SIZES_KB.map((kb, i) => `${kb} ${rps.base[i]} ${rps.mirrored[i]} ${rps.mirroredCapture[i]}`)].join('\n') + '\n');
  await writeFile(join(resultsDir, 'mirroring.json'), JSON.stringify(result, null, 2) + '\n');
  await renderPlot(datFile, join(resultsDir, 'mirroring.png'));
  console.log(`plot: ${join(resultsDir, 'mirroring.png')}`);
}

const interrupted = async () => {
  await processes.stopAll();
  await deleteNamespaces(runPrefix('bench'));
  process.exit(130);
};
process.once('SIGINT', () => void interrupted());
process.once('SIGTERM', () => void interrupted());

await main();
