// The storage behind PersistentVolumeClaims on real-guest nodes — a TEST DOUBLE of a
// filesystem-mode volume's disk.img: one sparse raw image per claim UID (a new claim of the same
// name is a new, empty disk), holding an empty ext4 file system made on the host at first use, the
// way a provisioner hands out a fresh volume. Images live in one directory per harness
// (hs-pvc-<pid>-…, which leftovers.ts removes if the harness is killed); an image is removed when its
// claim is deleted (a claim in use is not deleted before its pods are gone: the pvc-protection
// finalizer), and all of them when the nodes stop. A claim restored from a VolumeSnapshot
// (dataSource kind VolumeSnapshot) starts as a copy of its source claim's image at the moment the
// snapshot was cut (takeSnapshot, which the snapshot stand-in calls: onSnapshotTaken).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { WatchCache, type KubeObject } from '../kubevirt/watch-cache.ts';

export const PVC_IMAGE_MIB = 64;

type Claim = KubeObject & { spec?: k8s.V1PersistentVolumeClaimSpec };

export class PvcImages {
  private claims?: WatchCache<Claim>;
  private root?: string;

  constructor(private readonly log: (line: string) => void = () => {}) {}

  /** Starts following the cluster's claims (deleted claim → image removed). */
  attach(kubeConfig: k8s.KubeConfig): void {
    if (this.claims) return;
    this.claims = new WatchCache<Claim>(kubeConfig, '/api/v1/persistentvolumeclaims', (claim, type) => {
      if (type === 'DELETED' && claim.metadata?.uid) this.remove(claim.metadata.uid);
    });
    this.claims.start();
  }

  /** The directory holding the images (made at first use). */
  get directory(): string {
    this.root ??= mkdtempSync(join(tmpdir(), `hs-pvc-${process.pid}-`)); // the pid: see leftovers.ts
    return this.root;
  }

  /** The image of claim namespace/name, made (empty ext4) at its first use. Throws until the claim is known. */
  imageFor(namespace: string, claimName: string): string {
    if (!this.claims?.hasSynced()) throw new Error('the real-guest nodes do not follow PersistentVolumeClaims yet (not attached, or not synced)');
    const claim = this.claims.get(`${namespace}/${claimName}`);
    const uid = claim?.metadata?.uid;
    if (!uid || claim.metadata?.deletionTimestamp) throw new Error(`PersistentVolumeClaim ${namespace}/${claimName} does not exist (or is being deleted)`);
    const dir = join(this.directory, uid);
    const image = join(dir, 'disk.img');
    if (existsSync(image)) return image;
    mkdirSync(dir, { recursive: true });
    const partial = join(dir, 'disk.img.partial');
    const source = claim.spec?.dataSource;
    const snapshotImage = source?.kind === 'VolumeSnapshot' ? this.snapshotPath(namespace, source.name) : undefined;
    if (snapshotImage && existsSync(snapshotImage)) {
      execFileSync('cp', ['--reflink=auto', '--sparse=always', snapshotImage, partial]);
      execFileSync('mv', [partial, image]);
      this.log(`image of PersistentVolumeClaim ${namespace}/${claimName} (uid ${uid}): ${image}, restored from VolumeSnapshot ${source!.name}`);
      return image;
    }
    execFileSync('truncate', ['-s', `${PVC_IMAGE_MIB}M`, partial]);
    // No lazy init: the inode tables are written here, not by a kernel thread in a TCG guest.
    execFileSync('mkfs.ext4', ['-q', '-F', '-L', claimName.slice(0, 16), '-E', 'lazy_itable_init=0,lazy_journal_init=0', partial]);
    execFileSync('mv', [partial, image]);
    this.log(`image of PersistentVolumeClaim ${namespace}/${claimName} (uid ${uid}): ${image} (${PVC_IMAGE_MIB} MiB, empty ext4)`);
    return image;
  }

  private snapshotPath(namespace: string, snapshot: string): string {
    return join(this.directory, 'snapshots', namespace, `${snapshot}.img`);
  }

  /**
   * Cuts VolumeSnapshot namespace/snapshot of a claim: a copy of the claim's image as it is now
   * (reflinked where the file system can, sparse), which claims restored from the snapshot start from.
   */
  takeSnapshot(namespace: string, snapshot: string, claimName: string): string {
    const from = this.imageFor(namespace, claimName);
    const to = this.snapshotPath(namespace, snapshot);
    mkdirSync(join(this.directory, 'snapshots', namespace), { recursive: true });
    execFileSync('cp', ['--reflink=auto', '--sparse=always', from, `${to}.partial`]);
    execFileSync('mv', [`${to}.partial`, to]);
    this.log(`VolumeSnapshot ${namespace}/${snapshot}: copy of the image of PersistentVolumeClaim ${namespace}/${claimName}`);
    return to;
  }

  /** The images that exist now. */
  list(): string[] {
    if (!this.root || !existsSync(this.root)) return [];
    return readdirSync(this.root)
      .map((uid) => join(this.root!, uid, 'disk.img'))
      .filter((p) => existsSync(p));
  }

  private remove(uid: string): void {
    if (!this.root) return;
    const dir = join(this.root, uid);
    if (!existsSync(dir)) return;
    rmSync(dir, { recursive: true, force: true });
    this.log(`image of deleted PersistentVolumeClaim uid ${uid} removed`);
  }

  /** Stops following claims and removes every image. */
  close(): void {
    this.claims?.stop();
    this.claims = undefined;
    if (this.root) rmSync(this.root, { recursive: true, force: true });
    this.root = undefined;
  }
}
