// What a harness killed with SIGKILL could not remove: its processes die with it (pdeathsig), but
// network namespaces, cgroup directories and run directories stay. Each harness records the
// cgroups it makes in <registry>/<pid>.cgroups; its namespaces and temporary directories carry its
// pid in their names (hs<pid>-rg-…, hs-launcher-<pid>-…, hs-pod-<pid>-…, hs-pvc-<pid>-… for claim images). The next harness removes
// what belongs to harnesses that no longer run, and nothing else.
import { appendFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../netns/netns-host.ts';
import { PodCgroup } from './pod-cgroup.ts';

const REGISTRY = join(tmpdir(), 'hyperspector-real-guests');

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Notes a cgroup this harness made, so a later harness can remove it if this one is killed. */
export function recordCgroup(cgroup: PodCgroup): void {
  mkdirSync(REGISTRY, { recursive: true });
  appendFileSync(join(REGISTRY, `${process.pid}.cgroups`), `${JSON.stringify({ root: cgroup.root, segments: cgroup.segments })}\n`);
}

/** Forgets a cgroup this harness removed (and the record file once it lists nothing). */
export function forgetCgroup(cgroup: PodCgroup): void {
  const file = join(REGISTRY, `${process.pid}.cgroups`);
  let lines: string[];
  try {
    lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
  } catch {
    return;
  }
  const entry = JSON.stringify({ root: cgroup.root, segments: cgroup.segments });
  const rest = lines.filter((l) => l !== entry);
  if (rest.length === 0) rmSync(file, { force: true });
  else writeFileSync(file, rest.map((l) => `${l}\n`).join(''));
}

/** Removes the namespaces and cgroups of real-guest harnesses that are gone. */
export async function removeLeftovers(log: (line: string) => void = () => {}): Promise<void> {
  const list = JSON.parse((await run(['ip', '-j', 'netns', 'list'])).trim() || '[]') as { name: string }[];
  for (const { name } of list) {
    const pid = Number(/^hs(\d+)-rg-/.exec(name)?.[1] ?? NaN);
    if (!Number.isFinite(pid) || running(pid)) continue;
    for (const p of (await run(['ip', 'netns', 'pids', name]).catch(() => '')).split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(p), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await run(['ip', 'netns', 'del', name]).catch(() => undefined);
    log(`removed network namespace ${name} of a harness that is gone (pid ${pid})`);
  }
  for (const entry of readdirSync(tmpdir())) {
    const pid = Number(/^hs-(?:launcher|pod|pvc)-(\d+)-/.exec(entry)?.[1] ?? NaN);
    if (!Number.isFinite(pid) || running(pid)) continue;
    rmSync(join(tmpdir(), entry), { recursive: true, force: true });
    log(`removed ${entry} of a harness that is gone (pid ${pid})`);
  }
  let files: string[] = [];
  try {
    files = readdirSync(REGISTRY).filter((f) => f.endsWith('.cgroups'));
  } catch {
    return;
  }
  for (const file of files) {
    const pid = Number(file.replace(/\.cgroups$/, ''));
    if (pid === process.pid || running(pid)) continue;
    for (const line of readFileSync(join(REGISTRY, file), 'utf8').split('\n').filter(Boolean)) {
      const { root, segments } = JSON.parse(line) as { root: string; segments: string[] };
      await PodCgroup.at(root, segments).remove();
    }
    rmSync(join(REGISTRY, file), { force: true });
    log(`removed the cgroups of a harness that is gone (pid ${pid})`);
  }
}
