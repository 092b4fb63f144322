// The package version, for --version: read from the package.json beside the sources (src/ in a
// checkout, dist/src/ in the image).
import { existsSync, readFileSync } from 'node:fs';

export function packageVersion(): string {
  for (const relative of ['../package.json', '../../package.json']) {
    const url = new URL(relative, import.meta.url);
    if (!existsSync(url)) continue;
    const pkg = JSON.parse(readFileSync(url, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'hyperspector' && pkg.version) return pkg.version;
  }
  return 'unknown';
}
