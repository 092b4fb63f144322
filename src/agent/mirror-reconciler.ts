// Thin executor of the node's mirrors: launcher pod UIDs → network namespaces (through /proc) →
// src/dataplane's ensureServerMirror / removal. Nothing is remembered between calls: what is
// installed is read from the kernel each time (our veths by name, our tc filters by cookie), so a
// restarted agent converges from whatever a killed one left behind.
import {
  carriesOurMirror,
  ensureServerMirror,
  observeLinks,
  observeTc,
  parseIngressQdisc,
  removeTcMirror,
  type KernelCommands,
  type NetnsRef,
} from '../dataplane/index.ts';
import { ip, tc } from '../dataplane/kernel-commands.ts';
import { MIRROR_LINK_PATTERN, MirrorReason, type DesiredMirror } from './desired-mirrors.ts';
import type { PodProcessFinder } from './pod-processes.ts';

/** virt-launcher's names for a VM's NIC in the pod: tap0, tap<hash>, tap<n>. */
const KUBEVIRT_TAP = /^tap[0-9a-z]+$/;

/** The mirror cannot be installed yet for a reason the condition names (not a kernel failure). */
export class MirrorWaitingError extends Error {
  constructor(
    readonly reason: MirrorReason,
    message: string,
  ) {
    super(message);
    this.name = 'MirrorWaitingError';
  }
}

export interface LauncherPodRef {
  readonly uid: string;
  /** `namespace/name`, for messages. */
  readonly name: string;
}

export interface SweepResult {
  commandsRun: number;
  /** Pods whose namespace could not be swept, with why (the sweep goes on with the others). */
  errors: { pod: string; message: string }[];
}

export class MirrorReconciler {
  constructor(
    private readonly kernel: KernelCommands,
    private readonly processes: PodProcessFinder,
  ) {}

  private async netnsOf(uid: string, pod: string, reason: MirrorReason): Promise<NetnsRef> {
    const netns = await this.processes.netnsOfPod(uid);
    if (!netns) throw new MirrorWaitingError(reason, `no process of launcher pod ${pod} (UID ${uid}) runs on this node yet`);
    return netns;
  }

  /** Installs or repairs one mirror; idempotent (0 commands when everything is in place). */
  async ensure(mirror: DesiredMirror): Promise<{ commandsRun: number }> {
    const server = await this.netnsOf(mirror.serverPodUid, mirror.serverPod, MirrorReason.WaitingForServerPod);
    const ids = await this.netnsOf(mirror.idsPodUid, mirror.idsPod, MirrorReason.WaitingForIDSVM);
    return ensureServerMirror(this.kernel, {
      server: { netns: server, interface: mirror.serverTap },
      ids: { netns: ids, interface: mirror.idsLinkName, bridge: mirror.idsBridge },
      linkName: mirror.linkName,
      direction: mirror.direction,
    });
  }

  /**
   * Removes from the given launcher pods every mirror filter and mirror veth of ours that no
   * desired mirror claims: filters first, then links, so copies stop before their destination
   * goes. A veth is deleted from whichever end is found; the kernel deletes its peer with it.
   */
  async sweep(pods: readonly LauncherPodRef[], desired: readonly DesiredMirror[]): Promise<SweepResult> {
    const result: SweepResult = { commandsRun: 0, errors: [] };
    for (const pod of pods) {
      try {
        result.commandsRun += await this.sweepPod(pod, desired);
      } catch (err) {
        result.errors.push({ pod: pod.name, message: err instanceof Error ? err.message : String(err) });
      }
    }
    return result;
  }

  private async sweepPod(pod: LauncherPodRef, desired: readonly DesiredMirror[]): Promise<number> {
    const netns = await this.processes.netnsOfPod(pod.uid);
    if (!netns) return 0; // no process, no namespace: nothing of ours can be left in it
    const claimedSources = new Set(desired.filter((d) => d.serverPodUid === pod.uid).map((d) => d.serverTap));
    const claimedLinks = new Set(
      desired.flatMap((d) => [...(d.serverPodUid === pod.uid ? [d.linkName] : []), ...(d.idsPodUid === pod.uid ? [d.idsLinkName] : [])]),
    );
    let commandsRun = 0;
    const qdiscs = await this.kernel.query<{ dev?: string; kind?: string }[]>(netns, tc('qdisc', 'show'));
    const withClsact = [...new Set(qdiscs.filter((q) => q.dev !== undefined && parseIngressQdisc([q]) === 'clsact').map((q) => q.dev!))];
    for (const dev of withClsact) {
      if (claimedSources.has(dev)) continue;
      const observed = await observeTc(this.kernel, netns, dev);
      if (carriesOurMirror(observed)) {
        commandsRun += (await removeTcMirror(this.kernel, netns, dev)).commandsRun;
      } else if (KUBEVIRT_TAP.test(dev) && observed.filters.ingress.length === 0 && observed.filters.egress.length === 0) {
        // An agent killed between deleting its last filter and the qdisc leaves an empty clsact
        // on a VM's tap. KubeVirt never adds one there and an empty clsact does nothing, so the
        // sweep finishes that removal.
        await this.kernel.run(netns, tc('qdisc', 'del', 'dev', dev, 'clsact'));
        commandsRun++;
      }
    }
    const links = await observeLinks(this.kernel, netns);
    for (const link of links.values()) {
      if (!MIRROR_LINK_PATTERN.test(link.ifname) || link.linkinfo?.info_kind !== 'veth' || claimedLinks.has(link.ifname)) continue;
      await this.kernel.run(netns, ip('link', 'del', 'dev', link.ifname));
      commandsRun++;
    }
    return commandsRun;
  }
}
