// Locates (and if needed builds) KubeVirt's own virt-controller and virt-api, and the manifests
// virt-operator would install, via hack/build-kubevirt.sh.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { REPO_ROOT } from '../repo-root.ts';

export interface KubeVirtBinaries {
  dir: string;
  version: string;
  virtController: string;
  virtApi: string;
  /** virt-operator's install strategy for namespace `kubevirt`, as JSON lines. */
  installManifests: string;
}

let cached: KubeVirtBinaries | undefined;

export function kubevirtVersion(): string {
  const env = readFileSync(`${REPO_ROOT}hack/kubevirt-version.env`, 'utf8');
  const match = /^KUBEVIRT_VERSION=(\S+)/m.exec(env);
  if (!match?.[1]) throw new Error('KUBEVIRT_VERSION missing from hack/kubevirt-version.env');
  return match[1];
}

/** Runs the cached build script (instant when cached; progress goes to stderr when it builds). */
export function kubevirtBinaries(): KubeVirtBinaries {
  if (cached) return cached;
  const out = execFileSync('bash', [`${REPO_ROOT}hack/build-kubevirt.sh`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const dir = out.trim().split('\n').pop() ?? '';
  cached = {
    dir,
    version: kubevirtVersion(),
    virtController: `${dir}/virt-controller`,
    virtApi: `${dir}/virt-api`,
    installManifests: `${dir}/install.jsonl`,
  };
  return cached;
}
