// Snapshots of a namespace's links, addresses, qdiscs and tc filters (`ip -j link`, `ip -j addr`,
// `tc -j qdisc`, `tc -j filter`, `nft -j list ruleset`), to prove that removal returns every namespace to its initial state.
import type { TestNetns } from './netns-host.ts';

export interface NetnsSnapshot {
  links: unknown;
  addresses: unknown;
  qdiscs: unknown;
  filters: Record<string, unknown>;
  nftables: unknown;
}

/**
 * operstate follows carrier changes through the kernel's linkwatch, which batches them up to a
 * second late, so a snapshot taken right after building or tearing down can hold a stale one. So
 * does `ip`'s NO-CARRIER flag: it is printed for UP without IFF_RUNNING, and the kernel sets
 * IFF_RUNNING from operstate (dev_get_flags). LOWER_UP (the carrier itself) and UP state the same
 * facts at once and stay in the comparison.
 */
function withoutOperstate<T>(entries: T[]): T[] {
  return entries.map((entry) => {
    const { operstate: _operstate, ...rest } = entry as Record<string, unknown>;
    if (Array.isArray(rest.flags)) rest.flags = rest.flags.filter((f) => f !== 'NO-CARRIER');
    return rest as T;
  });
}

export async function snapshotNetns(ns: TestNetns): Promise<NetnsSnapshot> {
  const links = withoutOperstate(await ns.json<{ ifname: string }[]>(['ip', '-j', 'link', 'show']));
  const filters: Record<string, unknown> = {};
  for (const { ifname } of links) {
    for (const hook of ['ingress', 'egress']) {
      // Without a clsact qdisc `tc filter show ... egress` has nothing to list.
      filters[`${ifname}/${hook}`] = await ns.json(['tc', '-j', 'filter', 'show', 'dev', ifname, hook]).catch((e: Error) => `error: ${e.message}`);
    }
  }
  return {
    links,
    addresses: withoutOperstate(await ns.json<unknown[]>(['ip', '-j', 'addr', 'show'])),
    qdiscs: await ns.json(['tc', '-j', 'qdisc', 'show']),
    filters,
    nftables: await ns.json(['nft', '-j', 'list', 'ruleset']),
  };
}

export async function snapshotAll(namespaces: readonly TestNetns[]): Promise<Map<string, NetnsSnapshot>> {
  const result = new Map<string, NetnsSnapshot>();
  for (const ns of namespaces) result.set(ns.name, await snapshotNetns(ns));
  return result;
}
