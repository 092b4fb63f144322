// Loads kernel profiles from files or directories. A ConfigMap mounted as a volume is a directory
// with one file per key (plus `..data` symlink bookkeeping, which is skipped).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseKernelProfile, type KernelProfile } from './kernel-profile.ts';

export function loadKernelProfiles(paths: string[]): KernelProfile[] {
  const files: string[] = [];
  for (const p of paths) {
    if (statSync(p).isDirectory()) {
      for (const name of readdirSync(p).sort()) {
        if (name.startsWith('.') || !name.endsWith('.json')) continue;
        files.push(join(p, name));
      }
    } else {
      files.push(p);
    }
  }
  return files.map((f) => parseKernelProfile(readFileSync(f, 'utf8'), f));
}
