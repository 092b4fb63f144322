import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { renderFile } from '../../../src/cli/commands/render.ts';
import { formatStatus } from '../../../src/cli/commands/status.ts';
import { REPO_ROOT } from '../../../testenv/repo-root.ts';
import { monitoredServer } from '../../../testenv/fixtures/monitoredservers.ts';

describe('kubectl-hyperspector render', () => {
  it('renders the server VM and the IDS VM of an example, with the same builders as the operator', () => {
    const out = renderFile(readFileSync(`${REPO_ROOT}examples/10-web-monitored-server.yaml`, 'utf8'), 'node-x');
    const docs = parseAllDocuments(out).map((d) => d.toJS() as { metadata: { name: string }; spec: { template: { spec: { nodeSelector?: Record<string, string>; evictionStrategy?: string } } } });
    const names = docs.map((d) => d.metadata.name);
    assert.equal(names[0], 'web-1-server');
    assert.equal(names.at(-1), 'web-1-ids');
    assert.ok(names.includes('hyperspector-ids'), `the IDS network NAD (shared by the namespace) is rendered: ${names.join(', ')}`);
    assert.equal(docs[0]!.spec.template.spec.evictionStrategy, 'External');
    assert.equal(docs.at(-1)!.spec.template.spec.nodeSelector?.['kubernetes.io/hostname'], 'node-x');
    assert.match(out, /hyperspector-ids/);
    assert.match(out, /# server VM \(server-side apply; deletionPolicy Retain\)/);
  });

  it('renders only the adoption marks for an adopted VM', () => {
    const out = renderFile(readFileSync(`${REPO_ROOT}examples/30-db-monitored-server.yaml`, 'utf8'), 'n');
    const [marks] = parseAllDocuments(out).map((d) => d.toJS() as Record<string, unknown>);
    assert.deepEqual(Object.keys(marks!), ['apiVersion', 'kind', 'metadata']);
  });

  it('says clearly when the input holds no MonitoredServer', () => {
    assert.throws(() => renderFile('kind: ConfigMap\napiVersion: v1\n', 'n'), /no MonitoredServer found/);
  });
});

describe('kubectl-hyperspector status', () => {
  it('shows each condition with reason and message', () => {
    const ms = monitoredServer('web-1', 'shop');
    ms.metadata.generation = 2;
    ms.status = {
      observedGeneration: 2,
      nodeName: 'node-a',
      serverVM: { name: 'web-1-server', phase: 'Running' },
      idsVM: { name: 'web-1-ids', phase: 'Starting' },
      conditions: [
        { type: 'Ready', status: 'False', reason: 'IDSVMStarting', message: 'x', lastTransitionTime: '2026-11-29T10:00:00Z' },
        { type: 'IDSRunning', status: 'False', reason: 'IDSVMStarting', message: 'IDS VirtualMachine shop/web-1-ids is Starting', lastTransitionTime: '2026-11-29T10:00:00Z' },
      ],
    };
    const out = formatStatus([ms], new Date('2026-11-29T10:01:00Z'));
    assert.match(out, /✘ shop\/web-1 {2}IDSVMStarting {2}node=node-a {2}server=web-1-server\(Running\) {2}ids=web-1-ids\(Starting\)/);
    assert.match(out, /✘ IDSRunning\s+IDSVMStarting\s+60s {2}IDS VirtualMachine shop\/web-1-ids is Starting/);
  });
});
