// Who may talk to the local cluster: static bearer tokens (kube-apiserver's --token-auth-file),
// one per identity a test or component acts as, and kubeconfigs for them.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';

export interface ClusterUser {
  name: string;
  token: string;
  groups: string[];
}

export type ClusterUserName = 'admin' | 'operator' | 'operatorB' | 'user' | 'virtController' | 'virtApi' | 'virtHandler';

function kubevirtServiceAccount(name: string, token: string): ClusterUser {
  return { name: `system:serviceaccount:kubevirt:${name}`, token, groups: ['system:serviceaccounts', 'system:serviceaccounts:kubevirt'] };
}

/** Every user of a new cluster, each with a fresh random token. */
export function createClusterUsers(): Record<ClusterUserName, ClusterUser> {
  const token = () => randomBytes(16).toString('hex');
  return {
    admin: { name: 'admin', token: token(), groups: ['system:masters'] },
    // The operator and a plain user get only what RBAC grants them (tests apply the chart's roles).
    operator: { name: 'system:serviceaccount:hyperspector-system:hyperspector-operator', token: token(), groups: ['system:serviceaccounts', 'system:serviceaccounts:hyperspector-system'] },
    // A second replica's identity, so tests can tell the replicas' requests apart in the audit log.
    operatorB: { name: 'system:serviceaccount:hyperspector-system:hyperspector-operator-b', token: token(), groups: ['system:serviceaccounts', 'system:serviceaccounts:hyperspector-system'] },
    user: { name: 'jane', token: token(), groups: [] },
    // KubeVirt's components act as their service accounts: KubeVirt's webhooks and RBAC decide by
    // these names (e.g. only kubevirt-controller and kubevirt-handler may change a VMI's status).
    virtController: kubevirtServiceAccount('kubevirt-controller', token()),
    virtApi: kubevirtServiceAccount('kubevirt-apiserver', token()),
    virtHandler: kubevirtServiceAccount('kubevirt-handler', token()),
  };
}

/** kube-apiserver's --token-auth-file: token,user,uid,"groups". */
export function writeTokenAuthFile(path: string, users: Record<ClusterUserName, ClusterUser>): void {
  writeFileSync(
    path,
    Object.values(users)
      .map((u) => `${u.token},${u.name},${u.name},"${u.groups.join(',')}"`)
      .join('\n') + '\n',
  );
}

/** A kubeconfig (object and file at `path`) authenticating to `server` with one user's token. */
export function writeKubeconfig(path: string, server: { url: string; caFile: string }, userName: string, token: string): { kubeConfig: k8s.KubeConfig; path: string } {
  const ca = readFileSync(server.caFile).toString('base64');
  const yaml = [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: local\n  cluster:\n    server: ${server.url}\n    certificate-authority-data: ${ca}`,
    'users:',
    `- name: ${userName}\n  user:\n    token: ${token}`,
    'contexts:',
    `- name: ${userName}@local\n  context:\n    cluster: local\n    user: ${userName}\n    namespace: default`,
    `current-context: ${userName}@local`,
    '',
  ].join('\n');
  writeFileSync(path, yaml, { mode: 0o600 });
  const kubeConfig = new k8s.KubeConfig();
  kubeConfig.loadFromFile(path);
  return { kubeConfig, path };
}
