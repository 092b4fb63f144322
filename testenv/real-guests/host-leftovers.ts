// What a real-guest test checks is gone from the host: its network namespaces and pod cgroups.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { cgroup2Root } from './pod-cgroup.ts';

/** Network namespaces whose name starts with `prefix`. */
export function ourNamespaces(prefix: string): string[] {
  return (JSON.parse(execFileSync('ip', ['-j', 'netns', 'list'], { encoding: 'utf8' }).trim() || '[]') as { name: string }[]).map((n) => n.name).filter((n) => n.startsWith(prefix));
}

/** Pod cgroups under kubepods.slice whose name holds one of these pod UIDs. */
export function podCgroups(uids: string[]): string[] {
  const root = join(cgroup2Root(), 'kubepods.slice');
  if (!existsSync(root)) return [];
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      if (uids.some((u) => entry.name.includes(u.replace(/-/g, '_')))) found.push(join(dir, entry.name));
      walk(join(dir, entry.name));
    }
  };
  walk(root);
  return found;
}
