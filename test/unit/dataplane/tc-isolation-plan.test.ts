import assert from 'node:assert/strict';
import { formatCommand } from '../../../src/dataplane/kernel-commands.ts';
import { ISOLATION_COOKIE, isolationSinkName, parseIsolationFilters, planIsolationSink, planTapIsolation, planTapIsolationRemoval, type ObservedIsolationState, type TapIsolationSpec } from '../../../src/dataplane/tc-isolation-plan.ts';

const C = ISOLATION_COOKIE;
const SINK = isolationSinkName('c0ffee00-1234-4abc-8def-000000000001');
const mirrored: TapIsolationSpec = { tap: 'tap0', mirrorTo: { ingress: 'hsmc0ffee00', egress: 'hsmc0ffee00' }, sink: SINK };
const unmirrored: TapIsolationSpec = { tap: 'tap0', mirrorTo: {}, sink: SINK };
const none: ObservedIsolationState = { ingressQdisc: undefined, filters: { ingress: [], egress: [] } };
const cmds = (c: ReturnType<typeof planTapIsolation>) => c.map(formatCommand);
const ours = (pref: number, copy?: string) => ({
  pref,
  kind: 'u32',
  actions: [...(copy ? [{ kind: 'mirred', toDev: copy, control: 'pipe', cookie: C }] : []), { kind: 'mirred', toDev: SINK, control: 'drop', cookie: C }],
});
const mirrorFilter = (pref: number) => ({ pref, kind: 'u32', actions: [{ kind: 'mirred', toDev: 'hsmc0ffee00', control: 'pipe', cookie: 'other' }] });

describe('tc isolation plan (the Isolate response on a server tap)', () => {
  it('names the sink after the MonitoredServer UID, 15 bytes at most', () => assert.equal(SINK, 'hsqc0ffee00'));

  it('adds clsact and, per hook, a filter before the mirror that copies to the mirror link and then drops (mirred to the down sink, control drop)', () => {
    assert.deepEqual(cmds(planTapIsolation(mirrored, none)), [
      'tc qdisc add dev tap0 clsact',
      `tc filter add dev tap0 ingress pref 5 protocol all u32 match u32 0 0 action mirred egress mirror dev hsmc0ffee00 pipe cookie ${C} action mirred egress mirror dev ${SINK} drop cookie ${C}`,
      `tc filter add dev tap0 egress pref 6 protocol all u32 match u32 0 0 action mirred egress mirror dev hsmc0ffee00 pipe cookie ${C} action mirred egress mirror dev ${SINK} drop cookie ${C}`,
    ]);
  });

  it('only drops on a hook that is not mirrored', () => {
    const plan = cmds(planTapIsolation({ ...mirrored, mirrorTo: { ingress: 'hsmc0ffee00' } }, none));
    assert.equal(plan[2], `tc filter add dev tap0 egress pref 6 protocol all u32 match u32 0 0 action mirred egress mirror dev ${SINK} drop cookie ${C}`);
  });

  it('is idempotent: nothing to do when exactly in place (the mirror filter behind it untouched)', () => {
    const observed: ObservedIsolationState = { ingressQdisc: 'clsact', filters: { ingress: [ours(5, 'hsmc0ffee00'), mirrorFilter(10)], egress: [ours(6, 'hsmc0ffee00'), mirrorFilter(11)] } };
    assert.deepEqual(planTapIsolation(mirrored, observed), []);
  });

  it('replaces a filter of ours that differs (the mirror link went away)', () => {
    const observed: ObservedIsolationState = { ingressQdisc: 'clsact', filters: { ingress: [ours(5, 'hsmc0ffee00')], egress: [ours(6)] } };
    assert.deepEqual(cmds(planTapIsolation(unmirrored, observed)), ['tc filter del dev tap0 ingress pref 5', `tc filter add dev tap0 ingress pref 5 protocol all u32 match u32 0 0 action mirred egress mirror dev ${SINK} drop cookie ${C}`]);
  });

  it('refuses to replace someone else’s filter at its preference, and a legacy ingress qdisc', () => {
    assert.throws(() => planTapIsolation(unmirrored, { ingressQdisc: 'clsact', filters: { ingress: [mirrorFilter(5)], egress: [] } }), /belongs to someone else/);
    assert.throws(() => planTapIsolation(unmirrored, { ingressQdisc: 'ingress', filters: { ingress: [], egress: [] } }), /legacy ingress qdisc/);
  });

  it('removal deletes our filters, and the clsact only when nothing else is left on it', () => {
    assert.deepEqual(cmds(planTapIsolationRemoval('tap0', { ingressQdisc: 'clsact', filters: { ingress: [ours(5)], egress: [ours(6)] } })), [
      'tc filter del dev tap0 ingress pref 5',
      'tc filter del dev tap0 egress pref 6',
      'tc qdisc del dev tap0 clsact',
    ]);
    assert.deepEqual(cmds(planTapIsolationRemoval('tap0', { ingressQdisc: 'clsact', filters: { ingress: [ours(5, 'hsmc0ffee00'), mirrorFilter(10)], egress: [ours(6)] } })), [
      'tc filter del dev tap0 ingress pref 5',
      'tc filter del dev tap0 egress pref 6',
    ]);
    assert.deepEqual(planTapIsolationRemoval('tap0', { ingressQdisc: 'clsact', filters: { ingress: [mirrorFilter(10)], egress: [] } }), [], 'the mirror alone: not ours to touch');
    assert.deepEqual(planTapIsolationRemoval('tap0', none), []);
  });

  it('the sink: created as a bridge, kept down; a device of someone else’s with its name is refused', () => {
    assert.deepEqual(planIsolationSink(SINK, undefined).map(formatCommand), [`ip link add name ${SINK} type bridge`]);
    assert.deepEqual(planIsolationSink(SINK, { flags: ['BROADCAST'], kind: 'bridge' }), []);
    assert.deepEqual(planIsolationSink(SINK, { flags: ['UP'], kind: 'bridge' }).map(formatCommand), [`ip link set dev ${SINK} down`]);
    assert.throws(() => planIsolationSink(SINK, { flags: [], kind: 'veth' }), /someone else/);
  });

  it('parses tc’s JSON rows (u32 prints its hash table as rows of their own)', () => {
    const rows = [
      { pref: 5, kind: 'u32' },
      { pref: 5, kind: 'u32', options: {} },
      { pref: 5, kind: 'u32', options: { actions: [ { kind: 'mirred', to_dev: 'hsmc0ffee00', control_action: { type: 'pipe' }, cookie: C }, { kind: 'mirred', to_dev: SINK, control_action: { type: 'drop' }, cookie: C } ] } },
    ];
    assert.deepEqual(parseIsolationFilters(rows), [ours(5, 'hsmc0ffee00')]);
  });
});
