// Planner helper: bring a VirtualMachine the operator owns whole (created from a template) to the
// desired object: server-side apply when our fields differ, and a guarded JSON patch that removes
// what someone else added to its spec (apply alone never removes another writer's fields).
import type { BuiltVirtualMachine } from '../../../builders/virtual-machine.ts';
import { FIELD_MANAGER, needsApply } from '../../../kube/client/apply.ts';
import { foreignFields, removalPatch } from '../../../kube/client/foreign-fields.ts';
import type { VirtualMachine } from '../../../kube/client/objects.ts';
import { VIRTUAL_MACHINE } from '../../../kube/client/resources.ts';
import { statusCodeOf } from '../../../kube/client/rest.ts';
import type { Action, Capability } from '../actions.ts';

/** KubeVirt's own components write VM specs on purpose (start/stop subresources, migrations). */
export const KUBEVIRT_MANAGERS = ['virt-api', 'virt-controller', 'virt-handler', 'virt-operator'] as const;

/**
 * The API server refused an object built from the user's template: 422 (schema, CEL, an admission
 * webhook such as KubeVirt's), 400, or the 500 that server-side apply answers for a field the
 * schema does not declare or a value of the wrong type ("failed to create typed patch object").
 * Retrying cannot help; the user must change the template.
 */
export function isRefusedTemplate(err: unknown): boolean {
  const code = statusCodeOf(err);
  if (code === 422 || code === 400) return true;
  return code === 500 && /failed to create typed patch object|field not declared in schema|expected (numeric|string|map|list|bool)/i.test((err as Error).message ?? '');
}

export interface OwnedVmNames {
  capability: Capability;
  /** e.g. 'ServerVM', 'IDSVM': prefixes failure reasons (ApplyServerVMFailed). */
  kind: string;
  /** The Event reason on update. Creating is no Event of its own: MonitoringStarted tells the story once the pair runs (status-events.ts). */
  updated: string;
  /** How logs and Events name the VM, e.g. "IDS VirtualMachine demo-ids". */
  describe: string;
  /** Added to the create log line. */
  createdDetail?: string;
}

/**
 * Actions that make `live` equal `desired`; empty when it already is. `mustApply`: an element of an
 * atomic list (KubeVirt's volumes and disks) is to go that needsApply cannot see once another
 * manager (virt-controller) has written the list and so owns it.
 */
export function planOwnedVm(desired: BuiltVirtualMachine, live: VirtualMachine | undefined, names: OwnedVmNames, mustApply = false): Action[] {
  const base = { capability: names.capability, refusedWhen: isRefusedTemplate } as const;
  if (!live) {
    return [{ ...base, type: 'apply', resource: VIRTUAL_MACHINE, object: desired, failureReason: `Create${names.kind}Failed`, log: `Create ${names.describe}${names.createdDetail ?? ''}` }];
  }
  const actions: Action[] = [];
  const foreign = foreignFields(live, desired, { ownManager: FIELD_MANAGER, trustedManagers: KUBEVIRT_MANAGERS });
  if (foreign.paths.length > 0) {
    const who = foreign.managers.join(', ');
    actions.push({
      ...base,
      type: 'patch',
      resource: VIRTUAL_MACHINE,
      namespace: live.metadata?.namespace ?? '',
      name: live.metadata?.name ?? '',
      patchType: 'json',
      // Removes exactly what others added; fails (409/422, retried) if the VM changed since we looked.
      body: removalPatch(live.metadata?.resourceVersion, foreign.paths),
      failureReason: `Revert${names.kind}Failed`,
      log: `Revert changes by ${who} to ${names.describe}: ${foreign.paths.join(', ')}`,
      event: {
        type: 'Warning',
        reason: `${names.kind}Reverted`,
        message: `Removed ${foreign.paths.join(', ')} from ${names.describe}, added by ${who}: HyperSpector owns it; change the MonitoredServer instead`,
      },
    });
  }
  if (!mustApply && !needsApply(desired, live)) return actions;
  return [
    ...actions,
    {
      ...base,
      type: 'apply',
      resource: VIRTUAL_MACHINE,
      object: desired,
      failureReason: `Apply${names.kind}Failed`,
      log: `Update ${names.describe}`,
      event: { type: 'Normal', reason: names.updated, message: `Updated ${names.describe}` },
    },
  ];
}
