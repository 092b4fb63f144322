// How the controller publishes Kubernetes Events; src/kube/runtime/events.ts provides the recorder.
import type { KubeObject } from '../../kube/client/objects.ts';

export type EventType = 'Normal' | 'Warning';

export interface EventSink {
  /** Never throws: a failed Event must not fail a reconcile. Mostly about a MonitoredServer; about a claim ConfigMap when its MonitoredServer is gone. */
  record(object: KubeObject, type: EventType, reason: string, message: string): void;
}

export const noEvents: EventSink = { record: () => {} };
