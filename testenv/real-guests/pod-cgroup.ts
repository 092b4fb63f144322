// cgroup v2 directories laid out as a kubelet with the systemd cgroup driver lays them out, so a
// process's /proc/<pid>/cgroup names its pod's UID the way it does on a real node:
//   kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid with _>.slice/cri-containerd-<id>.scope
// (Guaranteed pods sit directly under kubepods.slice: kubepods-pod<uid>.slice). Created under the
// host's cgroup2 mount (on a hybrid host /sys/fs/cgroup/unified); the shared parents are removed
// again when nothing else is left in them.
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../wait.ts';
import { forgetCgroup, recordCgroup } from './leftovers.ts';

export type QosClass = 'Guaranteed' | 'Burstable' | 'BestEffort';

/** The mount point of the cgroup v2 hierarchy (from /proc/self/mountinfo). */
export function cgroup2Root(): string {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [mountPart, fsPart] = line.split(' - ');
    if (fsPart?.startsWith('cgroup2 ')) return mountPart!.split(' ')[4]!;
  }
  throw new Error('no cgroup2 hierarchy is mounted');
}

/** The path segments of a container's cgroup, relative to the cgroup2 root (pure). */
export function podCgroupSegments(podUid: string, qos: QosClass, containerId: string): string[] {
  const uid = podUid.replace(/-/g, '_');
  const container = `cri-containerd-${containerId}.scope`;
  if (qos === 'Guaranteed') return ['kubepods.slice', `kubepods-pod${uid}.slice`, container];
  const q = qos === 'Burstable' ? 'burstable' : 'besteffort';
  return ['kubepods.slice', `kubepods-${q}.slice`, `kubepods-${q}-pod${uid}.slice`, container];
}

/** A container's cgroup directory: created on demand, joined by its process, removed when it is empty. */
export class PodCgroup {
  readonly segments: string[];
  readonly root: string;

  constructor(podUid: string, qos: QosClass, containerId: string, root = cgroup2Root()) {
    this.root = root;
    this.segments = podCgroupSegments(podUid, qos, containerId);
  }

  /** A cgroup known by its path (e.g. one recorded by another harness). */
  static at(root: string, segments: string[]): PodCgroup {
    const cgroup = new PodCgroup('', 'BestEffort', '', root);
    cgroup.segments.splice(0, cgroup.segments.length, ...segments);
    return cgroup;
  }

  /** Absolute path of the container's cgroup directory. */
  get path(): string {
    return join(this.root, ...this.segments);
  }

  /** As /proc/<pid>/cgroup shows it for a member process (`0::/kubepods.slice/...`). */
  get procPath(): string {
    return `/${this.segments.join('/')}`;
  }

  create(): void {
    recordCgroup(this);
    mkdirSync(this.path, { recursive: true });
  }

  /** Argv prefix that moves the process into this cgroup and then executes the rest of the argv. */
  joinCommand(): string[] {
    return ['sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', this.path];
  }

  pids(): number[] {
    try {
      return readFileSync(join(this.path, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  }

  /**
   * Kills what is left in the container's cgroup, removes it, then its pod's and the shared parents
   * when they became empty (another pod's or test run's children keep them).
   */
  async remove(timeoutMs = 30_000): Promise<void> {
    if (!existsSync(this.path)) {
      forgetCgroup(this);
      return;
    }
    for (const pid of this.pids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await waitFor(() => this.pids().length === 0, { timeoutMs, intervalMs: 50, description: `the processes of ${this.path} to exit` });
    for (let depth = this.segments.length; depth > 0; depth--) {
      const dir = join(this.root, ...this.segments.slice(0, depth));
      try {
        rmdirSync(dir);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') continue;
        if (code === 'EBUSY' || code === 'ENOTEMPTY') break; // still in use by others
        throw err;
      }
    }
    if (!existsSync(this.path)) forgetCgroup(this);
  }
}
