import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { buildMonitoredServerCrd } from './crd.ts';

export const CRD_FILE = fileURLToPath(new URL('../../../crds/hyperspector.io_monitoredservers.yaml', import.meta.url));

export function renderCrdYaml(): string {
  return '# Generated from src/api/v1alpha1 by `npm run generate:crds`. Do not edit.\n' + stringify(buildMonitoredServerCrd(), { lineWidth: 0 });
}
