import assert from 'node:assert/strict';
import { ANNOTATION_SPEC_HASH, buildProcessMapperPod } from '../../../src/builders/process-mapper-pod.ts';
import { monitoredServer } from '../../../testenv/fixtures/monitoredservers.ts';

const settings = { image: 'hyperspector/operator:test', defaultKernelProfilesConfigMap: 'cluster-profiles', namespace: 'hyperspector-system', serviceAccountName: 'hyperspector-process-mapper', serviceName: 'hyperspector-process-mappers' };
const vmi = { nodeName: 'node-b', name: 'web-1-server', uid: 'vmi-1', launcherPodUid: 'launcher-1', nodeUid: 'node-b-uid' };

describe('process-mapper pod builder', () => {
  const ms = monitoredServer('web-1', 'shop');
  ms.metadata.uid = 'ms-uid';

  it('runs with hostPID and two capabilities (not privileged) on the server node, in the operator namespace under the mapper identity, with the VMI and profiles', () => {
    const pod = buildProcessMapperPod(ms, vmi, settings);
    const spec = pod.spec as { serviceAccountName: string; automountServiceAccountToken: boolean; hostPID: boolean; nodeSelector: Record<string, string>; containers: Array<{ image: string; env: Array<{ name: string; value: string }>; securityContext: { privileged: boolean; readOnlyRootFilesystem: boolean } }>; volumes: Array<{ configMap: { name: string } }> };
    assert.match(pod.metadata.name ?? '', /^shop-web-1-process-mapper-[0-9a-f]{8}$/);
    assert.equal(pod.metadata.namespace, 'hyperspector-system', 'tenants keep their Pod Security level');
    // Owner references cannot reach the MonitoredServer in another namespace; the Node controls it, so kubectl drain evicts it.
    assert.deepEqual(pod.metadata.ownerReferences, [{ apiVersion: 'v1', kind: 'Node', name: 'node-b', uid: 'node-b-uid', controller: true }]);
    assert.equal(pod.metadata.labels?.['hyperspector.io/role'], 'process-mapper');
    assert.equal(pod.metadata.labels?.['hyperspector.io/monitored-server'], 'web-1');
    assert.equal(pod.metadata.labels?.['hyperspector.io/monitored-server-namespace'], 'shop');
    assert.equal(spec.serviceAccountName, 'hyperspector-process-mapper');
    assert.equal(spec.automountServiceAccountToken, true, 'the token posts alerts');
    assert.equal(spec.hostPID, true);
    assert.deepEqual(spec.nodeSelector, { 'kubernetes.io/hostname': 'node-b' });
    const c = spec.containers[0]!;
    assert.equal(c.image, 'hyperspector/operator:test');
    assert.deepEqual(
      c.securityContext,
      { privileged: false, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'], add: ['SYS_PTRACE', 'DAC_READ_SEARCH'] }, readOnlyRootFilesystem: true, runAsUser: 0, seccompProfile: { type: 'RuntimeDefault' } },
      'root with exactly the capabilities reading QEMU memory needs: the image runs non-root by default',
    );
    const env = Object.fromEntries(c.env.map((e) => [e.name, e.value]));
    assert.equal(env.VMI_NAMESPACE, 'shop');
    assert.equal(env.VMI_NAME, 'web-1-server');
    assert.equal(env.VMI_UID, 'vmi-1');
    assert.equal(env.MONITORED_SERVER, 'web-1');
    assert.equal(env.LAUNCHER_POD_UID, 'launcher-1', 'only a QEMU in the launcher pod is read');
    assert.equal(env.POLL_INTERVAL_MS, '1000');
    assert.equal(env.PROCFS_LISTEN, '0.0.0.0:5640', 'the 9P process view for the IDS VM');
    assert.deepEqual((c as unknown as { ports: Array<{ name: string; containerPort: number }> }).ports.map((p) => [p.name, p.containerPort]), [['http', 9464], ['procfs', 5640]]);
    assert.equal(spec.volumes[0]?.configMap.name, 'cluster-profiles');
    assert.equal((spec.volumes[0]?.configMap as { optional?: boolean }).optional, true, 'zero-config profiles need no ConfigMap');
  });

  it("uses the MonitoredServer's kernel profile and poll interval", () => {
    const custom = monitoredServer('web-1', 'shop', { processMapping: { pollIntervalSeconds: 5, kernelProfile: { configMapName: 'debian-6.1' } } });
    const spec = buildProcessMapperPod(custom, vmi, settings).spec as { containers: Array<{ env: Array<{ name: string; value: string }> }>; volumes: Array<{ configMap: { name: string } }> };
    assert.equal(spec.volumes[0]?.configMap.name, 'debian-6.1');
    assert.equal(spec.containers[0]!.env.find((e) => e.name === 'POLL_INTERVAL_MS')?.value, '5000');
  });

  it('names pods of different MonitoredServers apart, even when namespace and name join alike', () => {
    const a = buildProcessMapperPod(monitoredServer('c', 'a-b'), vmi, settings).metadata.name;
    const b = buildProcessMapperPod(monitoredServer('b-c', 'a'), vmi, settings).metadata.name;
    assert.notEqual(a, b);
    const long = buildProcessMapperPod(monitoredServer('x'.repeat(253), 'n'.repeat(63)), vmi, settings).metadata.name;
    assert.ok(long.length <= 253, `${long.length}`);
  });

  it('changes its spec hash when the pod would have to be replaced (new node or VMI), and only then', () => {
    const hash = (v = vmi) => buildProcessMapperPod(ms, v, settings).metadata.annotations[ANNOTATION_SPEC_HASH];
    assert.equal(hash(), hash());
    assert.notEqual(hash(), hash({ ...vmi, nodeName: 'node-c' }));
    assert.notEqual(hash(), hash({ ...vmi, uid: 'vmi-2' }));
  });
});
