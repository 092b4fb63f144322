// Files generated for packaging, from their single sources:
//   helm/hyperspector/templates/crds.yaml  from crds/ (the CRDs generated from src/api)
//   deploy/hyperspector.yaml               from the chart (`helm template`, default values)
// `npm run generate:deploy` writes them; test/integration/install checks they are up to date.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

export const REPO = fileURLToPath(new URL('..', import.meta.url));
export const CHART_DIR = join(REPO, 'helm', 'hyperspector');
export const CRD_TEMPLATE = join(CHART_DIR, 'templates', 'crds.yaml');
export const DEPLOY_MANIFEST = join(REPO, 'deploy', 'hyperspector.yaml');
/** Release name and namespace of the plain-manifest install (deploy/hyperspector.yaml). */
export const DEPLOY_RELEASE = { name: 'hyperspector', namespace: 'hyperspector-system' };

/** The directory of the cached helm binary (hack/build-helm.sh builds it once). */
export function helmBinary(): string {
  const out = execFileSync('bash', [join(REPO, 'hack', 'build-helm.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const dir = out.trim().split('\n').pop() ?? '';
  return join(dir, 'helm');
}

/** The chart's CRD template: each CRD of crds/ behind crds.enabled, kept on uninstall with crds.keep. */
export function renderCrdTemplate(): string {
  const files = readdirSync(join(REPO, 'crds')).filter((f) => /\.ya?ml$/.test(f)).sort();
  const parts = files.map((file) => {
    const crd = parse(readFileSync(join(REPO, 'crds', file), 'utf8')) as { apiVersion: string; kind: string; metadata: { name: string }; spec: unknown };
    return [
      '---',
      `# From crds/${file}.`,
      `apiVersion: ${crd.apiVersion}`,
      `kind: ${crd.kind}`,
      'metadata:',
      `  name: ${crd.metadata.name}`,
      '  labels:',
      '    {{- include "hyperspector.labels" . | nindent 4 }}',
      '  annotations:',
      '    {{- include "hyperspector.syncWave.crds" . | nindent 4 }}',
      '    {{- if .Values.crds.keep }}',
      '    helm.sh/resource-policy: keep',
      '    {{- end }}',
      stringify({ spec: crd.spec }, { lineWidth: 0 }).trimEnd(),
    ].join('\n');
  });
  return [
    '{{- /* Generated from crds/ by `npm run generate:deploy`. Do not edit. */ -}}',
    '{{- if .Values.crds.enabled }}',
    ...parts,
    '{{- end }}',
    '',
  ].join('\n');
}

/** deploy/hyperspector.yaml: the namespace and the chart rendered with its default values. */
export function renderDeployManifest(helm = helmBinary()): string {
  const rendered = execFileSync(helm, ['template', DEPLOY_RELEASE.name, CHART_DIR, '--namespace', DEPLOY_RELEASE.namespace], { encoding: 'utf8' });
  return [
    `# Generated from helm/hyperspector (default values, release "${DEPLOY_RELEASE.name}") by \`npm run generate:deploy\`. Do not edit.`,
    `# Install without Helm: kubectl apply --server-side -f deploy/hyperspector.yaml`,
    'apiVersion: v1',
    'kind: Namespace',
    'metadata:',
    `  name: ${DEPLOY_RELEASE.namespace}`,
    '  labels:',
    '    app.kubernetes.io/part-of: hyperspector',
    // The process-mapper Pods of MonitoredServers run privileged, but not here; the operator itself
    // meets the restricted profile.
    '    pod-security.kubernetes.io/enforce: restricted',
    rendered.trimEnd(),
    '',
  ].join('\n');
}
