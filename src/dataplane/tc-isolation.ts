// Thin executor of the Isolate response's tap filters (plans in tc-isolation-plan.ts): observe with
// iproute2, plan, apply, until the plan is empty. Idempotent; removal leaves the launcher pod's
// namespace as it was before (no filter, qdisc or sink of ours).
import { ip, runAll, tc, type KernelCommands } from './kernel-commands.ts';
import { observeLinks } from './links.ts';
import type { NetnsRef } from './netns.ts';
import { reconcileUntilStable } from './reconcile.ts';
import { parseIngressQdisc, TC_HOOKS, type TcHook } from './tc-mirror-plan.ts';
import {
  carriesOurIsolation,
  ISOLATION_SINK_PATTERN,
  parseIsolationFilters,
  planIsolationSink,
  planTapIsolation,
  planTapIsolationRemoval,
  type ObservedIsolationFilter,
  type ObservedIsolationState,
  type TapIsolationSpec,
} from './tc-isolation-plan.ts';

export async function observeIsolation(kernel: KernelCommands, netns: NetnsRef, dev: string): Promise<ObservedIsolationState> {
  const ingressQdisc = parseIngressQdisc(await kernel.query<{ kind?: string }[]>(netns, tc('qdisc', 'show', 'dev', dev)));
  const filters: Record<TcHook, ObservedIsolationFilter[]> = { ingress: [], egress: [] };
  if (ingressQdisc !== undefined) {
    for (const hook of TC_HOOKS) {
      if (hook === 'egress' && ingressQdisc !== 'clsact') continue;
      filters[hook] = parseIsolationFilters(await kernel.query(netns, tc('filter', 'show', 'dev', dev, hook)));
    }
  }
  return { ingressQdisc, filters };
}

/** Isolates every tap of `specs` (one launcher pod); a mirror link that does not exist (yet) gets no copy. */
export async function ensureTapIsolation(kernel: KernelCommands, netns: NetnsRef, specs: readonly TapIsolationSpec[]): Promise<{ commandsRun: number }> {
  return reconcileUntilStable(`isolation of ${specs.map((s) => s.tap).join(', ')} in ${netns.label}`, async () => {
    const links = await observeLinks(kernel, netns);
    let ran = 0;
    for (const spec of specs) {
      if (!links.has(spec.tap)) throw new Error(`The server's tap ${spec.tap} was not found in ${netns.label}`);
      const sink = links.get(spec.sink);
      const sinkCommands = planIsolationSink(spec.sink, sink ? { flags: sink.flags, ...(sink.linkinfo?.info_kind ? { kind: sink.linkinfo.info_kind } : {}) } : undefined);
      await runAll(kernel, netns, sinkCommands);
      ran += sinkCommands.length;
      if (sinkCommands.length > 0) return ran; // observe again with the sink in place
      const mirrorTo = Object.fromEntries(Object.entries(spec.mirrorTo).filter(([, dev]) => dev !== undefined && links.has(dev)));
      const commands = planTapIsolation({ ...spec, mirrorTo }, await observeIsolation(kernel, netns, spec.tap));
      await runAll(kernel, netns, commands);
      ran += commands.length;
    }
    return ran;
  });
}

/**
 * Removes every isolation filter of ours from the taps of a launcher pod's namespace (`taps`, or
 * every device with a clsact), then our sinks: nothing of the isolation is left.
 */
export async function removeTapIsolation(kernel: KernelCommands, netns: NetnsRef): Promise<{ commandsRun: number }> {
  return reconcileUntilStable(`removal of the isolation in ${netns.label}`, async () => {
    let ran = 0;
    const qdiscs = await kernel.query<{ dev?: string; kind?: string }[]>(netns, tc('qdisc', 'show'));
    const withClsact = [...new Set(qdiscs.filter((q) => q.dev !== undefined && q.kind === 'clsact').map((q) => q.dev!))];
    for (const dev of withClsact) {
      const observed = await observeIsolation(kernel, netns, dev);
      if (!carriesOurIsolation(observed)) continue;
      const commands = planTapIsolationRemoval(dev, observed);
      await runAll(kernel, netns, commands);
      ran += commands.length;
    }
    if (ran > 0) return ran; // the sinks go once no filter points at them
    for (const link of (await observeLinks(kernel, netns)).values()) {
      if (!ISOLATION_SINK_PATTERN.test(link.ifname) || link.linkinfo?.info_kind !== 'bridge') continue;
      await kernel.run(netns, ip('link', 'del', 'dev', link.ifname));
      ran++;
    }
    return ran;
  });
}
