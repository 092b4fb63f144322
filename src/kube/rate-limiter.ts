/**
 * Per-key exponential backoff for failed work, like client-go's
 * ItemExponentialFailureRateLimiter: base·2^failures, capped, plus jitter so many keys that failed
 * together (e.g. API server down) do not all retry in the same instant.
 */
export interface RateLimiter<K = string> {
  /** Delay before the next retry of `key`; counts one more failure. */
  when(key: K): number;
  /** Clears the failure count of `key` (call on success). */
  forget(key: K): void;
  numRequeues(key: K): number;
}

export interface ExponentialBackoffOptions {
  /** First retry delay; controller-runtime's default is 5 ms. */
  baseDelayMs?: number;
  /** Longest delay; controller-runtime's default is 1000 s. */
  maxDelayMs?: number;
  /** Extra random fraction added to each delay, 0..1 (0.1 → up to +10 %). */
  jitter?: number;
  random?: () => number;
}

export const DEFAULT_BASE_DELAY_MS = 5;
export const DEFAULT_MAX_DELAY_MS = 1_000_000;

export class ExponentialBackoffRateLimiter<K = string> implements RateLimiter<K> {
  private readonly failures = new Map<K, number>();
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly jitter: number;
  private readonly random: () => number;

  constructor(options: ExponentialBackoffOptions = {}) {
    this.baseDelayMs = options.baseDelayMs ?? DEFAULT_BASE_DELAY_MS;
    this.maxDelayMs = options.maxDelayMs ?? DEFAULT_MAX_DELAY_MS;
    this.jitter = options.jitter ?? 0.1;
    this.random = options.random ?? Math.random;
    if (this.baseDelayMs <= 0 || this.maxDelayMs < this.baseDelayMs) {
      throw new Error(`Invalid backoff: baseDelayMs=${this.baseDelayMs} maxDelayMs=${this.maxDelayMs}`);
    }
  }

  when(key: K): number {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    return backoffDelay(failures, this.baseDelayMs, this.maxDelayMs, this.jitter, this.random);
  }

  forget(key: K): void {
    this.failures.delete(key);
  }

  numRequeues(key: K): number {
    return this.failures.get(key) ?? 0;
  }
}

/** Delay for the n-th consecutive failure (n from 0), jittered and capped at `maxMs`. */
export function backoffDelay(failures: number, baseMs: number, maxMs: number, jitter = 0, random: () => number = Math.random): number {
  // 2^failures overflows to Infinity for large counts; Math.min keeps the cap.
  const exponential = Math.min(baseMs * 2 ** failures, maxMs);
  return Math.min(exponential * (1 + jitter * random()), maxMs);
}
