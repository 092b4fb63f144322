import assert from 'node:assert/strict';
import { buildNads, DEFAULT_NETWORKING } from '../../../src/builders/networking.ts';
import { cniPlugins, nodeSideAttachmentName } from '../../../testenv/real-guests/multus-attachments.ts';
import { monitoredServer } from '../../../testenv/fixtures/monitoredservers.ts';

describe('test world: the Multus double reads the NADs the operator makes', () => {
  it('reads the plugin chains of the tc mirror NAD and the vxlan IDS-network NAD', () => {
    const ms = monitoredServer('web', 'shop', { mirroring: { enabled: true } });
    ms.metadata.uid = 'u-1';
    const byName = Object.fromEntries(buildNads(ms, DEFAULT_NETWORKING).map((n) => [n.metadata!.name!, cniPlugins(n.spec.config)]));
    assert.deepEqual(byName['hyperspector-mirror']!.map((p) => p.type), ['dummy', 'tuning']);
    assert.equal(byName['hyperspector-mirror']![1]!.mtu, 1500);
    assert.deepEqual(byName['hyperspector-ids']!.map((p) => [p.type, p.bridge, p.mtu]), [['bridge', 'hsids0', 1450]]);
  });

  it('reads a single-plugin config, and none from an empty one', () => {
    assert.deepEqual(cniPlugins('{"cniVersion":"0.4.0","type":"bridge","bridge":"br1"}').map((p) => p.bridge), ['br1']);
    assert.deepEqual(cniPlugins('{}'), []);
  });

  it('names the node end of an attachment within IFNAMSIZ, apart per pod and attachment', () => {
    const a = nodeSideAttachmentName('1d5d5000-0000-4000-8000-00000000000b', 0);
    assert.equal(a, 'vn1d5d5000000');
    assert.ok(a.length <= 15);
    assert.notEqual(nodeSideAttachmentName('1d5d5000-0000-4000-8000-00000000000b', 1), a);
  });
});
