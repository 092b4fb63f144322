// The host's own dynamically linked programs in a test guest's initramfs: each program with the
// shared libraries and the loader `ldd` resolves for it on the host, copied to the same paths (the
// guest's loader finds them in its built-in search path, /lib/x86_64-linux-gnu, without an
// ld.so.cache), plus data files they read (terminfo). The files are copied by buildInitramfs,
// whose cache key counts each by path, size and mtime: a changed list or an upgraded package
// rebuilds the initramfs.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { GuestFile } from './initramfs.ts';

/** One line of ldd's output: `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)`, the loader `/lib64/ld-linux-x86-64.so.2 (0x…)`, or the vDSO. */
export function parseLdd(output: string): { libraries: string[]; missing: string[] } {
  const libraries: string[] = [];
  const missing: string[] = [];
  for (const raw of output.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('linux-vdso') || line === 'statically linked') continue;
    const arrow = /^(\S+) => (?:(\/\S+) \(0x[0-9a-f]+\)|not found)$/.exec(line);
    if (arrow) {
      if (arrow[2]) libraries.push(arrow[2]);
      else missing.push(arrow[1]!);
      continue;
    }
    const loader = /^(\/\S+) \(0x[0-9a-f]+\)$/.exec(line);
    if (loader) libraries.push(loader[1]!);
    else throw new Error(`unexpected ldd line: ${line}`);
  }
  return { libraries, missing };
}

/**
 * Guest files for host programs: `programs` maps a guest path to a host program; `dataFiles` are
 * host files copied to the same path (e.g. terminfo entries). Throws when a program, a library or
 * a data file is missing on the host (its Debian package is in hack/deps/introspection.packages).
 */
export function hostProgramFiles(programs: Record<string, string>, dataFiles: readonly string[] = []): Record<string, GuestFile> {
  const files: Record<string, GuestFile> = {};
  for (const [guestPath, hostPath] of Object.entries(programs)) {
    if (!existsSync(hostPath)) throw new Error(`${hostPath} missing on the host: install its package (hack/deps/introspection.packages)`);
    const { libraries, missing } = parseLdd(execFileSync('ldd', [hostPath], { encoding: 'utf8' }));
    if (missing.length > 0) throw new Error(`${hostPath}: libraries not found on the host: ${missing.join(', ')}`);
    files[guestPath] = { fromFile: hostPath, mode: 0o755 };
    // copyFileSync follows symbolic links: each library lands as a regular file under its soname.
    for (const lib of libraries) files[lib] = { fromFile: lib, mode: 0o755 };
  }
  for (const path of dataFiles) {
    if (!existsSync(path)) throw new Error(`${path} missing on the host`);
    files[path] = { fromFile: path, mode: 0o644 };
  }
  return files;
}
