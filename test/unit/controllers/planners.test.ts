// Table-driven tests of every planner's decisions: observed state in, actions out.
import assert from 'node:assert/strict';
import type { MonitoredServer } from '../../../src/api/v1alpha1/monitoredserver-types.ts';
import { buildIdsVirtualMachine, serverPodLabels } from '../../../src/builders/ids-vm.ts';
import { ANNOTATION_RELEARN_BASELINE, FINALIZER, LABEL_MONITORED_SERVER, LABEL_MONITORED_SERVER_NAMESPACE, processBaselineName, roleLabels } from '../../../src/builders/names.ts';
import { buildProcessMapperPod } from '../../../src/builders/process-mapper-pod.ts';
import { buildServerVirtualMachine } from '../../../src/builders/server-vm.ts';
import type { Action, DeleteAction, PatchAction } from '../../../src/controllers/monitoredserver/actions.ts';
import { DEFAULT_PROCESS_MAPPER } from '../../../src/controllers/monitoredserver/controller.ts';
import type { ObservedState, Pod, VirtualMachine, VirtualMachineInstance } from '../../../src/controllers/monitoredserver/observed-state.ts';
import { planFinalizer } from '../../../src/controllers/monitoredserver/planners/finalizer.ts';
import { planIdsVm } from '../../../src/controllers/monitoredserver/planners/ids-vm.ts';
import { isRefusedTemplate } from '../../../src/controllers/monitoredserver/planners/owned-vm.ts';
import { isRefusedPod, orphanedMapperPodDeletion, planProcessMapper, processMapperOwnerKeys } from '../../../src/controllers/monitoredserver/planners/process-mapper.ts';
import { planServerVm } from '../../../src/controllers/monitoredserver/planners/server-vm.ts';
import { planTeardown, TEARDOWN_STALL_MS } from '../../../src/controllers/monitoredserver/planners/teardown.ts';
import { FIELD_MANAGER } from '../../../src/kube/client/apply.ts';
import { KubeApiError } from '../../../src/kube/client/rest.ts';
import { monitoredServer } from '../../../testenv/fixtures/monitoredservers.ts';

const T0 = new Date('2026-12-01T10:00:00Z');
const NS = 'shop';

function ms(overrides: Partial<MonitoredServer['spec']> = {}, finalizers: string[] = [FINALIZER]): MonitoredServer {
  const m = monitoredServer('web-1', NS, overrides);
  m.metadata = { ...m.metadata, uid: 'ms-uid', resourceVersion: '7', generation: 1, finalizers };
  return m;
}

/** What the API server stores after our apply: the desired object plus our managedFields entry. */
function stored(vm: VirtualMachine, extraManagers: Array<{ manager: string; fields: Record<string, unknown>; subresource?: string }> = []): VirtualMachine {
  return {
    ...vm,
    metadata: {
      ...vm.metadata,
      uid: `${vm.metadata?.name}-uid`,
      resourceVersion: '100',
      generation: 3,
      managedFields: [
        { manager: FIELD_MANAGER, operation: 'Apply', fieldsType: 'FieldsV1', fieldsV1: { 'f:spec': { 'f:runStrategy': {} } } },
        ...extraManagers.map((m) => ({ manager: m.manager, operation: 'Update', fieldsType: 'FieldsV1', fieldsV1: m.fields, ...(m.subresource ? { subresource: m.subresource } : {}) })),
      ],
    },
    status: { printableStatus: 'Running', observedGeneration: 3, desiredGeneration: 3 },
  };
}

function vmi(name: string, node: string | undefined, extra: Partial<VirtualMachineInstance['metadata']> = {}, phase = 'Running'): VirtualMachineInstance {
  return {
    metadata: { name, namespace: NS, uid: `${name}-vmi-uid`, ...extra },
    spec: { domain: { devices: {} } },
    status: { phase, ...(node ? { nodeName: node, activePods: { [`${name}-launcher-${node}`]: node } } : {}) },
  };
}

const serverVmi = vmi('web-1-server', 'node-a');

function desiredIds(m: MonitoredServer, node = 'node-a') {
  return buildIdsVirtualMachine(m, { nodeName: node, serverVmiUid: serverVmi.metadata?.uid ?? '', serverPodLabels: serverPodLabels(false, roleLabels(m, 'server'), 'web-1-server') });
}

/** The VM with a field a user added by hand (cpu.cores), recorded as that user's in managedFields. */
function handEdited(vm: VirtualMachine, manager = 'kubectl-edit'): VirtualMachine {
  const edited = stored(vm, [{ manager, fields: { 'f:spec': { 'f:template': { 'f:spec': { 'f:domain': { 'f:cpu': { '.': {}, 'f:cores': {} } } } } } } }]);
  Object.assign(edited.spec.template.spec!.domain, { cpu: { cores: 8 } });
  return edited;
}

const summary = (actions: Action[]) => actions.map((a) => `${a.type}:${a.capability}:${a.failureReason}`);

describe('planners', () => {
  describe('finalizer', () => {
    it('adds the finalizer with the resourceVersion as a precondition, once', () => {
      const actions = planFinalizer(ms({}, []));
      assert.deepEqual(summary(actions), ['patch:finalizer:AddFinalizerFailed']);
      assert.deepEqual((actions[0] as PatchAction).body, { metadata: { finalizers: [FINALIZER], resourceVersion: '7' } });
      assert.deepEqual(planFinalizer(ms()), []);
    });
  });

  describe('server VM', () => {
    const m = ms();
    const cases: Array<[string, MonitoredServer, ObservedState, string[]]> = [
      ['creates a missing VM from the template', m, {}, ['apply:serverVM:CreateServerVMFailed']],
      ['does nothing when the VM matches', m, { serverVm: stored(buildServerVirtualMachine(m)) }, []],
      ['updates a VM whose template changed', ms({ server: { template: { ...m.spec.server.template!, metadata: { labels: { app: 'web-2' } } } } }), { serverVm: stored(buildServerVirtualMachine(m)) }, ['apply:serverVM:ApplyServerVMFailed']],
      ['puts back a VM someone else changed', m, { serverVm: handEdited(buildServerVirtualMachine(m)) }, ['patch:serverVM:RevertServerVMFailed']],
      ["ignores KubeVirt's own writes and status", m, { serverVm: stored(buildServerVirtualMachine(m), [{ manager: 'virt-api', fields: { 'f:spec': { 'f:runStrategy': {} } } }, { manager: 'kubectl', fields: { 'f:status': { 'f:x': {} } }, subresource: 'status' }]) }, []],
      ['touches nothing when the name belongs to someone else', m, { serverVm: stored(buildServerVirtualMachine(m)), serverNameTaken: true }, []],
      ['touches nothing when another MonitoredServer monitors the VM', ms({ server: { virtualMachineName: 'legacy' } }), { serverVm: stored(buildServerVirtualMachine(m)), serverClaimedBy: 'other' }, []],
      ['waits for an adopted VM that does not exist', ms({ server: { virtualMachineName: 'legacy' } }), {}, []],
      ['adopts with a merge patch of exactly its label and annotation', ms({ server: { virtualMachineName: 'legacy' } }), { serverVm: { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: 'legacy', namespace: NS }, spec: { template: { spec: { domain: { devices: {} } } } } } }, ['patch:serverVM:AdoptServerVMFailed']],
    ];
    for (const [name, m2, o, expected] of cases) it(name, () => assert.deepEqual(summary(planServerVm(m2, o)), expected));

    it('removes exactly what another writer added, guarded by the resourceVersion, and keeps what KubeVirt wrote', () => {
      const live = stored(buildServerVirtualMachine(m), [
        { manager: 'kubectl-edit', fields: { 'f:spec': { 'f:template': { 'f:spec': { 'f:domain': { 'f:cpu': { '.': {}, 'f:cores': {} } } } } } } },
        { manager: 'virt-controller', fields: { 'f:spec': { 'f:template': { 'f:spec': { 'f:domain': { 'f:firmware': { 'f:uuid': {} } } } } } } },
      ]);
      Object.assign(live.spec.template.spec!.domain, { cpu: { cores: 8 }, firmware: { uuid: '5d307ca9-b3ef-428c-8861-06e72d69f223' } });
      const actions = planServerVm(m, { serverVm: live });
      assert.deepEqual(summary(actions), ['patch:serverVM:RevertServerVMFailed'], 'nothing else differs: no apply');
      const patch = actions[0] as PatchAction;
      assert.equal(patch.patchType, 'json');
      assert.deepEqual(patch.body, [
        { op: 'test', path: '/metadata/resourceVersion', value: '100' },
        { op: 'remove', path: '/spec/template/spec/domain/cpu' },
      ]);
      assert.equal(patch.event?.reason, 'ServerVMReverted');
      assert.match(patch.event?.message ?? '', /kubectl-edit/);
    });

    it('removes only the added field of a structure HyperSpector also writes', () => {
      const live = stored(buildServerVirtualMachine(m), [
        { manager: 'kubectl-patch', fields: { 'f:spec': { 'f:template': { 'f:spec': { 'f:domain': { 'f:memory': { 'f:hugepages': {} } } } } } } },
      ]);
      const domain = live.spec.template.spec!.domain as { memory?: Record<string, unknown> };
      domain.memory = { ...(domain.memory ?? {}), hugepages: { pageSize: '2Mi' } };
      const patch = planServerVm(m, { serverVm: live })[0] as PatchAction;
      assert.deepEqual((patch.body as Array<{ path: string }>).map((o) => o.path), ['/metadata/resourceVersion', '/spec/template/spec/domain/memory/hugepages']);
    });
  });

  describe('IDS VM', () => {
    const m = ms();
    const ids = stored(desiredIds(m));
    const base: ObservedState = { serverVm: stored(buildServerVirtualMachine(m)), serverVmi };
    const restartRequired = (vm: VirtualMachine, desiredGeneration = 3): VirtualMachine => ({
      ...vm,
      status: { printableStatus: 'Running', desiredGeneration, observedGeneration: 2, conditions: [{ type: 'RestartRequired', status: 'True' }] },
    });
    const cases: Array<[string, ObservedState, string[]]> = [
      ['waits until the server VM has a node', { ...base, serverVmi: vmi('web-1-server', undefined, {}, 'Pending') }, []],
      ['creates the IDS VM pinned to the server node', base, ['apply:idsVM:CreateIDSVMFailed']],
      ['does nothing when the IDS VM matches and runs beside the server', { ...base, idsVm: ids, idsVmi: vmi('web-1-ids', 'node-a', { annotations: { 'kubevirt.io/vm-generation': '3' } }) }, []],
      ['updates the IDS VM when the server moved, without a restart in the same pass', { ...base, serverVmi: vmi('web-1-server', 'node-b'), idsVm: ids, idsVmi: vmi('web-1-ids', 'node-a') }, ['apply:idsVM:ApplyIDSVMFailed']],
      ['restarts an IDS VMI on another node once its VM matches', { ...base, serverVmi: vmi('web-1-server', 'node-b'), idsVm: stored(desiredIds(m, 'node-b')), idsVmi: vmi('web-1-ids', 'node-a') }, ['delete:idsVM:RestartIDSVMFailed']],
      ['restarts an IDS VMI that runs an older template KubeVirt cannot update live', { ...base, idsVm: restartRequired(ids), idsVmi: vmi('web-1-ids', 'node-a', { annotations: { 'kubevirt.io/vm-generation': '2' } }) }, ['delete:idsVM:RestartIDSVMFailed']],
      ["does not restart on a RestartRequired KubeVirt has not recomputed for the current generation", { ...base, idsVm: restartRequired(ids, 2), idsVmi: vmi('web-1-ids', 'node-a', { annotations: { 'kubevirt.io/vm-generation': '2' } }) }, []],
      ['puts back a hand edit first and does not restart for it', { ...base, idsVm: restartRequired(handEdited(desiredIds(m), 'kubectl-patch')), idsVmi: vmi('web-1-ids', 'node-a', { annotations: { 'kubevirt.io/vm-generation': '2' } }) }, ['patch:idsVM:RevertIDSVMFailed']],
      ['restarts a pending IDS VMI still pinned to the node the server left', { ...base, serverVmi: vmi('web-1-server', 'node-b'), idsVm: stored(desiredIds(m, 'node-b')), idsVmi: { ...vmi('web-1-ids', undefined, {}, 'Pending'), spec: { domain: { devices: {} }, nodeSelector: { 'kubernetes.io/hostname': 'node-a' } } } }, ['delete:idsVM:RestartIDSVMFailed']],
      ['leaves a pending IDS VMI pinned to the server node alone', { ...base, idsVm: ids, idsVmi: { ...vmi('web-1-ids', undefined, {}, 'Pending'), spec: { domain: { devices: {} }, nodeSelector: { 'kubernetes.io/hostname': 'node-a' } } } }, []],
      ['leaves an IDS VMI that is already stopping alone', { ...base, serverVmi: vmi('web-1-server', 'node-b'), idsVm: stored(desiredIds(m, 'node-b')), idsVmi: vmi('web-1-ids', 'node-a', { deletionTimestamp: T0.toISOString() }) }, []],
      ['touches nothing when its name belongs to someone else', { ...base, idsNameTaken: true }, []],
    ];
    for (const [name, o, expected] of cases) it(name, () => assert.deepEqual(summary(planIdsVm(m, o)), expected));

    it('restarts only the VMI it looked at (uid precondition) and treats 404/409 as done', () => {
      const [action] = planIdsVm(m, { ...base, serverVmi: vmi('web-1-server', 'node-b'), idsVm: stored(desiredIds(m, 'node-b')), idsVmi: vmi('web-1-ids', 'node-a') }) as DeleteAction[];
      assert.equal(action?.preconditionUid, 'web-1-ids-vmi-uid');
      assert.deepEqual(action?.tolerate, [404, 409]);
    });
  });

  describe('process mapper', () => {
    const m = ms();
    const desired = buildProcessMapperPod(m, { nodeName: 'node-a', name: 'web-1-server', uid: serverVmi.metadata?.uid ?? '', launcherPodUid: 'web-1-server-launcher-node-a', nodeUid: 'node-a-uid' }, DEFAULT_PROCESS_MAPPER);
    const pod = (annotations: Record<string, string>, deleting = false): Pod => ({ metadata: { name: 'web-1-process-mapper', uid: 'pod-uid', labels: { [LABEL_MONITORED_SERVER]: 'web-1' }, annotations, ...(deleting ? { deletionTimestamp: T0.toISOString() } : {}) } });
    const cases: Array<[string, MonitoredServer, ObservedState, string[]]> = [
      ['creates the pod once the server has a node', m, { serverVmi }, ['apply:processMapper:CreateProcessMapperFailed']],
      ['waits for the server placement', m, { serverVmi: vmi('web-1-server', undefined, {}, 'Pending') }, []],
      ['waits for the launcher pod of the server on its node (activePods)', m, { serverVmi: { ...serverVmi, status: { ...serverVmi.status, activePods: { 'other-pod': 'node-b' } } } }, []],
      ['keeps a pod built for the current VMI', m, { serverVmi, processMapperPod: pod(desired.metadata.annotations) }, []],
      ['replaces a pod built for another VMI or node', m, { serverVmi: vmi('web-1-server', 'node-b'), processMapperPod: pod(desired.metadata.annotations) }, ['delete:processMapper:DeleteProcessMapperFailed']],
      ['keeps the pod while the server is between nodes', m, { serverVmi: vmi('web-1-server', undefined, {}, 'Pending'), processMapperPod: pod(desired.metadata.annotations) }, []],
      ['deletes the pod when mapping is disabled', ms({ processMapping: { enabled: false } }), { serverVmi, processMapperPod: pod(desired.metadata.annotations) }, ['delete:processMapper:DeleteProcessMapperFailed']],
      ['waits for a pod that is already being deleted', m, { serverVmi, processMapperPod: pod({}, true) }, []],
    ];
    for (const [name, m2, o, expected] of cases) it(name, () => assert.deepEqual(summary(planProcessMapper(m2, { serverNodeUid: 'node-uid', ...o }, DEFAULT_PROCESS_MAPPER)), expected));

    it('waits for the Node’s UID (the pod’s controller reference)', () => {
      assert.deepEqual(summary(planProcessMapper(m, { serverVmi }, DEFAULT_PROCESS_MAPPER)), []);
    });

    it('points the pod at the stored baseline, and replaces it when the user asks to relearn (annotation)', () => {
      const env = (m2: MonitoredServer) => Object.fromEntries((buildProcessMapperPod(m2, { nodeName: 'node-a', name: 'web-1-server', uid: 'u', launcherPodUid: 'l', nodeUid: 'n' }, DEFAULT_PROCESS_MAPPER).spec.containers[0]!.env ?? []).map((e) => [e.name, e.value]));
      assert.equal(env(m).BASELINE_CONFIGMAP, `${DEFAULT_PROCESS_MAPPER.namespace}/${processBaselineName(m)}`);
      assert.equal(env(m).BASELINE_GENERATION, '');
      const relearn = ms();
      relearn.metadata.annotations = { [ANNOTATION_RELEARN_BASELINE]: '2026-12-02T00:00:00Z' };
      assert.equal(env(relearn).BASELINE_GENERATION, '2026-12-02T00:00:00Z');
      assert.deepEqual(summary(planProcessMapper(relearn, { serverVmi, serverNodeUid: 'node-a-uid', processMapperPod: pod(desired.metadata.annotations) }, DEFAULT_PROCESS_MAPPER)), ['delete:processMapper:DeleteProcessMapperFailed']);
    });

    it('creates and replaces the pod in the operator namespace, not the tenant one', () => {
      const [create] = planProcessMapper(m, { serverVmi, serverNodeUid: 'node-a-uid' }, DEFAULT_PROCESS_MAPPER) as Array<Action & { object: Pod }>;
      assert.deepEqual(create?.object.metadata?.ownerReferences, [{ apiVersion: 'v1', kind: 'Node', name: 'node-a', uid: 'node-a-uid', controller: true }]);
      assert.equal(create?.object.metadata?.namespace, DEFAULT_PROCESS_MAPPER.namespace);
      const observed = { ...pod(desired.metadata.annotations), metadata: { ...pod(desired.metadata.annotations).metadata, namespace: DEFAULT_PROCESS_MAPPER.namespace } };
      const [replace] = planProcessMapper(m, { serverVmi: vmi('web-1-server', 'node-b'), serverNodeUid: 'node-b-uid', processMapperPod: observed }, DEFAULT_PROCESS_MAPPER) as DeleteAction[];
      assert.equal(replace?.namespace, DEFAULT_PROCESS_MAPPER.namespace);
    });

    it('finds the MonitoredServer of a mapper pod by its two labels, and deletes an orphan by UID', () => {
      const orphan: Pod = { metadata: { name: 'x', namespace: 'hyperspector-system', uid: 'u1', labels: { [LABEL_MONITORED_SERVER]: 'web-1', [LABEL_MONITORED_SERVER_NAMESPACE]: 'shop' } } };
      assert.deepEqual(processMapperOwnerKeys(orphan), ['shop/web-1']);
      assert.deepEqual(processMapperOwnerKeys({ metadata: { labels: { [LABEL_MONITORED_SERVER]: 'web-1' } } }), [], 'no namespace label: no key');
      const action = orphanedMapperPodDeletion(orphan) as DeleteAction;
      assert.deepEqual([action.type, action.namespace, action.name, action.preconditionUid, action.tolerate], ['delete', 'hyperspector-system', 'x', 'u1', [404, 409]]);
    });
  });

  describe('teardown', () => {
    const deleting = (overrides: Partial<MonitoredServer['spec']> = {}) => {
      const m = ms(overrides);
      m.metadata.deletionTimestamp = T0.toISOString();
      return m;
    };
    const serverVm = stored({ ...buildServerVirtualMachine(ms()) });
    const idsVm = stored(desiredIds(ms()));
    const stuckVmi = vmi('web-1-ids', 'node-a', { deletionTimestamp: new Date(T0.getTime() - TEARDOWN_STALL_MS - 1000).toISOString(), finalizers: ['foregroundDeleteVirtualMachine'] });
    const cases: Array<[string, MonitoredServer, ObservedState, string[], RegExp | undefined]> = [
      ['deletes the process mapper and the IDS VM first, and waits', deleting(), { serverVm, idsVm, processMapperPod: { metadata: { name: 'web-1-process-mapper', uid: 'p' } } }, ['delete:teardown:DeleteProcessMapperFailed', 'delete:teardown:DeleteIDSVMFailed'], /waiting for IDS VirtualMachine/],
      ['deletes the stored process baseline with the mapper', deleting(), { serverVm, idsVm, processMapperPod: { metadata: { name: 'web-1-process-mapper', uid: 'p' } }, processBaseline: { metadata: { name: 'b', namespace: 'hyperspector-system', uid: 'b-uid' } } }, ['delete:teardown:DeleteProcessMapperFailed', 'delete:teardown:DeleteProcessBaselineFailed', 'delete:teardown:DeleteIDSVMFailed'], /waiting for IDS VirtualMachine/],
      ['says when the IDS VMI does not finish deleting', deleting(), { serverVm, idsVm: { ...idsVm, metadata: { ...idsVm.metadata, deletionTimestamp: T0.toISOString() } }, idsVmi: stuckVmi }, [], /has not finished deleting .*virt-handler running on node node-a/],
      ['retains the server VM (Retain): removes only our marks, then the finalizer', deleting({ server: { ...ms().spec.server, deletionPolicy: 'Retain' } }), { serverVm }, ['patch:teardown:ReleaseServerVMFailed', 'patch:teardown:RemoveFinalizerFailed'], undefined],
      ['deletes the server VM (Delete) and waits for it', deleting({ server: { ...ms().spec.server, deletionPolicy: 'Delete' } }), { serverVm }, ['delete:teardown:DeleteServerVMFailed'], /server VirtualMachine shop\/web-1-server to be deleted/],
      ['never deletes an adopted VM, even with Delete: releases it', deleting({ server: { virtualMachineName: 'web-1-server', deletionPolicy: 'Delete' } }), { serverVm }, ['patch:teardown:ReleaseServerVMFailed', 'patch:teardown:RemoveFinalizerFailed'], undefined],
      ["leaves a VM that is not its own alone", deleting(), { serverVm, serverNameTaken: true }, ['patch:teardown:RemoveFinalizerFailed'], undefined],
    ];
    for (const [name, m, o, expected, waiting] of cases) {
      it(name, () => {
        const plan = planTeardown(m, o, T0);
        assert.deepEqual(summary(plan.actions), expected);
        if (waiting) assert.match(plan.waitingOn ?? '', waiting);
        else assert.equal(plan.waitingOn, undefined);
      });
    }

    it('stalls are flagged for a Warning; the finalizer patch only removes our own entry', () => {
      assert.equal(planTeardown(deleting(), { idsVm, idsVmi: stuckVmi }, T0).stalled, true);
      const m = deleting();
      m.metadata.finalizers = ['someone.else/keep', FINALIZER];
      const last = planTeardown(m, {}, T0).actions.at(-1) as PatchAction;
      assert.deepEqual(last.body, [
        { op: 'test', path: '/metadata/finalizers/1', value: FINALIZER },
        { op: 'remove', path: '/metadata/finalizers/1' },
      ]);
      assert.deepEqual(planTeardown(ms({}, []), {}, T0).actions, [], 'nothing to do without our finalizer');
    });
  });

  describe('refusals the user must fix (not retried)', () => {
    const err = (code: number, message: string) => new KubeApiError(message, code);
    const cases: Array<[string, (e: unknown) => boolean, unknown, boolean]> = [
      ['template: 422 from KubeVirt admission', isRefusedTemplate, err(422, 'admission webhook denied'), true],
      ['template: 500 for a field the schema does not declare', isRefusedTemplate, err(500, 'failed to create typed patch object: .spec.template.spec.domain.bogus: field not declared in schema'), true],
      ['template: an unexpected 500 is retried', isRefusedTemplate, err(500, 'etcdserver: request timed out'), false],
      ['template: 403 (RBAC) is retried', isRefusedTemplate, err(403, 'forbidden'), false],
      ['pod: Pod Security 403', isRefusedPod, err(403, 'violates PodSecurity "baseline:latest"'), true],
      ['pod: a service account not made yet is retried', isRefusedPod, err(403, 'error looking up service account shop/default'), false],
      ['pod: 500 is retried', isRefusedPod, err(500, 'internal error'), false],
    ];
    for (const [name, f, e, expected] of cases) it(name, () => assert.equal(f(e), expected));
  });
});
