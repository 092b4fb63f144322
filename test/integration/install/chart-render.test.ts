// The Helm chart rendered offline (no cluster): lint, generated files up to date, RBAC at least
// deploy/rbac.yaml and without wildcards, the Deployment's flags are real operator flags, and the
// optional objects appear only when asked for.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { parseAgentConfig } from '../../../src/agent/config.ts';
import { parseConfig } from '../../../src/config.ts';
import { ARGOCD_CM, CHART_DIR, CRD_TEMPLATE, DEPLOY_MANIFEST, renderArgocdCm, renderCrdTemplate, renderDeployManifest } from '../../../hack/packaging.ts';
import { REPO_ROOT } from '../../../testenv/repo-root.ts';
import { Helm, parseObjects, type KubeObject } from './install-support.ts';
import { processMapperLabels, roleLabels } from '../../../src/builders/names.ts';
import { buildProcessMapperPod } from '../../../src/builders/process-mapper-pod.ts';
import { monitoredServer } from '../../../testenv/fixtures/monitoredservers.ts';
import { chartOperatorEnv } from '../../../testenv/operator/operator-process.ts';

type Rule = { apiGroups?: string[]; resources?: string[]; verbs?: string[]; resourceNames?: string[] };
type AnyObject = KubeObject & { spec?: any; rules?: Rule[]; roleRef?: any; subjects?: any[]; data?: Record<string, string> }; // eslint-disable-line @typescript-eslint/no-explicit-any

const CI_VALUES = readdirSync(join(CHART_DIR, 'ci')).filter((f) => f.endsWith('.yaml')).sort();

function find(objects: AnyObject[], kind: string, name?: string): AnyObject[] {
  return objects.filter((o) => o.kind === kind && (!name || o.metadata.name === name));
}

const component = (o: AnyObject) => (o.metadata.labels as Record<string, string> | undefined)?.['app.kubernetes.io/component'];
/** The operator's objects (the node agent's carry component=agent). */
const operatorObjects = (objects: AnyObject[]) => objects.filter((o) => component(o) !== 'agent');
const agentObjects = (objects: AnyObject[]) => objects.filter((o) => component(o) === 'agent');

function one(objects: AnyObject[], kind: string, name?: string): AnyObject {
  const found = find(objects, kind, name);
  assert.equal(found.length, 1, `exactly one ${kind}${name ? ` ${name}` : ''} (found ${found.length})`);
  return found[0]!;
}

/** Every (group, resource, verb) a rule list grants. */
function grants(rules: Rule[]): Set<string> {
  const out = new Set<string>();
  for (const r of rules) for (const g of r.apiGroups ?? []) for (const res of r.resources ?? []) for (const v of r.verbs ?? []) out.add(`${g}|${res}|${v}`);
  return out;
}

function operatorContainer(objects: AnyObject[]) {
  const deployment = one(objects, 'Deployment');
  return { deployment, container: deployment.spec.template.spec.containers.find((c: { name: string }) => c.name === 'operator') };
}

/** The operator's configuration as the container's args and env give it. */
function configOf(container: { args: string[]; env?: Array<{ name: string; value?: string }> }) {
  const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value ?? 'from-field']));
  return parseConfig(container.args, env);
}

describe('Helm chart, rendered', function () {
  this.timeout(900_000); // the first run builds helm (hack/build-helm.sh)
  let helm: Helm;
  let defaults: AnyObject[];

  before(async function () {
    helm = new Helm();
    defaults = (await helm.template('hyperspector', 'hyperspector-system')) as AnyObject[];
  });

  it('passes helm lint --strict with the defaults and every ci/*.yaml values file', async function () {
    assert.ok(CI_VALUES.length >= 3, 'ci/ holds the values combinations CI checks');
    for (const values of [undefined, ...CI_VALUES]) {
      const res = await helm.run(['lint', '--strict', CHART_DIR, ...(values ? ['-f', join(CHART_DIR, 'ci', values)] : [])]);
      assert.equal(res.code, 0, `helm lint --strict ${values ?? '(defaults)'}:\n${res.stdout}${res.stderr}`);
      assert.match(res.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  it('ships the CRDs of crds/, deploy/hyperspector.yaml and the argocd-cm snippet as generated (npm run generate:deploy)', async function () {
    assert.equal(readFileSync(ARGOCD_CM, 'utf8'), renderArgocdCm(), 'deploy/argocd/argocd-cm.yaml is stale: npm run generate:deploy');
    assert.equal(readFileSync(CRD_TEMPLATE, 'utf8'), renderCrdTemplate(), 'helm/hyperspector/templates/crds.yaml is stale: npm run generate:deploy');
    assert.equal(readFileSync(DEPLOY_MANIFEST, 'utf8'), renderDeployManifest(helm.binary), 'deploy/hyperspector.yaml is stale: npm run generate:deploy');
    const source = parse(readFileSync(join(REPO_ROOT, 'crds', 'hyperspector.io_monitoredservers.yaml'), 'utf8')) as AnyObject;
    const rendered = one(defaults, 'CustomResourceDefinition', source.metadata.name);
    assert.deepEqual(rendered.spec, source.spec, 'the chart installs exactly the generated CRD');
    assert.equal(rendered.metadata.annotations?.['helm.sh/resource-policy'], 'keep');
  });

  it('grants at least what deploy/rbac.yaml grants, with no wildcard', function () {
    const reference = parseObjects(readFileSync(join(REPO_ROOT, 'deploy', 'rbac.yaml'), 'utf8')) as AnyObject[];
    const operator = operatorObjects(defaults);
    const clusterRole = one(operator, 'ClusterRole', 'hyperspector');
    const role = one(operator, 'Role', 'hyperspector-leader-election');
    const kubevirtRole = one(operator, 'Role', 'hyperspector-kubevirt-config');
    const addressRole = one(operator, 'Role', 'hyperspector-ids-addresses');
    const missingAddress = [...grants(one(reference, 'Role', 'hyperspector-operator-ids-addresses').rules ?? [])].filter((g) => !grants(addressRole.rules ?? []).has(g));
    assert.deepEqual(missingAddress, [], 'the chart IDS-address Role covers deploy/rbac.yaml');
    assert.equal(addressRole.metadata.namespace, 'hyperspector-system', 'address claims only in the release namespace');
    const missingCluster = [...grants(one(reference, 'ClusterRole', 'hyperspector-operator').rules ?? [])].filter((g) => !grants(clusterRole.rules ?? []).has(g));
    assert.deepEqual(missingCluster, [], 'the chart ClusterRole covers deploy/rbac.yaml');
    const missingRole = [...grants(one(reference, 'Role', 'hyperspector-operator-leader-election').rules ?? [])].filter((g) => !grants(role.rules ?? []).has(g));
    assert.deepEqual(missingRole, [], 'the chart Role covers deploy/rbac.yaml');
    assert.equal(role.metadata.namespace, 'hyperspector-system');
    const missingKubevirt = [...grants(one(reference, 'Role', 'hyperspector-operator-kubevirt-config').rules ?? [])].filter((g) => !grants(kubevirtRole.rules ?? []).has(g));
    assert.deepEqual(missingKubevirt, [], 'the chart KubeVirt-config Role covers deploy/rbac.yaml');
    assert.equal(kubevirtRole.metadata.namespace, 'kubevirt', 'read access to KubeVirt CRs only in KubeVirt’s namespace');
    assert.deepEqual(one(operator, 'RoleBinding', 'hyperspector-kubevirt-config').subjects, one(operator, 'ClusterRoleBinding', 'hyperspector').subjects);
    for (const r of [...(clusterRole.rules ?? []), ...(role.rules ?? []), ...(kubevirtRole.rules ?? [])]) {
      for (const field of [r.apiGroups, r.resources, r.verbs]) assert.ok(!field?.includes('*'), `no wildcard in ${JSON.stringify(r)}`);
    }
    const binding = one(operator, 'ClusterRoleBinding', 'hyperspector');
    const sa = one(operator, 'ServiceAccount', operatorContainer(defaults).deployment.spec.template.spec.serviceAccountName);
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: 'hyperspector-system' }]);
    assert.equal(binding.roleRef.name, clusterRole.metadata.name);
    // Process-mapper pods only in the release namespace; the mapper's own identity grants what deploy/rbac.yaml grants it.
    const pods = one(operator, 'Role', 'hyperspector-process-mappers');
    assert.equal(pods.metadata.namespace, 'hyperspector-system');
    assert.deepEqual([...grants(one(reference, 'Role', 'hyperspector-operator-process-mappers').rules ?? [])].filter((g) => !grants(pods.rules ?? []).has(g)), []);
    assert.ok(![...grants(clusterRole.rules ?? [])].some((g) => g.startsWith('|pods|')), 'no cluster-wide pod rights');
    const mapperRole = one(operator, 'ClusterRole', 'hyperspector-process-mapper');
    assert.deepEqual([...grants(mapperRole.rules ?? [])].sort(), [...grants(one(reference, 'ClusterRole', 'hyperspector-process-mapper').rules ?? [])].sort());
    assert.deepEqual(one(operator, 'ClusterRoleBinding', 'hyperspector-process-mapper').subjects, [{ kind: 'ServiceAccount', name: 'hyperspector-process-mapper', namespace: 'hyperspector-system' }]);
    const baselines = one(operator, 'Role', 'hyperspector-process-baselines');
    assert.equal(baselines.metadata.namespace, 'hyperspector-system');
    assert.deepEqual([...grants(baselines.rules ?? [])].sort(), [...grants(one(reference, 'Role', 'hyperspector-process-baselines').rules ?? [])].sort());
    assert.deepEqual(one(operator, 'RoleBinding', 'hyperspector-process-baselines').subjects, [{ kind: 'ServiceAccount', name: 'hyperspector-process-mapper', namespace: 'hyperspector-system' }]);
    assert.deepEqual([...grants(one(operator, 'ClusterRole', 'hyperspector-process-reader').rules ?? [])], [...grants(one(reference, 'ClusterRole', 'hyperspector-process-reader').rules ?? [])]);
    const config = configOf(operatorContainer(defaults).container);
    assert.deepEqual([config.processMapperNamespace, config.processMapperServiceAccount], ['hyperspector-system', 'hyperspector-process-mapper']);
  });

  it('runs the operator with flags it has, probes where it serves them, and the restricted security profile', function () {
    const { deployment, container } = operatorContainer(defaults);
    assert.equal(deployment.spec.replicas, 2);
    const config = configOf(container);
    assert.equal(config.leaderElect, true);
    assert.equal(config.leaseDurationMs, 15_000);
    assert.equal(config.httpPort, 8080);
    assert.equal(config.logLevel, 'info');
    assert.equal(config.processMapperImage, 'hyperspector/operator:0.1.0', 'the sidecar image defaults to the operator image');
    assert.equal(container.image, 'hyperspector/operator:0.1.0');
    assert.deepEqual(config.namespaces, [], 'all namespaces by default');
    assert.equal(container.env.find((e: { name: string }) => e.name === 'POD_NAMESPACE')?.valueFrom?.fieldRef?.fieldPath, 'metadata.namespace');
    const port = container.ports.find((p: { name: string }) => p.name === 'http');
    assert.equal(port.containerPort, config.httpPort);
    assert.deepEqual(container.livenessProbe.httpGet, { path: '/healthz', port: 'http' });
    assert.deepEqual(container.readinessProbe.httpGet, { path: '/readyz', port: 'http' });
    const pod = deployment.spec.template.spec;
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
    assert.equal(container.securityContext.allowPrivilegeEscalation, false);
    assert.equal(container.securityContext.readOnlyRootFilesystem, true);
    assert.deepEqual(container.securityContext.capabilities.drop, ['ALL']);
    assert.ok(container.resources.requests.cpu && container.resources.limits.memory);
    assert.equal(one(defaults, 'PodDisruptionBudget').spec.minAvailable, 1);
    const service = one(defaults, 'Service', 'hyperspector-metrics');
    assert.equal(service.spec.ports[0].port, 8080);
    assert.deepEqual(service.spec.selector, deployment.spec.selector.matchLabels);
    const policy = one(defaults, 'NetworkPolicy', 'hyperspector');
    assert.deepEqual(policy.spec.policyTypes, ['Ingress', 'Egress']);
    assert.deepEqual(policy.spec.podSelector.matchLabels, deployment.spec.selector.matchLabels);
    assert.equal(container.env.find((e: { name: string }) => e.name === 'NODE_OPTIONS')?.value, '--max-semi-space-size=2 --max-old-space-size=160', "the chart's nodeOptions, as the benchmarks run the operator");
    assert.deepEqual(chartOperatorEnv(), Object.fromEntries((container.env as Array<{ name: string; value?: string }>).filter((e) => ['NODE_OPTIONS', 'MALLOC_ARENA_MAX', 'MALLOC_MMAP_THRESHOLD_'].includes(e.name)).map((e) => [e.name, e.value])), 'tests and benchmarks run the operator with the chart\'s memory settings');
    assert.equal(container.env.find((e: { name: string }) => e.name === 'MALLOC_ARENA_MAX')?.value, '2');
    assert.equal(container.env.find((e: { name: string }) => e.name === 'MALLOC_MMAP_THRESHOLD_')?.value, '131072');
    assert.equal(one(defaults, 'ConfigMap').metadata.name, config.kernelProfilesConfigMap);
  });

  it('lets only IDS VMs reach the process mappers\' process view, and the mappers only DNS and the API server', function () {
    const policy = one(defaults, 'NetworkPolicy', 'hyperspector-process-mappers');
    const ms = monitoredServer('web', 'shop');
    const selects = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);
    assert.ok(selects(policy.spec.podSelector.matchLabels, processMapperLabels(ms)), 'selects the pods the operator builds');
    assert.ok(!selects(policy.spec.podSelector.matchLabels, { 'app.kubernetes.io/name': 'hyperspector' }), 'not the operator');
    assert.deepEqual(policy.spec.policyTypes, ['Ingress', 'Egress']);
    const [api, view] = policy.spec.ingress as Array<{ ports: Array<{ port: string }>; from?: Array<{ namespaceSelector?: object; podSelector?: { matchLabels: Record<string, string> } }> }>;
    assert.deepEqual(api!.ports.map((p) => p.port), ['http']);
    assert.equal(api!.from, undefined, 'API, intake and metrics from anywhere (each API and intake request authenticated; the pod proxy reaches it too)');
    assert.deepEqual(view!.ports.map((p) => p.port), ['procfs']);
    assert.equal(view!.from!.length, 1);
    assert.deepEqual(view!.from![0]!.namespaceSelector, {}, 'IDS VMs of every namespace');
    assert.ok(selects(view!.from![0]!.podSelector!.matchLabels, roleLabels(ms, 'ids')), 'the IDS VM\'s launcher pod carries its VMI template labels');
    assert.ok(!selects(view!.from![0]!.podSelector!.matchLabels, roleLabels(ms, 'server')), 'not the server VM');
    const mapperPorts = new Set(buildProcessMapperPod(ms, { nodeName: 'n', name: 'web-server', uid: 'u', launcherPodUid: 'l', nodeUid: 'nu' }, { image: 'i', defaultKernelProfilesConfigMap: 'p', namespace: 'hyperspector-system', serviceAccountName: 's', serviceName: 'hyperspector-process-mappers' }).spec!.containers.flatMap((c) => (c.ports ?? []).map((p) => p.name)));
    assert.ok(mapperPorts.has('http') && mapperPorts.has('procfs'), 'the ports are named as the pod names them');
    assert.deepEqual(policy.spec.egress.flatMap((e: { ports: Array<{ port: number }> }) => e.ports.map((p) => p.port)), [53, 53, 443, 6443]);

  });

  it('names every process mapper through one headless Service: the operator\'s --process-mapper-service, selecting the pods it builds, on the ports they serve', async function () {
    const service = one(defaults, 'Service', 'hyperspector-process-mappers');
    assert.equal(service.spec.clusterIP, 'None', 'headless: each pod its own DNS name');
    const config = configOf(operatorContainer(defaults).container);
    assert.equal(config.processMapperService, service.metadata.name);
    const ms = monitoredServer('web', 'shop');
    const pod = buildProcessMapperPod(ms, { nodeName: 'n', name: 'web-server', uid: 'u', launcherPodUid: 'l', nodeUid: 'nu' }, { image: 'i', defaultKernelProfilesConfigMap: 'p', namespace: 'hyperspector-system', serviceAccountName: 's', serviceName: config.processMapperService });
    assert.equal(pod.spec.subdomain, service.metadata.name);
    assert.ok(Object.entries(service.spec.selector as Record<string, string>).every(([k, v]) => processMapperLabels(ms)[k] === v), 'selects the pods the operator builds');
    const served = new Set(pod.spec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.containerPort)));
    assert.deepEqual((service.spec.ports as Array<{ targetPort: number }>).map((p) => served.has(p.targetPort)), [true, true]);
    // A long release name still gives a DNS label (a pod's subdomain is at most 63 characters).
    const long = (await helm.template('a'.repeat(53), 'hyperspector-system')) as AnyObject[];
    const longName = find(long, 'Service').find((o) => o.spec.clusterIP === 'None')!.metadata.name as string;
    assert.ok(longName.length <= 63 && /^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(longName), longName);
    assert.equal(configOf(operatorContainer(long).container).processMapperService, longName);
  });

  it('runs the node agent on every node: hostNetwork, hostPID, root with only NET_ADMIN, SYS_ADMIN and SYS_PTRACE, read-only rights but MirrorAttached', async function () {
    const agent = agentObjects(defaults);
    assert.deepEqual(agent.map((o) => o.kind).sort(), ['ClusterRole', 'ClusterRoleBinding', 'DaemonSet', 'ServiceAccount']);
    const ds = one(agent, 'DaemonSet');
    const pod = ds.spec.template.spec;
    const container = pod.containers[0];
    assert.deepEqual([pod.hostNetwork, pod.hostPID, pod.dnsPolicy], [true, true, 'ClusterFirstWithHostNet']);
    assert.deepEqual(container.command, ['node', 'dist/src/agent/main.js']);
    assert.equal(container.env.find((e: { name: string }) => e.name === 'NODE_NAME')?.valueFrom?.fieldRef?.fieldPath, 'spec.nodeName');
    const config = parseAgentConfig(container.args, { NODE_NAME: 'worker-1' });
    assert.deepEqual([config.idsNetwork, config.vni, config.vxlanPort, config.idsMirrorNetwork, config.httpPort], ['vxlan', 4242, 4789, 'hyperspector-mirror', 9478]);
    assert.equal(container.ports[0].containerPort, config.httpPort);
    assert.deepEqual(container.securityContext.capabilities, { drop: ['ALL'], add: ['NET_ADMIN', 'SYS_ADMIN', 'SYS_PTRACE'] });
    assert.equal(container.securityContext.privileged, undefined, 'not privileged');
    assert.equal(container.securityContext.allowPrivilegeEscalation, false);
    assert.equal(container.securityContext.readOnlyRootFilesystem, true);
    assert.deepEqual(pod.tolerations, [{ operator: 'Exists' }], 'tainted nodes too');
    // Selected by nothing of the operator's (Service, PDB, NetworkPolicy select component=operator).
    assert.equal(ds.spec.selector.matchLabels['app.kubernetes.io/component'], 'agent');
    const sa = one(agent, 'ServiceAccount');
    assert.equal(pod.serviceAccountName, sa.metadata.name);
    const binding = one(agent, 'ClusterRoleBinding');
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: 'hyperspector-system' }]);
    const rules = one(agent, 'ClusterRole').rules ?? [];
    assert.deepEqual([...grants(rules)].sort(), [
      '|nodes|get', '|nodes|list', '|nodes|watch', '|pods|list', '|pods|watch',
      'events.k8s.io|events|create', 'events.k8s.io|events|patch',
      'hyperspector.io|monitoredservers/status|patch', 'hyperspector.io|monitoredservers|get', 'hyperspector.io|monitoredservers|list', 'hyperspector.io|monitoredservers|watch',
      'kubevirt.io|virtualmachineinstances|get', 'kubevirt.io|virtualmachineinstances|list', 'kubevirt.io|virtualmachineinstances|watch',
    ].sort());
    const other = (await helm.template('hyperspector', 'hyperspector-system', ['--set', 'networking.idsNetwork.provider=ovn-k8s-layer2', '--set', 'networking.mirroring.provider=ovs-cni', '--set', 'agent.idsNetwork.underlayInterface=bond0'])) as AnyObject[];
    const otherConfig = parseAgentConfig(one(other, 'DaemonSet').spec.template.spec.containers[0].args, { NODE_NAME: 'n' });
    assert.deepEqual([otherConfig.idsNetwork, otherConfig.underlayInterface, otherConfig.mirroringProvider], ['none', 'bond0', 'ovs-cni']);
    const otherOperator = parseConfig(one(other, 'Deployment').spec.template.spec.containers[0].args, {});
    assert.deepEqual([otherOperator.networking.idsNetwork, otherOperator.networking.mirroring], ['ovn-k8s-layer2', 'ovs-cni']);
  });

  it('orders an Argo CD sync: CRDs, then RBAC and config, then the operator', function () {
    const wave = (o: AnyObject) => Number(o.metadata.annotations?.['argocd.argoproj.io/sync-wave']);
    for (const o of defaults) assert.ok(Number.isInteger(wave(o)), `${o.kind} ${o.metadata.name} has a sync wave`);
    const max = (kinds: string[]) => Math.max(...defaults.filter((o) => kinds.includes(o.kind)).map(wave));
    const min = (kinds: string[]) => Math.min(...defaults.filter((o) => kinds.includes(o.kind)).map(wave));
    assert.ok(max(['CustomResourceDefinition']) < min(['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']));
    assert.ok(max(['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'ConfigMap']) < min(['Deployment', 'DaemonSet']));
    assert.ok(wave(one(defaults, 'Deployment')) <= 0, 'MonitoredServers (default wave 0 or later) come after the operator');
  });

  it('binds the operator only in the watched namespaces when watchNamespaces is set', async function () {
    const objects = (await helm.template('hyperspector', 'hyperspector-system', ['-f', join(CHART_DIR, 'ci', 'watch-namespaces-values.yaml')])) as AnyObject[];
    assert.deepEqual(find(operatorObjects(objects), 'ClusterRoleBinding').map((b) => b.metadata.name), ['hyperspector-nodes'], 'no cluster-wide binding of the operator or the process mapper but to read Nodes');
    assert.deepEqual([...grants(one(objects, 'ClusterRole', 'hyperspector-nodes').rules ?? [])].sort(), ['|nodes|get', '|nodes|list', '|nodes|watch']);
    // The node agent still reads cluster-wide (Nodes and IDS VMIs of every namespace make the overlay's peers).
    assert.equal(find(agentObjects(objects), 'ClusterRoleBinding').length, 1);
    const bindings = find(objects, 'RoleBinding').filter((b) => b.roleRef.kind === 'ClusterRole');
    assert.deepEqual(bindings.map((b) => `${b.metadata.namespace}/${b.roleRef.name}`).sort(), ['lab/hyperspector', 'lab/hyperspector-process-mapper', 'shop/hyperspector', 'shop/hyperspector-process-mapper']);
    assert.deepEqual(
      find(objects, 'ConfigMap').map((c) => c.metadata.namespace).sort(),
      ['hyperspector-system'],
      'kernel profiles where the process-mapper Pods run: the release namespace only',
    );
    assert.equal(find(objects, 'ConfigMap')[0]?.data?.['debian-6.1.json'], '{"kernel": "6.1.0-18-amd64"}');
    const config = configOf(operatorContainer(objects).container);
    assert.deepEqual(config.namespaces, ['shop', 'lab']);
    assert.equal(config.concurrency, 8);
    assert.equal(config.logLevel, 'debug');
  });

  it('pins the image by digest, and leaves out what is disabled', async function () {
    const pinned = (await helm.template('hyperspector', 'hyperspector-system', ['-f', join(CHART_DIR, 'ci', 'scheduling-values.yaml')])) as AnyObject[];
    const { container, deployment } = operatorContainer(pinned);
    assert.equal(container.image, 'registry.example.com/hyperspector/operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef');
    assert.equal(configOf(container).processMapperImage, 'registry.example.com/hyperspector/operator:0.1.0-debug');
    assert.deepEqual(deployment.spec.template.spec.imagePullSecrets, [{ name: 'registry-example' }]);
    assert.equal(deployment.spec.template.spec.tolerations[0].key, 'node-role.kubernetes.io/control-plane');

    const minimal = (await helm.template('hyperspector', 'hyperspector-system', ['-f', join(CHART_DIR, 'ci', 'minimal-values.yaml')])) as AnyObject[];
    assert.deepEqual(
      minimal.map((o) => `${o.kind}/${o.metadata.name}`).sort(),
      ['ClusterRole/hyperspector', 'ClusterRole/hyperspector-nodes', 'ClusterRole/hyperspector-process-mapper', 'ClusterRole/hyperspector-process-reader', 'ClusterRoleBinding/hyperspector', 'ClusterRoleBinding/hyperspector-nodes', 'ClusterRoleBinding/hyperspector-process-mapper', 'Deployment/hyperspector', 'Role/hyperspector-ids-addresses', 'Role/hyperspector-kubevirt-config', 'Role/hyperspector-process-baselines', 'Role/hyperspector-process-mappers', 'RoleBinding/hyperspector-ids-addresses', 'RoleBinding/hyperspector-kubevirt-config', 'RoleBinding/hyperspector-process-baselines', 'RoleBinding/hyperspector-process-mappers', 'Service/hyperspector-process-mappers', 'ServiceAccount/hyperspector-process-mapper'],
      'agent.enabled=false leaves the node agent out, admissionPolicy.enabled=false the policies; the process mapper keeps its own identity',
    );
    const defaultsKinds = (await helm.template('hyperspector', 'hyperspector-system')).map((o) => o.kind);
    assert.equal(defaultsKinds.filter((k) => k === 'ValidatingAdmissionPolicy').length, 3, 'the admission policies are on by default');
    assert.equal(defaultsKinds.filter((k) => k === 'ValidatingAdmissionPolicyBinding').length, 3);
    const minimalConfig = configOf(operatorContainer(minimal).container);
    assert.equal(minimalConfig.leaderElect, false);
    assert.equal(operatorContainer(minimal).deployment.spec.template.spec.serviceAccountName, 'hyperspector-preexisting');

    const unkept = (await helm.template('hyperspector', 'hyperspector-system', ['--set', 'crds.keep=false'])) as AnyObject[];
    assert.equal(one(unkept, 'CustomResourceDefinition').metadata.annotations?.['helm.sh/resource-policy'], undefined);
  });

  // Render-only: no prometheus-operator CRD is available to the tests (../shared/crds has none).
  it('renders a ServiceMonitor for the metrics Service only when enabled', async function () {
    assert.equal(find(defaults, 'ServiceMonitor').length, 0);
    const objects = (await helm.template('hyperspector', 'hyperspector-system', ['--set', 'serviceMonitor.enabled=true', '--set', 'serviceMonitor.labels.release=prometheus'])) as AnyObject[];
    const monitor = one(objects, 'ServiceMonitor');
    const service = one(objects, 'Service', 'hyperspector-metrics');
    const mappers = one(objects, 'Service', 'hyperspector-process-mappers');
    const matches = (labels: Record<string, string> | undefined) => Object.entries(monitor.spec.selector.matchLabels as Record<string, string>).every(([k, v]) => labels?.[k] === v);
    assert.ok(matches(service.metadata.labels) && !matches(mappers.metadata.labels), 'scrapes the operator, not the process mappers\' headless Service');
    assert.equal(monitor.apiVersion, 'monitoring.coreos.com/v1');
    assert.equal(monitor.metadata.labels?.release, 'prometheus');
    assert.deepEqual(monitor.spec.selector.matchLabels, Object.fromEntries(Object.entries(service.metadata.labels ?? {}).filter(([k]) => k in monitor.spec.selector.matchLabels)));
    assert.equal(monitor.spec.endpoints[0].port, service.spec.ports[0].name);
    assert.deepEqual(monitor.spec.namespaceSelector.matchNames, ['hyperspector-system']);
    const refused = await helm.run(['template', 'x', CHART_DIR, '--set', 'serviceMonitor.enabled=true', '--set', 'metrics.service.enabled=false']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /serviceMonitor.enabled needs metrics.service.enabled/);
  });
});
