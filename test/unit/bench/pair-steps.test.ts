import assert from 'node:assert/strict';
import { formatPairSteps, pairStepLatencies } from '../../../bench/pair-steps.ts';
import type { AuditEvent } from '../../../testenv/cluster/audit-log.ts';

const T0 = Date.parse('2026-12-03T10:00:00Z');
const OPERATOR = 'system:serviceaccount:hyperspector-system:hyperspector-operator';
const CONTROLLER = 'system:serviceaccount:kubevirt:kubevirt-controller';
const HANDLER = 'system:serviceaccount:kubevirt:kubevirt-handler';

function write(seconds: number, user: string, verb: string, resource: string, name: string, o: { subresource?: string; code?: number; namespace?: string } = {}): AuditEvent {
  return {
    verb,
    user: { username: user },
    requestURI: `/${resource}/${name}`,
    objectRef: { resource, name, namespace: o.namespace ?? 'bench', ...(o.subresource ? { subresource: o.subresource } : {}) },
    responseStatus: { code: o.code ?? 200 },
    requestReceivedTimestamp: new Date(T0 + seconds * 1000).toISOString(),
    stage: 'ResponseComplete',
  };
}

/** One pair's writes, its steps `d` seconds long each, starting at `start`. */
function pair(name: string, start: number, d: number[]): AuditEvent[] {
  let t = start;
  const at = (i: number) => (t += d[i]!);
  return [
    write(start, 'admin', 'create', 'monitoredservers', name),
    write(at(0), OPERATOR, 'patch', 'virtualmachines', `${name}-server`, { code: 201 }),
    write(t + 0.1, CONTROLLER, 'update', 'virtualmachines', `${name}-server`, { subresource: 'status' }),
    write(at(1), CONTROLLER, 'create', 'virtualmachineinstances', `${name}-server`, { code: 201 }),
    write(at(2), OPERATOR, 'patch', 'virtualmachines', `${name}-ids`, { code: 201 }),
    write(at(3), CONTROLLER, 'create', 'virtualmachineinstances', `${name}-ids`, { code: 201 }),
    write(t + 1, HANDLER, 'update', 'virtualmachineinstances', `${name}-ids`),
    write(t + 2, HANDLER, 'update', 'virtualmachineinstances', `${name}-ids`),
    write(t + 2.5, HANDLER, 'update', 'virtualmachineinstances', `${name}-ids`, { code: 409 }), // refused: not a write that happened
    write((t += 2 + d[4]!), CONTROLLER, 'update', 'virtualmachines', `${name}-ids`, { subresource: 'status' }),
    write(at(5), OPERATOR, 'patch', 'monitoredservers', name, { subresource: 'status' }),
  ];
}

describe('benchmark: a pair’s steps from the audit log', () => {
  it('times each step from the write that begins it to the write that ends it, median and p90 over the pairs', () => {
    const events = [
      ...pair('s-0', 0, [1, 30, 0.5, 60, 20, 0.1]),
      ...pair('s-1', 5, [3, 40, 1.5, 70, 30, 0.3]),
      ...pair('s-2', 9, [2, 50, 1, 80, 40, 0.2]),
      // Another namespace and reads are not counted.
      write(1, OPERATOR, 'patch', 'virtualmachines', 's-0-server', { namespace: 'elsewhere' }),
      { ...write(0.5, OPERATOR, 'get', 'virtualmachines', 's-0-server') },
    ];
    const steps = pairStepLatencies(events.reverse(), 'bench', OPERATOR);
    assert.deepEqual(steps, {
      monitoredServerToServerVm: { pairs: 3, medianSeconds: 2, p90Seconds: 3 },
      serverVmToVmi: { pairs: 3, medianSeconds: 40, p90Seconds: 50 },
      serverVmiToIdsVm: { pairs: 3, medianSeconds: 1, p90Seconds: 1.5 },
      idsVmToVmi: { pairs: 3, medianSeconds: 70, p90Seconds: 80 },
      idsVmiToVmStatus: { pairs: 3, medianSeconds: 30, p90Seconds: 40 },
      vmStatusToReady: { pairs: 3, medianSeconds: 0.2, p90Seconds: 0.3 },
    });
  });

  it('leaves out the steps a client without MonitoredServers has no ends for (the floor), and prints both side by side', () => {
    const floor = pair('s-0', 0, [1, 30, 0.5, 60, 20, 0.1]).filter((e) => e.objectRef?.resource !== 'monitoredservers');
    const steps = pairStepLatencies(floor, 'bench', OPERATOR);
    assert.deepEqual(Object.keys(steps), ['serverVmToVmi', 'serverVmiToIdsVm', 'idsVmToVmi', 'idsVmiToVmStatus']);
    const lines = formatPairSteps({ monitoredServerToServerVm: { pairs: 1, medianSeconds: 2, p90Seconds: 3 } }, steps);
    assert.equal(lines.length, 6);
    assert.match(lines[0]!, /^ {2}2 \/ 3 s +— +MonitoredServer created → server VM created \[client\]$/);
    assert.match(lines[1]!, /^ {2}— +30 \/ 30 s +server VM created → its VMI created \(virt-controller\) \[KubeVirt\]$/);
  });
});
