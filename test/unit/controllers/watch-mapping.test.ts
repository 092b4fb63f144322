import assert from 'node:assert/strict';
import { buildNads, DEFAULT_NETWORKING } from '../../../src/builders/networking.ts';
import { monitoredServerKeysFor } from '../../../src/controllers/monitoredserver/watch-mapping.ts';
import type { KubeObject } from '../../../src/kube/client/objects.ts';
import { monitoredServer } from '../../../testenv/fixtures/monitoredservers.ts';

describe('watch mapping: which MonitoredServers a change wakes', () => {
  const none = () => [];
  const ofNamespace = (ns: string) => (ns === 'shop' ? ['shop/web', 'shop/db'] : []);

  it('a labelled child wakes its MonitoredServer, one adopting it by name, and the one whose child name it takes', () => {
    const vm: KubeObject = { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: 'app-server', namespace: 'shop', labels: { 'hyperspector.io/monitored-server': 'web' } } };
    assert.deepEqual(monitoredServerKeysFor(vm, (k) => (k === 'shop/app-server' ? ['shop/adopter'] : []), ofNamespace).sort(), ['shop/adopter', 'shop/app', 'shop/web']);
  });

  it("a NAD the namespace shares wakes every MonitoredServer of its namespace (one being deleted may be the last that needed it)", () => {
    const ms = monitoredServer('web', 'shop', { mirroring: { enabled: true } });
    const [ids] = buildNads(ms, DEFAULT_NETWORKING);
    assert.deepEqual(monitoredServerKeysFor(ids!, none, ofNamespace), ['shop/web', 'shop/db']);
    const ovs = buildNads(ms, { ...DEFAULT_NETWORKING, mirroring: 'ovs-cni' })[1]!;
    assert.deepEqual(monitoredServerKeysFor(ovs, none, ofNamespace), ['shop/web'], "ovs-cni's NAD is the MonitoredServer's own");
  });
});
