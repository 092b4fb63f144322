import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
const req = createRequire(import.meta.url);
const native = req('../native/build/guest-memory.node');
const plan = JSON.parse(readFileSync('/tmp/tmp-exp/plan-1024.json', 'utf8'));
const child = spawn('python3', ['-c', 'import time\nb=bytearray(b"x"*(512<<20))\nprint("ok",flush=True)\ntime.sleep(600)'], { stdio: ['ignore', 'pipe', 'inherit'] });
await new Promise((r) => child.stdout!.once('data', r));
const maps = readFileSync(`/proc/${child.pid}/maps`, 'utf8').split('\n').map((l) => l.split(' ')[0]!.split('-').map((x) => parseInt(x, 16))).filter((r) => r.length === 2 && r[1]! - r[0]! >= 512 << 20);
const [start] = maps[0]!;
const count = plan.p.length;
const addrs = new Float64Array(count), lens = Uint32Array.from(plan.l), offs = new Uint32Array(count);
let total = 0;
for (let i = 0; i < count; i++) { addrs[i] = start! + plan.p[i]; offs[i] = total; total += plan.l[i]; }
const into = Buffer.alloc(total);
const tv: number[] = [];
for (let r = 0; r < 101; r++) { const s = performance.now(); const got = native.readRanges(child.pid, addrs, lens, into, offs, 0, count); tv.push(performance.now() - s); if (got !== count) throw new Error('got ' + got); }
tv.sort((a, b) => a - b);
console.log(`${count} ranges ${total} B: median ${tv[50]!.toFixed(2)} ms min ${tv[0]!.toFixed(2)}`);
child.kill();
