// Pure planning of the Isolate response on a server VM's taps in its launcher pod: every frame the
// VM sends (tc ingress hook of the tap) and every frame sent to it (egress hook) is dropped — after
// a copy to the IDS mirror, so the IDS VM still sees what an isolated server tries to send.
//
// The kernels HyperSpector targets may have no gact (`action drop`): only mirred is assumed (as for
// the mirror itself). A mirred action's control verdict does the drop: the last action of our
// filter mirrors to a sink — a port-less bridge of ours kept down, so nothing is ever copied to it —
// with the control `drop` (TC_ACT_SHOT; mirred returns its control when the target is down). The
// mirror copy, when the hook is mirrored, is an action before it with the control `pipe`.
//
// Our filter must run before the mirror filter (tc-mirror-plan.ts, prefs 10/11): a mirror action
// returns `pipe`, which ends classification, so a drop behind it would never run. Hence prefs 5/6,
// and the copy in our own filter; while it exists the mirror filter sees no frame. Our filters are
// told by their action cookie, so a filter of someone else's at the same pref is never replaced.
import { mergeFilterRows, type TcFilterRow } from './tc-filter-rows.ts';
import { ip, tc, type KernelCommand } from './kernel-commands.ts';
import { TC_HOOKS, type TcHook } from './tc-mirror-plan.ts';

export const ISOLATION_FILTER_PREF: Readonly<Record<TcHook, number>> = { ingress: 5, egress: 6 };
/** Action cookie of the isolation filters ("hs-isolate" in hex). */
export const ISOLATION_COOKIE = Buffer.from('hs-isolate').toString('hex');
/** The sink device of a server's isolation: `hsq` + 8 hex digits of the MonitoredServer's UID. */
export const ISOLATION_SINK_PATTERN = /^hsq[0-9a-f]{8}$/;

export function isolationSinkName(msUid: string): string {
  return `hsq${msUid.replace(/-/g, '').slice(0, 8).toLowerCase()}`;
}

export interface TapIsolationSpec {
  /** The server VM's tap in its launcher pod. */
  readonly tap: string;
  /** The mirror link per hook the mirror copies from (absent: that hook is not mirrored). */
  readonly mirrorTo: Readonly<Partial<Record<TcHook, string>>>;
  readonly sink: string;
}

export interface ObservedAction {
  readonly kind: string;
  readonly toDev?: string;
  readonly control?: string;
  readonly cookie?: string;
}

export interface ObservedIsolationFilter {
  readonly pref: number;
  readonly kind: string;
  readonly actions: readonly ObservedAction[];
}

export interface ObservedIsolationState {
  readonly ingressQdisc: 'clsact' | 'ingress' | undefined;
  /** Every filter of each hook (any pref), so a removal knows whether the clsact may go. */
  readonly filters: Readonly<Record<TcHook, readonly ObservedIsolationFilter[]>>;
}

type FilterRow = TcFilterRow<{ kind?: string; to_dev?: string; control_action?: { type?: string }; cookie?: string }>;

/** `tc -j filter show dev X <hook>` rows, merged per preference (u32 prints its hash table as rows too). */
export function parseIsolationFilters(rows: readonly FilterRow[]): ObservedIsolationFilter[] {
  return mergeFilterRows(rows, (a) => ({
    kind: a.kind ?? '',
    ...(a.to_dev !== undefined ? { toDev: a.to_dev } : {}),
    ...(a.control_action?.type !== undefined ? { control: a.control_action.type } : {}),
    ...(a.cookie !== undefined ? { cookie: a.cookie } : {}),
  }));
}

function isOurs(filter: ObservedIsolationFilter): boolean {
  return filter.actions.length > 0 && filter.actions.every((a) => a.cookie === ISOLATION_COOKIE);
}

/** True when the tap carries an isolation filter of ours (what removal and the sweep look for). */
export function carriesOurIsolation(observed: ObservedIsolationState): boolean {
  return TC_HOOKS.some((hook) => observed.filters[hook].some((f) => f.pref === ISOLATION_FILTER_PREF[hook] && isOurs(f)));
}

function desiredActions(spec: TapIsolationSpec, hook: TcHook): ObservedAction[] {
  const copy = spec.mirrorTo[hook];
  return [
    ...(copy ? [{ kind: 'mirred', toDev: copy, control: 'pipe', cookie: ISOLATION_COOKIE }] : []),
    { kind: 'mirred', toDev: spec.sink, control: 'drop', cookie: ISOLATION_COOKIE },
  ];
}

function isExactlyDesired(filter: ObservedIsolationFilter, wanted: readonly ObservedAction[]): boolean {
  return (
    filter.kind === 'u32' &&
    filter.actions.length === wanted.length &&
    filter.actions.every((a, i) => a.kind === wanted[i]!.kind && a.toDev === wanted[i]!.toDev && a.control === wanted[i]!.control && a.cookie === ISOLATION_COOKIE)
  );
}

function addFilter(spec: TapIsolationSpec, hook: TcHook): KernelCommand {
  const args = ['filter', 'add', 'dev', spec.tap, hook, 'pref', String(ISOLATION_FILTER_PREF[hook]), 'protocol', 'all', 'u32', 'match', 'u32', '0', '0'];
  for (const action of desiredActions(spec, hook)) {
    args.push('action', 'mirred', 'egress', 'mirror', 'dev', action.toDev!, action.control!, 'cookie', ISOLATION_COOKIE);
  }
  return tc(...args);
}

function deleteFilter(dev: string, hook: TcHook): KernelCommand {
  return tc('filter', 'del', 'dev', dev, hook, 'pref', String(ISOLATION_FILTER_PREF[hook]));
}

/** The sink: a port-less bridge, down (mirred to a down device copies nothing and returns its control). */
export function planIsolationSink(sink: string, existing: { flags: string[]; kind?: string } | undefined): KernelCommand[] {
  if (!existing) return [ip('link', 'add', 'name', sink, 'type', 'bridge')];
  if (existing.kind !== 'bridge') throw new Error(`${sink} exists and is a ${existing.kind ?? 'device'} of someone else's, not HyperSpector's isolation sink`);
  return existing.flags.includes('UP') ? [ip('link', 'set', 'dev', sink, 'down')] : [];
}

/** Commands that make the tap drop everything, both ways, after the mirror copy. */
export function planTapIsolation(spec: TapIsolationSpec, observed: ObservedIsolationState): KernelCommand[] {
  if (observed.ingressQdisc === 'ingress') throw new Error(`${spec.tap} has a legacy ingress qdisc, which excludes clsact; isolation needs clsact`);
  const commands: KernelCommand[] = [];
  if (observed.ingressQdisc !== 'clsact') commands.push(tc('qdisc', 'add', 'dev', spec.tap, 'clsact'));
  for (const hook of TC_HOOKS) {
    const existing = observed.filters[hook].find((f) => f.pref === ISOLATION_FILTER_PREF[hook]);
    if (existing && !isOurs(existing)) throw new Error(`tc ${hook} filter pref ${existing.pref} on ${spec.tap} belongs to someone else (kind ${existing.kind}); refusing to replace it`);
    if (existing && isExactlyDesired(existing, desiredActions(spec, hook))) continue;
    if (existing) commands.push(deleteFilter(spec.tap, hook));
    commands.push(addFilter(spec, hook));
  }
  return commands;
}

/** Commands that remove our isolation from a tap; the clsact goes too when no other filter is left on it. */
export function planTapIsolationRemoval(tap: string, observed: ObservedIsolationState): KernelCommand[] {
  if (observed.ingressQdisc !== 'clsact') return [];
  const commands: KernelCommand[] = [];
  let othersLeft = 0;
  for (const hook of TC_HOOKS) {
    for (const filter of observed.filters[hook]) {
      if (filter.pref === ISOLATION_FILTER_PREF[hook] && isOurs(filter)) commands.push(deleteFilter(tap, hook));
      else othersLeft++;
    }
  }
  if (commands.length > 0 && othersLeft === 0) commands.push(tc('qdisc', 'del', 'dev', tap, 'clsact'));
  return commands;
}
