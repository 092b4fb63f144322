// spec.response.onAlert: Pause, on KubeVirt's own controllers: an alert (status.alerts, written as
// the process mapper writes it, under its field manager) pauses the server VMI through KubeVirt's
// pause subresource — once per alert burst — with a Warning Event and the Responded condition; the
// user's one step (the release annotation) unpauses it. The operator runs under its own RBAC.
import assert from 'node:assert/strict';
import { auditRequests } from '../../testenv/cluster/audit-log.ts';
import { monitoredServer, vmTemplate } from '../../testenv/fixtures/monitoredservers.ts';
import { useOperatorEnv, MS, VMI } from '../../testenv/operator/operator-env.ts';
import { waitFor } from '../../testenv/wait.ts';
import { raiseMapperAlert } from '../../testenv/fixtures/alerts.ts';

const NS = 'respond';

describe('alert response Pause (real control plane, KubeVirt’s own controllers)', function () {
  this.timeout(600_000);
  const { env } = useOperatorEnv(NS, 1);

  const raiseAlert = (time: Date, comm: string) => raiseMapperAlert(env(), NS, 'web-1', time, comm);
  const paused = async () => ((await env().get(VMI, NS, 'web-1-server'))?.status?.conditions ?? []).some((c: { type: string; status: string }) => c.type === 'Paused' && c.status === 'True');
  const pauseRequests = (verb: 'pause' | 'unpause') =>
    auditRequests(env().cluster.auditLogPath, { username: env().cluster.users.operator.name, writesOnly: false }).filter((r) => r.requestURI.endsWith(`/virtualmachineinstances/web-1-server/${verb}`));

  it('pauses the server once per alert burst and unpauses it on the user’s release', async function () {
    await env().createMonitoredServer(monitoredServer('web-1', NS, { server: { template: vmTemplate({ app: 'web-1' }), deletionPolicy: 'Delete' }, response: { onAlert: 'Pause' } }));
    const ready = await env().waitForCondition(NS, 'web-1', 'Ready', 'True', 'Monitoring', 120_000);
    assert.equal(env().condition(ready, 'ResponseReady')?.reason, 'Armed');

    const alerted = Date.now();
    await raiseAlert(new Date(), 'reverse-shell');
    await waitFor(() => paused().then((p) => p || undefined), { timeoutMs: 60_000, description: 'the server VMI to be paused' });
    const pausedMs = Date.now() - alerted;
    const responded = await env().waitForCondition(NS, 'web-1', 'Responded', 'True', 'ServerPaused', 30_000);
    assert.match(env().condition(responded, 'Responded')!.message, /kubectl annotate monitoredserver -n respond web-1 hyperspector\.io\/release-response=/);
    const event = await env().waitForEvent(NS, 'web-1', 'ServerPaused');
    assert.equal(event.type, 'Warning');
    assert.match(event.note, /ProcessOutsideBaseline.*reverse-shell/);
    process.stderr.write(`[response] server paused ${(pausedMs / 1000).toFixed(1)} s after the alert\n`);

    // More alerts of the same burst while paused: nothing more is sent.
    await raiseAlert(new Date(), 'sleep');
    await waitFor(async () => ((await env().get(MS, NS, 'web-1'))?.status?.response?.alertTime === (await env().get(MS, NS, 'web-1'))?.status?.alerts?.lastAlertTime) || undefined, { timeoutMs: 30_000, description: 'the later alert recorded as responded to' });
    assert.equal(pauseRequests('pause').length, 1, 'one pause for the burst');

    // The user's one step: release.
    await env().mergePatch(MS, NS, 'web-1', { metadata: { annotations: { 'hyperspector.io/release-response': new Date(Date.now() + 1000).toISOString() } } });
    await waitFor(() => paused().then((p) => !p || undefined), { timeoutMs: 60_000, description: 'the server VMI to be unpaused' });
    await env().waitForCondition(NS, 'web-1', 'Responded', 'False', 'Released', 30_000);
    await env().waitForEvent(NS, 'web-1', 'ResponseReleased');
    assert.equal(pauseRequests('unpause').length, 1);

    // A new alert after the release is a new burst.
    await raiseAlert(new Date(Date.now() + 2000), 'nc');
    await waitFor(() => paused().then((p) => p || undefined), { timeoutMs: 60_000, description: 'the server VMI paused again on a new burst' });
    assert.equal(pauseRequests('pause').length, 2);
  });
});
