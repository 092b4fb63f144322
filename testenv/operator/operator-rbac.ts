// Applies deploy/rbac.yaml and binds it to the operator users of a LocalCluster: the ClusterRole
// cluster-wide, the leader-election, process-mapper-pods and IDS-address Roles in hyperspector-system,
// the KubeVirt-config Role in kubevirt; and the process mapper's ServiceAccount with its ClusterRole
// and its process-baselines Role.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import type { LocalCluster } from '../cluster/local-cluster.ts';
import { REPO_ROOT } from '../repo-root.ts';
import { ensureNamespace } from '../cluster/namespaces.ts';

export async function grantOperatorRbac(cluster: LocalCluster): Promise<void> {
  await ensureNamespace(cluster, 'hyperspector-system');
  // Where the KubeVirt CR lives (KubeVirt's world creates it too; a cluster without KubeVirt gets it empty).
  await ensureNamespace(cluster, 'kubevirt');
  const objects = rbacObjects();
  const users = [cluster.users.operator.name, cluster.users.operatorB.name];
  const subjects = users.map((name) => ({ kind: 'User', name, apiGroup: 'rbac.authorization.k8s.io' }));
  objects.push(
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'hyperspector-operator' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'hyperspector-operator' }, subjects } as k8s.KubernetesObject,
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'hyperspector-operator-leader-election', namespace: 'hyperspector-system' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'hyperspector-operator-leader-election' }, subjects } as k8s.KubernetesObject,
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'hyperspector-operator-ids-addresses', namespace: 'hyperspector-system' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'hyperspector-operator-ids-addresses' }, subjects } as k8s.KubernetesObject,
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'hyperspector-operator-kubevirt-config', namespace: 'kubevirt' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'hyperspector-operator-kubevirt-config' }, subjects } as k8s.KubernetesObject,
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'hyperspector-operator-nodes' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'hyperspector-operator-nodes' }, subjects } as k8s.KubernetesObject,
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'hyperspector-operator-process-mappers', namespace: 'hyperspector-system' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'hyperspector-operator-process-mappers' }, subjects } as k8s.KubernetesObject,
    ...processMapperIdentity(),
  );
  await applyAll(cluster, objects);
}

/** The process mapper's ServiceAccount in hyperspector-system, bound to its ClusterRole, as the Helm chart makes them. */
function processMapperIdentity(): k8s.KubernetesObject[] {
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'hyperspector-process-mapper', namespace: 'hyperspector-system' } } as k8s.KubernetesObject,
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'hyperspector-process-mapper' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'hyperspector-process-mapper' }, subjects: [{ kind: 'ServiceAccount', name: 'hyperspector-process-mapper', namespace: 'hyperspector-system' }] } as k8s.KubernetesObject,
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'hyperspector-process-baselines', namespace: 'hyperspector-system' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'hyperspector-process-baselines' }, subjects: [{ kind: 'ServiceAccount', name: 'hyperspector-process-mapper', namespace: 'hyperspector-system' }] } as k8s.KubernetesObject,
  ];
}

/**
 * What an installed operator always has, whoever it runs as: the process mapper's identity (its
 * ServiceAccount, ClusterRole and binding). Started operators get it (startOperatorProcess).
 */
export async function ensureProcessMapperIdentity(cluster: LocalCluster): Promise<void> {
  await ensureNamespace(cluster, 'hyperspector-system');
  const role = rbacObjects().find((o) => o.kind === 'ClusterRole' && o.metadata?.name === 'hyperspector-process-mapper');
  if (!role) throw new Error('deploy/rbac.yaml has no ClusterRole hyperspector-process-mapper');
  const baselines = rbacObjects().find((o) => o.kind === 'Role' && o.metadata?.name === 'hyperspector-process-baselines');
  if (!baselines) throw new Error('deploy/rbac.yaml has no Role hyperspector-process-baselines');
  await applyAll(cluster, [role, { ...baselines, metadata: { ...baselines.metadata, namespace: 'hyperspector-system' } }, ...processMapperIdentity()]);
}

function rbacObjects(): k8s.KubernetesObject[] {
  return parseAllDocuments(readFileSync(join(REPO_ROOT, 'deploy', 'rbac.yaml'), 'utf8')).map((d) => d.toJS() as k8s.KubernetesObject);
}

async function applyAll(cluster: LocalCluster, objects: k8s.KubernetesObject[]): Promise<void> {
  const client = k8s.KubernetesObjectApi.makeApiClient(cluster.kubeConfig);
  for (const obj of objects) {
    await client.patch(obj, undefined, undefined, 'hyperspector-tests', true, k8s.PatchStrategy.ServerSideApply);
  }
}
