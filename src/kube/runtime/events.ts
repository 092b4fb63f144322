import type { KubeObject } from '../client/apply.ts';
import { type Clock, realClock } from '../util/clock.ts';
import { formatMicroTime } from './leader-election.ts';
import { type Logger, errorField, silentLogger } from '../util/logger.ts';
import { type KubeApi, isAborted, isNotFound } from '../client/rest.ts';
import { EVENT, collectionPath, objectPath } from '../client/resources.ts';

export const REPORTING_CONTROLLER = 'hyperspector-operator';

export type EventType = 'Normal' | 'Warning';

/** The object an Event is about (core/v1 ObjectReference). */
export interface ObjectReference {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
}

export function referenceTo(object: KubeObject): ObjectReference {
  return {
    apiVersion: object.apiVersion ?? '',
    kind: object.kind ?? '',
    name: object.metadata?.name ?? '',
    ...(object.metadata?.namespace ? { namespace: object.metadata.namespace } : {}),
    ...(object.metadata?.uid ? { uid: object.metadata.uid } : {}),
    ...(object.metadata?.resourceVersion ? { resourceVersion: object.metadata.resourceVersion } : {}),
  };
}

export interface EventRecorderOptions {
  api: KubeApi;
  /** reportingController of every Event; default hyperspector-operator. */
  reportingController?: string;
  /** reportingInstance, e.g. the pod name or leader election identity. */
  reportingInstance: string;
  clock?: Clock;
  logger?: Logger;
  /** Repeats of the same Event within this window update its series instead of creating a new one. Default 6 min. */
  aggregationWindowMs?: number;
  /** Per-object token bucket, like client-go's spam filter: burst 25, one more token every 5 min. */
  burst?: number;
  refillIntervalMs?: number;
}

export interface RecordOptions {
  /**
   * The signal of the reconcile the Event belongs to: when it has aborted (the leadership term
   * ended) the Event is dropped, and a write in flight is cancelled.
   */
  signal?: AbortSignal;
}

interface SeriesState {
  eventName: string;
  namespace: string;
  count: number;
  firstSeen: number;
  lastSeen: number;
}

interface Bucket {
  tokens: number;
  updated: number;
}

// events.k8s.io/v1 limits `note` to 1 kB.
const MAX_NOTE_LENGTH = 1024;

/**
 * Publishes events.k8s.io/v1 Events about objects. Reasons are the caller's named constants.
 * Recording never throws and never blocks the caller: a failed or rate-limited write is logged and
 * dropped. A repeat of the same Event (object, type, reason, action, message) within the window
 * bumps the series count of the existing Event instead of creating another.
 */
export class EventRecorder {
  private readonly api: KubeApi;
  private readonly reportingController: string;
  private readonly reportingInstance: string;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly windowMs: number;
  private readonly burst: number;
  private readonly refillIntervalMs: number;
  private readonly series = new Map<string, SeriesState>();
  private readonly buckets = new Map<string, Bucket>();
  /** Writes in flight per aggregation key, chained so a series patch follows its create. */
  private readonly pending = new Map<string, Promise<void>>();
  private sequence = 0;

  constructor(options: EventRecorderOptions) {
    this.api = options.api;
    this.reportingController = options.reportingController ?? REPORTING_CONTROLLER;
    this.reportingInstance = options.reportingInstance;
    this.clock = options.clock ?? realClock;
    this.log = options.logger ?? silentLogger();
    this.windowMs = options.aggregationWindowMs ?? 6 * 60_000;
    this.burst = options.burst ?? 25;
    this.refillIntervalMs = options.refillIntervalMs ?? 5 * 60_000;
  }

  normal(regarding: ObjectReference, reason: string, action: string, message: string, options: RecordOptions = {}): void {
    this.event(regarding, 'Normal', reason, action, message, options);
  }

  warning(regarding: ObjectReference, reason: string, action: string, message: string, options: RecordOptions = {}): void {
    this.event(regarding, 'Warning', reason, action, message, options);
  }

  event(regarding: ObjectReference, type: EventType, reason: string, action: string, message: string, options: RecordOptions = {}): void {
    if (options.signal?.aborted) {
      this.log.debug('Dropped event of an aborted reconcile', { reason, object: describe(regarding) });
      return;
    }
    try {
      this.record(regarding, type, reason, action, message, options.signal);
    } catch (err) {
      this.log.warn('Failed to record event', { err: errorField(err), reason, object: describe(regarding) });
    }
  }

  /** Resolves when every write started so far has finished; for shutdown and tests. */
  async flush(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending.values()]);
  }

  private record(regarding: ObjectReference, type: EventType, reason: string, action: string, message: string, signal: AbortSignal | undefined): void {
    const now = this.clock.now();
    this.prune(now);
    const note = message.length > MAX_NOTE_LENGTH ? `${message.slice(0, MAX_NOTE_LENGTH - 3)}...` : message;
    const objectId = `${regarding.apiVersion}/${regarding.kind}/${regarding.namespace ?? ''}/${regarding.name}/${regarding.uid ?? ''}`;
    const key = `${objectId}\u0000${type}\u0000${reason}\u0000${action}\u0000${note}`;
    if (!this.takeToken(objectId, now)) {
      this.log.debug('Dropped event over the rate limit', { object: describe(regarding), reason });
      return;
    }
    const existing = this.series.get(key);
    if (existing) {
      existing.count++;
      existing.lastSeen = now;
      this.chain(key, () => this.patchSeries(key, existing, regarding, reason, signal));
      return;
    }
    const state: SeriesState = {
      eventName: `${regarding.name}.${(BigInt(now) * 1_000_000n + BigInt(this.sequence++ % 1_000_000)).toString(16)}`,
      namespace: regarding.namespace || 'default',
      count: 1,
      firstSeen: now,
      lastSeen: now,
    };
    this.series.set(key, state);
    const event = {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name: state.eventName, namespace: state.namespace },
      eventTime: formatMicroTime(now),
      reportingController: this.reportingController,
      reportingInstance: this.reportingInstance,
      action,
      reason,
      regarding,
      note,
      type,
    };
    this.chain(key, async () => {
      try {
        await this.api.request({ method: 'POST', path: collectionPath(EVENT, state.namespace), body: event, timeoutMs: 10_000, signal });
      } catch (err) {
        this.series.delete(key);
        if (isAborted(err)) this.log.debug('Dropped event of an aborted reconcile', { reason, object: describe(regarding) });
        else this.log.warn('Failed to create event', { err: errorField(err), reason, object: describe(regarding) });
      }
    });
  }

  private async patchSeries(key: string, state: SeriesState, regarding: ObjectReference, reason: string, signal: AbortSignal | undefined): Promise<void> {
    if (this.series.get(key) !== state) return;
    try {
      await this.api.request({
        method: 'PATCH',
        path: objectPath(EVENT, state.namespace, state.eventName),
        body: { series: { count: state.count, lastObservedTime: formatMicroTime(state.lastSeen) } },
        contentType: 'application/merge-patch+json',
        timeoutMs: 10_000,
        signal,
      });
    } catch (err) {
      if (isAborted(err)) return; // the count is sent with the next repeat
      // The Event expired or was deleted: the next repeat starts a new one.
      if (isNotFound(err)) this.series.delete(key);
      this.log.warn('Failed to update event series', { err: errorField(err), reason, object: describe(regarding) });
    }
  }

  private chain(key: string, write: () => Promise<void>): void {
    const previous = this.pending.get(key) ?? Promise.resolve();
    const next = previous.then(write).finally(() => {
      if (this.pending.get(key) === next) this.pending.delete(key);
    });
    this.pending.set(key, next);
  }

  private takeToken(objectId: string, now: number): boolean {
    const bucket = this.buckets.get(objectId) ?? { tokens: this.burst, updated: now };
    const refill = Math.floor((now - bucket.updated) / this.refillIntervalMs);
    if (refill > 0) {
      bucket.tokens = Math.min(this.burst, bucket.tokens + refill);
      bucket.updated += refill * this.refillIntervalMs;
    }
    if (bucket.tokens >= this.burst) bucket.updated = now;
    this.buckets.set(objectId, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens--;
    return true;
  }

  /** Forgets series and buckets that are past the window, so memory stays bounded. */
  private prune(now: number): void {
    for (const [key, state] of this.series) if (now - state.lastSeen > this.windowMs) this.series.delete(key);
    for (const [id, bucket] of this.buckets) {
      if (bucket.tokens + Math.floor((now - bucket.updated) / this.refillIntervalMs) >= this.burst) this.buckets.delete(id);
    }
  }
}

function describe(ref: ObjectReference): string {
  return `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}`;
}
