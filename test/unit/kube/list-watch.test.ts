// apiListWatch's list: pages through the API and gives every item the apiVersion and kind a watch
// event would carry, which lists of built-in objects leave off their items.
import assert from 'node:assert/strict';
import type { KubeAuth } from '../../../src/kube/client/light-kubeconfig.ts';
import type { KubeObject } from '../../../src/kube/client/objects.ts';
import type { ApiRequest, KubeApi } from '../../../src/kube/client/rest.ts';
import { apiListWatch } from '../../../src/kube/runtime/list-watch.ts';

function pagedApi(pages: Array<Record<string, unknown>>): { api: KubeApi; requests: ApiRequest[] } {
  const requests: ApiRequest[] = [];
  return {
    requests,
    api: {
      async request<T>(req: ApiRequest): Promise<T> {
        requests.push(req);
        return pages[requests.length - 1] as T;
      },
    },
  };
}

const noAuth = {} as KubeAuth;

describe('apiListWatch list', () => {
  it('sets apiVersion and kind on the items of a built-in list, across pages, before the transform', async () => {
    const { api, requests } = pagedApi([
      { apiVersion: 'v1', kind: 'SecretList', metadata: { resourceVersion: '10', continue: 'next' }, items: [{ metadata: { name: 'a' }, data: {} }] },
      { apiVersion: 'v1', kind: 'SecretList', metadata: { resourceVersion: '11' }, items: [{ metadata: { name: 'b' } }] },
    ]);
    const source = apiListWatch<KubeObject>(noAuth, api, { path: '/api/v1/secrets', labelSelector: 'role=x' });
    const seen: KubeObject[] = [];
    const result = await source.list(new AbortController().signal, (o) => {
      seen.push(o);
      return o;
    });
    assert.deepEqual(
      result.items.map((i) => [i.apiVersion, i.kind, i.metadata?.name]),
      [
        ['v1', 'Secret', 'a'],
        ['v1', 'Secret', 'b'],
      ],
    );
    assert.equal(seen[0]?.kind, 'Secret', 'the transform sees the typed object');
    assert.equal(result.resourceVersion, '11');
    assert.deepEqual(requests.map((r) => r.query?.continue), [undefined, 'next']);
  });

  it('keeps what the items say (custom resources carry their own), and leaves a generic List alone', async () => {
    const { api } = pagedApi([
      { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineList', metadata: { resourceVersion: '3' }, items: [{ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: 'vm' } }] },
    ]);
    const vms = await apiListWatch<KubeObject>(noAuth, api, { path: '/apis/kubevirt.io/v1/virtualmachines' }).list(new AbortController().signal);
    assert.deepEqual([vms.items[0]?.apiVersion, vms.items[0]?.kind], ['kubevirt.io/v1', 'VirtualMachine']);

    const { api: generic } = pagedApi([{ apiVersion: 'v1', kind: 'List', metadata: {}, items: [{ metadata: { name: 'x' } }] }]);
    const items = await apiListWatch<KubeObject>(noAuth, generic, { path: '/x' }).list(new AbortController().signal);
    assert.equal(items.items[0]?.kind, undefined);
  });
});
