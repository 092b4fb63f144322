// Applies deploy/rbac.yaml and binds it to the operator users of a LocalCluster: the ClusterRole
// cluster-wide, the leader-election and IDS-address Roles in hyperspector-system, the KubeVirt-config Role in kubevirt.
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
  const objects = parseAllDocuments(readFileSync(join(REPO_ROOT, 'deploy', 'rbac.yaml'), 'utf8')).map((d) => d.toJS() as k8s.KubernetesObject);
  const users = [cluster.users.operator.name, cluster.users.operatorB.name];
  const subjects = users.map((name) => ({ kind: 'User', name, apiGroup: 'rbac.authorization.k8s.io' }));
  objects.push(
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'hyperspector-operator' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'hyperspector-operator' }, subjects } as k8s.KubernetesObject,
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'hyperspector-operator-leader-election', namespace: 'hyperspector-system' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'hyperspector-operator-leader-election' }, subjects } as k8s.KubernetesObject,
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'hyperspector-operator-ids-addresses', namespace: 'hyperspector-system' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'hyperspector-operator-ids-addresses' }, subjects } as k8s.KubernetesObject,
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'hyperspector-operator-kubevirt-config', namespace: 'kubevirt' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'hyperspector-operator-kubevirt-config' }, subjects } as k8s.KubernetesObject,
  );
  const client = k8s.KubernetesObjectApi.makeApiClient(cluster.kubeConfig);
  for (const obj of objects) {
    await client.patch(obj, undefined, undefined, 'hyperspector-tests', true, k8s.PatchStrategy.ServerSideApply);
  }
}
