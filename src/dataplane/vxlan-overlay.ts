// Thin executor of the VXLAN IDS overlay on one node (see vxlan-overlay-plan.ts for the design and
// vxlan-guard-plan.ts for the underlay guard). Contract: reconcile is idempotent and converges
// from any partial state; removal deletes only what it made (two devices, one nftables table).
import { bridge, runAll, type KernelCommand, type KernelCommands } from './kernel-commands.ts';
import { observeLinks } from './links.ts';
import type { NetnsRef } from './netns.ts';
import { reconcileUntilStable } from './reconcile.ts';
import { guardTableName, parseGuardState, planVxlanGuard, planVxlanGuardRemoval, type GuardState } from './vxlan-guard-plan.ts';
import { planVxlanOverlay, planVxlanOverlayRemoval, type ObservedFdbEntry, type VxlanOverlaySpec } from './vxlan-overlay-plan.ts';

async function guardTablePresent(kernel: KernelCommands, netns: NetnsRef, table: string): Promise<boolean> {
  const tables = await kernel.query<{ nftables?: { table?: { family: string; name: string } }[] }>(netns, { tool: 'nft', args: ['list', 'tables'] });
  return (tables.nftables ?? []).some((o) => o.table?.family === 'inet' && o.table.name === table);
}

async function observeGuard(kernel: KernelCommands, netns: NetnsRef, spec: VxlanOverlaySpec): Promise<GuardState | undefined> {
  const table = guardTableName(spec);
  if (!(await guardTablePresent(kernel, netns, table))) return undefined;
  return parseGuardState(await kernel.query(netns, { tool: 'nft', args: ['list', 'table', 'inet', table] }), table);
}

export async function reconcileVxlanOverlay(kernel: KernelCommands, netns: NetnsRef, spec: VxlanOverlaySpec): Promise<{ commandsRun: number }> {
  return reconcileUntilStable(`IDS overlay ${spec.bridge} in ${netns.label}`, async () => {
    // The guard first: the VXLAN socket never listens unguarded.
    const commands: KernelCommand[] = planVxlanGuard(spec, await observeGuard(kernel, netns, spec));
    const links = await observeLinks(kernel, netns);
    const fdb = links.has(spec.vxlan) ? await kernel.query<ObservedFdbEntry[]>(netns, bridge('fdb', 'show', 'dev', spec.vxlan)) : [];
    commands.push(...planVxlanOverlay(spec, links, fdb));
    await runAll(kernel, netns, commands);
    return commands.length;
  });
}

export async function removeVxlanOverlay(kernel: KernelCommands, netns: NetnsRef, spec: Pick<VxlanOverlaySpec, 'bridge' | 'vxlan'>): Promise<{ commandsRun: number }> {
  return reconcileUntilStable(`removal of IDS overlay ${spec.bridge} in ${netns.label}`, async () => {
    // Devices first: the guard goes only once nothing listens on the VXLAN port any more.
    const commands = planVxlanOverlayRemoval(spec, await observeLinks(kernel, netns));
    if (commands.length === 0) commands.push(...planVxlanGuardRemoval(spec, await guardTablePresent(kernel, netns, guardTableName(spec))));
    await runAll(kernel, netns, commands);
    return commands.length;
  });
}
