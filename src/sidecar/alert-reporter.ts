// Alerts that reach people: each alert of the process mapper becomes a Warning Event on its
// MonitoredServer (reason = the rule; Event series and a per-object rate limit absorb storms) and
// an entry of status.alerts (count, last alert time, the latest few), written with the mapper's
// own server-side-apply field manager so the operator's status writes never touch it. Status writes
// are coalesced: at most one per `minStatusIntervalMs`, the last one always sent.
import type { AlertsStatus, MonitoredServer } from '../api/v1alpha1/monitoredserver-types.ts';
import { ALERTS_RECENT_LIMIT } from '../api/v1alpha1/monitoredserver-types.ts';
import { MONITORED_SERVER } from '../api/v1alpha1/resource.ts';
import type { GuestProcess } from '../introspection/process-info.ts';
import { applyStatus } from '../kube/client/apply.ts';
import { objectPath } from '../kube/client/resources.ts';
import { isNotFound, type KubeApi } from '../kube/client/rest.ts';
import { EventRecorder, referenceTo, type ObjectReference } from '../kube/runtime/events.ts';
import type { Clock, TimerHandle } from '../kube/util/clock.ts';
import { errorField, type Logger } from '../kube/util/logger.ts';
import { alertNote, alertSummary, type AlertEvent } from './alert-message.ts';

export const ALERT_FIELD_MANAGER = 'hyperspector-process-mapper';
export const ALERT_EVENT_ACTION = 'Detected';

export interface AlertReporterOptions {
  api: KubeApi;
  monitoredServer: { namespace: string; name: string };
  /** Reporting instance of the Events: the mapper pod's name. */
  instance: string;
  clock: Clock;
  logger: Logger;
  /** The latest process table, for the parent chain. */
  processTable: () => readonly GuestProcess[] | undefined;
  minStatusIntervalMs?: number;
}

export class AlertReporter {
  private readonly recorder: EventRecorder;
  private readonly minIntervalMs: number;
  private regarding?: ObjectReference;
  private summary: AlertsStatus = { count: 0 };
  /** Alerts raised before the MonitoredServer was read; reported once it is. */
  private readonly waiting: AlertEvent[] = [];
  private dirty = false;
  private lastWriteAt = -Infinity;
  private timer?: TimerHandle;
  private writing?: Promise<void>;
  private stopped = false;

  constructor(private readonly options: AlertReporterOptions) {
    this.minIntervalMs = options.minStatusIntervalMs ?? 5000;
    this.recorder = new EventRecorder({ api: options.api, reportingController: ALERT_FIELD_MANAGER, reportingInstance: options.instance, clock: options.clock, logger: options.logger });
  }

  /** Reads the MonitoredServer (its UID for Events, the alert count so far); retried until it succeeds. */
  async start(): Promise<void> {
    const { namespace, name } = this.options.monitoredServer;
    let delay = 1000;
    while (!this.stopped && !this.regarding) {
      try {
        const ms = await this.options.api.request<MonitoredServer>({ method: 'GET', path: objectPath(MONITORED_SERVER, namespace, name), timeoutMs: 10_000 });
        this.regarding = referenceTo(ms);
        const previous = ms.status?.alerts;
        // The count continues across mapper restarts and server reboots: it is the MonitoredServer's.
        if (previous) this.summary = { ...previous, recent: [...(previous.recent ?? [])] };
      } catch (err) {
        this.options.logger.warn('Cannot read the MonitoredServer to report alerts on; retrying', { monitoredServer: `${namespace}/${name}`, err: errorField(err), notFound: isNotFound(err) });
        await new Promise<void>((resolve) => this.options.clock.setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 30_000);
      }
    }
    for (const alert of this.waiting.splice(0)) this.report(alert);
  }

  report(alert: AlertEvent): void {
    if (this.stopped) return;
    if (!this.regarding) {
      if (this.waiting.length < 100) this.waiting.push(alert);
      return;
    }
    const table = this.options.processTable();
    this.recorder.warning(this.regarding, alert.rule, ALERT_EVENT_ACTION, alertNote(alert, table));
    const recent = [alertSummary(alert, table), ...(this.summary.recent ?? [])].slice(0, ALERTS_RECENT_LIMIT);
    this.summary = { count: this.summary.count + 1, lastAlertTime: alert.time, recent };
    this.dirty = true;
    this.scheduleWrite();
  }

  /** Writes what is pending now (one attempt) and waits for the Events in flight; for shutdown and tests. */
  async flush(): Promise<void> {
    if (this.timer) this.options.clock.clearTimeout(this.timer);
    this.timer = undefined;
    if (this.writing) await this.writing;
    if (this.dirty) {
      this.writing = this.write();
      await this.writing;
    }
    await this.recorder.flush();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.flush().catch(() => undefined);
    if (this.timer) this.options.clock.clearTimeout(this.timer);
  }

  private scheduleWrite(): void {
    if (this.timer || this.writing) return;
    const wait = Math.max(0, this.lastWriteAt + this.minIntervalMs - this.options.clock.now());
    this.timer = this.options.clock.setTimeout(() => {
      this.timer = undefined;
      this.writing = this.write();
    }, wait);
  }

  private async write(): Promise<void> {
    const { namespace, name } = this.options.monitoredServer;
    this.dirty = false;
    this.lastWriteAt = this.options.clock.now();
    const summary = this.summary;
    try {
      await applyStatus(this.options.api, MONITORED_SERVER, { apiVersion: MONITORED_SERVER.apiVersion, kind: MONITORED_SERVER.kind, metadata: { name, namespace } }, { alerts: summary }, { fieldManager: ALERT_FIELD_MANAGER, timeoutMs: 10_000 });
    } catch (err) {
      // Kept for the next write; the Events already went out.
      this.dirty = true;
      this.options.logger.warn('Failed to write status.alerts; retrying', { monitoredServer: `${namespace}/${name}`, err: errorField(err) });
    } finally {
      this.writing = undefined;
      if (this.dirty && !this.stopped) this.scheduleWrite();
    }
  }
}
