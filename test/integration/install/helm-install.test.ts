// The chart against the real local control plane: bad values refused by the schema, every ci/
// values file accepted by a server-side dry run, `helm install`, the operator running with the
// chart's own ServiceAccount token (not the admin's) taking the examples to Ready, a namespace the
// chart does not watch left alone, Argo CD's health of the real MonitoredServers, `helm upgrade`
// rolling the Deployment, and `helm uninstall` keeping the CRD and every VM.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { startCluster, type LocalCluster } from '../../../testenv/cluster/local-cluster.ts';
import { controlPlaneBinaries } from '../../../testenv/cluster/binaries.ts';
import { REPO_ROOT } from '../../../testenv/repo-root.ts';
import { monitoredServer, vmTemplate } from '../../../testenv/fixtures/monitoredservers.ts';
import { MS, OperatorTestEnv, VM } from '../../../testenv/operator/operator-env.ts';
import { ensureNamespace } from '../../../testenv/cluster/namespaces.ts';
import { waitFor } from '../../../testenv/wait.ts';
import { CHART_DIR, DEPLOY_MANIFEST } from '../../../hack/packaging.ts';
import { WARNING_REASONS } from '../../../src/controllers/monitoredserver/reasons.ts';
import { argoHealth, Helm, HEALTH_LUA, parseObjects, serviceAccountKubeconfig, startOperatorAsDeployed, type ChartOperator } from './install-support.ts';

const run = promisify(execFile);
const RELEASE = 'hyperspector';
const NS = 'hyperspector-system';
const SA = 'hyperspector'; // the chart's full name for release "hyperspector"
const WATCHED = 'shop'; // the examples' namespace
const UNWATCHED = 'elsewhere';
const CRD = 'monitoredservers.hyperspector.io';
const EXAMPLES = join(REPO_ROOT, 'examples');

type Obj = { metadata: k8s.V1ObjectMeta; spec?: any; status?: any }; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A MonitoredServer's state as Argo CD sees it: conditions and whether status is current. */
function stateKey(ms: Obj): string {
  const conditions = ((ms.status?.conditions ?? []) as Array<{ type: string; status: string; reason: string }>).map((c) => `${c.type}=${c.status}/${c.reason}`).sort();
  return `${ms.metadata.name} gen=${ms.status?.observedGeneration === ms.metadata.generation ? 'current' : 'behind'} ${conditions.join(' ')}`;
}

describe('Helm chart installed into the real control plane', function () {
  this.timeout(900_000);
  let cluster: LocalCluster;
  let env: OperatorTestEnv;
  let helm: Helm;
  let kubectl: (args: string[], input?: string) => Promise<{ stdout: string; stderr: string }>;
  let operator: ChartOperator | undefined;
  /** Every distinct MonitoredServer state the real operator produced, for the Argo CD health check. */
  const captured = new Map<string, Obj>();
  const capture = (ms: Obj | undefined) => {
    if (ms && !captured.has(stateKey(ms))) captured.set(stateKey(ms), structuredClone(ms));
  };
  const figures: string[] = [];

  before(async function () {
    helm = new Helm();
    // KubeVirt's own virt-controller and virt-api with the tests' virt-handler stand-in.
    cluster = await startCluster({ nodes: 3, kubevirt: true });
    env = new OperatorTestEnv(cluster);
    helm = new Helm(cluster.kubeconfigPath);
    kubectl = async (args, input) => {
      const child = run(controlPlaneBinaries().kubectl, ['--kubeconfig', cluster.kubeconfigPath, ...args], { maxBuffer: 16 * 1024 * 1024 });
      if (input !== undefined) child.child.stdin?.end(input);
      return child;
    };
  });

  after(async function () {
    await operator?.stop();
    await env?.stop();
    if (figures.length) console.log(`      figures: ${figures.join(', ')}`);
  });

  it('refuses bad values with the schema message, before touching the cluster', async function () {
    const typo = await helm.run(['install', 'bad', CHART_DIR, '--namespace', NS, '--create-namespace', '--set-json', 'replicaCount="two"']);
    assert.notEqual(typo.code, 0);
    assert.match(typo.stderr, /values don't meet the specifications of the schema/);
    assert.match(typo.stderr, /replicaCount.*got string, want integer/);
    const dir = join(cluster.dir, 'bad-values');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'unknown.yaml'), stringify({ replicas: 2, image: { repository: 'x', tga: 'typo' } }));
    const unknown = await helm.run(['install', 'bad', CHART_DIR, '--namespace', NS, '--create-namespace', '-f', join(dir, 'unknown.yaml')]);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /additional properties 'replicas' not allowed/);
    assert.match(unknown.stderr, /\/image.*additional properties 'tga' not allowed/);
    assert.equal((await helm.ok(['list', '--all-namespaces', '--all', '--short'])).trim(), '', 'no release was recorded');
  });

  it('renders every ci/*.yaml values file (and deploy/hyperspector.yaml) into objects the API server accepts (server-side dry run)', async function () {
    for (const file of readdirSync(join(CHART_DIR, 'ci')).filter((f) => f.endsWith('.yaml')).sort()) {
      const manifest = await helm.ok(['template', RELEASE, CHART_DIR, '--namespace', NS, '-f', join(CHART_DIR, 'ci', file)]);
      const objects = parseObjects(manifest);
      for (const ns of new Set([NS, ...objects.map((o) => o.metadata.namespace).filter((n): n is string => Boolean(n))])) await ensureNamespace(cluster, ns);
      const res = await kubectl(['apply', '--server-side', '--force-conflicts', '--field-manager=helm-ci-dry-run', '--dry-run=server', '-f', '-'], manifest);
      const applied = res.stdout.split('\n').filter((l) => l.includes('serverside-applied (server dry run)'));
      assert.equal(applied.length, objects.length, `${file}: every object accepted:\n${res.stdout}${res.stderr}`);
    }
    // The plain-kubectl install, too.
    const plain = await kubectl(['apply', '--server-side', '--force-conflicts', '--field-manager=helm-ci-dry-run', '--dry-run=server', '-f', DEPLOY_MANIFEST]);
    const plainObjects = parseObjects(readFileSync(DEPLOY_MANIFEST, 'utf8'));
    assert.equal(plain.stdout.split('\n').filter((l) => l.includes('serverside-applied (server dry run)')).length, plainObjects.length, plain.stdout);
  });

  it('installs with helm, creating the CRD it owns', async function () {
    await kubectl(['apply', '--server-side', '-f', join(EXAMPLES, '00-namespace.yaml')]);
    // The harness installs the generated CRD for every test cluster; here the chart must own it.
    await cluster.api(k8s.ApiextensionsV1Api).deleteCustomResourceDefinition({ name: CRD });
    await waitFor(async () => !(await cluster.api(k8s.ApiextensionsV1Api).listCustomResourceDefinition()).items.some((c) => c.metadata?.name === CRD) || undefined, {
      timeoutMs: 60_000,
      description: 'the harness CRD to be gone',
    });
    const started = Date.now();
    await helm.ok(['install', RELEASE, CHART_DIR, '--namespace', NS, '--create-namespace', '--set-json', `watchNamespaces=["${WATCHED}"]`, '--wait', '--timeout', '5m']);
    figures.push(`helm install --wait ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const crd = await waitFor(
      async () => {
        const c = await cluster.api(k8s.ApiextensionsV1Api).readCustomResourceDefinition({ name: CRD });
        return c.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True') ? c : undefined;
      },
      { timeoutMs: 60_000, description: 'the chart CRD to be Established' },
    );
    assert.equal(crd.metadata?.annotations?.['helm.sh/resource-policy'], 'keep');
    assert.equal(crd.metadata?.annotations?.['meta.helm.sh/release-name'], RELEASE);
    const deployment = await cluster.api(k8s.AppsV1Api).readNamespacedDeployment({ namespace: NS, name: SA });
    assert.equal(deployment.status?.readyReplicas, 2, 'both replicas Ready (kwok runs the pods)');
    await cluster.api(k8s.CoreV1Api).readNamespacedServiceAccount({ namespace: NS, name: SA });
  });

  it('takes the examples to Ready with the operator authenticated as the chart ServiceAccount', async function () {
    const kubeconfig = await serviceAccountKubeconfig(cluster, NS, SA);
    const saKc = new k8s.KubeConfig();
    saKc.loadFromFile(kubeconfig);
    const review = await saKc.makeApiClient(k8s.AuthenticationV1Api).createSelfSubjectReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } });
    assert.equal(review.status?.userInfo?.username, `system:serviceaccount:${NS}:${SA}`);
    assert.ok(!Object.values(cluster.users).some((u) => u.name === review.status?.userInfo?.username), 'not one of the harness users (whose RBAC comes from deploy/rbac.yaml)');

    // A MonitoredServer where the chart does not watch, applied before the watched ones.
    await ensureNamespace(cluster, UNWATCHED);
    await env.createMonitoredServer(monitoredServer('stray', UNWATCHED));

    const deployment = await cluster.api(k8s.AppsV1Api).readNamespacedDeployment({ namespace: NS, name: SA });
    operator = await startOperatorAsDeployed(cluster, deployment, kubeconfig);
    assert.equal(operator.env.WATCH_NAMESPACES, WATCHED);
    const started = Date.now();
    for (const file of ['10-web-monitored-server.yaml', '20-existing-db-vm.yaml', '30-db-monitored-server.yaml']) {
      await kubectl(['apply', '--server-side', '-f', join(EXAMPLES, file)]);
    }
    await waitFor(
      async () => {
        const all = await Promise.all(['web-1', 'db-1'].map((name) => env.get(MS, WATCHED, name)));
        all.forEach(capture);
        return all.every((ms) => env.condition(ms, 'Ready')?.status === 'True') || undefined;
      },
      { timeoutMs: 180_000, intervalMs: 100, description: 'both examples to be Ready' },
    );
    figures.push(`examples Ready ${((Date.now() - started) / 1000).toFixed(1)} s after apply`);
    for (const name of ['web-1', 'db-1']) {
      const ms = await env.get(MS, WATCHED, name);
      for (const type of ['ServerRunning', 'IDSRunning', 'Colocated', 'ProcessMapping']) assert.equal(env.condition(ms, type)?.status, 'True', `${name} ${type}`);
    }
    assert.ok(await env.get(VM, WATCHED, 'web-1-ids'));
    assert.ok(await env.get(VM, WATCHED, 'db-1-ids'));
    assert.ok(operator.process.running);
    assert.doesNotMatch(await logOf(operator), /forbidden/i, 'the chart RBAC allowed everything the operator did');
  });

  it('leaves a MonitoredServer in a namespace it does not watch alone (and has no rights there)', async function () {
    const stray = await env.get(MS, UNWATCHED, 'stray');
    assert.equal(stray?.status, undefined, 'no status written');
    assert.equal(stray?.metadata.finalizers, undefined, 'no finalizer added');
    assert.deepEqual(await env.list(VM, UNWATCHED), [], 'no VM created');
    const user = `system:serviceaccount:${NS}:${SA}`;
    const can = async (namespace: string) =>
      (
        await cluster.api(k8s.AuthorizationV1Api).createSubjectAccessReview({
          body: { spec: { user, groups: ['system:serviceaccounts', `system:serviceaccounts:${NS}`], resourceAttributes: { group: 'hyperspector.io', resource: 'monitoredservers', verb: 'list', namespace } } },
        })
      ).status?.allowed;
    assert.equal(await can(WATCHED), true);
    assert.equal(await can(UNWATCHED), false);
    capture(stray);
  });

  it('gives Argo CD the right health for the states the real operator produced', async function () {
    // Problems the user must fix, and a stopped server.
    await env.createMonitoredServer(monitoredServer('ghost', WATCHED, { server: { virtualMachineName: 'no-such-vm' } }));
    capture(await env.waitForCondition(WATCHED, 'ghost', 'Ready', 'False', 'ServerVMNotFound'));
    await env.create(VM, WATCHED, { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: 'halted', namespace: WATCHED }, spec: { ...vmTemplate({ app: 'halted' }).spec, runStrategy: 'Halted' } });
    await env.createMonitoredServer(monitoredServer('halted', WATCHED, { server: { virtualMachineName: 'halted' } }));
    capture(await env.waitForCondition(WATCHED, 'halted', 'Ready', 'False', 'ServerVMStopped'));
    // A server VM no node can take: the operator keeps waiting for it to start.
    const unplaced = vmTemplate({ app: 'unplaced' });
    unplaced.spec.template!.spec!.nodeSelector = { 'example.com/no-such-node': 'true' };
    await env.createMonitoredServer(monitoredServer('unplaced', WATCHED, { server: { template: unplaced } }));
    capture(await env.waitForCondition(WATCHED, 'unplaced', 'ServerRunning', 'False', 'ServerVMStarting'));

    const objects = [...captured.values()];
    const health = argoHealth(objects);
    const seen = new Set<string>();
    objects.forEach((ms, i) => {
      seen.add(health[i]!.status);
      assert.deepEqual(health[i], expectedHealth(ms), stateKey(ms));
    });
    assert.deepEqual([...seen].sort(), ['Degraded', 'Healthy', 'Progressing', 'Suspended']);
    assert.ok(objects.length >= 6, `the states captured (${[...captured.keys()].join('; ')})`);
    figures.push(`${objects.length} real MonitoredServer states checked in gopher-lua`);
    if (process.env.HYPERSPECTOR_WRITE_HEALTH_TESTDATA) writeTestdata(objects);
  });

  it('rolls the Deployment on helm upgrade with a changed value', async function () {
    const apps = cluster.api(k8s.AppsV1Api);
    const before = await apps.readNamespacedDeployment({ namespace: NS, name: SA });
    const oldHashes = new Set((await apps.listNamespacedReplicaSet({ namespace: NS })).items.map((rs) => rs.metadata?.labels?.['pod-template-hash']));
    const started = Date.now();
    await helm.ok(['upgrade', RELEASE, CHART_DIR, '--namespace', NS, '--reuse-values', '--set', 'logLevel=debug', '--wait', '--timeout', '5m']);
    const after = await apps.readNamespacedDeployment({ namespace: NS, name: SA });
    assert.equal(after.metadata?.generation, (before.metadata?.generation ?? 0) + 1);
    assert.ok(after.spec?.template.spec?.containers[0]?.args?.includes('--log-level=debug'));
    const rolled = await waitFor(
      async () => {
        const sets = (await apps.listNamespacedReplicaSet({ namespace: NS })).items;
        const fresh = sets.find((rs) => !oldHashes.has(rs.metadata?.labels?.['pod-template-hash']));
        const old = sets.filter((rs) => oldHashes.has(rs.metadata?.labels?.['pod-template-hash']));
        return fresh?.status?.readyReplicas === 2 && old.every((rs) => (rs.status?.replicas ?? 0) === 0) ? fresh : undefined;
      },
      { timeoutMs: 120_000, description: 'a new ReplicaSet with 2 ready pods and the old one scaled to 0' },
    );
    figures.push(`helm upgrade --wait + rollout ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const pods = (await cluster.api(k8s.CoreV1Api).listNamespacedPod({ namespace: NS, labelSelector: 'app.kubernetes.io/component=operator' })).items.filter((p) => !p.metadata?.deletionTimestamp);
    assert.ok(pods.every((p) => p.metadata?.labels?.['pod-template-hash'] === rolled.metadata?.labels?.['pod-template-hash']), 'every pod runs the new template');
  });

  it('reports a lagging generation and a deletion as Progressing when the operator is away', async function () {
    await operator?.stop();
    operator = undefined;
    const patched = await env.mergePatch(MS, WATCHED, 'web-1', { spec: { response: { onAlert: 'Pause' } } });
    await env.delete(MS, WATCHED, 'ghost');
    const deleting = await waitFor(async () => ((await env.get(MS, WATCHED, 'ghost'))?.metadata.deletionTimestamp ? env.get(MS, WATCHED, 'ghost') : undefined), {
      description: 'ghost to be marked for deletion (the finalizer holds it)',
    });
    // The tests' virt-handler stand-in does not pause guests; virt-controller reports a paused VM as
    // printableStatus Paused, which the operator copies to status.serverVM.phase. From a real Ready object:
    const paused = structuredClone((await env.get(MS, WATCHED, 'db-1'))!);
    paused.status.serverVM.phase = 'Paused';
    const [lag, gone, pausedHealth] = argoHealth([patched, deleting!, paused]);
    assert.deepEqual(lag, { status: 'Progressing', message: `Waiting for the operator to observe generation ${patched.metadata.generation}` });
    assert.deepEqual(gone, { status: 'Progressing', message: 'Being deleted: the operator is tearing down the IDS VM' });
    assert.deepEqual(pausedHealth, expectedHealth(paused));
    assert.equal(pausedHealth?.status, 'Suspended');
    if (process.env.HYPERSPECTOR_WRITE_HEALTH_TESTDATA) writeTestdata([patched, deleting!]);
  });

  it('uninstalls without removing the CRD, the MonitoredServers or any VM', async function () {
    const vmsBefore = (await env.list(VM)).map((vm) => `${vm.metadata.namespace}/${vm.metadata.name}`).sort();
    const msBefore = (await env.list(MS)).map((ms) => `${ms.metadata.namespace}/${ms.metadata.name}`).sort();
    assert.ok(vmsBefore.includes('shop/db-1') && vmsBefore.includes('shop/web-1-server'));
    await helm.ok(['uninstall', RELEASE, '--namespace', NS, '--wait']);
    assert.ok(await cluster.api(k8s.ApiextensionsV1Api).readCustomResourceDefinition({ name: CRD }), 'the CRD is kept');
    assert.deepEqual((await env.list(VM)).map((vm) => `${vm.metadata.namespace}/${vm.metadata.name}`).sort(), vmsBefore);
    assert.deepEqual((await env.list(MS)).map((ms) => `${ms.metadata.namespace}/${ms.metadata.name}`).sort(), msBefore);
    await assert.rejects(cluster.api(k8s.AppsV1Api).readNamespacedDeployment({ namespace: NS, name: SA }), (err: { code?: number }) => err.code === 404);
    await assert.rejects(cluster.api(k8s.RbacAuthorizationV1Api).readClusterRole({ name: SA }), (err: { code?: number }) => err.code === 404);
  });
});

/**
 * What Argo CD must show for a MonitoredServer (docs/install.md): the contract health.lua
 * implements, restated from the operator's own condition reasons.
 */
function expectedHealth(ms: Obj): { status: string; message?: string } {
  const conditions = (ms.status?.conditions ?? []) as Array<{ type: string; status: string; reason: string; message: string }>;
  const byType = new Map(conditions.map((c) => [c.type, c]));
  if (ms.metadata.deletionTimestamp) return { status: 'Progressing', message: 'Being deleted: the operator is tearing down the IDS VM' };
  if (!ms.status?.conditions) return { status: 'Progressing', message: 'Waiting for the operator to report status' };
  if ((ms.status.observedGeneration ?? 0) < (ms.metadata.generation ?? 0)) return { status: 'Progressing', message: `Waiting for the operator to observe generation ${ms.metadata.generation}` };
  if (ms.status.serverVM?.phase === 'Paused') return { status: 'Suspended', message: `Server VM ${ms.status.serverVM.name} is paused; unpause it (virtctl unpause vm ${ms.status.serverVM.name}) to resume it` };
  const problem = conditions.find((c) => c.type !== 'Ready' && WARNING_REASONS.has(c.reason));
  if (problem) return { status: 'Degraded', message: `${problem.type}: ${problem.message}` };
  const server = byType.get('ServerRunning');
  if (server && server.status !== 'True' && server.reason === 'ServerVMStopped') return { status: 'Suspended', message: `ServerRunning: ${server.message}` };
  const ready = byType.get('Ready');
  if (!ready) return { status: 'Progressing', message: 'Waiting for the Ready condition' };
  return { status: ready.status === 'True' ? 'Healthy' : 'Progressing', message: ready.message };
}

async function logOf(op: ChartOperator): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  return readFile(op.process.logFile, 'utf8');
}

/** Refreshes deploy/argocd/.../testdata from real objects (HYPERSPECTOR_WRITE_HEALTH_TESTDATA=1). */
function writeTestdata(objects: Obj[]): void {
  const dir = join(HEALTH_LUA, '..', 'testdata', 'captured'); // renamed by hand into testdata/ for health_test.yaml
  mkdirSync(dir, { recursive: true });
  for (const ms of objects) {
    const name = stateKey(ms).replace(/[^A-Za-z0-9=.-]+/g, '_').slice(0, 120);
    const { managedFields: _m, ...metadata } = ms.metadata;
    writeFileSync(join(dir, `${name}.yaml`), stringify({ apiVersion: 'hyperspector.io/v1alpha1', kind: 'MonitoredServer', ...ms, metadata }));
  }
}
