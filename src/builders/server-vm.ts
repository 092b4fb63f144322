// The server VM: built from spec.server.template (owned), or the adoption marks on an existing VM.
import type { MonitoredServer } from '../api/v1alpha1/monitoredserver-types.ts';
import { ANNOTATION_MONITORED_BY, ownerReference, roleLabels, serverVmName } from './names.ts';
import type { BuiltVirtualMachine } from './virtual-machine.ts';

/**
 * The server VM created from the template. It carries the MonitoredServer's labels on the VM and
 * on its VMI template (so its launcher pod can be selected), eviction strategy External (a live
 * migration would split the pair: the operator handles evacuation itself), and an owner reference
 * only with deletionPolicy Delete: a retained server must never be garbage-collected, even if the
 * finalizer is removed by hand.
 */
export function buildServerVirtualMachine(ms: MonitoredServer): BuiltVirtualMachine {
  const template = ms.spec.server.template;
  if (!template) throw new Error(`MonitoredServer ${ms.metadata.namespace}/${ms.metadata.name} adopts a VM; it has no server template`);
  const labels = roleLabels(ms, 'server');
  const spec = structuredClone(template.spec);
  const vmiTemplate = spec.template ?? { spec: { domain: { devices: {} } } };
  spec.template = {
    ...vmiTemplate,
    metadata: { ...(vmiTemplate.metadata ?? {}), labels: { ...((vmiTemplate.metadata?.labels as Record<string, string> | undefined) ?? {}), ...labels } },
    spec: { ...(vmiTemplate.spec ?? { domain: { devices: {} } }), evictionStrategy: 'External' },
  };
  const marks = buildAdoptionMarks(ms);
  return {
    ...marks,
    metadata: {
      ...marks.metadata,
      labels: { ...(template.metadata?.labels ?? {}), ...marks.metadata.labels },
      annotations: { ...(template.metadata?.annotations ?? {}), ...marks.metadata.annotations },
      ...(ms.spec.server.deletionPolicy === 'Delete' ? { ownerReferences: [ownerReference(ms)] } : {}),
    },
    spec,
  };
}

/**
 * What HyperSpector puts on an adopted VM (as a merge patch): only its labels and an annotation,
 * so that releasing the VM removes exactly these and nothing of the owner's. A VM created from the
 * template carries the same marks.
 */
export function buildAdoptionMarks(ms: MonitoredServer): Pick<BuiltVirtualMachine, 'apiVersion' | 'kind' | 'metadata'> {
  return {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachine',
    metadata: {
      name: serverVmName(ms),
      namespace: ms.metadata.namespace,
      labels: roleLabels(ms, 'server'),
      annotations: { [ANNOTATION_MONITORED_BY]: ms.metadata.name ?? '' },
    },
  };
}
