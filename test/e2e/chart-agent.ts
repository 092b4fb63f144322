// The node agent as the Helm chart installs it, for the end-to-end tests: the chart rendered with
// the helm binary the install tests build (`helm template`, default values), its agent
// ServiceAccount, ClusterRole and ClusterRoleBinding applied to the cluster, a token of that
// ServiceAccount from the TokenRequest API in a kubeconfig, and the DaemonSet container's flags.
// An agent started with these has exactly the chart's rights: a permission the chart lacks fails.
import * as k8s from '@kubernetes/client-node';
import { ensureNamespace } from '../../testenv/cluster/namespaces.ts';
import type { LocalCluster } from '../../testenv/cluster/local-cluster.ts';
import { Helm, serviceAccountKubeconfig, type KubeObject } from '../integration/install/install-support.ts';

const RELEASE = 'hyperspector';
const NAMESPACE = 'hyperspector-system';
const IDENTITY_KINDS = ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'];
/** Flags the test's agent process sets itself (its own loopback port, a short resync). */
const FLAGS_SET_BY_THE_TEST = ['--http-port=', '--resync-period=', '--node-name=', '--kubeconfig='];

export interface ChartAgent {
  /** Authenticates as the chart's agent ServiceAccount. */
  kubeconfigPath: string;
  /** The DaemonSet container's args, less the ones the test's process sets. */
  args: string[];
  /** kind/name of what was applied. */
  applied: string[];
}

export async function installChartAgentIdentity(cluster: LocalCluster): Promise<ChartAgent> {
  const rendered = await new Helm().template(RELEASE, NAMESPACE);
  const ofAgent = rendered.filter((o) => o.metadata.labels?.['app.kubernetes.io/component'] === 'agent');
  const identity = ofAgent.filter((o) => IDENTITY_KINDS.includes(o.kind));
  const serviceAccount = identity.find((o) => o.kind === 'ServiceAccount');
  const daemonSet = ofAgent.find((o) => o.kind === 'DaemonSet') as (KubeObject & k8s.V1DaemonSet) | undefined;
  if (!serviceAccount || !daemonSet) throw new Error('the chart renders no agent ServiceAccount or DaemonSet');
  const pod = daemonSet.spec?.template.spec;
  if (pod?.serviceAccountName !== serviceAccount.metadata.name) throw new Error(`the agent DaemonSet runs as ${pod?.serviceAccountName}, not ${serviceAccount.metadata.name}`);
  const container = pod.containers.find((c) => c.name === 'agent');
  if (!container) throw new Error('the agent DaemonSet has no agent container');

  await ensureNamespace(cluster, NAMESPACE);
  const client = k8s.KubernetesObjectApi.makeApiClient(cluster.kubeConfig);
  for (const object of identity) {
    const namespaced = object.kind === 'ServiceAccount' || object.kind.startsWith('Role');
    const body = namespaced ? { ...object, metadata: { ...object.metadata, namespace: object.metadata.namespace ?? NAMESPACE } } : object;
    await client.patch(body, undefined, undefined, 'hyperspector-tests', true, k8s.PatchStrategy.ServerSideApply);
  }
  return {
    kubeconfigPath: await serviceAccountKubeconfig(cluster, serviceAccount.metadata.namespace ?? NAMESPACE, serviceAccount.metadata.name),
    args: (container.args ?? []).filter((a) => !FLAGS_SET_BY_THE_TEST.some((flag) => a.startsWith(flag))),
    applied: identity.map((o) => `${o.kind}/${o.metadata.name}`),
  };
}
