// Locates (and if needed builds) the local control-plane binaries via hack/build-control-plane.sh.
import { execFileSync } from 'node:child_process';
import { REPO_ROOT } from '../repo-root.ts';

export interface ControlPlaneBinaries {
  dir: string;
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  kubectl: string;
  kwok: string;
}

let cached: ControlPlaneBinaries | undefined;

/** Runs the cached build script (instant when cached; progress goes to stderr when it builds). */
export function controlPlaneBinaries(): ControlPlaneBinaries {
  if (cached) return cached;
  const out = execFileSync('bash', [`${REPO_ROOT}hack/build-control-plane.sh`], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const dir = out.trim().split('\n').pop() ?? '';
  cached = {
    dir,
    etcd: `${dir}/etcd`,
    kubeApiserver: `${dir}/kube-apiserver`,
    kubeControllerManager: `${dir}/kube-controller-manager`,
    kubeScheduler: `${dir}/kube-scheduler`,
    kubectl: `${dir}/kubectl`,
    kwok: `${dir}/kwok`,
  };
  return cached;
}
