import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CRD_FILE, renderCrdYaml } from '../../../src/api/v1alpha1/crd-file.ts';
import { buildMonitoredServerCrd } from '../../../src/api/v1alpha1/crd.ts';

type Schema = Record<string, unknown>;

/** Visits every schema node below `schema` with its JSON path. */
function walk(schema: Schema, path: string, visit: (node: Schema, path: string) => void): void {
  visit(schema, path);
  for (const [name, child] of Object.entries((schema.properties ?? {}) as Record<string, Schema>)) walk(child, `${path}.${name}`, visit);
  if (schema.items) walk(schema.items as Schema, `${path}[]`, visit);
  if (schema.additionalProperties && typeof schema.additionalProperties === 'object') walk(schema.additionalProperties as Schema, `${path}{}`, visit);
}

describe('MonitoredServer CRD (generated from src/api)', () => {
  it('is committed as generated (run `npm run generate:crds` after changing src/api)', () => {
    assert.equal(readFileSync(CRD_FILE, 'utf8'), renderCrdYaml());
  });

  it('is a structural schema: every node typed, no additionalProperties:false, no TypeBox leftovers', () => {
    const crd = buildMonitoredServerCrd() as { spec: { versions: Array<{ schema: { openAPIV3Schema: Schema } }> } };
    const root = crd.spec.versions[0]!.schema.openAPIV3Schema;
    walk(root, '', (node, path) => {
      assert.ok(node.type || node['x-kubernetes-preserve-unknown-fields'], `${path} has no type`);
      assert.notEqual(node.additionalProperties, false, `${path} has additionalProperties: false`);
      for (const forbidden of ['anyOf', 'oneOf', 'const', 'patternProperties', '$id', 'kind']) {
        assert.ok(!(forbidden in node), `${path} uses ${forbidden}`);
      }
    });
  });

  it('declares the CEL rules users rely on', () => {
    const yaml = renderCrdYaml();
    for (const rule of [
      'has(self.virtualMachineName) != has(self.template)',
      'self == oldSelf',
      'size(self.metadata.name) <= 56',
      'self.map(k, size(bytes(k)) + size(bytes(self[k]))).sum() <= 261120',
    ]) {
      assert.ok(yaml.includes(rule), `missing rule ${rule}`);
    }
  });
});
