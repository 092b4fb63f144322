import assert from 'node:assert/strict';
import { EventRecorder, referenceTo } from '../../../src/kube/runtime/events.ts';
import type { ApiRequest, KubeApi } from '../../../src/kube/client/rest.ts';
import { KubeApiAbortedError, KubeApiError } from '../../../src/kube/client/rest.ts';
import { FakeClock } from '../../../src/kube/testing/fake-clock.ts';
import { createLogger } from '../../../src/kube/util/logger.ts';
import { Writable } from 'node:stream';
import { waitFor } from '../../../testenv/wait.ts';

const server = referenceTo({ apiVersion: 'hyperspector.io/v1alpha1', kind: 'MonitoredServer', metadata: { name: 'web-1', namespace: 'shop', uid: 'u-1', resourceVersion: '7' } });
const REASON_IDS_VM_CREATED = 'IDSVirtualMachineCreated';
const REASON_DISK_NOT_SHAREABLE = 'DiskNotShareable';

function api(fail?: (req: ApiRequest) => unknown): KubeApi & { requests: ApiRequest[] } {
  const requests: ApiRequest[] = [];
  return {
    requests,
    async request<T>(req: ApiRequest): Promise<T> {
      requests.push(req);
      const err = fail?.(req);
      if (err) throw err;
      return {} as T;
    },
  };
}

describe('EventRecorder', () => {
  it('creates an events.k8s.io/v1 Event in the object namespace with the reporting controller', async () => {
    const a = api();
    const recorder = new EventRecorder({ api: a, reportingInstance: 'operator-0', clock: new FakeClock() });
    recorder.normal(server, REASON_IDS_VM_CREATED, 'Create', 'Created IDS VirtualMachine web-1-ids');
    await recorder.flush();
    assert.equal(a.requests.length, 1);
    const [req] = a.requests;
    assert.equal(req!.method, 'POST');
    assert.equal(req!.path, '/apis/events.k8s.io/v1/namespaces/shop/events');
    const body = req!.body as Record<string, unknown>;
    assert.equal(body.type, 'Normal');
    assert.equal(body.reason, REASON_IDS_VM_CREATED);
    assert.equal(body.action, 'Create');
    assert.equal(body.note, 'Created IDS VirtualMachine web-1-ids');
    assert.equal(body.reportingController, 'hyperspector-operator');
    assert.equal(body.reportingInstance, 'operator-0');
    assert.deepEqual(body.regarding, server);
    assert.match(String(body.eventTime), /\.\d{6}Z$/);
    assert.match((body.metadata as { name: string }).name, /^web-1\.[0-9a-f]+$/);
  });

  it('bumps the series of the existing Event for a repeat within the window', async () => {
    const a = api();
    const clock = new FakeClock();
    const recorder = new EventRecorder({ api: a, reportingInstance: 'operator-0', clock });
    recorder.warning(server, REASON_DISK_NOT_SHAREABLE, 'Attach', 'Volume rootdisk is ReadWriteOncePod');
    await clock.advance(1000);
    recorder.warning(server, REASON_DISK_NOT_SHAREABLE, 'Attach', 'Volume rootdisk is ReadWriteOncePod');
    await clock.advance(1000);
    recorder.warning(server, REASON_DISK_NOT_SHAREABLE, 'Attach', 'Volume rootdisk is ReadWriteOncePod');
    await recorder.flush();
    assert.deepEqual(a.requests.map((r) => r.method), ['POST', 'PATCH', 'PATCH']);
    const name = (a.requests[0]!.body as { metadata: { name: string } }).metadata.name;
    assert.equal(a.requests[2]!.path, `/apis/events.k8s.io/v1/namespaces/shop/events/${name}`);
    assert.equal(a.requests[2]!.contentType, 'application/merge-patch+json');
    assert.deepEqual(a.requests[2]!.body, { series: { count: 3, lastObservedTime: '2026-01-01T00:00:02.000000Z' } });
  });

  it('creates a new Event when the message differs or the window has passed', async () => {
    const a = api();
    const clock = new FakeClock();
    const recorder = new EventRecorder({ api: a, reportingInstance: 'operator-0', clock, aggregationWindowMs: 60_000 });
    recorder.warning(server, REASON_DISK_NOT_SHAREABLE, 'Attach', 'one');
    recorder.warning(server, REASON_DISK_NOT_SHAREABLE, 'Attach', 'two');
    await clock.advance(61_000);
    recorder.warning(server, REASON_DISK_NOT_SHAREABLE, 'Attach', 'one');
    await recorder.flush();
    assert.deepEqual(a.requests.map((r) => r.method), ['POST', 'POST', 'POST']);
  });

  it('never throws into the caller when the API fails, and starts over after a failed create', async () => {
    let failing = true;
    const a = api(() => (failing ? new KubeApiError('connect ECONNREFUSED', undefined) : undefined));
    const recorder = new EventRecorder({ api: a, reportingInstance: 'operator-0', clock: new FakeClock() });
    assert.doesNotThrow(() => recorder.normal(server, REASON_IDS_VM_CREATED, 'Create', 'x'));
    await recorder.flush();
    failing = false;
    recorder.normal(server, REASON_IDS_VM_CREATED, 'Create', 'x');
    await recorder.flush();
    assert.deepEqual(a.requests.map((r) => r.method), ['POST', 'POST'], 'the failed Event is created anew, not patched');
  });

  it('rate-limits per object: a burst, then one more per refill interval', async () => {
    const a = api();
    const clock = new FakeClock();
    const recorder = new EventRecorder({ api: a, reportingInstance: 'operator-0', clock, burst: 3, refillIntervalMs: 10_000 });
    for (let i = 0; i < 5; i++) recorder.normal(server, 'Step', 'Reconcile', `step ${i}`);
    const other = { ...server, name: 'web-2', uid: 'u-2' };
    recorder.normal(other, 'Step', 'Reconcile', 'other object has its own budget');
    await recorder.flush();
    assert.equal(a.requests.length, 4);
    await clock.advance(10_000);
    recorder.normal(server, 'Step', 'Reconcile', 'after refill');
    recorder.normal(server, 'Step', 'Reconcile', 'over again');
    await recorder.flush();
    assert.equal(a.requests.length, 5);
  });

  it('sends an Event with the signal of the reconcile that recorded it, and drops it once that signal aborted', async () => {
    const a = api();
    const recorder = new EventRecorder({ api: a, reportingInstance: 'operator-0', clock: new FakeClock() });
    const term = new AbortController();
    recorder.normal(server, REASON_IDS_VM_CREATED, 'Create', 'Created IDS VirtualMachine web-1-ids', { signal: term.signal });
    recorder.normal(server, REASON_IDS_VM_CREATED, 'Create', 'Created IDS VirtualMachine web-1-ids', { signal: term.signal });
    await recorder.flush();
    assert.deepEqual(a.requests.map((r) => [r.method, r.signal]), [['POST', term.signal], ['PATCH', term.signal]]);
    term.abort(new Error('lost the lease'));
    recorder.warning(server, REASON_DISK_NOT_SHAREABLE, 'Reconcile', 'disk rootdisk is not shareable', { signal: term.signal });
    recorder.normal(server, REASON_IDS_VM_CREATED, 'Create', 'Created IDS VirtualMachine web-1-ids', { signal: term.signal });
    await recorder.flush();
    assert.equal(a.requests.length, 2, 'nothing written for a term that ended');
  });

  it('does not log an Event cancelled in flight as a failure, and creates it anew next time', async () => {
    const aborted = new KubeApiAbortedError('POST /apis/events.k8s.io/v1/namespaces/shop/events aborted: lost the lease');
    let fail = true;
    const a = api(() => (fail ? aborted : undefined));
    const chunks: string[] = [];
    const logger = createLogger({ level: 'info', stream: new Writable({ write: (chunk, _enc, done) => (chunks.push(String(chunk)), done()) }) });
    const recorder = new EventRecorder({ api: a, reportingInstance: 'operator-0', clock: new FakeClock(), logger });
    recorder.normal(server, REASON_IDS_VM_CREATED, 'Create', 'Created IDS VirtualMachine web-1-ids', { signal: new AbortController().signal });
    await recorder.flush();
    fail = false;
    recorder.normal(server, REASON_IDS_VM_CREATED, 'Create', 'Created IDS VirtualMachine web-1-ids');
    await recorder.flush();
    assert.deepEqual(a.requests.map((r) => r.method), ['POST', 'POST']);
    assert.deepEqual(chunks, [], 'no warning for a cancelled Event');
    // Whereas a real failure is logged.
    const b = api(() => new KubeApiError('connect ECONNREFUSED', undefined));
    new EventRecorder({ api: b, reportingInstance: 'operator-0', clock: new FakeClock(), logger }).normal(server, REASON_IDS_VM_CREATED, 'Create', 'x');
    await waitFor(() => chunks.length > 0 || undefined, { timeoutMs: 2000, description: 'the warning' });
    assert.match(chunks[0]!, /Failed to create event/);
  });

  it('truncates long messages to the 1 kB note limit', async () => {
    const a = api();
    const recorder = new EventRecorder({ api: a, reportingInstance: 'operator-0', clock: new FakeClock() });
    recorder.warning(server, 'Failed', 'Reconcile', 'x'.repeat(5000));
    await recorder.flush();
    assert.equal(((a.requests[0]!.body as { note: string }).note).length, 1024);
  });
});
