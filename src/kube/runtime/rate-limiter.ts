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
export const DEFAULT_OVERALL_QPS = 10;
export const DEFAULT_OVERALL_BURST = 100;
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

/**
 * An overall token bucket across all keys (client-go's BucketRateLimiter): retries beyond the burst
 * are spread out at `qps`, so a mass failure (e.g. the API server was down) does not turn into a
 * retry storm. Delays are reserved, as with golang.org/x/time/rate.
 */
export class BucketRateLimiter<K = string> implements RateLimiter<K> {
  private tokens: number;
  private last: number;

  constructor(
    private readonly qps: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    if (qps <= 0 || burst < 1) throw new Error(`Invalid token bucket: qps=${qps} burst=${burst}`);
    this.tokens = burst;
    this.last = now();
  }

  when(_key: K): number {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.qps);
    this.last = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : (-this.tokens / this.qps) * 1000;
  }

  forget(_key: K): void {}

  numRequeues(_key: K): number {
    return 0;
  }
}

/** The longest delay of several limiters (client-go's MaxOfRateLimiter). */
export class MaxOfRateLimiter<K = string> implements RateLimiter<K> {
  private readonly limiters: RateLimiter<K>[];

  constructor(...limiters: RateLimiter<K>[]) {
    this.limiters = limiters;
  }

  when(key: K): number {
    return Math.max(0, ...this.limiters.map((l) => l.when(key)));
  }

  forget(key: K): void {
    for (const l of this.limiters) l.forget(key);
  }

  numRequeues(key: K): number {
    return Math.max(0, ...this.limiters.map((l) => l.numRequeues(key)));
  }
}

/**
 * controller-runtime's default: per-key exponential backoff (5 ms .. 1000 s, here with jitter)
 * and an overall bucket of 10 retries/s with a burst of 100.
 */
export function defaultControllerRateLimiter<K = string>(options: ExponentialBackoffOptions & { now?: () => number; qps?: number; burst?: number } = {}): RateLimiter<K> {
  return new MaxOfRateLimiter<K>(
    new ExponentialBackoffRateLimiter<K>(options),
    new BucketRateLimiter<K>(options.qps ?? DEFAULT_OVERALL_QPS, options.burst ?? DEFAULT_OVERALL_BURST, options.now),
  );
}
