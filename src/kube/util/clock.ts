/**
 * Time source for every timer in the runtime, injected so tests can drive time by hand
 * (see FakeClock in ./testing/fake-clock.ts) instead of sleeping.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** What setTimeout returned: Node's Timeout for the real clock, a number for the fake one. */
export type TimerHandle = ReturnType<typeof setTimeout> | number;

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, Math.max(0, ms));
    // Runtime timers must never keep a process alive on their own; the owner of the work does.
    t.unref();
    return t;
  },
  clearTimeout: (handle) => clearTimeout(handle),
};

/** Resolves after `ms` on the given clock; rejects nothing, so callers check their own stop flags. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = () => {
      clock.clearTimeout(handle);
      resolve();
    };
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
