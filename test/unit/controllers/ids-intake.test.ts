// The operator's side of the IDS VM alert intake: the signing key Secret, the token data in the IDS
// VM's one Secret (one write per rotation epoch, none in between; an older version's token Secret
// deleted), the mapper's DNS name (no Service of its own; an older
// version's is deleted), the mapper pod's env, the IDS VM's disk.
import assert from 'node:assert/strict';
import type { MonitoredServer } from '../../../src/api/v1alpha1/monitoredserver-types.ts';
import { buildIntakeKeySecret, INTAKE_DATA_KEYS, INTAKE_DISK_SERIAL, intakeKeySecretName, intakeRecheckMs, intakeUrl, legacyIntakeTokenSecretName } from '../../../src/builders/ids-intake.ts';
import { buildIdsVirtualMachine } from '../../../src/builders/ids-vm.ts';
import { FINALIZER, idsCloudInitSecretName, processMapperHostname } from '../../../src/builders/names.ts';
import { buildProcessMapperPod } from '../../../src/builders/process-mapper-pod.ts';
import type { Action, ApplyAction, DeleteAction } from '../../../src/controllers/monitoredserver/actions.ts';
import { DEFAULT_PROCESS_MAPPER } from '../../../src/controllers/monitoredserver/controller.ts';
import type { ObservedState, Secret } from '../../../src/controllers/monitoredserver/observed-state.ts';
import { planIdsCloudInit } from '../../../src/controllers/monitoredserver/planners/disk-inspection.ts';
import { planIdsIntake } from '../../../src/controllers/monitoredserver/planners/ids-intake.ts';
import { planTeardown } from '../../../src/controllers/monitoredserver/planners/teardown.ts';
import type { KubeObject } from '../../../src/kube/client/objects.ts';
import { checkIntakeToken, deriveIntakeToken } from '../../../src/sidecar/intake-credential.ts';
import { monitoredServer } from '../../../testenv/fixtures/monitoredservers.ts';

const HOUR = 3_600_000;
const OPNS = 'hyperspector-system';
const KEY = Buffer.alloc(32, 3);
const NEW_KEY = Buffer.alloc(32, 4);
const MAPPERS = 'hyperspector-process-mappers';
const settings = { operatorNamespace: OPNS, mapperService: MAPPERS, rotationMs: HOUR, newKey: () => NEW_KEY };

function ms(overrides: Partial<MonitoredServer['spec']> = {}): MonitoredServer {
  const m = monitoredServer('web-1', 'shop', overrides);
  m.metadata = { ...m.metadata, uid: 'ms-uid', finalizers: [FINALIZER] };
  return m;
}

const stored = <T extends KubeObject>(o: T, uid: string): T => ({ ...o, metadata: { ...o.metadata, uid } });
const decode = (s: Secret | undefined, k: string) => Buffer.from(s?.data?.[k] ?? '', 'base64').toString();

describe('IDS alert intake (operator)', () => {
  const now = 500 * HOUR + 10;
  const m = ms();
  const keySecret = stored(buildIntakeKeySecret(m, OPNS, KEY), 'key-uid');
  // What an older version put in front of the mapper pod: a Service per MonitoredServer, named as the pod's hostname is now.
  const legacyService: KubeObject = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: processMapperHostname(m), namespace: OPNS, uid: 'svc-uid', labels: { 'hyperspector.io/monitored-server': 'web-1', 'hyperspector.io/role': 'ids-intake', 'app.kubernetes.io/managed-by': 'hyperspector', 'hyperspector.io/monitored-server-namespace': 'shop' } },
  };

  /** What one reconcile writes for the intake: planIdsIntake's actions, then the IDS VM's Secret with the token data. */
  const writes = (o: ObservedState, at: number, mm = m): Action[] => {
    const intake = planIdsIntake(mm, o, settings, at);
    return [...intake.actions, ...planIdsCloudInit(mm, o, undefined, intake.secretData)];
  };
  const applied = (actions: Action[]) => (actions as ApplyAction[]).map((a) => [a.object.kind, a.object.metadata?.namespace, a.object.metadata?.name]);
  // An older version's token Secret of its own.
  const legacyToken: Secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'web-1-ids-intake', namespace: 'shop', uid: 'token-uid', labels: { 'hyperspector.io/monitored-server': 'web-1', 'hyperspector.io/role': 'ids-intake' } }, data: { token: 'eA==' } };

  it('names: the key beside the mapper (namespace and hash in its name), the token data in the IDS VM’s Secret, the URL the mapper pod’s DNS name under the headless Service', () => {
    assert.match(intakeKeySecretName(m), /^shop-web-1-ids-intake-key-[0-9a-f]{8}$/);
    assert.equal(idsCloudInitSecretName(m), 'web-1-ids-cloud-init');
    assert.equal(legacyIntakeTokenSecretName(m), 'web-1-ids-intake', 'what older versions made');
    assert.match(processMapperHostname(m), /^hs-intake-[0-9a-f]{20}$/, 'a DNS label');
    assert.notEqual(processMapperHostname(m), processMapperHostname(monitoredServer('web-1', 'shop2')));
    assert.equal(intakeUrl(m, OPNS, MAPPERS), `http://${processMapperHostname(m)}.${MAPPERS}.${OPNS}.svc:9464`);
  });

  it('creates the key and the IDS VM’s Secret with the token data (signed with that same key) when none exists, and no Service', () => {
    const actions = writes({}, now) as ApplyAction[];
    assert.deepEqual(applied(actions), [
      ['Secret', OPNS, intakeKeySecretName(m)],
      ['Secret', 'shop', 'web-1-ids-cloud-init'],
    ]);
    const stored = (actions[0]!.object as Secret).data?.key ?? '';
    // What secretKeyRef puts in the mapper's env (the decoded data) is the key's base64 text: no NUL byte.
    assert.equal(Buffer.from(stored, 'base64').toString('utf8'), NEW_KEY.toString('base64'));
    const token = actions[1]!.object as Secret;
    assert.deepEqual(Object.keys(token.data ?? {}).sort(), [...INTAKE_DATA_KEYS].sort(), 'no cloud-init data of its own here: the token data alone');
    assert.equal(decode(token, 'token'), deriveIntakeToken(NEW_KEY, { namespace: 'shop', name: 'web-1' }, 500));
    assert.equal(decode(token, 'url'), intakeUrl(m, OPNS, MAPPERS));
    assert.equal(decode(token, 'renew-seconds'), '1800');
    assert.equal(decode(token, 'procfs-port'), '5640', 'the process view is at the same name');
    assert.match(decode(token, 'hyperspector-intake'), /^#!\/bin\/sh\n# hyperspector-intake/);
    assert.equal(token.metadata?.ownerReferences?.[0]?.uid, 'ms-uid', 'the Secret goes with its MonitoredServer');
    assert.deepEqual(actions[0]!.object.metadata?.labels, { 'hyperspector.io/monitored-server': 'web-1', 'hyperspector.io/role': 'ids-intake-key', 'app.kubernetes.io/managed-by': 'hyperspector', 'hyperspector.io/monitored-server-namespace': 'shop' });
  });

  it('writes nothing while the IDS VM’s Secret holds the current epoch’s token; rotates it at the next epoch; requeues at the boundary', () => {
    const created = (writes({ intakeKeySecret: keySecret }, now)[0] as ApplyAction).object as Secret;
    const observed: ObservedState = { intakeKeySecret: keySecret, idsCloudInitSecret: stored(created, 'secret-uid') };
    assert.deepEqual(writes(observed, now), []);
    assert.deepEqual(writes(observed, 501 * HOUR - 1), [], 'same epoch: no write');
    const next = writes(observed, 501 * HOUR) as ApplyAction[];
    assert.equal(next.length, 1);
    const rotated = next[0]!.object as Secret;
    assert.match(next[0]!.log, /Apply the IDS VM's Secret shop\/web-1-ids-cloud-init \(intake token of epoch 501\)/);
    assert.equal(checkIntakeToken(KEY, { namespace: 'shop', name: 'web-1' }, decode(rotated, 'token'), 501 * HOUR, HOUR).valid, true);
    assert.equal(intakeRecheckMs(now, HOUR), HOUR - 10);
    assert.equal(intakeRecheckMs(501 * HOUR, HOUR), HOUR);
  });

  it('beside cloud-init data: one Secret with both, written once the IDS VM’s address is known', () => {
    const intake = planIdsIntake(m, { intakeKeySecret: keySecret }, settings, now);
    assert.deepEqual(planIdsCloudInit(m, {}, undefined, intake.secretData, true), [], 'the IDS VM waits for its address, and so does its Secret');
    const [apply] = planIdsCloudInit(m, {}, 'version: 2\n', intake.secretData) as ApplyAction[];
    assert.deepEqual(Object.keys((apply!.object as Secret).data ?? {}).sort(), ['networkdata', ...INTAKE_DATA_KEYS].sort());
  });

  it('replaces an unreadable key; keeps a good one; deletes an older version’s Service and token Secret, guarded by their UIDs', () => {
    const broken = { ...keySecret, data: { key: 'c2hvcnQ=' } };
    const current = (writes({ intakeKeySecret: keySecret }, now)[0] as ApplyAction).object as Secret;
    const actions = writes({ intakeKeySecret: broken, idsCloudInitSecret: current }, now) as ApplyAction[];
    assert.deepEqual(actions.map((a) => a.failureReason), ['ApplyIntakeKeyFailed', 'ApplyIDSCloudInitFailed'], 'a new key signs a new token');
    assert.match(actions[0]!.log, /Replace the unreadable/);
    const upgrade = writes({ intakeKeySecret: keySecret, intakeService: legacyService, legacyIntakeTokenSecret: legacyToken, idsCloudInitSecret: current }, now) as DeleteAction[];
    assert.deepEqual(upgrade.map((a) => [a.type, a.resource.kind, a.namespace, a.name, a.preconditionUid]), [
      ['delete', 'Secret', 'shop', 'web-1-ids-intake', 'token-uid'],
      ['delete', 'Service', OPNS, processMapperHostname(m), 'svc-uid'],
    ]);
  });

  it('nothing with process mapping off (the token data leaves the IDS VM’s Secret), for a server another MonitoredServer claims, or while deleting', () => {
    const off = ms({ processMapping: { enabled: false } });
    assert.deepEqual(writes({}, now, off), []);
    const current = (writes({ intakeKeySecret: keySecret }, now)[0] as ApplyAction).object as Secret;
    const [removal] = writes({ idsCloudInitSecret: current }, now, off) as ApplyAction[];
    assert.deepEqual(Object.keys((removal!.object as Secret).data ?? {}), [], 'applied without the token data: server-side apply removes it');
    assert.deepEqual(planIdsIntake(m, { serverClaimedBy: 'other' }, settings, now), { actions: [] });
    assert.deepEqual(planIdsIntake({ ...m, metadata: { ...m.metadata, deletionTimestamp: '2026-12-02T00:00:00Z' } }, { legacyIntakeTokenSecret: legacyToken }, settings, now), { actions: [] }, 'the garbage collector takes what the MonitoredServer owns');
  });

  it('teardown deletes the key and an older version’s Service in the operator’s namespace, guarded by their UIDs', () => {
    const deleting = { ...m, metadata: { ...m.metadata, deletionTimestamp: '2026-12-02T00:00:00Z' } };
    const plan = planTeardown(deleting, { intakeKeySecret: keySecret, intakeService: legacyService }, new Date());
    const deletes = plan.actions.filter((a): a is DeleteAction => a.type === 'delete' && /Intake/.test(a.failureReason));
    assert.deepEqual(deletes.map((d) => [d.resource.kind, d.namespace, d.name, d.preconditionUid]), [
      ['Secret', OPNS, intakeKeySecretName(m), 'key-uid'],
      ['Service', OPNS, processMapperHostname(m), 'svc-uid'],
    ]);
  });

  it('the mapper pod gets the key by secretKeyRef and the rotation period; the IDS VM gets the token Secret as a disk, the server VM nothing', () => {
    const pod = buildProcessMapperPod(m, { nodeName: 'n1', name: 'web-1-server', uid: 'vmi', launcherPodUid: 'lp', nodeUid: 'nu' }, { ...DEFAULT_PROCESS_MAPPER, idsCredentialRotationMs: HOUR });
    const env = pod.spec.containers[0]!.env ?? [];
    assert.deepEqual(env.find((e) => e.name === 'IDS_INTAKE_KEY')?.valueFrom, { secretKeyRef: { name: intakeKeySecretName(m), key: 'key' } });
    assert.equal(env.find((e) => e.name === 'IDS_CREDENTIAL_ROTATION_MS')?.value, String(HOUR));
    // Its DNS name, the URL in the token Secret: <hostname>.<headless Service>.<namespace>.svc.
    assert.equal(pod.spec.hostname, processMapperHostname(m));
    assert.equal(pod.spec.subdomain, DEFAULT_PROCESS_MAPPER.serviceName);
    const off = buildProcessMapperPod(ms({ processMapping: { enabled: false } }), { nodeName: 'n1', name: 'web-1-server', uid: 'vmi', launcherPodUid: 'lp', nodeUid: 'nu' }, DEFAULT_PROCESS_MAPPER);
    assert.ok(!(off.spec.containers[0]!.env ?? []).some((e) => e.name === 'IDS_INTAKE_KEY'));

    const ids = buildIdsVirtualMachine(m, { nodeName: 'n1', serverVmiUid: 'vmi', serverPodLabels: {} });
    const spec = ids.spec.template!.spec!;
    assert.deepEqual(spec.volumes?.find((v) => v.name === 'hyperspector-intake'), { name: 'hyperspector-intake', secret: { secretName: 'web-1-ids-cloud-init' } });
    assert.deepEqual(spec.domain.devices.disks?.find((d) => d.name === 'hyperspector-intake'), { name: 'hyperspector-intake', serial: INTAKE_DISK_SERIAL, disk: { bus: 'virtio' } });
    assert.ok(!JSON.stringify(m.spec.server).includes('ids-intake'), 'the server VM never has it');
  });
});
