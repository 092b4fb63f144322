// Pure planning of tc port mirroring: observed clsact/filters of the server VM's interface in its
// launcher pod → the tc commands that make them match the desired mirror, and nothing else.
//
// Mirroring is one `u32 match u32 0 0` filter (matches every frame) per hook with a `mirred egress
// mirror` action. u32 rather than matchall/flower because it is in every kernel config that has tc
// at all (matchall and flower are optional and missing from some distribution and CI kernels).
// Our filters are recognised by a fixed preference per hook plus an action cookie, so a reconcile
// never touches filters it did not install and refuses to overwrite someone else's.
import { mergeFilterRows, type TcFilterRow as FilterRow } from './tc-filter-rows.ts';
import { tc, type KernelCommand } from './kernel-commands.ts';

/**
 * Which of the server's packets are mirrored, seen from the server VM (as the paper and the
 * MonitoredServer spec say it): Ingress = packets the server receives, Egress = packets it sends.
 */
export type MirrorDirection = 'Ingress' | 'Egress' | 'Both';

/** A clsact hook of the server VM's interface in its launcher pod (tap or veth). */
export type TcHook = 'ingress' | 'egress';
export const TC_HOOKS: readonly TcHook[] = ['ingress', 'egress'];

/** Low preferences so the copy is taken before any other classifier may drop or redirect the frame. */
export const MIRROR_FILTER_PREF: Readonly<Record<TcHook, number>> = { ingress: 10, egress: 11 };

/** Action cookie that marks a filter as HyperSpector's ("hyperspector" in hex). */
export const MIRROR_COOKIE = Buffer.from('hyperspector').toString('hex');

/**
 * The pod-side interface sees the VM's traffic reversed: what the VM sends enters the pod through
 * the tap (tc ingress hook), what the VM receives leaves the pod through it (tc egress hook).
 */
export function hooksForDirection(direction: MirrorDirection): TcHook[] {
  switch (direction) {
    case 'Egress':
      return ['ingress'];
    case 'Ingress':
      return ['egress'];
    case 'Both':
      return ['ingress', 'egress'];
  }
}

export interface TcMirrorSpec {
  /** The server VM's interface inside its launcher pod's namespace (KubeVirt's tap, or a veth). */
  readonly source: string;
  /** Where copies go: a veth into the IDS VM's launcher pod, or a VXLAN device towards it. */
  readonly destination: string;
  readonly direction: MirrorDirection;
}

export interface ObservedMirredAction {
  readonly action: string;
  readonly direction: string;
  readonly toDev: string;
  readonly cookie?: string;
}

/** One classifier instance (all `tc -j filter show` rows of one preference merged). */
export interface ObservedFilter {
  readonly pref: number;
  readonly kind: string;
  readonly mirred: readonly ObservedMirredAction[];
}

export interface ObservedTcState {
  /** Kind of the ingress-side qdisc: 'clsact', 'ingress' (the legacy one, which excludes clsact) or none. */
  readonly ingressQdisc: 'clsact' | 'ingress' | undefined;
  readonly filters: Readonly<Record<TcHook, readonly ObservedFilter[]>>;
}

type TcFilterRow = FilterRow<{ kind?: string; mirred_action?: string; direction?: string; to_dev?: string; cookie?: string }>;

/** Groups `tc -j filter show dev X <hook>` rows (u32 prints hash tables as rows of their own). */
export function parseTcFilters(rows: readonly TcFilterRow[]): ObservedFilter[] {
  return mergeFilterRows(rows, (action) =>
    action.kind !== 'mirred'
      ? undefined
      : { action: action.mirred_action ?? '', direction: action.direction ?? '', toDev: action.to_dev ?? '', ...(action.cookie === undefined ? {} : { cookie: action.cookie }) },
  ).map(({ pref, kind, actions }) => ({ pref, kind, mirred: actions }));
}

export function parseIngressQdisc(rows: readonly { kind?: string }[]): ObservedTcState['ingressQdisc'] {
  if (rows.some((r) => r.kind === 'clsact')) return 'clsact';
  if (rows.some((r) => r.kind === 'ingress')) return 'ingress';
  return undefined;
}

function isOurs(filter: ObservedFilter): boolean {
  return filter.mirred.length > 0 && filter.mirred.every((m) => m.cookie === MIRROR_COOKIE);
}

/** True when the interface carries a mirror filter of ours (what a node-wide sweep looks for). */
export function carriesOurMirror(observed: ObservedTcState): boolean {
  return TC_HOOKS.some((hook) => observed.filters[hook].some((f) => f.pref === MIRROR_FILTER_PREF[hook] && isOurs(f)));
}

function isExactlyDesired(filter: ObservedFilter, destination: string): boolean {
  return (
    filter.kind === 'u32' &&
    filter.mirred.length === 1 &&
    filter.mirred[0]!.action === 'mirror' &&
    filter.mirred[0]!.direction === 'egress' &&
    filter.mirred[0]!.toDev === destination &&
    filter.mirred[0]!.cookie === MIRROR_COOKIE
  );
}

function addMirrorFilter(spec: TcMirrorSpec, hook: TcHook): KernelCommand {
  return tc(
    'filter', 'add', 'dev', spec.source, hook, 'pref', String(MIRROR_FILTER_PREF[hook]), 'protocol', 'all',
    'u32', 'match', 'u32', '0', '0',
    'action', 'mirred', 'egress', 'mirror', 'dev', spec.destination, 'cookie', MIRROR_COOKIE,
  );
}

function deleteFilter(dev: string, hook: TcHook, pref: number): KernelCommand {
  return tc('filter', 'del', 'dev', dev, hook, 'pref', String(pref));
}

function ourFilter(observed: ObservedTcState, hook: TcHook, dev: string): ObservedFilter | undefined {
  const filter = observed.filters[hook].find((f) => f.pref === MIRROR_FILTER_PREF[hook]);
  if (filter && !isOurs(filter)) {
    throw new Error(
      `tc ${hook} filter pref ${filter.pref} on ${dev} belongs to someone else (kind ${filter.kind}); refusing to replace it`,
    );
  }
  return filter;
}

/** Commands that turn the observed tc state of `spec.source` into exactly the desired mirror. */
export function planTcMirror(spec: TcMirrorSpec, observed: ObservedTcState): KernelCommand[] {
  if (spec.source === spec.destination) {
    throw new Error(`Mirror destination ${spec.destination} is the mirrored interface itself (a loop)`);
  }
  if (observed.ingressQdisc === 'ingress') {
    throw new Error(`${spec.source} has a legacy ingress qdisc, which excludes clsact; mirroring needs clsact`);
  }
  const wanted = new Set(hooksForDirection(spec.direction));
  const commands: KernelCommand[] = [];
  if (observed.ingressQdisc !== 'clsact') commands.push(tc('qdisc', 'add', 'dev', spec.source, 'clsact'));
  for (const hook of TC_HOOKS) {
    const existing = ourFilter(observed, hook, spec.source);
    if (wanted.has(hook)) {
      if (existing && isExactlyDesired(existing, spec.destination)) continue;
      if (existing) commands.push(deleteFilter(spec.source, hook, existing.pref));
      commands.push(addMirrorFilter(spec, hook));
    } else if (existing) {
      commands.push(deleteFilter(spec.source, hook, existing.pref));
    }
  }
  return commands;
}

/**
 * Commands that remove our mirror from `source`; the clsact qdisc goes too when no other filter is
 * left on it (an empty clsact changes nothing, but removal should leave the namespace as found).
 */
export function planTcMirrorRemoval(source: string, observed: ObservedTcState): KernelCommand[] {
  if (observed.ingressQdisc !== 'clsact') return [];
  const commands: KernelCommand[] = [];
  let othersLeft = 0;
  for (const hook of TC_HOOKS) {
    for (const filter of observed.filters[hook]) {
      if (filter.pref === MIRROR_FILTER_PREF[hook] && isOurs(filter)) commands.push(deleteFilter(source, hook, filter.pref));
      else othersLeft++;
    }
  }
  if (othersLeft === 0) commands.push(tc('qdisc', 'del', 'dev', source, 'clsact'));
  return commands;
}

/**
 * Loop guard: a copy must never come back to the mirrored interface. The destination may not be
 * the source, may not be a port of a bridge (the in-pod bridge would hand copies to the server VM
 * or back into the pod network), and may not itself mirror towards the source.
 */
export function checkMirrorDestination(spec: TcMirrorSpec, destinationMaster: string | undefined, destinationFilters: ObservedTcState): void {
  if (spec.source === spec.destination) throw new Error(`Mirror destination ${spec.destination} is the mirrored interface itself`);
  if (destinationMaster !== undefined) {
    throw new Error(`Mirror destination ${spec.destination} is a port of ${destinationMaster}; copies would be bridged back`);
  }
  for (const hook of TC_HOOKS) {
    for (const filter of destinationFilters.filters[hook]) {
      if (filter.mirred.some((m) => m.toDev === spec.source)) {
        throw new Error(`Mirror destination ${spec.destination} itself redirects to ${spec.source} (a loop)`);
      }
    }
  }
}
