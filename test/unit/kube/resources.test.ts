import assert from 'node:assert/strict';
import { LEASE, NAMESPACE, POD, VIRTUAL_MACHINE, collectionPath, objectPath } from '../../../src/kube/client/resources.ts';
import { isConflict, isGone, isNotFound, statusCodeOf, KubeApiError } from '../../../src/kube/client/rest.ts';

describe('resource paths', () => {
  it('builds core and group collection paths, cluster-wide or per namespace', () => {
    assert.equal(collectionPath(POD), '/api/v1/pods');
    assert.equal(collectionPath(POD, 'shop'), '/api/v1/namespaces/shop/pods');
    assert.equal(collectionPath(VIRTUAL_MACHINE), '/apis/kubevirt.io/v1/virtualmachines');
    assert.equal(collectionPath(NAMESPACE, 'ignored'), '/api/v1/namespaces');
  });

  it('builds object and subresource paths and requires a namespace for namespaced kinds', () => {
    assert.equal(objectPath(LEASE, 'ops', 'hyperspector'), '/apis/coordination.k8s.io/v1/namespaces/ops/leases/hyperspector');
    assert.equal(objectPath(VIRTUAL_MACHINE, 'shop', 'web-1', 'status'), '/apis/kubevirt.io/v1/namespaces/shop/virtualmachines/web-1/status');
    assert.equal(objectPath(NAMESPACE, undefined, 'shop'), '/api/v1/namespaces/shop');
    assert.throws(() => objectPath(POD, undefined, 'p'), /Pod p: a namespace is required/);
  });
});

describe('API error helpers', () => {
  it('reads the HTTP status from KubeApiError, client-node ApiException and Watch errors', () => {
    assert.equal(statusCodeOf(new KubeApiError('x', 404)), 404);
    assert.equal(statusCodeOf({ code: 409 }), 409);
    assert.equal(statusCodeOf({ statusCode: 410 }), 410);
    assert.equal(statusCodeOf(new Error('ECONNREFUSED')), undefined);
    assert.equal(isNotFound(new KubeApiError('x', 404)), true);
    assert.equal(isConflict(new KubeApiError('x', 409)), true);
    assert.equal(isGone(new KubeApiError('x', 410)), true);
    assert.equal(isGone(new KubeApiError('x', undefined)), false);
  });
});
