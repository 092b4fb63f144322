// How the pod runner turns the operator's process-mapper pod into a host process (pure): the
// builder's real pod, its ConfigMap volume materialised and its paths and listen port mapped.
import assert from 'node:assert/strict';
import type * as k8s from '@kubernetes/client-node';
import { buildProcessMapperPod, KERNEL_PROFILES_MOUNT, PROCESS_MAPPER_PORT } from '../../../src/builders/process-mapper-pod.ts';
import { monitoredServer } from '../../../testenv/fixtures/monitoredservers.ts';
import { intakeKeySecretName } from '../../../src/builders/ids-intake.ts';
import { podProcessSpec, UnsupportedPodError } from '../../../testenv/real-guests/pod-process.ts';
import { podCgroupSegments } from '../../../testenv/real-guests/pod-cgroup.ts';

describe('real pods: the process-mapper pod as a host process', () => {
  const built = buildProcessMapperPod(monitoredServer('web-1', 'shop'), { nodeName: 'node-a', name: 'web-1-server', uid: 'vmi-uid-1', launcherPodUid: 'pod-uid-1', nodeUid: 'node-uid-1' }, { image: 'hyperspector/operator:0.1.0', defaultKernelProfilesConfigMap: 'profiles', namespace: 'shop', serviceAccountName: 'hyperspector-process-mapper', serviceName: 'hyperspector-process-mappers' });
  const pod = { ...built, metadata: { ...built.metadata, uid: '1111-2222' } } as unknown as k8s.V1Pod;
  const container = pod.spec!.containers[0]!;
  const ctx = {
    repoRoot: '/repo',
    volumesDir: '/tmp/pod/volumes',
    configMaps: new Map([['profiles', { 'debian.json': '{}' }]]),
    secrets: new Map([[intakeKeySecretName(monitoredServer('web-1', 'shop')), { key: 'a2V5' }]]),
    hostPorts: new Map([[PROCESS_MAPPER_PORT, 40001]]),
    nodeIp: '127.0.0.1',
  };

  it('runs the image entry point from this checkout with the pod env, its volume and port mapped', () => {
    const spec = podProcessSpec(pod, container, ctx);
    // With the container's capabilities only (drop ALL, add SYS_PTRACE and DAC_READ_SEARCH), as a runtime sets them.
    assert.equal(spec.command, 'setpriv');
    assert.deepEqual(spec.args, ['--bounding-set', '-all,+sys_ptrace,+dac_read_search', '--inh-caps', '-all', '--no-new-privs', '--', '/repo/node_modules/.bin/node', '--import', 'tsx', '/repo/src/sidecar/main.ts']);
    assert.equal(spec.env.VMI_NAME, 'web-1-server');
    assert.equal(spec.env.VMI_UID, 'vmi-uid-1');
    assert.equal(spec.env.VMI_NAMESPACE, 'shop');
    assert.equal(spec.env.KERNEL_PROFILES, '/tmp/pod/volumes/kernel-profiles', `was ${KERNEL_PROFILES_MOUNT}`);
    assert.equal(spec.env.LISTEN, '127.0.0.1:40001');
    assert.equal(spec.env.IDS_INTAKE_KEY, 'a2V5', 'the intake signing key from its Secret (secretKeyRef)');
    assert.equal(spec.env.HOSTNAME, built.metadata.name);
    assert.deepEqual([...spec.files], [['/tmp/pod/volumes/kernel-profiles/debian.json', '{}']]);
    assert.equal(spec.readinessUrl, 'http://127.0.0.1:40001/healthz');
  });

  it('gives a privileged container every capability, and others the runtime default set minus drop plus add', () => {
    const privileged = podProcessSpec(pod, { ...container, securityContext: { privileged: true } }, ctx);
    assert.equal(privileged.command, '/repo/node_modules/.bin/node');
    const defaults = podProcessSpec(pod, { ...container, securityContext: { capabilities: { drop: ['NET_RAW', 'MKNOD'], add: ['NET_ADMIN'] } } }, ctx);
    assert.equal(defaults.args[1], '-all,+chown,+dac_override,+fsetid,+fowner,+setgid,+setuid,+setfcap,+setpcap,+net_bind_service,+sys_chroot,+kill,+audit_write,+net_admin');
    assert.ok(!defaults.args.includes('--no-new-privs'));
  });

  it('refuses what it cannot run, as a container config error', () => {
    // The builder's kernel-profile volume is optional (zero-config profiles need none): a missing
    // ConfigMap is then fine, as for a kubelet; a required one that is missing is refused.
    assert.doesNotThrow(() => podProcessSpec(pod, container, { ...ctx, configMaps: new Map() }));
    const required = structuredClone(pod);
    for (const v of required.spec?.volumes ?? []) if (v.configMap) v.configMap.optional = false;
    assert.throws(() => podProcessSpec(required, container, { ...ctx, configMaps: new Map() }), (e: Error) => e instanceof UnsupportedPodError && /ConfigMap profiles not found/.test(e.message));
    assert.throws(() => podProcessSpec(pod, { ...container, command: ['sleep', 'infinity'] }, ctx), UnsupportedPodError);
    // As kubelet: the container waits for the intake key's Secret.
    assert.throws(() => podProcessSpec(pod, container, { ...ctx, secrets: new Map() }), (e: Error) => e instanceof UnsupportedPodError && /env IDS_INTAKE_KEY: Secret key .*-ids-intake-key-[0-9a-f]{8}\/key not found/.test(e.message));
  });

  it('names cgroups as a kubelet with the systemd driver does', () => {
    assert.deepEqual(podCgroupSegments('ab-cd', 'Burstable', 'f00'), ['kubepods.slice', 'kubepods-burstable.slice', 'kubepods-burstable-podab_cd.slice', 'cri-containerd-f00.scope']);
    assert.deepEqual(podCgroupSegments('ab-cd', 'Guaranteed', 'f00'), ['kubepods.slice', 'kubepods-podab_cd.slice', 'cri-containerd-f00.scope']);
    assert.deepEqual(podCgroupSegments('ab-cd', 'BestEffort', 'f00').slice(1, 3), ['kubepods-besteffort.slice', 'kubepods-besteffort-podab_cd.slice']);
  });
});
