// The real-guest nodes' claim images (a test double): a claim restored from a VolumeSnapshot starts
// as the source claim's image at the moment the snapshot was cut, not as an empty disk, and later
// writes to the source do not reach it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PvcImages } from '../../../testenv/real-guests/pvc-images.ts';

type FakeClaim = { metadata: { name: string; namespace: string; uid: string }; spec?: { dataSource?: { kind: string; name: string } } };

/** ext4 file system of an image: write a file into it, list and read files (debugfs, no mount). */
function writeFile(image: string, path: string, content: string): void {
  const dir = mkdtempSync(join(tmpdir(), 'hs-pvc-test-'));
  try {
    writeFileSync(join(dir, 'f'), content);
    execFileSync('debugfs', ['-w', '-R', `write ${join(dir, 'f')} ${path}`, image], { stdio: 'pipe' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const readFile = (image: string, path: string) => execFileSync('debugfs', ['-R', `cat ${path}`, image], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
const listRoot = (image: string) => execFileSync('debugfs', ['-R', 'ls -l /', image], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

describe('real-guest claim images (test double): restored from a snapshot', () => {
  it('a restored claim holds the source’s files as they were when the snapshot was cut', () => {
    const claims = new Map<string, FakeClaim>([
      ['shop/web-data', { metadata: { name: 'web-data', namespace: 'shop', uid: 'uid-source' } }],
      ['shop/copy-1', { metadata: { name: 'copy-1', namespace: 'shop', uid: 'uid-copy' }, spec: { dataSource: { kind: 'VolumeSnapshot', name: 'snap-1' } } }],
    ]);
    const images = new PvcImages();
    // The claims cache the nodes follow, as if synced with these two claims.
    Object.assign(images, { claims: { hasSynced: () => true, get: (key: string) => claims.get(key), stop: () => undefined } });
    try {
      const source = images.imageFor('shop', 'web-data');
      writeFile(source, 'before.txt', 'written before the snapshot\n');
      images.takeSnapshot('shop', 'snap-1', 'web-data');
      writeFile(source, 'after.txt', 'written after the snapshot\n');
      const copy = images.imageFor('shop', 'copy-1');
      assert.notEqual(copy, source);
      assert.equal(readFile(copy, '/before.txt'), 'written before the snapshot\n');
      assert.doesNotMatch(listRoot(copy), /after\.txt/);
      assert.match(listRoot(source), /after\.txt/);
    } finally {
      images.close();
    }
  });
});
