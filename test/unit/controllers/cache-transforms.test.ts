/* eslint-disable @typescript-eslint/no-explicit-any -- fixtures are API server JSON of several kinds */
import assert from 'node:assert/strict';
import { Outcomes } from '../../../src/controllers/monitoredserver/actions.ts';
import {
  transformMonitoredServer,
  transformProcessMapperPod,
  transformVirtualMachine,
  transformVirtualMachineInstance,
} from '../../../src/controllers/monitoredserver/cache-transforms.ts';
import { vmiNeedsRestart, vmiNode, vmiIsReady, type ObservedState } from '../../../src/controllers/monitoredserver/observed-state.ts';
import { computeStatus } from '../../../src/controllers/monitoredserver/status.ts';
import { buildServerVirtualMachine } from '../../../src/builders/server-vm.ts';
import { FIELD_MANAGER, needsApply, type ManagedFieldsEntry } from '../../../src/kube/client/apply.ts';
import { LAST_APPLIED_ANNOTATION } from '../../../src/kube/runtime/cache-transform.ts';
import { monitoredServer, vmTemplate } from '../../../testenv/fixtures/monitoredservers.ts';

const NOW = new Date('2026-11-29T10:00:00Z');

/** managedFields as the API server records them for a VM written by kubectl, virt-controller and the operator. */
function managedFields(ownSpec: Record<string, unknown>): ManagedFieldsEntry[] {
  return [
    { manager: 'kubectl-client-side-apply', operation: 'Update', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:annotations': { '.': {}, [`f:${LAST_APPLIED_ANNOTATION}`]: {} } }, 'f:spec': { 'f:template': { 'f:spec': { 'f:domain': {} } } } } },
    { manager: 'virt-controller', operation: 'Update', subresource: 'status', fieldsType: 'FieldsV1', fieldsV1: { 'f:status': { 'f:conditions': {}, 'f:printableStatus': {}, 'f:ready': {} } } },
    { manager: FIELD_MANAGER, operation: 'Apply', fieldsType: 'FieldsV1', fieldsV1: ownSpec },
  ];
}

/** A tenant's VM as the API server returns it: template with disks and cloud-init, status, managedFields. */
function tenantVm(): any {
  const template = vmTemplate({ app: 'shop-db' });
  const spec = structuredClone(template.spec) as any;  
  spec.template.spec.volumes.push({ name: 'cloudinitdisk', cloudInitNoCloud: { userData: `#cloud-config\n${'packages: [nginx]\n'.repeat(100)}` } });
  return {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachine',
    metadata: {
      name: 'shop-db',
      namespace: 'shop',
      uid: 'vm-uid',
      resourceVersion: '42',
      generation: 3,
      creationTimestamp: '2026-11-29T09:00:00Z',
      labels: { app: 'shop-db' },
      annotations: { description: 'the shop database', [LAST_APPLIED_ANNOTATION]: JSON.stringify({ spec }) },
      finalizers: ['kubevirt.io/virtualMachineControllerFinalize'],
      managedFields: managedFields({}).slice(0, 2),
    },
    spec,
    status: {
      printableStatus: 'Running',
      ready: true,
      created: true,
      conditions: [{ type: 'Ready', status: 'True' }, { type: 'RestartRequired', status: 'True', message: 'a non-live-updatable field was changed' }],
      desiredGeneration: 3,
      observedGeneration: 3,
      volumeSnapshotStatuses: [{ name: 'rootdisk', enabled: false, reason: 'No VolumeSnapshotClass' }],
    },
  };
}

function vmi(name: string, node: string, generation: string): any {
  return {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachineInstance',
    metadata: {
      name,
      namespace: 'shop',
      uid: `${name}-vmi-uid`,
      resourceVersion: '77',
      labels: { 'kubevirt.io/nodeName': node },
      annotations: { 'kubevirt.io/vm-generation': generation, 'kubevirt.io/latest-observed-api-version': 'v1' },
      finalizers: ['kubevirt.io/virtualMachineControllerFinalize', 'foregroundDeleteVirtualMachine'],
      managedFields: managedFields({}).slice(1, 2),
    },
    spec: { hostname: name, domain: { devices: { disks: [{ name: 'rootdisk' }] }, firmware: { uuid: 'u', serial: 's' } }, volumes: [{ name: 'rootdisk', containerDisk: { image: 'debian:12' } }] },
    status: {
      phase: 'Running',
      nodeName: node,
      conditions: [{ type: 'Ready', status: 'True' }, { type: 'LiveMigratable', status: 'True' }],
      interfaces: [{ name: 'default', ipAddress: '10.0.0.7', mac: '02:00:00:00:00:01' }],
      volumeStatus: [{ name: 'rootdisk', target: 'vda' }],
      guestOSInfo: { id: 'debian', kernelRelease: '6.1.0-28-amd64' },
      launcherContainerImageVersion: 'quay.io/kubevirt/virt-launcher:v1.8.2',
    },
  };
}

describe('MonitoredServer controller cache transforms', () => {
  it('keeps of a VM that is not ours its identity, labels, annotations, run strategy and status summary; drops the template and every managedFields entry', () => {
    const kept = transformVirtualMachine(tenantVm());
    assert.deepEqual(kept, {
      apiVersion: 'kubevirt.io/v1',
      kind: 'VirtualMachine',
      metadata: {
        name: 'shop-db',
        namespace: 'shop',
        uid: 'vm-uid',
        resourceVersion: '42',
        generation: 3,
        creationTimestamp: '2026-11-29T09:00:00Z',
        labels: { app: 'shop-db' },
        annotations: { description: 'the shop database' },
        finalizers: ['kubevirt.io/virtualMachineControllerFinalize'],
      },
      spec: { runStrategy: 'Always' },
      status: {
        printableStatus: 'Running',
        ready: true,
        created: true,
        conditions: [{ type: 'Ready', status: 'True' }, { type: 'RestartRequired', status: 'True', message: 'a non-live-updatable field was changed' }],
        desiredGeneration: 3,
        observedGeneration: 3,
      },
    });
    assert.ok(JSON.stringify(kept).length * 5 < JSON.stringify(tenantVm()).length, 'the cached VM is a small fraction of the full one');
  });

  it('keeps the whole spec of a VM HyperSpector created and its own managedFields entry, so applyIfChanged decides as on the full object', () => {
    const ms = monitoredServer('web-1', 'shop');
    ms.metadata.uid = 'ms-uid';
    const desired: any = buildServerVirtualMachine(ms);
    const own = { 'f:metadata': { 'f:labels': { 'f:hyperspector.io/monitored-server': {} } }, 'f:spec': { 'f:runStrategy': {} } };
    const live: any = {
      ...structuredClone(desired),
      metadata: { ...structuredClone(desired.metadata), uid: 'vm-uid', resourceVersion: '9', generation: 1, managedFields: managedFields(own) },
      status: { printableStatus: 'Running' },
    };
    const kept = transformVirtualMachine(live);
    assert.deepEqual(kept.spec, live.spec);
    assert.deepEqual(kept.metadata!.labels, live.metadata.labels);
    assert.deepEqual(kept.metadata!.ownerReferences, live.metadata.ownerReferences);
    // Every writer's entry of the main resource (drift detection names them), none of a subresource.
    assert.deepEqual(kept.metadata!.managedFields?.map((e: ManagedFieldsEntry) => e.manager), ['kubectl-client-side-apply', FIELD_MANAGER]);
    assert.equal(needsApply(desired, kept), false);
    assert.equal(needsApply(desired, live), false);
    // A field the operator applied and no longer wants: only the kept managedFields entry tells.
    const { runStrategy: _gone, ...specWithout } = desired.spec as Record<string, unknown>;
    const shrunk = { ...desired, spec: specWithout };
    assert.equal(needsApply(shrunk, live), true);
    assert.equal(needsApply(shrunk, kept), true);
  });

  it('keeps of a VMI its generation annotation, hostname, phase, node, conditions and volume status; drops its spec copy, interfaces and guest info', () => {
    const full = vmi('web-1-server', 'node-a', '2');
    const kept = transformVirtualMachineInstance(full);
    assert.deepEqual(kept, {
      apiVersion: 'kubevirt.io/v1',
      kind: 'VirtualMachineInstance',
      metadata: {
        name: 'web-1-server',
        namespace: 'shop',
        uid: 'web-1-server-vmi-uid',
        resourceVersion: '77',
        labels: { 'kubevirt.io/nodeName': 'node-a' },
        annotations: { 'kubevirt.io/vm-generation': '2', 'kubevirt.io/latest-observed-api-version': 'v1' },
        finalizers: ['kubevirt.io/virtualMachineControllerFinalize', 'foregroundDeleteVirtualMachine'],
      },
      spec: { hostname: 'web-1-server', volumes: [{ name: 'rootdisk' }] },
      status: { phase: 'Running', nodeName: 'node-a', conditions: [{ type: 'Ready', status: 'True' }, { type: 'LiveMigratable', status: 'True' }], volumeStatus: [{ name: 'rootdisk', target: 'vda' }] },
    });
    const vm = tenantVm();
    assert.equal(vmiNode(kept), vmiNode(full));
    assert.equal(vmiIsReady(kept), vmiIsReady(full));
    assert.equal(vmiNeedsRestart(transformVirtualMachine(vm), kept), vmiNeedsRestart(vm, full));
    assert.equal(vmiNeedsRestart(vm, full), true);
  });

  it('keeps of the process-mapper pod its spec-hash annotation, node, phase, conditions and container states; drops containers and volumes', () => {
    const pod: any = {
      metadata: {
        name: 'web-1-process-mapper',
        namespace: 'shop',
        uid: 'pod-uid',
        resourceVersion: '5',
        labels: { 'hyperspector.io/role': 'process-mapper' },
        annotations: { 'hyperspector.io/spec-hash': 'abc' },
        managedFields: managedFields({}),
      },
      apiVersion: 'v1',
      kind: 'Pod',
      spec: { nodeName: 'node-a', hostPID: true, containers: [{ name: 'process-mapper', image: 'hyperspector/operator:0.1.0', args: ['--x'] }], volumes: [{ name: 'profiles', configMap: { name: 'p' } }] },
      status: {
        phase: 'Pending',
        podIP: '10.0.0.9',
        conditions: [{ type: 'Ready', status: 'False' }],
        containerStatuses: [{ name: 'process-mapper', ready: false, restartCount: 2, image: 'x', imageID: 'y', containerID: 'z', state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off' } } }],
      },
    };
    assert.deepEqual(transformProcessMapperPod(pod), {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web-1-process-mapper', namespace: 'shop', uid: 'pod-uid', resourceVersion: '5', labels: { 'hyperspector.io/role': 'process-mapper' }, annotations: { 'hyperspector.io/spec-hash': 'abc' } },
      spec: { nodeName: 'node-a' },
      status: {
        phase: 'Pending',
        conditions: [{ type: 'Ready', status: 'False' }],
        containerStatuses: [{ name: 'process-mapper', ready: false, restartCount: 2, state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off' } } }],
      },
    });
  });

  it('keeps a MonitoredServer whole but for others\' managedFields and the last-applied annotation', () => {
    const ms: any = monitoredServer('web-1', 'shop');
    ms.metadata = { ...ms.metadata, uid: 'u', resourceVersion: '3', annotations: { [LAST_APPLIED_ANNOTATION]: '{}', team: 'a' }, managedFields: managedFields({ 'f:status': {} }) };
    ms.status = { observedGeneration: 1, conditions: [{ type: 'Ready', status: 'False' }] };
    const kept = transformMonitoredServer(ms);
    assert.deepEqual(kept.spec, ms.spec);
    assert.deepEqual(kept.status, ms.status);
    assert.deepEqual(kept.metadata!.annotations, { team: 'a' });
    assert.deepEqual(kept.metadata!.managedFields?.map((e: ManagedFieldsEntry) => e.manager), [FIELD_MANAGER]);
  });

  it('yields the same MonitoredServer status from the cached objects as from the full ones', () => {
    const ms = monitoredServer('web-1', 'shop');
    ms.metadata.generation = 2;
    const serverVm = { ...tenantVm(), metadata: { ...tenantVm().metadata, name: 'web-1-server', labels: { 'hyperspector.io/monitored-server': 'web-1' } } };
    const idsVm = { ...tenantVm(), metadata: { ...tenantVm().metadata, name: 'web-1-ids', labels: { 'hyperspector.io/monitored-server': 'web-1' } } };
    const full = { serverVm, serverVmi: vmi('web-1-server', 'node-a', '3'), idsVm, idsVmi: vmi('web-1-ids', 'node-b', '3') } as unknown as ObservedState;
    const cached = {
      serverVm: transformVirtualMachine(serverVm),
      serverVmi: transformVirtualMachineInstance(vmi('web-1-server', 'node-a', '3')),
      idsVm: transformVirtualMachine(idsVm),
      idsVmi: transformVirtualMachineInstance(vmi('web-1-ids', 'node-b', '3')),
    } as unknown as ObservedState;
    assert.deepEqual(computeStatus(ms, cached, new Outcomes(), NOW), computeStatus(ms, full, new Outcomes(), NOW));
    const foreign = { serverVm: transformVirtualMachine(tenantVm()) } as unknown as ObservedState;
    assert.deepEqual(computeStatus(ms, foreign, new Outcomes(), NOW), computeStatus(ms, { serverVm: tenantVm() } as unknown as ObservedState, new Outcomes(), NOW));
  });
});
