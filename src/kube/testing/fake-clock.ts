import type { Clock, TimerHandle } from '../util/clock.ts';

interface PendingTimer {
  id: number;
  at: number;
  fn: () => void;
}

/**
 * A manually driven Clock for tests. `advance(ms)` fires due timers in time order and lets the
 * promise jobs they start run between timers, so async code driven by timers behaves as it would
 * in real time, without sleeping.
 */
export class FakeClock implements Clock {
  private current: number;
  private nextId = 1;
  private timers: PendingTimer[] = [];

  constructor(start = Date.parse('2026-01-01T00:00:00Z')) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer = { id: this.nextId++, at: this.current + Math.max(0, ms), fn };
    this.timers.push(timer);
    return timer.id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }

  /** Number of timers not yet fired. */
  pendingTimers(): number {
    return this.timers.length;
  }

  /**
   * Moves time forward by `ms` without firing any timer, as a process resumed after a freeze
   * (SIGSTOP, a paused VM) sees it: the clock has jumped, and code may run before the overdue
   * timers do. The next `advance` fires them.
   */
  jump(ms: number): void {
    this.current += ms;
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way. */
  async advance(ms: number): Promise<void> {
    const target = this.current + ms;
    await flushPromises();
    for (;;) {
      const due = this.timers
        .filter((t) => t.at <= target)
        .sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.current = Math.max(this.current, due.at);
      due.fn();
      await flushPromises();
    }
    this.current = target;
    await flushPromises();
  }
}

/** Lets queued promise jobs and immediates run; enough for chains of awaits on resolved promises. */
export async function flushPromises(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
