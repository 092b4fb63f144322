// Where a kubeconfig comes from (shared by client-node's full loader and the light one); no imports,
// so the light path pays for nothing.

export interface LoadKubeConfigOptions {
  /** Explicit kubeconfig file (e.g. a --kubeconfig flag); wins over everything else. */
  kubeconfigPath?: string;
  /** Context to use instead of the file's current-context. */
  context?: string;
  env?: NodeJS.ProcessEnv;
}

export const NO_KUBECONFIG_MESSAGE =
  'no kubeconfig: pass --kubeconfig, set KUBECONFIG, create ~/.kube/config, or run in a Pod (in-cluster service account)';
