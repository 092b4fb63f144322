// `npm run demo` as a newcomer runs it: on a real-guest node it shows the server's process table
// read from its memory and an alert's Warning Event; Ctrl-C then stops everything and leaves no
// process, network namespace, cgroup, tap or run directory behind.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cgroup2Root } from '../../testenv/real-guests/pod-cgroup.ts';
import { REPO_ROOT } from '../../testenv/repo-root.ts';
import { waitFor } from '../../testenv/wait.ts';

interface HostState {
  netns: string[];
  links: string[];
  cgroups: string[];
  qemus: string[];
  runDirs: string[];
}

function hostState(): HostState {
  const netns = (JSON.parse(execFileSync('ip', ['-j', 'netns', 'list'], { encoding: 'utf8' }).trim() || '[]') as { name: string }[]).map((n) => n.name);
  const links = (JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as { ifname: string }[]).map((l) => l.ifname);
  const root = join(cgroup2Root(), 'kubepods.slice');
  const cgroups: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      cgroups.push(join(dir, e.name));
      walk(join(dir, e.name));
    }
  };
  if (existsSync(root)) walk(root);
  const qemus = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes('qemu-system') && l.includes('guest='));
  const runDirs = readdirSync(tmpdir()).filter((d) => d.startsWith('hs-pod-') || d.startsWith('hs-launcher-') || d.startsWith('hyperspector-cluster-'));
  return { netns, links, cgroups, qemus, runDirs };
}

const added = (before: string[], after: string[]) => after.filter((x) => !before.includes(x));

describe('npm run demo on a real-guest node', function () {
  this.timeout(900_000);

  it('shows a real guest’s process table and an alert’s Event; Ctrl-C leaves nothing behind', async function () {
    const before = hostState();
    const demo = spawn('bash', [join(REPO_ROOT, 'hack', 'demo.sh'), '--timeout', '600'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    demo.stdout.on('data', (d: Buffer) => (out += d.toString()));
    demo.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => demo.on('exit', (code) => resolve(code)));
    const started = Date.now();
    try {
      await waitFor(() => /summary: first process list/.test(out) || undefined, { timeoutMs: 600_000, intervalMs: 500, description: `the demo to show the process table and the alert (output so far:\n${out.slice(-3000)})` });
    } catch (err) {
      demo.kill('SIGINT');
      await exited;
      throw err;
    }
    process.stderr.write(`[e2e] demo showed the process table and the alert ${((Date.now() - started) / 1000).toFixed(0)} s after start\n${out.split('\n').filter((l) => /summary|kubectl hyperspector ps/.test(l)).join('\n')}\n`);
    // The process table: ps's columns and processes of the guest (read from its memory).
    assert.match(out, /PID\s+PPID\s+UID/);
    assert.match(out, /\binit\b/);
    // The alert's Warning Event, posted by the process mapper, and the Alerts column.
    assert.match(out, /ProcessOutsideBaseline\s+hyperspector-process-mapper\s+web-1\s+.*reverse-shell/);
    assert.match(out, /NAME\s+READY\s+REASON\s+NODE\s+SERVER\s+IDS\s+ALERTS/);

    demo.kill('SIGINT');
    const code = await exited;
    assert.equal(code, 0, out.slice(-2000));
    assert.match(out, /cleaned up/);
    const after = hostState();
    assert.deepEqual(added(before.qemus, after.qemus), [], 'no QEMU left');
    assert.deepEqual(added(before.netns, after.netns), [], 'no network namespace left');
    assert.deepEqual(added(before.links, after.links), [], 'no link (tap, veth, bridge) left on the host');
    assert.deepEqual(added(before.cgroups, after.cgroups), [], 'no pod cgroup left');
    assert.deepEqual(added(before.runDirs, after.runDirs), [], 'no run directory left');
  });
});
