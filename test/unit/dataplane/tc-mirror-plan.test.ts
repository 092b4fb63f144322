import assert from 'node:assert/strict';
import { formatCommand } from '../../../src/dataplane/kernel-commands.ts';
import {
  MIRROR_COOKIE,
  checkMirrorDestination,
  hooksForDirection,
  parseIngressQdisc,
  parseTcFilters,
  planTcMirror,
  planTcMirrorRemoval,
  type ObservedTcState,
} from '../../../src/dataplane/tc-mirror-plan.ts';

const noTc: ObservedTcState = { ingressQdisc: undefined, filters: { ingress: [], egress: [] } };
const spec = { source: 'tap0', destination: 'hsm0', direction: 'Both' as const };

function ours(pref: number, toDev = 'hsm0') {
  return { pref, kind: 'u32', mirred: [{ action: 'mirror', direction: 'egress', toDev, cookie: MIRROR_COOKIE }] };
}

describe('tc mirror planning', () => {
  it('maps the server-side direction to the reversed clsact hooks of the pod-side interface', () => {
    assert.deepEqual(hooksForDirection('Egress'), ['ingress']);
    assert.deepEqual(hooksForDirection('Ingress'), ['egress']);
    assert.deepEqual(hooksForDirection('Both'), ['ingress', 'egress']);
  });

  it('adds clsact and one catch-all mirred filter per hook on a bare interface', () => {
    assert.deepEqual(planTcMirror(spec, noTc).map(formatCommand), [
      'tc qdisc add dev tap0 clsact',
      `tc filter add dev tap0 ingress pref 10 protocol all u32 match u32 0 0 action mirred egress mirror dev hsm0 cookie ${MIRROR_COOKIE}`,
      `tc filter add dev tap0 egress pref 11 protocol all u32 match u32 0 0 action mirred egress mirror dev hsm0 cookie ${MIRROR_COOKIE}`,
    ]);
  });

  it('plans nothing when the mirror is already as desired (idempotent)', () => {
    const observed: ObservedTcState = { ingressQdisc: 'clsact', filters: { ingress: [ours(10)], egress: [ours(11)] } };
    assert.deepEqual(planTcMirror(spec, observed), []);
  });

  it('replaces a filter pointing elsewhere and drops the hook no longer wanted', () => {
    const observed: ObservedTcState = { ingressQdisc: 'clsact', filters: { ingress: [ours(10, 'old0')], egress: [ours(11)] } };
    assert.deepEqual(planTcMirror({ ...spec, direction: 'Egress' }, observed).map(formatCommand), [
      'tc filter del dev tap0 ingress pref 10',
      `tc filter add dev tap0 ingress pref 10 protocol all u32 match u32 0 0 action mirred egress mirror dev hsm0 cookie ${MIRROR_COOKIE}`,
      'tc filter del dev tap0 egress pref 11',
    ]);
  });

  it('refuses to overwrite a foreign filter at its preference, and loops', () => {
    const foreign = { pref: 10, kind: 'bpf', mirred: [] };
    assert.throws(() => planTcMirror(spec, { ingressQdisc: 'clsact', filters: { ingress: [foreign], egress: [] } }), /someone else/);
    assert.throws(() => planTcMirror({ ...spec, destination: 'tap0' }, noTc), /loop/);
    assert.throws(() => planTcMirror(spec, { ...noTc, ingressQdisc: 'ingress' }), /legacy ingress/);
  });

  it('removes only its own filters, and clsact only when nothing else is left on it', () => {
    const alone: ObservedTcState = { ingressQdisc: 'clsact', filters: { ingress: [ours(10)], egress: [ours(11)] } };
    assert.deepEqual(planTcMirrorRemoval('tap0', alone).map(formatCommand), [
      'tc filter del dev tap0 ingress pref 10',
      'tc filter del dev tap0 egress pref 11',
      'tc qdisc del dev tap0 clsact',
    ]);
    const shared: ObservedTcState = { ingressQdisc: 'clsact', filters: { ingress: [ours(10), { pref: 1, kind: 'bpf', mirred: [] }], egress: [] } };
    assert.deepEqual(planTcMirrorRemoval('tap0', shared).map(formatCommand), ['tc filter del dev tap0 ingress pref 10']);
    assert.deepEqual(planTcMirrorRemoval('tap0', noTc), []);
  });

  it('rejects destinations that would bring copies back', () => {
    assert.throws(() => checkMirrorDestination(spec, 'k6t-eth0', noTc), /port of k6t-eth0/);
    const back: ObservedTcState = { ingressQdisc: 'clsact', filters: { ingress: [ours(10, 'tap0')], egress: [] } };
    assert.throws(() => checkMirrorDestination(spec, undefined, back), /loop/);
    assert.doesNotThrow(() => checkMirrorDestination(spec, undefined, noTc));
  });

  it('parses tc -j filter rows, merging u32 hash-table rows by preference', () => {
    const rows = [
      { protocol: 'all', pref: 10, kind: 'u32', chain: 0 },
      { protocol: 'all', pref: 10, kind: 'u32', chain: 0, options: { fh: '800:', ht_divisor: 1 } },
      {
        protocol: 'all', pref: 10, kind: 'u32', chain: 0,
        options: { fh: '800::800', actions: [{ order: 1, kind: 'mirred', mirred_action: 'mirror', direction: 'egress', to_dev: 'hsm0', cookie: MIRROR_COOKIE }] },
      },
    ];
    assert.deepEqual(parseTcFilters(rows), [ours(10)]);
    assert.equal(parseIngressQdisc([{ kind: 'noqueue' }, { kind: 'clsact' }]), 'clsact');
    assert.equal(parseIngressQdisc([{ kind: 'noqueue' }]), undefined);
  });
});
