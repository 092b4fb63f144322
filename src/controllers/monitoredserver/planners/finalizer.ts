// Planner: the MonitoredServer's own finalizer, added before any child exists.
import type { MonitoredServer } from '../../../api/v1alpha1/monitoredserver-types.ts';
import { FINALIZER } from '../../../builders/names.ts';
import { MONITORED_SERVER } from '../../../api/v1alpha1/resource.ts';
import type { Action } from '../actions.ts';

export function planFinalizer(ms: MonitoredServer): Action[] {
  if (ms.metadata.finalizers?.includes(FINALIZER)) return [];
  return [
    {
      type: 'patch',
      capability: 'finalizer',
      failureReason: 'AddFinalizerFailed',
      log: `Add finalizer ${FINALIZER}`,
      resource: MONITORED_SERVER,
      namespace: ms.metadata.namespace ?? '',
      name: ms.metadata.name ?? '',
      patchType: 'merge',
      // resourceVersion makes it optimistic: a concurrent change fails it (409) and it is retried.
      body: { metadata: { finalizers: [...(ms.metadata.finalizers ?? []), FINALIZER], resourceVersion: ms.metadata.resourceVersion } },
    },
  ];
}
