// Finding a pod's processes on the node the way nothing but the kernel can be trusted to say it:
// the pod UID in /proc/<pid>/cgroup. A kubelet puts every container of a pod in a cgroup under the
// pod's own, whose name carries the UID:
//   systemd driver : /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid, - as _>.slice/cri-containerd-<id>.scope
//   cgroupfs driver: /kubepods/burstable/pod<uid>/<container id>
// Every process of a pod shares the pod's network namespace, so any of them leads to it
// (/proc/<pid>/ns/net); the agent needs hostPID to see them. The proc root is injectable so the
// lookup is tested against a fake /proc.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { NetnsRef } from '../dataplane/netns.ts';

import { podUidOfCgroup } from '../introspection/pod-cgroup.ts';

export { podUidOfCgroup };

export interface PodProcessFinderOptions {
  /** Where /proc is mounted (the host's, with hostPID). */
  procRoot?: string;
  /** A scan of /proc is reused for lookups this soon after it (ms), so a pass over many pods scans once. */
  scanReuseMs?: number;
  now?: () => number;
}

/**
 * Pod UID → a pid of that pod → its network namespace. A pid found once is remembered only as a
 * hint: it is checked against its cgroup file again before each use (pids are reused), and /proc
 * is scanned again when the hint no longer holds.
 */
export class PodProcessFinder {
  readonly procRoot: string;
  private readonly scanReuseMs: number;
  private readonly now: () => number;
  private hints = new Map<string, number>();
  private lastScanAt = -Infinity;

  constructor(options: PodProcessFinderOptions = {}) {
    this.procRoot = options.procRoot ?? '/proc';
    this.scanReuseMs = options.scanReuseMs ?? 500;
    this.now = options.now ?? Date.now;
  }

  /** Pod UID → the lowest pid of each pod that has a process here. */
  async scan(): Promise<Map<string, number>> {
    const found = new Map<string, number>();
    for (const pid of await this.allPids()) {
      const uid = await this.podUidOfPid(pid);
      if (uid !== undefined && !found.has(uid)) found.set(uid, pid);
    }
    this.hints = new Map(found);
    this.lastScanAt = this.now();
    return found;
  }

  /** One pid of the pod (the hint if it still holds), or undefined when the pod has no process here. */
  async pidOfPod(podUid: string): Promise<number | undefined> {
    const wanted = podUid.toLowerCase();
    const hint = this.hints.get(wanted);
    if (hint !== undefined && (await this.podUidOfPid(hint)) === wanted) return hint;
    this.hints.delete(wanted);
    if (this.now() - this.lastScanAt < this.scanReuseMs && hint === undefined) return undefined;
    return (await this.scan()).get(wanted);
  }

  /** The pod's network namespace, entered through one of its processes. */
  async netnsOfPod(podUid: string): Promise<NetnsRef | undefined> {
    const pid = await this.pidOfPod(podUid);
    return pid === undefined ? undefined : this.netnsOfPid(pid);
  }

  netnsOfPid(pid: number): NetnsRef {
    return { path: join(this.procRoot, String(pid), 'ns', 'net'), label: `pid:${pid}`, ipNetnsArg: String(pid) };
  }

  /** Forgets pods that no longer exist, so the hints stay as small as the node's pods. */
  retainOnly(podUids: Iterable<string>): void {
    const keep = new Set([...podUids].map((u) => u.toLowerCase()));
    for (const uid of this.hints.keys()) if (!keep.has(uid)) this.hints.delete(uid);
  }

  private async podUidOfPid(pid: number): Promise<string | undefined> {
    try {
      return podUidOfCgroup(await readFile(join(this.procRoot, String(pid), 'cgroup'), 'utf8'));
    } catch {
      return undefined; // the process exited (or is not ours to read)
    }
  }

  private async allPids(): Promise<number[]> {
    const entries = await readdir(this.procRoot);
    return entries.filter((e) => /^\d+$/.test(e)).map(Number).sort((a, b) => a - b);
  }
}
