// The NetworkPolicy of spec.response.onAlert: Isolate. It selects the server VMI's virt-launcher
// pod by the labels virt-controller puts on every launcher pod (KubeVirt v1.8, pkg/virt-controller/
// services/template.go): `kubevirt.io: virt-launcher` and `kubevirt.io/created-by: <VMI UID>`.
// The VMI's UID is exact: `vm.kubevirt.io/name` carries the guest's hostname (spec.hostname when
// set, so two VMs can share it) and `kubevirt.io/domain` is only a convention of templates. A live
// migration's target pod belongs to the same VMI and is selected too; a new VMI (a restart) gets a
// new UID, and the policy is re-applied to follow it. Ingress and Egress with no rules: nothing in
// or out on the pod network. The tc mirror sits on the VM's tap inside the pod, before the pod's
// interface, so the IDS VM still sees what the server tries to send.
import type { MonitoredServer } from '../api/v1alpha1/monitoredserver-types.ts';
import type { KubeObject } from '../kube/client/objects.ts';
import { ownerReference, roleLabels } from './names.ts';

/** Labels virt-controller sets on a VMI's launcher pods. */
export const LAUNCHER_APP_LABEL = 'kubevirt.io';
export const LAUNCHER_APP_VALUE = 'virt-launcher';
export const LAUNCHER_CREATED_BY_LABEL = 'kubevirt.io/created-by';

export function isolationPolicyName(ms: MonitoredServer): string {
  return `${ms.metadata.name}-isolate`;
}

/** The launcher pods of the VMI with this UID. */
export function launcherPodSelector(vmiUid: string): Record<string, string> {
  return { [LAUNCHER_APP_LABEL]: LAUNCHER_APP_VALUE, [LAUNCHER_CREATED_BY_LABEL]: vmiUid };
}

export interface NetworkPolicy extends KubeObject {
  spec?: { podSelector?: { matchLabels?: Record<string, string> }; policyTypes?: string[]; ingress?: unknown[]; egress?: unknown[] };
}

/** Deny all, both ways, for the server VMI's launcher pods; owned by (and garbage-collected with) the MonitoredServer. */
export function buildIsolationPolicy(ms: MonitoredServer, vmiUid: string): NetworkPolicy {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: {
      name: isolationPolicyName(ms),
      namespace: ms.metadata.namespace ?? '',
      labels: roleLabels(ms, 'response'),
      ownerReferences: [ownerReference(ms)],
    },
    spec: { podSelector: { matchLabels: launcherPodSelector(vmiUid) }, policyTypes: ['Ingress', 'Egress'] },
  };
}

/** The VMI UID the policy selects (undefined for a policy not shaped by buildIsolationPolicy). */
export function isolatedVmiUid(policy: NetworkPolicy | undefined): string | undefined {
  return policy?.spec?.podSelector?.matchLabels?.[LAUNCHER_CREATED_BY_LABEL];
}
