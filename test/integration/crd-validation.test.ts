// The API server itself refuses malformed MonitoredServers (schema, enums, bounds, CEL rules,
// immutability, strict field validation), each with a message naming the field.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';
import { parse } from 'yaml';
import { startCluster, type LocalCluster } from '../../testenv/cluster/local-cluster.ts';
import { monitoredServer } from '../../testenv/fixtures/monitoredservers.ts';
import { REPO_ROOT } from '../../testenv/repo-root.ts';
import { MAX_NAME_LENGTH } from '../../src/api/v1alpha1/monitoredserver-types.ts';
import { ANNOTATION_MONITORED_BY, ANNOTATION_PAIRED_WITH } from '../../src/builders/names.ts';

const NS = 'validation';
const target = { group: 'hyperspector.io', version: 'v1alpha1', plural: 'monitoredservers', namespace: NS };

type Mutation = (ms: Record<string, any>) => void; // eslint-disable-line @typescript-eslint/no-explicit-any

function apiMessage(err: unknown): string {
  const body = (err as { body?: unknown }).body;
  try {
    return (JSON.parse(String(body)) as { message: string }).message;
  } catch {
    return String(body ?? err);
  }
}

describe('MonitoredServer CRD validation (real kube-apiserver)', function () {
  let cluster: LocalCluster;
  let api: k8s.CustomObjectsApi;

  before(async function () {
    cluster = await startCluster({ nodes: 1 });
    api = cluster.api(k8s.CustomObjectsApi);
    await cluster.api(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: NS } } });
  });

  after(async () => cluster?.stop());

  async function create(body: object): Promise<Record<string, any>> { // eslint-disable-line @typescript-eslint/no-explicit-any
    return api.createNamespacedCustomObject({ ...target, body, fieldValidation: 'Strict' });
  }

  async function refused(body: object): Promise<string> {
    try {
      await create(body);
    } catch (err) {
      // 422 for schema and CEL violations; 400 for unknown fields under strict field validation.
      assert.ok([400, 422].includes((err as { code?: number }).code ?? 0), `expected 400 or 422, got ${String(err)}`);
      return apiMessage(err);
    }
    assert.fail(`the API server accepted ${JSON.stringify(body)}`);
  }

  const cases: Array<[string, Mutation, RegExp]> = [
    ['both virtualMachineName and template', (ms) => (ms.spec.server.virtualMachineName = 'web'), /spec\.server: Invalid value.*exactly one of spec\.server\.virtualMachineName .* or spec\.server\.template/],
    ['neither virtualMachineName nor template', (ms) => delete ms.spec.server.template, /spec\.server: Invalid value.*exactly one of spec\.server\.virtualMachineName/],
    ['an unknown mirroring direction', (ms) => (ms.spec.mirroring = { direction: 'Sideways' }), /spec\.mirroring\.direction: Unsupported value: "Sideways"/],
    ['an unknown disk inspection mode', (ms) => (ms.spec.diskInspection = { mode: 'Copy' }), /spec\.diskInspection\.mode: Unsupported value: "Copy"/],
    ['a relative mount path', (ms) => (ms.spec.diskInspection = { mountPath: 'serverfs' }), /spec\.diskInspection\.mountPath: Invalid value: "serverfs"/],
    ['a mount path with ..', (ms) => (ms.spec.diskInspection = { mountPath: '/mnt/../etc' }), /spec\.diskInspection\.mountPath: Invalid value.*must not contain \. or \.\. segments/],
    ['a poll interval of 0', (ms) => (ms.spec.processMapping = { pollIntervalSeconds: 0 }), /spec\.processMapping\.pollIntervalSeconds: Invalid value: 0: .*greater than or equal to 1/],
    ['a baseline window over a day', (ms) => (ms.spec.processMapping = { baselineWindowSeconds: 90000 }), /spec\.processMapping\.baselineWindowSeconds: Invalid value: 90000: .*less than or equal to 86400/],
    ['an unknown alert response', (ms) => (ms.spec.response = { onAlert: 'Kill' }), /spec\.response\.onAlert: Unsupported value: "Kill"/],
    [
      'deletionPolicy Delete on an adopted VM',
      (ms) => {
        delete ms.spec.server.template;
        ms.spec.server.virtualMachineName = 'db-1';
        ms.spec.server.deletionPolicy = 'Delete';
      },
      /spec\.server\.deletionPolicy: Forbidden: .*must be Retain when adopting/,
    ],
    [
      'a VM name that is not a DNS label',
      (ms) => {
        delete ms.spec.server.template;
        ms.spec.server.virtualMachineName = 'Web_1';
      },
      /spec\.server\.virtualMachineName: Invalid value: "Web_1"/,
    ],
    ['no IDS VM', (ms) => delete ms.spec.ids, /spec\.ids: Required value/],
    ['an IDS template without spec', (ms) => (ms.spec.ids.template = { metadata: {} }), /spec\.ids\.template\.spec: Required value/],
    ['a name too long for its children', (ms) => (ms.metadata.name = 'a'.repeat(57)), /metadata\.name must be at most 56 characters/],
    ['a duplicated disk', (ms) => (ms.spec.server.disks = ['rootdisk', 'rootdisk']), /spec\.server\.disks\[1\]: Duplicate value: "rootdisk"/],
    ['too many disks', (ms) => (ms.spec.server.disks = Array.from({ length: 17 }, (_, i) => `d${i}`)), /spec\.server\.disks: Too many: 17: must have at most 16 items/],
    ['a field outside the schema', (ms) => (ms.spec.server.nodeName = 'node-a'), /unknown field "spec\.server\.nodeName"/],
  ];

  for (const [what, mutate, expected] of cases) {
    it(`refuses ${what}`, async function () {
      const ms = monitoredServer('bad', NS) as unknown as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
      mutate(ms);
      const message = await refused(ms);
      assert.match(message, expected);
    });
  }

  // Template metadata is copied onto the VirtualMachine the operator applies, so the CRD refuses what
  // the API server would refuse in that VM's metadata (and a bound of its own on the number of entries).
  // Each case is also tried as a ConfigMap's metadata (plus the annotations the VM gets from HyperSpector
  // and KubeVirt), to prove the verdict matches Kubernetes' own.
  describe('labels and annotations of the VM templates', function () {
    type Metadata = { labels?: Record<string, string>; annotations?: Record<string, string> };
    const longPrefix = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`; // 253 characters
    const bad: Array<{ what: string; metadata: Metadata; expected: (field: string) => RegExp; kubernetesRefuses: boolean }> = [
      { what: 'a label key with a space', metadata: { labels: { 'bad key': 'x' } }, expected: (f) => new RegExp(`${f}\\.labels: Invalid value: label keys must be qualified names, not "bad key"`), kubernetesRefuses: true },
      { what: 'a label key name of 64 characters', metadata: { labels: { ['n'.repeat(64)]: 'x' } }, expected: (f) => new RegExp(`${f}\\.labels: .*label keys must be qualified names, not "n{64}"`), kubernetesRefuses: true },
      { what: 'a label key prefix of 254 characters', metadata: { labels: { [`${longPrefix}e/app`]: 'x' } }, expected: (f) => new RegExp(`${f}\\.labels: .*label keys must be qualified names, not "${longPrefix}e/app"`), kubernetesRefuses: true },
      { what: 'a label key with a capitalized prefix', metadata: { labels: { 'Example.com/tier': 'x' } }, expected: (f) => new RegExp(`${f}\\.labels: .*not "Example\\.com/tier"`), kubernetesRefuses: true },
      { what: 'a label key with two slashes', metadata: { labels: { 'example.com/a/b': 'x' } }, expected: (f) => new RegExp(`${f}\\.labels: .*not "example\\.com/a/b"`), kubernetesRefuses: true },
      { what: 'a label key with an empty prefix', metadata: { labels: { '/app': 'x' } }, expected: (f) => new RegExp(`${f}\\.labels: .*not "/app"`), kubernetesRefuses: true },
      { what: 'an empty label key', metadata: { labels: { '': 'x' } }, expected: (f) => new RegExp(`${f}\\.labels: .*label keys must be qualified names, not ""`), kubernetesRefuses: true },
      { what: 'a label value with a space', metadata: { labels: { app: 'web server' } }, expected: (f) => new RegExp(`${f}\\.labels\\[app\\]: Invalid value: "[^"]*": a label value must be empty or`), kubernetesRefuses: true },
      { what: 'a label value ending in a dash', metadata: { labels: { app: 'web-' } }, expected: (f) => new RegExp(`${f}\\.labels\\[app\\]: Invalid value: "[^"]*": a label value must be empty or`), kubernetesRefuses: true },
      { what: 'a label value of 64 characters', metadata: { labels: { app: 'v'.repeat(64) } }, expected: (f) => new RegExp(`${f}\\.labels\\.app: Too long: may not be more than 63 bytes`), kubernetesRefuses: true },
      { what: 'more than 64 labels', metadata: { labels: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`l${i}`, 'x'])) }, expected: (f) => new RegExp(`${f}\\.labels: Too many: 65: must have at most 64 items`), kubernetesRefuses: false },
      { what: 'an annotation key with a space', metadata: { annotations: { 'bad key': 'x' } }, expected: (f) => new RegExp(`${f}\\.annotations: Invalid value: annotation keys must be qualified names, not "bad key"`), kubernetesRefuses: true },
      { what: 'an annotation key with two slashes', metadata: { annotations: { 'example.com/a/b': 'x' } }, expected: (f) => new RegExp(`${f}\\.annotations: .*annotation keys must be qualified names, not "example\\.com/a/b"`), kubernetesRefuses: true },
      { what: 'an annotation of 1 MB', metadata: { annotations: { note: 'x'.repeat(1024 * 1024) } }, expected: (f) => new RegExp(`${f}\\.annotations\\.note: Too long: may not be more than 261120 bytes`), kubernetesRefuses: true },
      {
        what: 'annotations of 256 KiB + 1 byte in all',
        metadata: { annotations: { a: 'x'.repeat(131071), b: 'y'.repeat(131072) } },
        expected: (f) => new RegExp(`${f}\\.annotations: Invalid value: annotations are too large: keys and values together must be at most 261120 bytes`),
        kubernetesRefuses: true,
      },
      {
        // Within Kubernetes' limit even with HyperSpector's and KubeVirt's annotations, but not ours: the last KiB stays free.
        what: 'annotations of 255 KiB + 1 byte in all',
        metadata: { annotations: { a: 'x'.repeat(130559), b: 'y'.repeat(130560) } },
        expected: (f) => new RegExp(`${f}\\.annotations: Invalid value: annotations are too large: keys and values together must be at most 261120 bytes \\(255 KiB`),
        kubernetesRefuses: false,
      },
      {
        what: 'annotations under the limit in characters but over it in bytes',
        // 131075 characters, 262146 bytes: Kubernetes counts bytes, and so does the CRD.
        metadata: { annotations: { note: '\u00e9'.repeat(131071) } },
        expected: (f) => new RegExp(`${f}\\.annotations: .*annotations are too large`),
        kubernetesRefuses: true,
      },
    ];
    const good: Array<{ what: string; metadata: Metadata }> = [
      {
        what: 'prefixed keys, KubeVirt\'s own labels, an empty value and the longest names',
        metadata: {
          labels: {
            'kubevirt.io/domain': 'web-1',
            'app.kubernetes.io/name': 'web',
            'example.com/empty': '',
            [`${longPrefix}/${'n'.repeat(63)}`]: 'v'.repeat(63),
            'Name_with.dots-and_underscores': 'Value_with.dots-1',
          },
          annotations: { 'Example.COM/Note': 'annotation prefixes may use capitals', 'kubevirt.io/latest-observed-api-version': 'v1', empty: '' },
        },
      },
      { what: 'annotations of exactly 255 KiB in all', metadata: { annotations: { a: 'x'.repeat(130559), b: 'y'.repeat(130559) } } },
      { what: 'empty label and annotation maps', metadata: { labels: {}, annotations: {} } },
    ];

    // The annotations HyperSpector and KubeVirt add to a VirtualMachine, at their longest.
    const addedToTheVm = {
      [ANNOTATION_MONITORED_BY]: 'm'.repeat(MAX_NAME_LENGTH),
      [ANNOTATION_PAIRED_WITH]: '00000000-0000-0000-0000-000000000000',
      'kubevirt.io/latest-observed-api-version': 'v1',
      'kubevirt.io/storage-observed-api-version': 'v1',
    };

    /** Whether Kubernetes takes this metadata on an object, with what HyperSpector and KubeVirt add to the VM. */
    async function kubernetesVerdict(metadata: Metadata): Promise<'accepted' | 'refused'> {
      const onTheVm = { ...metadata, annotations: { ...metadata.annotations, ...addedToTheVm } };
      try {
        await cluster.api(k8s.CoreV1Api).createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'probe', ...onTheVm } }, dryRun: 'All' });
        return 'accepted';
      } catch (err) {
        assert.equal((err as { code?: number }).code, 422, String(err));
        return 'refused';
      }
    }

    for (const template of ['server', 'ids'] as const) {
      const field = `spec\\.${template}\\.template\\.metadata`;
      const withMetadata = (metadata: Metadata, name = `meta-${template}`) => {
        const ms = monitoredServer(name, NS) as unknown as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
        ms.spec[template].template.metadata = metadata;
        return ms;
      };
      for (const { what, metadata, expected, kubernetesRefuses } of bad) {
        it(`refuses ${what} in the ${template} template`, async function () {
          assert.match(await refused(withMetadata(metadata)), expected(field));
          assert.equal(await kubernetesVerdict(metadata), kubernetesRefuses ? 'refused' : 'accepted');
        });
      }
      for (const [i, { what, metadata }] of good.entries()) {
        it(`accepts ${what} in the ${template} template`, async function () {
          const stored = await create(withMetadata(metadata, `meta-${template}-${i}`));
          assert.deepEqual(stored.spec[template].template.metadata, metadata);
          assert.equal(await kubernetesVerdict(metadata), 'accepted');
        });
      }
    }
  });

  it('accepts the examples and fills in defaults', async function () {
    const example = parse(readFileSync(`${REPO_ROOT}examples/10-web-monitored-server.yaml`, 'utf8')) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    example.metadata.namespace = NS;
    const created = await create(example);
    assert.equal(created.spec.mirroring.direction, 'Both');
    const minimal = monitoredServer('minimal', NS) as unknown as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    delete minimal.spec.mirroring;
    const stored = await create(minimal);
    assert.deepEqual(stored.spec.mirroring, { enabled: true, direction: 'Both' });
    assert.deepEqual(stored.spec.diskInspection, { mode: 'Live', mountPath: '/.serverfs' });
    assert.deepEqual(stored.spec.processMapping, { enabled: true, pollIntervalSeconds: 1, baselineWindowSeconds: 300 });
    assert.deepEqual(stored.spec.response, { onAlert: 'None' });
    assert.equal(stored.spec.server.deletionPolicy, 'Retain');
  });

  it('refuses changing the adopted VM name, and switching between adopt and create', async function () {
    const ms = monitoredServer('adopter', NS) as unknown as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    delete ms.spec.server.template;
    ms.spec.server.virtualMachineName = 'db-1';
    await create(ms);
    const patch = async (server: object) => {
      try {
        await api.patchNamespacedCustomObject(
          { ...target, name: 'adopter', body: { spec: { server } }, fieldValidation: 'Strict' },
          k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
        );
      } catch (err) {
        return apiMessage(err);
      }
      assert.fail('the API server accepted the change');
    };
    assert.match(await patch({ virtualMachineName: 'db-2' }), /spec\.server\.virtualMachineName: Invalid value.*is immutable/);
    assert.match(
      await patch({ virtualMachineName: null, template: monitoredServer('x', NS).spec.server.template }),
      /spec\.server: Invalid value.*cannot switch between virtualMachineName and template/,
    );
  });

  it('serves printer columns and the short name', async function () {
    const ext = cluster.api(k8s.ApiextensionsV1Api);
    const crd = await ext.readCustomResourceDefinition({ name: 'monitoredservers.hyperspector.io' });
    assert.deepEqual(crd.spec.names.shortNames, ['msrv']);
    const columns = crd.spec.versions[0]?.additionalPrinterColumns?.map((c) => c.name);
    assert.deepEqual(columns, ['Ready', 'Reason', 'Node', 'Server', 'IDS', 'Alerts', 'Age']);
    assert.deepEqual(crd.spec.versions[0]?.subresources?.status, {});
  });
});
