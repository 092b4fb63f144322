// Thin executor of tc port mirroring: observes a namespace with iproute2 (kernel-commands.ts),
// plans with the pure functions of tc-mirror-plan.ts / mirror-link-plan.ts, applies the plan.
//
// Contract: ensure* is idempotent (a second call runs no command) and removal leaves the launcher
// pods' namespaces as they were before (no qdisc, filter or link of ours). Neither blocks on
// anything but the iproute2 commands themselves.
import { runAll, tc, type KernelCommands } from './kernel-commands.ts';
import { observeLinks, type LinkTable } from './links.ts';
import { planMirrorLink, planMirrorLinkRemoval, type MirrorLinkSpec } from './mirror-link-plan.ts';
import { netnsExists, type NetnsRef } from './netns.ts';
import { reconcileUntilStable } from './reconcile.ts';
import {
  TC_HOOKS,
  checkMirrorDestination,
  parseIngressQdisc,
  parseTcFilters,
  planTcMirror,
  planTcMirrorRemoval,
  type MirrorDirection,
  type ObservedFilter,
  type ObservedTcState,
  type TcHook,
  type TcMirrorSpec,
} from './tc-mirror-plan.ts';

export async function observeTc(kernel: KernelCommands, netns: NetnsRef, dev: string): Promise<ObservedTcState> {
  const ingressQdisc = parseIngressQdisc(await kernel.query<{ kind?: string }[]>(netns, tc('qdisc', 'show', 'dev', dev)));
  const filters: Record<TcHook, ObservedFilter[]> = { ingress: [], egress: [] };
  if (ingressQdisc !== undefined) {
    for (const hook of TC_HOOKS) {
      if (hook === 'egress' && ingressQdisc !== 'clsact') continue;
      filters[hook] = parseTcFilters(await kernel.query(netns, tc('filter', 'show', 'dev', dev, hook)));
    }
  }
  return { ingressQdisc, filters };
}

/** Mirrors `spec.source` to an existing `spec.destination` (a veth end or a VXLAN device). */
export async function ensureTcMirror(kernel: KernelCommands, netns: NetnsRef, spec: TcMirrorSpec): Promise<{ commandsRun: number }> {
  return reconcileUntilStable(`tc mirror ${spec.source} → ${spec.destination} in ${netns.label}`, async () => {
    const links = await observeLinks(kernel, netns);
    if (!links.has(spec.source)) throw new Error(`Mirrored interface ${spec.source} not found in ${netns.label}`);
    const destination = links.get(spec.destination);
    if (!destination) throw new Error(`Mirror destination ${spec.destination} not found in ${netns.label}`);
    checkMirrorDestination(spec, destination.master, await observeTc(kernel, netns, spec.destination));
    const commands = planTcMirror(spec, await observeTc(kernel, netns, spec.source));
    await runAll(kernel, netns, commands);
    return commands.length;
  });
}

export async function removeTcMirror(kernel: KernelCommands, netns: NetnsRef, source: string): Promise<{ commandsRun: number }> {
  return reconcileUntilStable(`removal of the tc mirror of ${source} in ${netns.label}`, async () => {
    const links = await observeLinks(kernel, netns);
    if (!links.has(source)) return 0; // the interface went away with its filters
    const commands = planTcMirrorRemoval(source, await observeTc(kernel, netns, source));
    await runAll(kernel, netns, commands);
    return commands.length;
  });
}

/** A server VM's interface mirrored over a veth into its IDS VM's launcher pod. */
export interface ServerMirrorSpec {
  readonly server: { readonly netns: NetnsRef; readonly interface: string };
  readonly ids: { readonly netns: NetnsRef; readonly interface: string; readonly bridge?: string };
  /** Name of the link's end in the server's launcher pod (≤ 15 bytes, unique per pod). */
  readonly linkName: string;
  readonly direction: MirrorDirection;
}

async function mirrorLinkSpec(kernel: KernelCommands, spec: ServerMirrorSpec): Promise<MirrorLinkSpec> {
  const source = (await observeLinks(kernel, spec.server.netns)).get(spec.server.interface);
  if (!source) throw new Error(`Mirrored interface ${spec.server.interface} not found in ${spec.server.netns.label}`);
  return {
    serverNetns: spec.server.netns,
    idsNetns: spec.ids.netns,
    serverSideName: spec.linkName,
    idsSideName: spec.ids.interface,
    ...(spec.ids.bridge === undefined ? {} : { idsBridge: spec.ids.bridge }),
    mtu: source.mtu,
  };
}

async function ensureMirrorLink(kernel: KernelCommands, link: MirrorLinkSpec): Promise<{ commandsRun: number }> {
  return reconcileUntilStable(`mirror link ${link.serverSideName} → ${link.idsNetns.label}/${link.idsSideName}`, async () => {
    const plan = planMirrorLink(link, await observeLinks(kernel, link.serverNetns), await observeLinks(kernel, link.idsNetns));
    await runAll(kernel, link.serverNetns, plan.server);
    await runAll(kernel, link.idsNetns, plan.ids);
    return plan.server.length + plan.ids.length;
  });
}

export async function ensureServerMirror(kernel: KernelCommands, spec: ServerMirrorSpec): Promise<{ commandsRun: number }> {
  const link = await mirrorLinkSpec(kernel, spec);
  const linkResult = await ensureMirrorLink(kernel, link);
  const tcResult = await ensureTcMirror(kernel, spec.server.netns, {
    source: spec.server.interface,
    destination: spec.linkName,
    direction: spec.direction,
  });
  return { commandsRun: linkResult.commandsRun + tcResult.commandsRun };
}

/**
 * Filters first, then the link: copies stop before their destination disappears. A launcher pod
 * that is already gone took its devices (and its end of the link) with it.
 */
export async function removeServerMirror(kernel: KernelCommands, spec: ServerMirrorSpec): Promise<{ commandsRun: number }> {
  const serverPresent = await netnsExists(spec.server.netns);
  const idsPresent = await netnsExists(spec.ids.netns);
  const tcResult = serverPresent ? await removeTcMirror(kernel, spec.server.netns, spec.server.interface) : { commandsRun: 0 };
  const link: MirrorLinkSpec = {
    serverNetns: spec.server.netns,
    idsNetns: spec.ids.netns,
    serverSideName: spec.linkName,
    idsSideName: spec.ids.interface,
    mtu: 0,
  };
  const linkResult = await reconcileUntilStable(`removal of mirror link ${spec.linkName}`, async () => {
    const none: LinkTable = new Map();
    const plan = planMirrorLinkRemoval(
      link,
      serverPresent ? await observeLinks(kernel, link.serverNetns) : none,
      idsPresent ? await observeLinks(kernel, link.idsNetns) : none,
    );
    await runAll(kernel, link.serverNetns, plan.server);
    await runAll(kernel, link.idsNetns, plan.ids);
    return plan.server.length + plan.ids.length;
  });
  return { commandsRun: tcResult.commandsRun + linkResult.commandsRun };
}
