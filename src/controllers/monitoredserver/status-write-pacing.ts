// When a changed status is written (pure timing; the controller decides urgency with
// status-events.ts `isUrgentStatusChange`).
// - Urgent changes (Ready or Synced turning, a new generation, a problem, a stopped server) are
//   written at once, always.
// - A progress-only change (Creating → Starting → Running, a VM's phase, the first status too) is
//   coalesced per MonitoredServer: written once `coalesceMs` has passed since the last status write
//   (or the object's creation), the window doubling after each progress-only write, up to
//   `maxCoalesceMs`; a quiet spell as long as that cap starts it over.
// - Progress writes of all MonitoredServers together share one budget (`ProgressWriteBudget`): a
//   burst of `burst`, then one every `intervalMs`, handed out first come first served as reserved
//   slots. A few MonitoredServers never meet it; a thousand starting at once do, and their progress
//   is then written less often instead of the API server taking a write per change of each.

export interface ProgressWindow {
  /** How long a progress-only change waits after `since` (ms). */
  windowMs: number;
  /** The progress-only writes this window counts (0 after an urgent write or a quiet spell). */
  progressWrites: number;
}

/** The coalescing window of a MonitoredServer whose last status write (or creation) was `waitedMs` ago, after `progressWrites` progress-only writes. */
export function progressWindow(waitedMs: number, progressWrites: number, coalesceMs: number, maxCoalesceMs: number): ProgressWindow {
  const counted = waitedMs < maxCoalesceMs ? progressWrites : 0;
  return { windowMs: Math.min(coalesceMs * 2 ** counted, maxCoalesceMs), progressWrites: counted };
}

/**
 * Slots for progress-only status writes, shared by every MonitoredServer of the operator (a
 * generic cell rate: `burst` at once, then one per `intervalMs`). A key asks when it may write and
 * keeps its slot until it writes or no longer needs to (`release`); slots are handed out in the
 * order they are asked for, so a MonitoredServer that waits is never overtaken by later ones.
 */
export class ProgressWriteBudget {
  /** The theoretical time of the next slot when the budget is fully used (ms since the epoch). */
  private nextAt = 0;
  private readonly slots = new Map<string, number>();

  constructor(
    private readonly intervalMs: number,
    private readonly burst: number,
  ) {
    if (!(intervalMs > 0) || !(burst >= 1)) throw new RangeError(`a progress-write budget needs an interval > 0 and a burst ≥ 1 (got ${intervalMs} ms, ${burst})`);
  }

  /** When `key` may write its progress: its slot, reserved now (not before `earliestAt`) if it holds none. */
  slotFor(key: string, earliestAt: number): number {
    const held = this.slots.get(key);
    if (held !== undefined) return held;
    const slot = Math.max(earliestAt, this.nextAt - (this.burst - 1) * this.intervalMs);
    this.nextAt = Math.max(this.nextAt, slot) + this.intervalMs;
    this.slots.set(key, slot);
    return slot;
  }

  /** `key` wrote, or has nothing to write any more: its slot is used up. */
  release(key: string): void {
    this.slots.delete(key);
  }

  /** Keys holding a slot (for tests). */
  get reserved(): number {
    return this.slots.size;
  }
}
