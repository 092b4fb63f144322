import assert from 'node:assert/strict';
import { enqueueController, enqueueMapped, enqueueObject, onlyResourceVersionChanged, parseKey } from '../../../src/kube/runtime/handlers.ts';
import type { TestObject } from '../../../src/kube/testing/test-object.ts';

function sink() {
  const keys: string[] = [];
  return { keys, add: (k: string) => keys.push(k) };
}

const ms: TestObject = { apiVersion: 'hyperspector.io/v1alpha1', kind: 'MonitoredServer', metadata: { name: 'web-1', namespace: 'shop' } };
function ownedVm(owner: string, controller = true, apiVersion = 'hyperspector.io/v1alpha1'): TestObject {
  return {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachine',
    metadata: { name: `${owner}-ids`, namespace: 'shop', ownerReferences: [{ apiVersion, kind: 'MonitoredServer', name: owner, uid: 'u', controller }] },
  };
}

describe('informer → queue handlers', () => {
  it('enqueueObject adds the object key on add, update and delete', () => {
    const q = sink();
    const h = enqueueObject(q);
    h.onAdd!(ms);
    h.onUpdate!(ms, ms);
    h.onDelete!(ms);
    assert.deepEqual(q.keys, ['shop/web-1', 'shop/web-1', 'shop/web-1']);
  });

  it('enqueueController maps a child to its controlling MonitoredServer, any version of the group', () => {
    const q = sink();
    const h = enqueueController(q, 'hyperspector.io', 'MonitoredServer');
    h.onAdd!(ownedVm('web-1'));
    h.onAdd!(ownedVm('web-2', true, 'hyperspector.io/v1beta1'));
    h.onAdd!(ownedVm('not-controller', false));
    h.onAdd!(ownedVm('other-group', true, 'example.com/v1'));
    h.onAdd!({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'shop' } });
    assert.deepEqual(q.keys, ['shop/web-1', 'shop/web-2']);
  });

  it('wakes both the old and the new owner on update, once each', () => {
    const q = sink();
    const h = enqueueController(q, 'hyperspector.io', 'MonitoredServer');
    h.onUpdate!(ownedVm('web-1'), ownedVm('web-2'));
    h.onUpdate!(ownedVm('web-3'), ownedVm('web-3'));
    assert.deepEqual(q.keys, ['shop/web-1', 'shop/web-2', 'shop/web-3']);
  });

  it('a new version that changes nothing the cache keeps wakes nobody; a resync and a real change do', () => {
    const q = sink();
    const h = enqueueObject(q);
    const v1: TestObject = { ...ms, metadata: { ...ms.metadata, resourceVersion: '1', labels: { a: 'x' } } };
    // What the cache transform left of a VMI whose guest-agent data changed: the same but for the version.
    h.onUpdate!(v1, { ...v1, metadata: { ...v1.metadata, resourceVersion: '2' } });
    assert.deepEqual(q.keys, []);
    // A resync hands the same version again: level-triggered, it still wakes the owner.
    h.onUpdate!(v1, v1);
    h.onUpdate!(v1, { ...v1, metadata: { ...v1.metadata } });
    // A label changed with the version.
    h.onUpdate!(v1, { ...v1, metadata: { ...v1.metadata, resourceVersion: '3', labels: { a: 'y' } } });
    // A field beside metadata changed.
    h.onUpdate!(v1, { ...v1, metadata: { ...v1.metadata, resourceVersion: '4' }, status: { phase: 'Running' } } as TestObject);
    assert.deepEqual(q.keys, ['shop/web-1', 'shop/web-1', 'shop/web-1', 'shop/web-1']);
  });

  it('onlyResourceVersionChanged needs two different versions to say so', () => {
    const o: TestObject = { ...ms, metadata: { ...ms.metadata, resourceVersion: '7' } };
    assert.equal(onlyResourceVersionChanged(o, { ...o, metadata: { ...o.metadata, resourceVersion: '8' } }), true);
    assert.equal(onlyResourceVersionChanged(o, o), false);
    assert.equal(onlyResourceVersionChanged(ms, ms), false, 'objects without a version (built in tests) are never said unchanged');
    assert.equal(onlyResourceVersionChanged(o, { ...o, metadata: { ...o.metadata, resourceVersion: '8', generation: 2 } }), false);
  });

  it('enqueueMapped uses any mapping, e.g. from a label', () => {
    const q = sink();
    const h = enqueueMapped<TestObject>(q, (o) => (o.metadata.labels?.server ? [`${o.metadata.namespace}/${o.metadata.labels.server}`] : []));
    h.onAdd!({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'virt-launcher-x', namespace: 'shop', labels: { server: 'web-1' } } });
    h.onAdd!({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'unrelated', namespace: 'shop' } });
    assert.deepEqual(q.keys, ['shop/web-1']);
  });

  it('parseKey splits namespaced and cluster-scoped keys', () => {
    assert.deepEqual(parseKey('shop/web-1'), { namespace: 'shop', name: 'web-1' });
    assert.deepEqual(parseKey('node-a'), { name: 'node-a' });
  });
});
