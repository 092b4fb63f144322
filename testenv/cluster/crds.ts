// The CustomResourceDefinitions of the local cluster: the project's own (crds/) and the
// third-party ones (KubeVirt, CDI, Multus, ...): real copies from $HYPERSPECTOR_THIRD_PARTY_CRDS,
// else the small permissive stand-ins in fallback-crds/ beside this file.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { createKubeApi, statusCodeOf } from '../../src/kube/client/rest.ts';
import { REPO_ROOT } from '../repo-root.ts';
import { waitFor } from '../wait.ts';

export const THIRD_PARTY_CRDS_ENV = 'HYPERSPECTOR_THIRD_PARTY_CRDS';

/** The permissive stand-ins for third-party CRDs, used where no real copies are given. */
export const FALLBACK_CRDS_DIR = join(import.meta.dirname, 'fallback-crds');

function yamlFilesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...yamlFilesUnder(path));
    else if (/\.ya?ml$/.test(entry)) out.push(path);
  }
  return out;
}

const crdsByDir = new Map<string, k8s.V1CustomResourceDefinition[]>();

/** Reads every CustomResourceDefinition document in the YAML files under dir (parsed once per process). */
export function readCrds(dir: string): k8s.V1CustomResourceDefinition[] {
  const known = crdsByDir.get(dir);
  if (known) return structuredClone(known);
  const crds: k8s.V1CustomResourceDefinition[] = [];
  for (const file of yamlFilesUnder(dir)) {
    for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
      const obj = doc.toJS() as k8s.V1CustomResourceDefinition | null;
      if (obj?.kind === 'CustomResourceDefinition') crds.push(obj);
    }
  }
  crdsByDir.set(dir, crds);
  return structuredClone(crds);
}

/** API groups whose CRDs KubeVirt itself installs (CDI's are a separate project). */
export function isKubeVirtGroup(group: string | undefined): boolean {
  return group === 'kubevirt.io' || (!!group?.endsWith('.kubevirt.io') && group !== 'cdi.kubevirt.io');
}

/**
 * The project's CRDs plus the third-party ones (real ones from the env var's directory, else
 * stand-ins); without KubeVirt's own when the cluster runs KubeVirt (it installs them itself).
 */
export function clusterCrds(thirdPartyCrdDir = process.env[THIRD_PARTY_CRDS_ENV], options: { withoutKubeVirt?: boolean } = {}): k8s.V1CustomResourceDefinition[] {
  const own = readCrds(join(REPO_ROOT, 'crds'));
  const thirdParty = readCrds(thirdPartyCrdDir || FALLBACK_CRDS_DIR).filter((crd) => !options.withoutKubeVirt || !isKubeVirtGroup(crd.spec?.group));
  return [...own, ...thirdParty];
}

/** Creates the CRDs (an existing one is kept) and waits until every one is Established. */
export async function installCrds(kubeConfig: k8s.KubeConfig, crds: k8s.V1CustomResourceDefinition[]): Promise<void> {
  const ext = kubeConfig.makeApiClient(k8s.ApiextensionsV1Api);
  // Raw JSON: client-node's typed serializer would drop the x-kubernetes-* schema extensions.
  const api = createKubeApi(kubeConfig);
  for (const crd of crds) {
    try {
      await api.request({ method: 'POST', path: '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', body: crd });
    } catch (err) {
      if (statusCodeOf(err) !== 409) throw new Error(`installing CRD ${crd.metadata?.name}: ${String(err)}`);
    }
  }
  await waitFor(
    async () => {
      const list = await ext.listCustomResourceDefinition();
      const established = new Set(
        list.items.filter((c) => c.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True')).map((c) => c.metadata?.name),
      );
      return crds.every((c) => established.has(c.metadata?.name)) || undefined;
    },
    { timeoutMs: 60_000, description: 'CRDs to be Established' },
  );
}
