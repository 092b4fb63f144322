// Pure planning of the IDS overlay's underlay guard: an nftables table that drops VXLAN for the
// overlay's VNI unless it comes from a peer node.
//
// Why: a VXLAN device accepts encapsulated frames from any source on its UDP port. A server VM
// can usually reach its node's address, so without this guard it could build its own VXLAN
// device with the overlay's VNI and inject frames into the IDS network (one way: replies go only
// to peer nodes), breaking "the server VM can never reach an IDS VM". The rule matches the VNI in
// the VXLAN header, so a CNI's own VXLAN on the same port is never touched. It sits at the raw
// priority of prerouting, after defragmentation, before anything else looks at the packet.
import { isDeepStrictEqual } from 'node:util';
import { nftScript, type KernelCommand } from './kernel-commands.ts';
import { desiredPeers, type VxlanOverlaySpec } from './vxlan-overlay-plan.ts';

/** What the guard is, reduced to comparable strings (from the spec or from `nft -j list table`). */
export interface GuardState {
  readonly chain: string;
  readonly peers4: readonly string[];
  readonly peers6: readonly string[];
  readonly rules: readonly string[];
}

export function guardTableName(spec: Pick<VxlanOverlaySpec, 'vxlan'>): string {
  return `hyperspector_${spec.vxlan.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

const CHAIN = 'underlay_guard';
const CHAIN_SIGNATURE = 'filter/prerouting/-300/accept';

function ruleSignature(family: 'ip' | 'ip6', port: number, vni: number): string {
  return `${family} udp dport ${port} vni ${vni} saddr != @peers${family === 'ip' ? 4 : 6} drop`;
}

export function desiredGuardState(spec: VxlanOverlaySpec): GuardState {
  const peers = desiredPeers(spec);
  return {
    chain: CHAIN_SIGNATURE,
    peers4: peers.filter((p) => !p.includes(':')),
    peers6: peers.filter((p) => p.includes(':')),
    rules: [ruleSignature('ip', spec.port, spec.vni), ruleSignature('ip6', spec.port, spec.vni)],
  };
}

/** The whole table, replaced atomically: `table` (create if absent), `delete table`, definition. */
export function guardScript(spec: VxlanOverlaySpec): string {
  const state = desiredGuardState(spec);
  const table = guardTableName(spec);
  const set = (name: string, type: string, elements: readonly string[]) =>
    [`  set ${name} {`, `    type ${type}`, ...(elements.length ? [`    elements = { ${elements.join(', ')} }`] : []), '  }'];
  const rule = (nfproto: string, family: string, setName: string) =>
    `    meta nfproto ${nfproto} udp dport ${spec.port} @th,96,24 ${spec.vni} ${family} saddr != @${setName} counter drop`;
  return [
    `table inet ${table}`,
    `delete table inet ${table}`,
    `table inet ${table} {`,
    ...set('peers4', 'ipv4_addr', state.peers4),
    ...set('peers6', 'ipv6_addr', state.peers6),
    `  chain ${CHAIN} {`,
    '    type filter hook prerouting priority raw; policy accept;',
    rule('ipv4', 'ip', 'peers4'),
    rule('ipv6', 'ip6', 'peers6'),
    '  }',
    '}',
    '',
  ].join('\n');
}

interface NftPayload {
  protocol?: string;
  field?: string;
  base?: string;
  offset?: number;
  len?: number;
}
interface NftExpr {
  match?: { op: string; left: { payload?: NftPayload; meta?: unknown }; right: unknown };
  drop?: null;
}
type NftObject = {
  table?: { family: string; name: string };
  set?: { name: string; table: string; elem?: unknown[] };
  chain?: { name: string; table: string; type?: string; hook?: string; prio?: number; policy?: string };
  rule?: { table: string; chain: string; expr: NftExpr[] };
};

function signatureOfRule(expr: readonly NftExpr[]): string {
  let family = '?';
  let port: unknown = '?';
  let vni: unknown = '?';
  let set: unknown = '?';
  for (const e of expr) {
    const p = e.match?.left.payload;
    if (!p) continue;
    if (p.protocol === 'udp' && p.field === 'dport' && e.match!.op === '==') port = e.match!.right;
    if (p.base === 'th' && p.offset === 96 && p.len === 24 && e.match!.op === '==') vni = e.match!.right;
    if ((p.protocol === 'ip' || p.protocol === 'ip6') && p.field === 'saddr' && e.match!.op === '!=') {
      family = p.protocol;
      set = e.match!.right;
    }
  }
  const drops = expr.some((e) => 'drop' in e);
  return `${family} udp dport ${String(port)} vni ${String(vni)} saddr != ${String(set)} ${drops ? 'drop' : 'accept'}`;
}

/** Reads `nft -j list table inet <name>`; undefined when the table is absent. */
export function parseGuardState(json: { nftables?: NftObject[] } | undefined, table: string): GuardState | undefined {
  const objects = json?.nftables ?? [];
  if (!objects.some((o) => o.table?.name === table)) return undefined;
  const elems = (name: string) =>
    objects
      .filter((o) => o.set?.table === table && o.set.name === name)
      .flatMap((o) => o.set!.elem ?? [])
      .map(String)
      .sort();
  const chain = objects.find((o) => o.chain?.table === table && o.chain.name === CHAIN)?.chain;
  return {
    chain: chain ? `${chain.type}/${chain.hook}/${chain.prio}/${chain.policy}` : 'missing',
    peers4: elems('peers4'),
    peers6: elems('peers6'),
    rules: objects.filter((o) => o.rule?.table === table && o.rule.chain === CHAIN).map((o) => signatureOfRule(o.rule!.expr)),
  };
}

function sameState(a: GuardState, b: GuardState): boolean {
  return isDeepStrictEqual(a, b);
}

export function planVxlanGuard(spec: VxlanOverlaySpec, observed: GuardState | undefined): KernelCommand[] {
  if (observed && sameState(observed, desiredGuardState(spec))) return [];
  return [nftScript(guardScript(spec))];
}

export function planVxlanGuardRemoval(spec: Pick<VxlanOverlaySpec, 'vxlan'>, tablePresent: boolean): KernelCommand[] {
  return tablePresent ? [nftScript(`delete table inet ${guardTableName(spec)}\n`)] : [];
}
