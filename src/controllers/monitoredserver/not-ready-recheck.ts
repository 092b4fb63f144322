// The safety-net recheck of a MonitoredServer that is not Ready. Everything the controller waits on
// wakes it through a watch, and every time-based state (evacuation slots, snapshot deadlines,
// intake rotation, the lost-hotplug grace, a creation the cache has not shown) asks for its own
// exact recheck; this one only catches what slipped through. It backs off like client-go's
// exponential failure limiter: the base delay after the status changed, doubled up to the cap each
// time the controller plans on the same status again. At N=1000 a fixed 60 s recheck was a fifth of
// all reconciles (bench/convergence.ts: 34.7 reconciles per MonitoredServer at 60 s, 26.9 at 300 s).
import type { MonitoredServerStatus } from '../../api/v1alpha1/monitoredserver-types.ts';
import { statusEqual } from './status.ts';

export interface NotReadyRecheckOptions {
  /** The delay after the status changed (--not-ready-recheck). */
  baseMs: number;
  /** The longest delay while it does not change (--not-ready-recheck-max); never below the base. */
  maxMs: number;
}

export class NotReadyRecheck {
  private readonly last = new Map<string, { status: MonitoredServerStatus; delayMs: number }>();
  private readonly maxMs: number;

  constructor(private readonly options: NotReadyRecheckOptions) {
    this.maxMs = Math.max(options.baseMs, options.maxMs);
  }

  /** When to recheck `key`, not Ready with `status`: the base after a change, else twice the last delay (at most the cap). */
  after(key: string, status: MonitoredServerStatus): number {
    const previous = this.last.get(key);
    const delayMs = previous && statusEqual(previous.status, status) ? Math.min(previous.delayMs * 2, this.maxMs) : this.options.baseMs;
    this.last.set(key, { status, delayMs });
    return delayMs;
  }

  /** The key became Ready or is gone: its next not-Ready spell starts from the base. */
  forget(key: string): void {
    this.last.delete(key);
  }

  clear(): void {
    this.last.clear();
  }

  get size(): number {
    return this.last.size;
  }
}
