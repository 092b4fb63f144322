// How the controller publishes Kubernetes Events; src/kube/runtime/events.ts provides the recorder.
import type { MonitoredServer } from '../../api/v1alpha1/monitoredserver-types.ts';

export type EventType = 'Normal' | 'Warning';

export interface EventSink {
  /** Never throws: a failed Event must not fail a reconcile. */
  record(object: MonitoredServer, type: EventType, reason: string, message: string): void;
}

export const noEvents: EventSink = { record: () => {} };
