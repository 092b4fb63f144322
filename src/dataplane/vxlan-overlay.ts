// Thin executor of the VXLAN IDS overlay on one node (see vxlan-overlay-plan.ts for the design).
// Contract: reconcile is idempotent and converges from any partial state; removal deletes only
// the two devices it made.
import { bridge, runAll, type Iproute2 } from './iproute2.ts';
import { observeLinks } from './links.ts';
import type { NetnsRef } from './netns.ts';
import { reconcileUntilStable } from './reconcile.ts';
import { planVxlanOverlay, planVxlanOverlayRemoval, type ObservedFdbEntry, type VxlanOverlaySpec } from './vxlan-overlay-plan.ts';

export async function reconcileVxlanOverlay(kernel: Iproute2, netns: NetnsRef, spec: VxlanOverlaySpec): Promise<{ commandsRun: number }> {
  return reconcileUntilStable(`IDS overlay ${spec.bridge} in ${netns.label}`, async () => {
    const links = await observeLinks(kernel, netns);
    const fdb = links.has(spec.vxlan) ? await kernel.query<ObservedFdbEntry[]>(netns, bridge('fdb', 'show', 'dev', spec.vxlan)) : [];
    const commands = planVxlanOverlay(spec, links, fdb);
    await runAll(kernel, netns, commands);
    return commands.length;
  });
}

export async function removeVxlanOverlay(kernel: Iproute2, netns: NetnsRef, spec: Pick<VxlanOverlaySpec, 'bridge' | 'vxlan'>): Promise<{ commandsRun: number }> {
  return reconcileUntilStable(`removal of IDS overlay ${spec.bridge} in ${netns.label}`, async () => {
    const commands = planVxlanOverlayRemoval(spec, await observeLinks(kernel, netns));
    await runAll(kernel, netns, commands);
    return commands.length;
  });
}
