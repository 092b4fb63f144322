// Table-driven tests of the evacuation planner (the pair moves together), the pair's conditions
// while it moves, and the monitoring gap.
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import type { MonitoredServer, MonitoringGap } from '../../../src/api/v1alpha1/monitoredserver-types.ts';
import { FINALIZER, processMapperPodName } from '../../../src/builders/names.ts';
import { Outcomes, type Action, type ApplyAction, type DeleteAction, type SubresourceAction } from '../../../src/controllers/monitoredserver/actions.ts';
import { closedGap, monitoringGapEvents, monitoringGapHistogram, nextMonitoringGap } from '../../../src/controllers/monitoredserver/monitoring-gap.ts';
import type { ObservedState, VirtualMachineInstance, VirtualMachineInstanceMigration } from '../../../src/controllers/monitoredserver/observed-state.ts';
import {
  ANNOTATION_EVACUATED_NODE,
  ANNOTATION_EVACUATION_ATTEMPT,
  EVACUATION_ROLE,
  FIRST_RETRY_MS,
  MAX_RETRY_MS,
  planEvacuation,
  retryDelayMs,
  SLOT_RECHECK_MS,
  type EvacuationLimits,
} from '../../../src/controllers/monitoredserver/planners/evacuation.ts';
import { computeStatus } from '../../../src/controllers/monitoredserver/status.ts';
import { monitoredServer } from '../../../testenv/fixtures/monitoredservers.ts';

const NS = 'shop';
const T0 = new Date('2026-12-01T10:00:00Z');
const FREE: EvacuationLimits = { inFlight: 0, max: 4 };

function ms(adopted = false): MonitoredServer {
  const m = monitoredServer('web-1', NS, adopted ? { server: { virtualMachineName: 'web-1' } } : {});
  m.metadata = { ...m.metadata, uid: 'ms-uid', generation: 1, finalizers: [FINALIZER] };
  return m;
}

interface VmiOptions {
  node?: string;
  evacuation?: string;
  migratable?: boolean;
  migrationState?: Record<string, unknown>;
  deleting?: boolean;
  phase?: string;
}

function serverVmi(o: VmiOptions = {}): VirtualMachineInstance {
  const node = o.node ?? 'node-a';
  return {
    metadata: { name: 'web-1-server', namespace: NS, uid: 'vmi-uid', ...(o.deleting ? { deletionTimestamp: T0.toISOString() } : {}) },
    spec: { domain: { devices: {} } },
    status: {
      phase: o.phase ?? 'Running',
      nodeName: node,
      ...(o.evacuation ? { evacuationNodeName: o.evacuation } : {}),
      ...(o.migrationState ? { migrationState: o.migrationState } : {}),
      conditions: [
        { type: 'Ready', status: 'True' },
        o.migratable === false
          ? { type: 'LiveMigratable', status: 'False', reason: 'DisksNotLiveMigratable', message: 'PVC root is not shared' }
          : { type: 'LiveMigratable', status: 'True' },
      ],
    } as VirtualMachineInstance['status'],
  };
}

function migration(name: string, phase: string, o: { ours?: boolean; attempt?: number; node?: string; since?: Date; uid?: string; failure?: string } = {}): VirtualMachineInstanceMigration {
  return {
    metadata: {
      name,
      namespace: NS,
      uid: o.uid ?? `${name}-uid`,
      creationTimestamp: (o.since ?? T0).toISOString(),
      labels: o.ours ? { 'hyperspector.io/role': EVACUATION_ROLE, 'app.kubernetes.io/managed-by': 'hyperspector' } : {},
      annotations: o.ours ? { [ANNOTATION_EVACUATION_ATTEMPT]: String(o.attempt ?? 1), [ANNOTATION_EVACUATED_NODE]: o.node ?? 'node-a' } : {},
    },
    spec: { vmiName: 'web-1-server' },
    status: {
      phase,
      phaseTransitionTimestamps: [{ phase, phaseTransitionTimestamp: (o.since ?? T0).toISOString() }],
      ...(o.failure ? { migrationState: { failed: true, completed: true, failureReason: o.failure } } : {}),
    },
  };
}

function observed(vmi: VirtualMachineInstance, extra: Partial<ObservedState> = {}, runStrategy = 'Always'): ObservedState {
  return {
    serverVm: { metadata: { name: 'web-1-server', namespace: NS }, spec: { runStrategy, template: {} }, status: { printableStatus: 'Running' } } as ObservedState['serverVm'],
    serverVmi: vmi,
    idsVm: { metadata: { name: 'web-1-ids', namespace: NS, labels: { 'hyperspector.io/monitored-server': 'web-1' } }, spec: { runStrategy: 'Always', template: {} } } as ObservedState['idsVm'],
    processMapperPod: { metadata: { name: processMapperPodName(monitoredServer('web-1', NS)), namespace: 'hyperspector-system', uid: 'pod-uid' } },
    ...extra,
  };
}

const describeAction = (a: Action): string => {
  switch (a.type) {
    case 'apply':
      return `apply ${a.object.kind} ${a.object.metadata?.name}`;
    case 'delete':
      return `delete ${a.resource.kind} ${a.name}`;
    case 'subresource':
      return `put ${a.path.split('/').slice(-2).join('/')}`;
    default:
      return `${a.type}`;
  }
};

describe('evacuation planner (the pair moves together)', function () {
  const stopIds = ['put web-1-ids/stop', `delete Pod ${processMapperPodName(monitoredServer('web-1', NS))}`];
  const cases: Array<{
    name: string;
    ms?: MonitoredServer;
    o: ObservedState;
    now?: Date;
    limits?: EvacuationLimits;
    actions: string[];
    reason?: string;
    cause?: string;
    recheck?: number;
  }> = [
    { name: 'a settled pair: nothing', o: observed(serverVmi()), actions: [] },
    {
      name: 'an owned server on a drained node: the IDS side stops and a migration is created',
      o: observed(serverVmi({ evacuation: 'node-a' })),
      actions: [...stopIds, 'apply VirtualMachineInstanceMigration web-1-server-evacuate-1'],
      reason: 'ServerMigrating',
      cause: 'Evacuation',
    },
    {
      name: 'the IDS side already stopped: only the migration',
      o: observed(serverVmi({ evacuation: 'node-a' }), { idsVm: { metadata: { name: 'web-1-ids' }, spec: { runStrategy: 'Halted', template: {} } } as ObservedState['idsVm'], processMapperPod: undefined }),
      actions: ['apply VirtualMachineInstanceMigration web-1-server-evacuate-1'],
      reason: 'ServerMigrating',
    },
    {
      name: 'every migration slot taken: wait, and look again',
      o: observed(serverVmi({ evacuation: 'node-a' })),
      limits: { inFlight: 4, max: 4 },
      actions: stopIds,
      reason: 'ServerEvacuating',
      recheck: SLOT_RECHECK_MS,
    },
    {
      name: 'a migration in flight (ours): no second one',
      o: observed(serverVmi({ evacuation: 'node-a' }), { serverMigrations: [migration('web-1-server-evacuate-1', 'Running', { ours: true })] }),
      actions: stopIds,
      reason: 'ServerMigrating',
      cause: 'Evacuation',
    },
    {
      name: 'a user’s migration of any server: the pair moves',
      o: observed(serverVmi(), { serverMigrations: [migration('by-hand', 'Scheduling')] }),
      actions: stopIds,
      reason: 'ServerMigrating',
      cause: 'Migration',
    },
    {
      name: 'KubeVirt’s evacuation migration of an adopted server: the pair moves, cause Evacuation',
      ms: ms(true),
      o: observed(serverVmi({ evacuation: 'node-a' }), { serverMigrations: [migration('kubevirt-evacuation-x', 'Running')] }),
      actions: stopIds,
      reason: 'ServerMigrating',
      cause: 'Evacuation',
    },
    {
      name: 'the VMI’s migrationState before the VMIM is cached: the pair moves',
      o: observed(serverVmi({ migrationState: { targetNode: 'node-b', sourceNode: 'node-a', targetPod: 'virt-launcher-x' } })),
      actions: stopIds,
      reason: 'ServerMigrating',
    },
    {
      name: 'a finished migration: nothing (the other planners re-form the pair)',
      o: observed(serverVmi({ node: 'node-b', migrationState: { targetNode: 'node-b', sourceNode: 'node-a', completed: true } }), { serverMigrations: [migration('web-1-server-evacuate-1', 'Succeeded', { ours: true })] }),
      actions: [],
    },
    {
      name: 'an adopted server on a drained node, no migration yet: KubeVirt’s to make; the IDS side stops',
      ms: ms(true),
      o: observed(serverVmi({ evacuation: 'node-a' })),
      actions: stopIds,
      reason: 'ServerEvacuating',
    },
    {
      name: 'a failed evacuation migration: the server stays, retried after the backoff',
      o: observed(serverVmi({ evacuation: 'node-a' }), { serverMigrations: [migration('web-1-server-evacuate-1', 'Failed', { ours: true, failure: 'target refused' })] }),
      now: new Date(T0.getTime() + 4_000),
      actions: stopIds,
      reason: 'EvacuationMigrationFailed',
      recheck: FIRST_RETRY_MS - 4_000,
    },
    {
      name: 'the backoff over: the next attempt',
      o: observed(serverVmi({ evacuation: 'node-a' }), { serverMigrations: [migration('web-1-server-evacuate-1', 'Failed', { ours: true, failure: 'target refused' })] }),
      now: new Date(T0.getTime() + FIRST_RETRY_MS + 1),
      actions: [...stopIds, 'apply VirtualMachineInstanceMigration web-1-server-evacuate-2'],
      reason: 'ServerMigrating',
    },
    {
      name: 'a second drain of the same VMI: the attempt number continues',
      o: observed(serverVmi({ node: 'node-b', evacuation: 'node-b' }), { serverMigrations: [migration('web-1-server-evacuate-1', 'Succeeded', { ours: true })] }),
      actions: [...stopIds, 'apply VirtualMachineInstanceMigration web-1-server-evacuate-2'],
      reason: 'ServerMigrating',
    },
    {
      name: 'not live-migratable, runStrategy Always: the VMI is deleted and KubeVirt starts it elsewhere',
      o: observed(serverVmi({ evacuation: 'node-a', migratable: false })),
      actions: [...stopIds, 'delete VirtualMachineInstance web-1-server'],
      reason: 'ServerRestarting',
      cause: 'Restart',
    },
    {
      name: 'KubeVirt has not said whether it can migrate: wait, never restart on a guess',
      o: observed({ ...serverVmi({ evacuation: 'node-a' }), status: { ...serverVmi({ evacuation: 'node-a' }).status, conditions: [] } }),
      actions: stopIds,
      reason: 'ServerEvacuating',
      recheck: SLOT_RECHECK_MS,
    },
    {
      name: 'not live-migratable, runStrategy Manual: KubeVirt’s restart',
      o: observed(serverVmi({ evacuation: 'node-a', migratable: false }), {}, 'Manual'),
      actions: [...stopIds, 'put web-1-server/restart'],
      reason: 'ServerRestarting',
    },
    {
      name: 'the restarted VMI going away: the IDS side stays stopped',
      o: observed(serverVmi({ evacuation: 'node-a', deleting: true })),
      actions: stopIds,
      reason: 'ServerRestarting',
    },
    {
      name: 'a server claimed by another MonitoredServer: never touched',
      o: { ...observed(serverVmi({ evacuation: 'node-a' })), serverClaimedBy: 'other' },
      actions: [],
    },
  ];
  for (const c of cases) {
    it(c.name, function () {
      const plan = planEvacuation(c.ms ?? ms(), c.o, c.now ?? T0, c.limits ?? FREE);
      assert.deepEqual(plan.actions.map(describeAction), c.actions);
      assert.equal(plan.move?.reason, c.reason);
      if (c.cause) assert.equal(plan.move?.cause, c.cause);
      assert.equal(plan.recheckAfterMs, c.recheck);
      for (const a of plan.actions) assert.equal(a.capability, 'evacuation');
    });
  }

  it('the migration it creates is owned by the MonitoredServer, labelled, and names its attempt and node', function () {
    const plan = planEvacuation(ms(), observed(serverVmi({ evacuation: 'node-a' })), T0, FREE);
    const apply = plan.actions.find((a): a is ApplyAction => a.type === 'apply');
    const m = apply?.object as VirtualMachineInstanceMigration & { metadata: { ownerReferences?: Array<{ uid: string }> } };
    assert.deepEqual(m.spec, { vmiName: 'web-1-server' });
    assert.equal(m.metadata?.labels?.['hyperspector.io/monitored-server'], 'web-1');
    assert.equal(m.metadata?.annotations?.[ANNOTATION_EVACUATION_ATTEMPT], '1');
    assert.equal(m.metadata?.annotations?.[ANNOTATION_EVACUATED_NODE], 'node-a');
    assert.equal(m.metadata?.ownerReferences?.[0]?.uid, 'ms-uid');
  });

  it('the restart of a VMI names its UID, and a stopped IDS VM tolerates KubeVirt saying it is stopped already', function () {
    const plan = planEvacuation(ms(), observed(serverVmi({ evacuation: 'node-a', migratable: false })), T0, FREE);
    const del = plan.actions.find((a): a is DeleteAction => a.type === 'delete' && a.resource.kind === 'VirtualMachineInstance');
    assert.equal(del?.preconditionUid, 'vmi-uid');
    const stop = plan.actions.find((a): a is SubresourceAction => a.type === 'subresource');
    assert.deepEqual(stop?.tolerate, [404, 409]);
    assert.match(plan.move?.message ?? '', /not live-migratable \(DisksNotLiveMigratable: PVC root is not shared\)/);
  });

  it('a failed migration’s condition says why, that the server still runs where it was, and what to do', function () {
    const plan = planEvacuation(
      ms(),
      observed(serverVmi({ evacuation: 'node-a' }), { serverMigrations: [migration('web-1-server-evacuate-1', 'Failed', { ours: true, failure: 'target refused the domain' })] }),
      new Date(T0.getTime() + 1_000),
      FREE,
    );
    assert.match(plan.move?.message ?? '', /target refused the domain/);
    assert.match(plan.move?.message ?? '', /still runs on node node-a/);
    assert.match(plan.move?.message ?? '', /virtctl stop web-1-server -n shop/);
  });

  it('a migration that no node takes for a minute says to look at the nodes', function () {
    const plan = planEvacuation(ms(), observed(serverVmi({ evacuation: 'node-a' }), { serverMigrations: [migration('web-1-server-evacuate-1', 'Scheduling', { ours: true })] }), new Date(T0.getTime() + 90_000), FREE);
    assert.match(plan.move?.message ?? '', /no node has taken the migration target for 90 s: check that another node is schedulable/);
  });

  it('backs off 10 s, 20 s, 40 s ... at most 5 minutes', function () {
    assert.deepEqual([1, 2, 3, 4, 10].map(retryDelayMs), [10_000, 20_000, 40_000, 80_000, MAX_RETRY_MS]);
  });
});

describe('status while the pair moves, and the monitoring gap', function () {
  const move = planEvacuation(ms(), observed(serverVmi({ evacuation: 'node-a' })), T0, FREE).move;

  it('IDSRunning, Colocated and ProcessMapping say the pair moves; Ready takes that reason', function () {
    const status = computeStatus(ms(), observed(serverVmi({ evacuation: 'node-a' })), new Outcomes(), T0, move);
    const reason = (type: string) => status.conditions?.find((c) => c.type === type)?.reason;
    assert.deepEqual(['IDSRunning', 'Colocated', 'ProcessMapping', 'Ready'].map(reason), ['ServerMigrating', 'ServerMigrating', 'ServerMigrating', 'ServerMigrating']);
    assert.equal(reason('ServerRunning'), 'Running');
    assert.deepEqual(status.lastMonitoringGap, { cause: 'Evacuation', startTime: T0.toISOString(), fromNode: 'node-a' });
  });

  const start: MonitoringGap = { cause: 'Evacuation', startTime: T0.toISOString(), fromNode: 'node-a' };
  const later = new Date(T0.getTime() + 12_345);
  const gapCases: Array<{ name: string; previous?: MonitoringGap; moving: boolean; ready: boolean; want: MonitoringGap | undefined }> = [
    { name: 'no move, no gap', moving: false, ready: true, want: undefined },
    { name: 'a move opens one', moving: true, ready: false, want: start },
    { name: 'an open gap stays open while the pair moves', previous: start, moving: true, ready: false, want: start },
    { name: 'an open gap stays open until Ready', previous: start, moving: false, ready: false, want: start },
    {
      name: 'Ready closes it, with the node and duration',
      previous: start,
      moving: false,
      ready: true,
      want: { ...start, toNode: 'node-b', endTime: later.toISOString(), durationSeconds: 12.345 },
    },
    {
      name: 'a closed gap is kept until the next move',
      previous: { ...start, endTime: later.toISOString(), durationSeconds: 12.345 },
      moving: false,
      ready: true,
      want: { ...start, endTime: later.toISOString(), durationSeconds: 12.345 },
    },
  ];
  for (const c of gapCases) {
    it(`gap: ${c.name}`, function () {
      const now = c.moving && !c.previous ? T0 : later;
      assert.deepEqual(nextMonitoringGap(c.previous, c.moving ? move : undefined, c.ready, 'node-b', now), c.want);
    });
  }

  it('an Event when the gap opens and when it closes, and the closed one is counted once', async function () {
    const closed = { ...start, toNode: 'node-b', endTime: later.toISOString(), durationSeconds: 12.345 };
    assert.deepEqual(monitoringGapEvents(undefined, start).map((e) => `${e.type}/${e.reason}`), ['Warning/MonitoringGapStarted']);
    assert.deepEqual(monitoringGapEvents(start, start), []);
    const end = monitoringGapEvents(start, closed);
    assert.deepEqual(end.map((e) => `${e.type}/${e.reason}`), ['Normal/MonitoringGapEnded']);
    assert.match(end[0]!.message, /resumed on node node-b after a gap of 12.345 s/);
    assert.deepEqual(monitoringGapEvents(closed, closed), []);
    assert.equal(closedGap(start, closed), closed);
    assert.equal(closedGap(closed, closed), undefined);
    const registry = new Registry();
    const histogram = monitoringGapHistogram(registry);
    assert.equal(monitoringGapHistogram(registry), histogram, 'registered once');
    histogram.observe({ cause: 'Evacuation' }, 12.345);
    assert.match(await registry.metrics(), /hyperspector_monitoring_gap_seconds_count\{cause="Evacuation"\} 1/);
  });
});
