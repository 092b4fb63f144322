// Networking, the operator's side, on the real local control plane with KubeVirt's own
// virt-controller and virt-api: a MonitoredServer applied with kubectl gets its NADs, an IDS-network
// address (in status, claimed by an object in the API, kept across an operator restart, released
// on deletion), an IDS VM with its mirror and IDS-network NICs that KubeVirt accepts, the address in
// the cloud-init network data, IDSNetworkJoined, and Ready only with the node agent's MirrorAttached.
// The chart's ValidatingAdmissionPolicies refuse a plain user's VM, VMI and Pod on those NADs, and
// any edit of the NADs but the operator's, while the operator's IDS VM, its VMI and launcher pod
// pass. The packets themselves are the host tests' (test/host/).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { agentFieldManager, startAgent, type RunningAgent } from '../../src/agent/agent.ts';
import { MONITORED_SERVER } from '../../src/api/v1alpha1/resource.ts';
import { applyStatus } from '../../src/kube/client/apply.ts';
import { CONFIG_MAP, collectionPath, MULTI_NETWORK_POLICY, NETWORK_ATTACHMENT_DEFINITION, objectPath, POD, SECRET, VIRTUAL_MACHINE, VIRTUAL_MACHINE_INSTANCE } from '../../src/kube/client/resources.ts';
import { createKubeApi, statusCodeOf, type KubeApi } from '../../src/kube/client/rest.ts';
import { controlPlaneBinaries } from '../../testenv/cluster/binaries.ts';
import { monitoredServer, vmTemplate } from '../../testenv/fixtures/monitoredservers.ts';
import { startOperatorProcess, type OperatorProcess } from '../../testenv/operator/operator-process.ts';
import { MS, OperatorTestEnv, VM, VMI } from '../../testenv/operator/operator-env.ts';
import { waitFor } from '../../testenv/wait.ts';
import { Helm, parseObjects } from './install/install-support.ts';

const run = promisify(execFile);
const NS = 'net';
const OPERATOR_NS = 'hyperspector-system';
/** The chart's defaults, plus the MultiNetworkPolicy the test world's CRD allows. */
const OPERATOR_ARGS = ['--ids-network-policy=true'];

type Obj = { metadata: k8s.V1ObjectMeta; spec?: any; status?: any; data?: Record<string, string> }; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('networking: NADs, NICs, IDS-network addresses and admission-enforced isolation', function () {
  this.timeout(600_000);
  let env: OperatorTestEnv;
  let operator: OperatorProcess | undefined;
  let admin: KubeApi;
  let jane: KubeApi;
  let agent: RunningAgent | undefined;

  const get = async (path: string): Promise<Obj | undefined> => {
    try {
      return await admin.request<Obj>({ method: 'GET', path });
    } catch (err) {
      if (statusCodeOf(err) === 404) return undefined;
      throw err;
    }
  };
  const nad = (name: string) => get(objectPath(NETWORK_ATTACHMENT_DEFINITION, NS, name));
  const claims = async () => (await admin.request<{ items: Obj[] }>({ method: 'GET', path: `${collectionPath(CONFIG_MAP, OPERATOR_NS)}?labelSelector=hyperspector.io%2Frole%3Dids-address` })).items;
  const address = async (name: string) => (await env.get(MS, NS, name))?.status?.idsNetwork?.address as string | undefined;
  const waitAddress = (name: string) => waitFor(async () => address(name), { timeoutMs: 90_000, description: `status.idsNetwork.address of ${name}` });

  async function kubectlApply(object: object): Promise<void> {
    const file = join(env.cluster.dir, `apply-${Date.now()}.yaml`);
    writeFileSync(file, JSON.stringify(object));
    await run(controlPlaneBinaries().kubectl, ['--kubeconfig', env.cluster.kubeConfigFor('admin').path, 'apply', '-f', file]);
  }

  /** The refusal message of a request that must fail (as jane), or a failure of the test. */
  async function refusal(api: KubeApi, request: Parameters<KubeApi['request']>[0]): Promise<string> {
    try {
      await api.request(request);
    } catch (err) {
      return `${statusCodeOf(err)} ${(err as Error).message}`;
    }
    throw new Error(`${request.method} ${request.path} was accepted`);
  }

  before(async function () {
    env = await OperatorTestEnv.start(2);
    await env.namespace(NS);
    operator = await startOperatorProcess(env.cluster, { user: 'operator', extraArgs: OPERATOR_ARGS });
    admin = createKubeApi(env.cluster.kubeConfig);
    jane = createKubeApi(env.cluster.kubeConfigFor('user').kubeConfig);
    // The chart's admission policies, rendered for the test world's operator user
    // (system:serviceaccount:hyperspector-system:hyperspector-operator).
    const rendered = parseObjects(
      await new Helm().ok(['template', 'hyperspector', join(process.cwd(), 'helm', 'hyperspector'), '--namespace', OPERATOR_NS, '--set', 'serviceAccount.name=hyperspector-operator', '--show-only', 'templates/admission-policy.yaml']),
    );
    assert.equal(rendered.length, 6, 'three policies and their bindings');
    const client = k8s.KubernetesObjectApi.makeApiClient(env.cluster.kubeConfig);
    for (const obj of rendered) await client.create(obj as k8s.KubernetesObject);
    // jane may create VMs, VMIs, Pods and NADs in the namespace (RBAC lets her; only the policies refuse).
    const rbac = env.cluster.api(k8s.RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace: NS,
      body: {
        metadata: { name: 'editor' },
        rules: [
          { apiGroups: ['kubevirt.io'], resources: ['virtualmachines', 'virtualmachineinstances'], verbs: ['create', 'get', 'patch', 'delete'] },
          { apiGroups: [''], resources: ['pods'], verbs: ['create', 'get', 'delete'] },
          { apiGroups: ['k8s.cni.cncf.io'], resources: ['network-attachment-definitions'], verbs: ['create', 'get', 'patch', 'delete'] },
        ],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: NS,
      body: { metadata: { name: 'jane-editor' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'editor' }, subjects: [{ kind: 'User', name: env.cluster.users.user.name, apiGroup: 'rbac.authorization.k8s.io' }] },
    });
    // The API server compiles new policies asynchronously: wait until they refuse.
    await waitFor(
      async () => {
        try {
          await jane.request({ method: 'POST', path: collectionPath(NETWORK_ATTACHMENT_DEFINITION, NS), body: { apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name: 'hyperspector-probe' }, spec: { config: '{}' } } });
          await admin.request({ method: 'DELETE', path: objectPath(NETWORK_ATTACHMENT_DEFINITION, NS, 'hyperspector-probe') }).catch(() => undefined);
          return undefined;
        } catch (err) {
          return statusCodeOf(err) === 403 && /reserved/.test((err as Error).message) ? true : undefined;
        }
      },
      { timeoutMs: 30_000, intervalMs: 500, description: 'the admission policies in force' },
    );
  });

  after(async () => {
    await agent?.stop();
    await operator?.stop();
    await env?.stop();
  });

  afterEach(function () {
    if (!operator?.process.running) throw new Error('the operator process must never crash');
  });

  it('kubectl apply → NADs, an address in status, the IDS VM with both NICs accepted by KubeVirt, IDSNetworkJoined; Ready waits for the agent', async function () {
    const applied = Date.now();
    await kubectlApply(monitoredServer('web', NS, { mirroring: { enabled: true } }));
    const joined = await env.waitForCondition(NS, 'web', 'IDSNetworkJoined', 'True', 'Joined', 120_000);
    const joinedMs = Date.now() - applied;
    console.log(`      IDSNetworkJoined=True ${(joinedMs / 1000).toFixed(1)} s after kubectl apply`);
    assert.deepEqual(joined.status.idsNetwork, { address: '10.99.0.1/16', provider: 'vxlan', networkAttachmentDefinition: 'hyperspector-ids' });
    assert.match(env.condition(joined, 'IDSNetworkJoined')!.message, /with address 10\.99\.0\.1\/16/);

    const ms = await env.get(MS, NS, 'web');
    for (const [name, plugin] of [['hyperspector-ids', 'bridge'], ['hyperspector-mirror', 'dummy']] as const) {
      const n = await nad(name);
      assert.ok(n, `NAD ${name} exists`);
      assert.equal(n.metadata.labels?.['hyperspector.io/shared'], 'true', `${name} is shared by the namespace's MonitoredServers`);
      assert.equal(n.metadata.ownerReferences, undefined, `${name} has no owner: the last MonitoredServer that needs it deletes it`);
      assert.equal((JSON.parse(n.spec.config) as { plugins: Array<{ type: string }> }).plugins[0]!.type, plugin);
    }
    const policy = await get(objectPath(MULTI_NETWORK_POLICY, NS, 'hyperspector-ids-web'));
    assert.equal(policy?.metadata.annotations?.['k8s.v1.cni.cncf.io/policy-for'], `${NS}/hyperspector-ids`);
    assert.equal(policy?.metadata.ownerReferences?.[0]?.uid, ms?.metadata.uid, 'the policy is the MonitoredServer\'s own');
    assert.deepEqual(policy?.spec.ingress, [{ from: [{ ipBlock: { cidr: '10.99.0.0/16' } }] }]);
    const [claim, ...others] = await claims();
    assert.equal(others.length, 0);
    assert.equal(claim?.metadata.name, 'hyperspector-ids-addr-10-99-0-1');
    assert.equal(claim?.metadata.labels?.['hyperspector.io/monitored-server-uid'], ms?.metadata.uid);

    // KubeVirt accepted the IDS VM with two Multus networks (its webhook validated them) and made
    // the VMI and the launcher pod, whose Multus annotation names our NADs.
    const vmi = await env.get(VMI, NS, 'web-ids');
    assert.deepEqual(vmi?.spec.networks.map((n: { name: string }) => n.name), ['default', 'hyperspector-mirror', 'hyperspector-ids']);
    assert.ok(vmi?.spec.domain.devices.interfaces.filter((i: { bridge?: object; macAddress?: string }) => i.bridge && i.macAddress).length === 2, 'both NICs with bridge binding and a stable MAC');
    const pods = await admin.request<{ items: Obj[] }>({ method: 'GET', path: `${collectionPath(POD, NS)}?labelSelector=kubevirt.io%2Fcreated-by%3D${vmi?.metadata.uid}` });
    const networks = pods.items[0]?.metadata.annotations?.['k8s.v1.cni.cncf.io/networks'] ?? '';
    assert.match(networks, /"hyperspector-ids"/, "the IDS VM's launcher pod (made by virt-controller) passed the policy with our NADs");
    const secret = await get(objectPath(SECRET, NS, 'web-ids-cloud-init'));
    const networkData = Buffer.from(secret?.data?.networkdata ?? '', 'base64').toString();
    assert.match(networkData, /10\.99\.0\.1\/16/);
    assert.deepEqual((await env.get(VM, NS, 'web-ids'))?.spec.template.spec.volumes.find((v: { cloudInitNoCloud?: object }) => v.cloudInitNoCloud)?.cloudInitNoCloud, { networkDataSecretRef: { name: 'web-ids-cloud-init' } });

    // No agent yet: Ready says it waits for one.
    const waiting = await env.waitForCondition(NS, 'web', 'Ready', 'False', 'WaitingForMirrorAgent', 180_000);
    assert.match(env.condition(waiting, 'Ready')!.message, /hyperspector-agent DaemonSet running on node/);

    // The real agent on the server's node finds the IDS VM's mirror NIC (no IDSMirrorNICMissing) and
    // gets as far as the launcher pods' processes, which kwok pods do not have.
    const node = joined.status.nodeName as string;
    agent = await startAgent({
      kubeConfig: env.cluster.kubeConfig,
      api: admin,
      config: { nodeName: node, procRoot: '/proc', nodeNetns: '/proc/self/ns/net', idsMirrorNetwork: 'hyperspector-mirror', idsNetwork: 'none', vni: 4242, vxlanPort: 4789, overlayBridge: 'hsids0', overlayVxlan: 'hsids0-vx', resyncPeriodMs: 60_000 },
      httpPort: 0,
      httpHost: '127.0.0.1',
    });
    const byAgent = await env.waitForCondition(NS, 'web', 'MirrorAttached', 'False', 'WaitingForServerPod', 60_000);
    assert.match(env.condition(byAgent, 'MirrorAttached')!.message, /no process of launcher pod/);
    // Ready's reason moving on while it stays False is progress: written within the status coalescing window (30 s, doubling).
    await env.waitForCondition(NS, 'web', 'Ready', 'False', 'WaitingForServerPod', 180_000);
    await agent.stop();
    agent = undefined;

    // What the agent reports once the mirror is installed (as on a real node): Ready follows.
    await applyStatus(admin, MONITORED_SERVER, { apiVersion: 'hyperspector.io/v1alpha1', kind: 'MonitoredServer', metadata: { name: 'web', namespace: NS } }, {
      conditions: [{ type: 'MirrorAttached', status: 'True', reason: 'Attached', message: 'mirroring tap0 into the IDS VM', lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') }],
    }, { fieldManager: agentFieldManager(node) });
    const ready = await env.waitForCondition(NS, 'web', 'Ready', 'True', 'Monitoring', 30_000);
    assert.equal(env.condition(ready, 'MirrorAttached')?.reason, 'Attached', "the operator leaves the agent's condition alone");
  });

  it('refuses a plain user’s VM, VMI and Pod on the IDS network or a mirror NAD, and edits of the NADs, with a clear message', async function () {
    const template = vmTemplate({ app: 'sneaky' });
    const spec = template.spec.template!.spec!;
    spec.networks = [...(spec.networks ?? []), { name: 'ids', multus: { networkName: 'hyperspector-ids' } }];
    spec.domain.devices.interfaces = [...(spec.domain.devices.interfaces ?? []), { name: 'ids', bridge: {} }];

    const vm = await refusal(jane, { method: 'POST', path: collectionPath(VIRTUAL_MACHINE, NS), body: { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: 'sneaky' }, spec: template.spec } });
    assert.match(vm, /^403 .*VirtualMachine sneaky references hyperspector-ids: HyperSpector NetworkAttachmentDefinitions \(hyperspector-\*\) carry the IDS network/);
    const vmi = await refusal(jane, { method: 'POST', path: collectionPath(VIRTUAL_MACHINE_INSTANCE, NS), body: { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstance', metadata: { name: 'sneaky', labels: { 'hyperspector.io/role': 'ids' } }, spec: { ...spec, networks: [...spec.networks.slice(0, 1), { name: 'ids', multus: { networkName: `${NS}/hyperspector-mirror` } }] } } });
    assert.match(vmi, /^403 .*VirtualMachineInstance sneaky references net\/hyperspector-mirror\b/);
    const pod = await refusal(jane, {
      method: 'POST',
      path: collectionPath(POD, NS),
      body: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'sneaky', annotations: { 'k8s.v1.cni.cncf.io/networks': '[{"name":"hyperspector-ids","interface":"net1"}]' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } },
    });
    assert.match(pod, /^403 .*Pod sneaky references a HyperSpector NetworkAttachmentDefinition \(hyperspector-\*\) in its k8s.v1.cni.cncf.io\/networks annotation/);
    // Even the cluster admin may not retarget or delete the operator's NADs.
    for (const request of [
      { method: 'PATCH' as const, path: objectPath(NETWORK_ATTACHMENT_DEFINITION, NS, 'hyperspector-ids'), body: { spec: { config: '{"cniVersion":"0.4.0","type":"macvlan"}' } }, contentType: 'application/merge-patch+json' },
      { method: 'DELETE' as const, path: objectPath(NETWORK_ATTACHMENT_DEFINITION, NS, 'hyperspector-mirror') },
    ]) {
      assert.match(await refusal(admin, request), /^403 .*names hyperspector-\* are reserved for the IDS network and the mirrors of the HyperSpector operator/);
    }

    // The same objects without our NADs are accepted: the policies refuse the reference, nothing else.
    const plain = vmTemplate({ app: 'plain' });
    await jane.request({ method: 'POST', path: collectionPath(VIRTUAL_MACHINE, NS), body: { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: 'plain' }, spec: { ...plain.spec, runStrategy: 'Halted' } } });
    await jane.request({ method: 'POST', path: collectionPath(POD, NS), body: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'plain', annotations: { 'k8s.v1.cni.cncf.io/networks': 'my-net' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } });
    await admin.request({ method: 'DELETE', path: objectPath(VIRTUAL_MACHINE, NS, 'plain') });
    await admin.request({ method: 'DELETE', path: objectPath(POD, NS, 'plain') });
  });

  it('keeps addresses across an operator restart, never gives one twice, and releases them with the NADs on deletion', async function () {
    // A new operator process (the old one killed): the next MonitoredServer gets the next address.
    await operator!.kill();
    operator = await startOperatorProcess(env.cluster, { user: 'operator', extraArgs: OPERATOR_ARGS });
    await kubectlApply(monitoredServer('db', NS, { mirroring: { enabled: false } }));
    assert.equal(await waitAddress('db'), '10.99.0.2/16');
    assert.equal(await address('web'), '10.99.0.1/16', 'web keeps its address');
    await env.waitForCondition(NS, 'db', 'IDSNetworkJoined', 'True', 'Joined', 120_000);

    const deleted = Date.now();
    await env.delete(MS, NS, 'web');
    await env.waitGone(MS, NS, 'web', 120_000);
    console.log(`      MonitoredServer deleted in ${((Date.now() - deleted) / 1000).toFixed(1)} s, NADs and address released`);
    assert.ok(await nad('hyperspector-ids'), 'the shared IDS-network NAD stays: db needs it');
    assert.equal(await nad('hyperspector-mirror'), undefined, 'the shared mirror NAD went with the last MonitoredServer that mirrors');
    assert.equal(await get(objectPath(MULTI_NETWORK_POLICY, NS, 'hyperspector-ids-web')), undefined);
    assert.deepEqual((await claims()).map((c) => c.metadata.name), ['hyperspector-ids-addr-10-99-0-2']);
    const events = await env.events(NS, 'web');
    assert.ok(events.some((e) => e.reason === 'IDSAddressReleased' && /10\.99\.0\.1/.test(e.note)), JSON.stringify(events.map((e) => e.reason)));

    // The released address is the lowest free one again.
    await kubectlApply(monitoredServer('app', NS, { mirroring: { enabled: false } }));
    assert.equal(await waitAddress('app'), '10.99.0.1/16');
    assert.notEqual(await address('db'), await address('app'));
  });

  it('releases the address claim of a MonitoredServer whose finalizer was removed by hand (while the operator was down, and live)', async function () {
    const claimNames = async () => (await claims()).map((c) => c.metadata.name).sort();
    assert.deepEqual(await claimNames(), ['hyperspector-ids-addr-10-99-0-1', 'hyperspector-ids-addr-10-99-0-2'], 'app and db hold one each');
    // No operator runs: db is deleted and its finalizer removed by hand, so nothing releases 10.99.0.2.
    await operator!.kill();
    operator = undefined;
    await env.delete(MS, NS, 'db');
    await env.mergePatch(MS, NS, 'db', { metadata: { finalizers: null } });
    await env.waitGone(MS, NS, 'db', 30_000);
    assert.deepEqual(await claimNames(), ['hyperspector-ids-addr-10-99-0-1', 'hyperspector-ids-addr-10-99-0-2'], 'the claim is left behind');

    operator = await startOperatorProcess(env.cluster, { user: 'operator', extraArgs: OPERATOR_ARGS });
    const started = Date.now();
    await waitFor(async () => ((await claimNames()).length === 1 ? true : undefined), { timeoutMs: 60_000, description: 'the orphaned claim of db deleted' });
    console.log(`      orphaned claim released ${((Date.now() - started) / 1000).toFixed(1)} s after the operator started`);
    assert.deepEqual(await claimNames(), ['hyperspector-ids-addr-10-99-0-1'], "app's claim is kept");
    const event = await env.waitForEvent(OPERATOR_NS, 'hyperspector-ids-addr-10-99-0-2', 'OrphanedIDSAddressReleased');
    assert.match(event.note, /Released IDS-network address 10\.99\.0\.2: MonitoredServer net\/db \(UID [0-9a-f-]+\) no longer exists/);

    // Live: a claim whose MonitoredServer (net/ghost) does not exist appears; the running operator deletes it.
    const ghost = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'hyperspector-ids-addr-10-99-0-9', labels: { 'hyperspector.io/role': 'ids-address', 'app.kubernetes.io/managed-by': 'hyperspector', 'hyperspector.io/monitored-server-uid': 'ghost-uid' }, annotations: { 'hyperspector.io/monitored-server': `${NS}/ghost` } }, data: { address: '10.99.0.9' } };
    await admin.request({ method: 'POST', path: collectionPath(CONFIG_MAP, OPERATOR_NS), body: ghost });
    await waitFor(async () => ((await claimNames()).includes('hyperspector-ids-addr-10-99-0-9') ? undefined : true), { timeoutMs: 30_000, description: 'the ghost claim deleted' });
    assert.deepEqual(await claimNames(), ['hyperspector-ids-addr-10-99-0-1']);
    await env.waitForEvent(OPERATOR_NS, 'hyperspector-ids-addr-10-99-0-9', 'OrphanedIDSAddressReleased');
    const metrics = await operator.metrics();
    assert.match(metrics, /^hyperspector_ids_address_orphaned_claims_released_total 2$/m);
    // The released addresses are free again: the next MonitoredServer gets the lowest one.
    await kubectlApply(monitoredServer('cache', NS, { mirroring: { enabled: false } }));
    assert.equal(await waitAddress('cache'), '10.99.0.2/16');
  });

  it('gives MonitoredServers applied at once one address each, the lowest free ones, and no Warning for a claim race lost', async function () {
    // Concurrent reconciles pick the lowest free address: a claim reserved when planned and a 409 on
    // one made a moment earlier are the operator's business, not the user's.
    const names = ['burst-1', 'burst-2', 'burst-3', 'burst-4', 'burst-5', 'burst-6'];
    await Promise.all(names.map((n) => env.createMonitoredServer(monitoredServer(n, NS, { mirroring: { enabled: false } }))));
    const given = await Promise.all(names.map((n) => waitAddress(n)));
    assert.deepEqual([...given].sort(), ['10.99.0.3/16', '10.99.0.4/16', '10.99.0.5/16', '10.99.0.6/16', '10.99.0.7/16', '10.99.0.8/16'], 'each its own, next to app and cache');
    assert.equal((await claims()).length, names.length + 2, 'one claim each');
    for (const n of names) {
      const warnings = (await env.events(NS, n)).filter((e) => e.type === 'Warning');
      assert.deepEqual(warnings, [], `no Warning on ${n}`);
      const ms = await env.get(MS, NS, n);
      assert.notEqual(env.condition(ms, 'Synced')?.status, 'False', `${n} in sync`);
    }
    await Promise.all(names.map((n) => env.delete(MS, NS, n)));
    await Promise.all(names.map((n) => env.waitGone(MS, NS, n, 120_000)));
    assert.equal((await claims()).length, 2, 'released with them');
    assert.ok(await nad('hyperspector-ids'), 'app and cache still need the shared IDS-network NAD');

    // The namespace's last MonitoredServers go: so does its shared NAD.
    await Promise.all(['app', 'cache'].map((n) => env.delete(MS, NS, n)));
    await Promise.all(['app', 'cache'].map((n) => env.waitGone(MS, NS, n, 120_000)));
    assert.equal(await nad('hyperspector-ids'), undefined, 'deleted with the last MonitoredServer of the namespace');
    assert.equal((await claims()).length, 0);
  });
});

