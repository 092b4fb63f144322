import assert from 'node:assert/strict';
import { OperatorMetrics } from '../../../src/kube/runtime/metrics.ts';
import { WorkQueue } from '../../../src/kube/runtime/workqueue.ts';
import { FakeClock } from '../../../src/kube/testing/fake-clock.ts';

async function value(metrics: OperatorMetrics, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const metric = await metrics.registry.getSingleMetric(name)?.get();
  return metric?.values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))?.value;
}

async function histogramSum(metrics: OperatorMetrics, name: string): Promise<number | undefined> {
  const metric = await metrics.registry.getSingleMetric(name)?.get();
  return metric?.values.find((v) => (v as { metricName?: string }).metricName === `${name}_sum`)?.value;
}

describe('OperatorMetrics', () => {
  it('exposes controller-runtime and workqueue metric names plus process metrics', async () => {
    const metrics = new OperatorMetrics();
    metrics.workQueue('monitoredserver');
    metrics.controller('monitoredserver');
    metrics.leaderElection('hyperspector-operator');
    const { body, contentType } = await metrics.render();
    assert.match(contentType, /text\/plain/);
    for (const name of [
      'controller_runtime_reconcile_total{controller="monitoredserver",result="success"} 0',
      'controller_runtime_reconcile_total{controller="monitoredserver",result="requeue_after"} 0',
      'controller_runtime_reconcile_errors_total',
      'controller_runtime_reconcile_time_seconds',
      'controller_runtime_max_concurrent_reconciles',
      'controller_runtime_active_workers{controller="monitoredserver"} 0',
      'workqueue_depth{name="monitoredserver"} 0',
      'workqueue_adds_total{name="monitoredserver"} 0',
      'workqueue_queue_duration_seconds',
      'workqueue_work_duration_seconds',
      'workqueue_retries_total{name="monitoredserver"} 0',
      'workqueue_unfinished_work_seconds{name="monitoredserver"} 0',
      'workqueue_longest_running_processor_seconds{name="monitoredserver"} 0',
      'leader_election_master_status{name="hyperspector-operator"} 0',
      'process_cpu_user_seconds_total',
      'nodejs_eventloop_lag_seconds',
    ]) {
      assert.ok(body.includes(name), `missing ${name}`);
    }
  });

  it('follows depth, adds, queue/work durations and in-flight work of a queue', async () => {
    const clock = new FakeClock();
    const metrics = new OperatorMetrics({ clock, collectDefaultMetrics: false });
    const queue = new WorkQueue({ name: 'q', clock, metrics: metrics.workQueue('q') });
    queue.add('a');
    queue.add('b');
    queue.add('a');
    assert.equal(await value(metrics, 'workqueue_depth', { name: 'q' }), 2);
    assert.equal(await value(metrics, 'workqueue_adds_total', { name: 'q' }), 2);
    await clock.advance(2000);
    const key = await queue.get();
    assert.equal(await value(metrics, 'workqueue_depth', { name: 'q' }), 1);
    await clock.advance(3000);
    assert.equal(await value(metrics, 'workqueue_unfinished_work_seconds', { name: 'q' }), 3);
    assert.equal(await value(metrics, 'workqueue_longest_running_processor_seconds', { name: 'q' }), 3);
    queue.done(key!);
    assert.equal(await value(metrics, 'workqueue_unfinished_work_seconds', { name: 'q' }), 0);
    const queued = await histogramSum(metrics, 'workqueue_queue_duration_seconds');
    const worked = await histogramSum(metrics, 'workqueue_work_duration_seconds');
    assert.equal(queued, 2);
    assert.equal(worked, 3);
  });

  it('sets the leader election status gauge', async () => {
    const metrics = new OperatorMetrics({ collectDefaultMetrics: false });
    const le = metrics.leaderElection('lease-a');
    le.setLeading(true);
    assert.equal(await value(metrics, 'leader_election_master_status', { name: 'lease-a' }), 1);
    le.setLeading(false);
    assert.equal(await value(metrics, 'leader_election_master_status', { name: 'lease-a' }), 0);
  });
});
