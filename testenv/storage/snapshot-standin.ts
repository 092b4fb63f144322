// CSI snapshotter stand-in — a TEST DOUBLE, not part of the product.
//
// The test world has no CSI driver and no external-snapshotter. This plays both, as far as the API
// shows them:
// - snapshot-controller + csi-snapshotter: for each VolumeSnapshot of a Bound claim, a
//   VolumeSnapshotContent (driver hostpath.csi.test, the class from the snapshot or the default
//   VolumeSnapshotClass) and the snapshot's status: boundVolumeSnapshotContentName, creationTime,
//   restoreSize (the claim's capacity), readyToUse. A snapshot of a claim that does not exist gets
//   status.error, as the real controller reports it. The content goes when its snapshot goes.
// - the CSI provisioner for a claim restored from a snapshot (dataSource VolumeSnapshot): once the
//   snapshot is readyToUse, a hostPath PersistentVolume pre-bound to the claim, which
//   kube-controller-manager's PV binder then binds (the rest of the world's claims bind through the
//   same binder). The PV goes when its claim goes.
// Knobs for tests: holdSnapshots() keeps new snapshots not ready (optionally with an error),
// release() lets them through. onSnapshot() lets real-guest nodes copy the source image.
import type * as k8s from '@kubernetes/client-node';
import { createKubeApi, statusCodeOf, type KubeApi } from '../../src/kube/client/rest.ts';
import { WatchCache, type KubeObject } from '../kubevirt/watch-cache.ts';

export const STANDIN_DRIVER = 'hostpath.csi.test';
const SNAPSHOTS = '/apis/snapshot.storage.k8s.io/v1/volumesnapshots';
const CONTENTS = '/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents';
const CLASSES = '/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses';
const DEFAULT_CLASS_ANNOTATION = 'snapshot.storage.kubernetes.io/is-default-class';

type Snapshot = KubeObject & {
  spec?: { source?: { persistentVolumeClaimName?: string }; volumeSnapshotClassName?: string };
  status?: { readyToUse?: boolean; boundVolumeSnapshotContentName?: string; error?: { message?: string } };
};
type Claim = KubeObject & { spec?: k8s.V1PersistentVolumeClaimSpec; status?: k8s.V1PersistentVolumeClaimStatus };

export interface SnapshotHold {
  /** Only snapshots whose name matches (default: every new one). */
  match?: RegExp;
  /** Report this error in status.error (default: just not ready). */
  error?: string;
}

export class SnapshotStandIn {
  private readonly snapshots: WatchCache<Snapshot>;
  private readonly claims: WatchCache<Claim>;
  private readonly api: KubeApi;
  private hold: SnapshotHold | undefined;
  /** Snapshots held (namespace/name): they stay not ready until release(). */
  private readonly held = new Set<string>();
  private readonly done = new Set<string>();
  private readonly busy = new Set<string>();
  private readonly snapshotHooks: Array<(namespace: string, snapshot: string, claim: string) => void> = [];

  constructor(kubeConfig: k8s.KubeConfig, private readonly log: (line: string) => void = () => {}) {
    this.api = createKubeApi(kubeConfig);
    this.snapshots = new WatchCache<Snapshot>(kubeConfig, SNAPSHOTS, (s, type) => void this.onSnapshot(s, type));
    this.claims = new WatchCache<Claim>(kubeConfig, '/api/v1/persistentvolumeclaims', (c, type) => void this.onClaim(c, type));
  }

  start(): void {
    this.claims.start();
    this.snapshots.start();
  }

  stop(): void {
    this.snapshots.stop();
    this.claims.stop();
  }

  /** New snapshots (matching) stay not ready, with the error if given, until release(). */
  holdSnapshots(hold: SnapshotHold = {}): void {
    this.hold = hold;
  }

  /** Lets the held snapshots (and new ones) become ready. */
  release(): void {
    this.hold = undefined;
    const keys = [...this.held];
    this.held.clear();
    for (const key of keys) {
      const s = this.snapshots.get(key);
      if (s) void this.onSnapshot(s, 'MODIFIED');
    }
  }

  /** Called when a snapshot is cut (before it is reported ready): real-guest nodes copy the claim's image. */
  onSnapshotTaken(hook: (namespace: string, snapshot: string, claim: string) => void): void {
    this.snapshotHooks.push(hook);
  }

  /** VolumeSnapshots the stand-in has cut so far (namespace/name). */
  cut(): string[] {
    return [...this.done];
  }

  private async once(key: string, work: () => Promise<void>): Promise<void> {
    if (this.busy.has(key)) return;
    this.busy.add(key);
    try {
      await work();
    } catch (err) {
      this.log(`snapshot stand-in: ${key}: ${String(err)}`);
    } finally {
      this.busy.delete(key);
    }
  }

  private async defaultClass(): Promise<string | undefined> {
    try {
      const list = await this.api.request<{ items: Array<KubeObject & { driver?: string }> }>({ method: 'GET', path: CLASSES });
      return list.items.find((c) => c.driver === STANDIN_DRIVER && c.metadata?.annotations?.[DEFAULT_CLASS_ANNOTATION] === 'true')?.metadata?.name;
    } catch {
      return undefined;
    }
  }

  private async onSnapshot(s: Snapshot, type: 'ADDED' | 'MODIFIED' | 'DELETED'): Promise<void> {
    const ns = s.metadata?.namespace ?? '';
    const name = s.metadata?.name ?? '';
    const key = `${ns}/${name}`;
    const content = `snapcontent-${s.metadata?.uid ?? ''}`;
    if (type === 'DELETED' || s.metadata?.deletionTimestamp) {
      this.done.delete(key);
      await this.once(`delete ${key}`, async () => {
        try {
          await this.api.request({ method: 'DELETE', path: `${CONTENTS}/${content}` });
        } catch (err) {
          if (statusCodeOf(err) !== 404) throw err;
        }
      });
      return;
    }
    if (s.status?.readyToUse || this.done.has(key)) return;
    if (this.hold && (!this.hold.match || this.hold.match.test(name))) this.held.add(key);
    await this.once(key, async () => {
      if (this.held.has(key)) {
        const error = this.hold?.error;
        if (error && s.status?.error?.message !== error) await this.writeStatus(ns, name, { readyToUse: false, error: { message: error, time: new Date().toISOString() } });
        return;
      }
      const claimName = s.spec?.source?.persistentVolumeClaimName ?? '';
      const claim = this.claims.get(`${ns}/${claimName}`);
      if (!claim || claim.status?.phase !== 'Bound') {
        await this.writeStatus(ns, name, { readyToUse: false, error: { message: `failed to get input parameters to create snapshot ${name}: "the PVC ${claimName} is not yet bound to a PV"`, time: new Date().toISOString() } });
        return;
      }
      const className = s.spec?.volumeSnapshotClassName ?? (await this.defaultClass());
      const size = claim.status?.capacity?.storage ?? claim.spec?.resources?.requests?.storage ?? '1Gi';
      for (const hook of this.snapshotHooks) hook(ns, name, claimName);
      try {
        await this.api.request({
          method: 'POST',
          path: CONTENTS,
          body: {
            apiVersion: 'snapshot.storage.k8s.io/v1',
            kind: 'VolumeSnapshotContent',
            metadata: { name: content },
            spec: {
              deletionPolicy: 'Delete',
              driver: STANDIN_DRIVER,
              source: { volumeHandle: claim.spec?.volumeName ?? claimName },
              ...(className ? { volumeSnapshotClassName: className } : {}),
              volumeSnapshotRef: { apiVersion: 'snapshot.storage.k8s.io/v1', kind: 'VolumeSnapshot', namespace: ns, name, uid: s.metadata?.uid },
            },
          },
        });
      } catch (err) {
        // 404: the world has only the VolumeSnapshot CRD (the fallback stand-ins); 409: made before.
        if (statusCodeOf(err) !== 409 && statusCodeOf(err) !== 404) throw err;
      }
      await this.writeStatus(ns, name, { boundVolumeSnapshotContentName: content, creationTime: new Date().toISOString(), restoreSize: size, readyToUse: true });
      this.done.add(key);
      this.log(`snapshot stand-in: VolumeSnapshot ${key} of claim ${claimName} ready (${size})`);
      // Claims restored from it may bind now.
      for (const c of this.claims.list()) if (c.spec?.dataSource?.kind === 'VolumeSnapshot' && c.spec.dataSource.name === name && c.metadata?.namespace === ns) void this.onClaim(c, 'MODIFIED');
    });
  }

  private async writeStatus(ns: string, name: string, status: Record<string, unknown>): Promise<void> {
    await this.api.request({
      method: 'PATCH',
      path: `/apis/snapshot.storage.k8s.io/v1/namespaces/${ns}/volumesnapshots/${name}/status`,
      contentType: 'application/merge-patch+json',
      body: { status },
    });
  }

  private async onClaim(c: Claim, type: 'ADDED' | 'MODIFIED' | 'DELETED'): Promise<void> {
    const source = c.spec?.dataSource;
    if (source?.kind !== 'VolumeSnapshot') return;
    const ns = c.metadata?.namespace ?? '';
    const pv = `restored-${c.metadata?.uid ?? ''}`;
    if (type === 'DELETED') {
      await this.once(`pv ${pv}`, async () => {
        try {
          await this.api.request({ method: 'DELETE', path: `/api/v1/persistentvolumes/${pv}` });
        } catch (err) {
          if (statusCodeOf(err) !== 404) throw err;
        }
      });
      return;
    }
    if (c.spec?.volumeName || c.metadata?.deletionTimestamp) return;
    const snapshot = this.snapshots.get(`${ns}/${source.name}`);
    if (!snapshot?.status?.readyToUse) return;
    await this.once(`pv ${pv}`, async () => {
      try {
        await this.api.request({
          method: 'POST',
          path: '/api/v1/persistentvolumes',
          body: {
            apiVersion: 'v1',
            kind: 'PersistentVolume',
            metadata: { name: pv, labels: { 'test.hyperspector.io/restored-from': source.name } },
            spec: {
              capacity: { storage: c.spec?.resources?.requests?.storage ?? '1Gi' },
              accessModes: c.spec?.accessModes ?? ['ReadWriteOnce'],
              ...(c.spec?.storageClassName ? { storageClassName: c.spec.storageClassName } : {}),
              ...(c.spec?.volumeMode ? { volumeMode: c.spec.volumeMode } : {}),
              hostPath: { path: `/var/tmp/${pv}` },
              persistentVolumeReclaimPolicy: 'Retain',
              claimRef: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: ns, name: c.metadata?.name, uid: c.metadata?.uid },
            },
          },
        });
        this.log(`snapshot stand-in: PersistentVolume ${pv} for claim ${ns}/${c.metadata?.name} restored from VolumeSnapshot ${source.name}`);
      } catch (err) {
        if (statusCodeOf(err) !== 409) throw err;
      }
    });
  }
}

/** The default VolumeSnapshotClass of the stand-in's driver. */
export function defaultSnapshotClass(name = 'hostpath-snapshots'): KubeObject {
  return {
    apiVersion: 'snapshot.storage.k8s.io/v1',
    kind: 'VolumeSnapshotClass',
    metadata: { name, annotations: { [DEFAULT_CLASS_ANNOTATION]: 'true' } },
    driver: STANDIN_DRIVER,
    deletionPolicy: 'Delete',
  };
}
