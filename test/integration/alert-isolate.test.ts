// spec.response.onAlert: Isolate, on KubeVirt's own controllers: a MonitoredServer applied with
// kubectl; an alert (status.alerts, written as the process mapper writes it, under its field
// manager) makes the operator — under its own RBAC — create a deny-all NetworkPolicy that selects
// the server VMI's real launcher pod (made by virt-controller), once per alert burst, with the
// Responded condition and a Warning Event; the user's one step (the release annotation) deletes
// it; a new burst isolates again; deleting the MonitoredServer deletes it. A NetworkPolicy of the
// user's in the same namespace is never touched.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { auditRequests, WRITE_VERBS } from '../../testenv/cluster/audit-log.ts';
import { controlPlaneBinaries } from '../../testenv/cluster/binaries.ts';
import { monitoredServer, vmTemplate } from '../../testenv/fixtures/monitoredservers.ts';
import { useOperatorEnv, MS } from '../../testenv/operator/operator-env.ts';
import { waitFor } from '../../testenv/wait.ts';
import { raiseMapperAlert } from '../../testenv/fixtures/alerts.ts';

const run = promisify(execFile);
const NS = 'isolate';
const POLICY = 'web-1-isolate';

describe('alert response Isolate (real control plane, KubeVirt’s own controllers)', function () {
  this.timeout(600_000);
  const { env } = useOperatorEnv(NS, 1);

  const kubectlApply = async (object: object) => {
    const file = join(mkdtempSync(join(tmpdir(), 'isolate-')), 'object.json');
    writeFileSync(file, JSON.stringify(object));
    await run(controlPlaneBinaries().kubectl, ['--kubeconfig', env().cluster.kubeConfigFor('admin').path, 'apply', '-f', file]);
  };
  const raiseAlert = (time: Date, comm: string) => raiseMapperAlert(env(), NS, 'web-1', time, comm);
  const networking = () => env().cluster.api(k8s.NetworkingV1Api);
  const policy = async (name = POLICY) => {
    try {
      return await networking().readNamespacedNetworkPolicy({ namespace: NS, name });
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  };
  /** The operator's writes to NetworkPolicies, by verb. */
  const policyWrites = (verb: string, name = POLICY) =>
    auditRequests(env().cluster.auditLogPath, { username: env().cluster.users.operator.name, writesOnly: true }).filter(
      (r) => r.objectRef?.resource === 'networkpolicies' && r.objectRef.name === name && r.verb === verb && WRITE_VERBS.has(r.verb),
    );

  it('isolates the server’s launcher pod once per alert burst, releases it on the user’s step, again on a new burst, and removes it on deletion', async function () {
    // The user's own policy in the namespace: never touched.
    await networking().createNamespacedNetworkPolicy({ namespace: NS, body: { metadata: { name: 'allow-dns' }, spec: { podSelector: {}, policyTypes: ['Egress'], egress: [{ ports: [{ port: 53, protocol: 'UDP' }] }] } } });
    const userPolicyVersion = (await policy('allow-dns'))?.metadata?.resourceVersion;

    await kubectlApply(monitoredServer('web-1', NS, { server: { template: vmTemplate({ app: 'web-1' }), deletionPolicy: 'Delete' }, response: { onAlert: 'Isolate' } }));
    const ready = await env().waitForCondition(NS, 'web-1', 'Ready', 'True', 'Monitoring', 120_000);
    assert.equal(env().condition(ready, 'ResponseReady')?.reason, 'Armed');
    assert.match(env().condition(ready, 'ResponseReady')!.message, /NetworkPolicy web-1-isolate/);
    assert.equal(await policy(), undefined, 'nothing is isolated before an alert');

    const alerted = Date.now();
    await raiseAlert(new Date(), 'reverse-shell');
    const isolation = await waitFor(() => policy(), { timeoutMs: 60_000, description: `NetworkPolicy ${NS}/${POLICY}` });
    const isolatedMs = Date.now() - alerted;
    assert.deepEqual(isolation.spec?.policyTypes, ['Ingress', 'Egress']);
    assert.equal(isolation.spec?.ingress, undefined, 'no ingress rule: all denied');
    assert.equal(isolation.spec?.egress, undefined, 'no egress rule: all denied');
    assert.equal(isolation.metadata?.ownerReferences?.[0]?.kind, 'MonitoredServer');
    assert.equal(isolation.metadata?.labels?.['hyperspector.io/role'], 'response');

    // The selector picks exactly the real launcher pod of the server VMI (made by virt-controller), not the IDS VM's.
    const selector = Object.entries(isolation.spec?.podSelector?.matchLabels ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const core = env().cluster.api(k8s.CoreV1Api);
    const selected = (await core.listNamespacedPod({ namespace: NS, labelSelector: selector })).items;
    assert.deepEqual(
      selected.map((p) => p.metadata?.ownerReferences?.find((r) => r.kind === 'VirtualMachineInstance')?.name),
      ['web-1-server'],
      `selector ${selector} selects the server's launcher pod only`,
    );
    const launchers = (await core.listNamespacedPod({ namespace: NS, labelSelector: 'kubevirt.io=virt-launcher' })).items;
    assert.equal(launchers.length, 2, 'the server’s and the IDS VM’s launcher pods exist');

    const responded = await env().waitForCondition(NS, 'web-1', 'Responded', 'True', 'Isolated', 30_000);
    assert.match(env().condition(responded, 'Responded')!.message, /NetworkPolicy web-1-isolate.*ProcessOutsideBaseline.*kubectl annotate monitoredserver -n isolate web-1 hyperspector\.io\/release-response=/);
    const event = await env().waitForEvent(NS, 'web-1', 'ServerIsolated');
    assert.equal(event.type, 'Warning');
    assert.match(event.note, /ProcessOutsideBaseline.*reverse-shell.*release-response/);
    process.stderr.write(`[response] server isolated ${(isolatedMs / 1000).toFixed(1)} s after the alert\n`);

    // More alerts of the same burst while isolated: recorded, nothing more is written.
    await raiseAlert(new Date(), 'sleep');
    await waitFor(async () => ((await env().get(MS, NS, 'web-1'))?.status?.response?.alertTime === (await env().get(MS, NS, 'web-1'))?.status?.alerts?.lastAlertTime) || undefined, { timeoutMs: 30_000, description: 'the later alert recorded as responded to' });
    assert.equal(policyWrites('patch').length + policyWrites('create').length, 1, 'one isolation for the burst');

    // The user's one step: release.
    await env().mergePatch(MS, NS, 'web-1', { metadata: { annotations: { 'hyperspector.io/release-response': new Date(Date.now() + 1000).toISOString() } } });
    await waitFor(async () => ((await policy()) === undefined ? true : undefined), { timeoutMs: 60_000, description: 'the NetworkPolicy to be deleted on release' });
    await env().waitForCondition(NS, 'web-1', 'Responded', 'False', 'Released', 30_000);
    const released = await env().waitForEvent(NS, 'web-1', 'ResponseReleased');
    assert.match(released.note, /NetworkPolicy isolate\/web-1-isolate/);
    assert.equal(policyWrites('delete').length, 1);

    // A new alert after the release is a new burst.
    await raiseAlert(new Date(Date.now() + 2000), 'nc');
    await waitFor(() => policy(), { timeoutMs: 60_000, description: 'the server isolated again on a new burst' });
    const again = await env().waitForCondition(NS, 'web-1', 'Responded', 'True', 'Isolated', 30_000);
    assert.equal(again.status?.response?.releasedAt, undefined, 'the earlier release does not cover the new burst');
    assert.ok(await policy(), 'the new isolation holds');
    assert.equal(policyWrites('patch').length + policyWrites('create').length, 2);
    assert.equal(policyWrites('delete').length, 1, 'not released again by the earlier release');

    // Deleting the MonitoredServer removes the isolation with it.
    await env().delete(MS, NS, 'web-1');
    await env().waitGone(MS, NS, 'web-1', 120_000);
    await waitFor(async () => ((await policy()) === undefined ? true : undefined), { timeoutMs: 30_000, description: 'the NetworkPolicy gone with the MonitoredServer' });
    assert.equal(policyWrites('delete').length, 2, 'the teardown deleted it');

    // The user's policy: still there, unchanged, never written by the operator.
    assert.equal((await policy('allow-dns'))?.metadata?.resourceVersion, userPolicyVersion);
    assert.equal(auditRequests(env().cluster.auditLogPath, { username: env().cluster.users.operator.name, writesOnly: true }).filter((r) => r.objectRef?.name === 'allow-dns').length, 0);
  });
});
