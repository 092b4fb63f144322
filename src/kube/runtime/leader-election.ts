import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { type Clock, type TimerHandle, realClock, sleep } from '../util/clock.ts';
import type { LeaderElectionMetrics } from './metrics.ts';
import { type Logger, errorField, silentLogger } from '../util/logger.ts';
import { type ApiRequest, type KubeApi, isConflict, isNotFound } from '../client/rest.ts';
import { LEASE, collectionPath, objectPath } from '../client/resources.ts';

/** coordination.k8s.io/v1 Lease, the fields leader election uses. */
export interface Lease {
  apiVersion?: 'coordination.k8s.io/v1';
  kind?: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec?: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    /** MicroTime: RFC 3339 with microseconds. */
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/**
 * Reads and writes the one Lease the election runs on. `update` must fail with 409 when the
 * lease's resourceVersion is stale (optimistic concurrency).
 */
export interface LeaseLock {
  readonly namespace: string;
  readonly name: string;
  readonly description: string;
  get(timeoutMs: number): Promise<Lease | undefined>;
  create(lease: Lease, timeoutMs: number): Promise<Lease>;
  update(lease: Lease, timeoutMs: number): Promise<Lease>;
}

export function apiLeaseLock(api: KubeApi, namespace: string, name: string): LeaseLock {
  return {
    namespace,
    name,
    description: `Lease ${namespace}/${name}`,
    async get(timeoutMs) {
      try {
        return await api.request<Lease>({ method: 'GET', path: objectPath(LEASE, namespace, name), timeoutMs });
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    create: (lease, timeoutMs) => api.request<Lease>({ method: 'POST', path: collectionPath(LEASE, namespace), body: lease, timeoutMs }),
    update: (lease, timeoutMs) => api.request<Lease>({ method: 'PUT', path: objectPath(LEASE, namespace, name), body: lease, timeoutMs }),
  };
}

export interface LeaderElectionOptions {
  lock: LeaseLock;
  /** Unique per replica; default `<POD_NAME or hostname>_<random>`. */
  identity?: string;
  /** How long a lease is valid without renewal; other candidates wait this long. Default 15 s. */
  leaseDurationMs?: number;
  /** The leader gives up when it could not renew for this long. Default 10 s. */
  renewDeadlineMs?: number;
  /** Pause between attempts to acquire or renew. Default 2 s. */
  retryPeriodMs?: number;
  /** Release the lease on stop so another replica takes over at once. Default true. */
  releaseOnCancel?: boolean;
  /**
   * After losing the lease, campaign again instead of ending `run()` (client-go ends and the
   * process exits). For operators that must ride out a long API server outage in-process; the
   * callbacks then fire once per term. Default false.
   */
  reelectAfterLoss?: boolean;
  /**
   * Called when this replica becomes leader. `signal` is the term: it aborts the moment the term
   * ends (renew deadline passed, another holder seen, or stop), before onStoppedLeading runs.
   */
  onStartedLeading: (signal: AbortSignal) => void;
  /**
   * Called once when this replica stops leading (lost, or stopped). Return a promise that settles
   * when the term's work has ended (e.g. its worker pool drained): the elector waits for it before
   * it campaigns for a new term or releases the lease, so two terms never overlap in one process.
   */
  onStoppedLeading: () => void | Promise<void>;
  /** Called when a different leader is observed. */
  onNewLeader?: (identity: string) => void;
  clock?: Clock;
  logger?: Logger;
  metrics?: LeaderElectionMetrics;
  random?: () => number;
}

export function defaultIdentity(): string {
  return `${process.env.POD_NAME || hostname()}_${randomUUID().slice(0, 8)}`;
}

/** metav1.MicroTime wire format: RFC 3339 with exactly six fractional digits. */
export function formatMicroTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

// Retry pauses are stretched by up to this fraction, like client-go's JitterFactor.
const JITTER_FACTOR = 1.2;

/**
 * Leader election on a Lease with client-go's leaderelection semantics: a candidate takes the
 * lease when it is free or its holder has not renewed for leaseDuration (measured on the local
 * clock from when the candidate last saw it change, so clock skew between nodes does not matter);
 * the leader renews every retryPeriod and stops leading as soon as renewDeadline passes without a
 * successful renewal. Every write carries the resourceVersion it read, so two candidates can never
 * both win.
 */
export class LeaderElector {
  readonly identity: string;
  private readonly lock: LeaseLock;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly releaseOnCancel: boolean;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly random: () => number;
  private readonly options: LeaderElectionOptions;

  private observed: Lease | undefined;
  private observedAt = 0;
  private lastObservedOk = 0;
  private leading = false;
  /** The current term; aborted the moment it ends. */
  private leadingController: AbortController | undefined;
  /** When the last successful acquire or renewal *began*: the lease is ours for sure from then on. */
  private renewedAt = 0;
  private readonly stopController = new AbortController();
  private running: Promise<void> | undefined;
  private reportedLeader: string | undefined;

  constructor(options: LeaderElectionOptions) {
    this.options = options;
    this.lock = options.lock;
    this.identity = options.identity ?? defaultIdentity();
    this.leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
    this.releaseOnCancel = options.releaseOnCancel ?? true;
    this.clock = options.clock ?? realClock;
    this.random = options.random ?? Math.random;
    this.log = (options.logger ?? silentLogger()).child({ lease: options.lock.description, identity: this.identity });
    if (this.leaseDurationMs <= this.renewDeadlineMs) throw new Error(`Invalid leader election timing for ${options.lock.description}: leaseDuration must be greater than renewDeadline`);
    if (this.renewDeadlineMs <= JITTER_FACTOR * this.retryPeriodMs) throw new Error(`Invalid leader election timing for ${options.lock.description}: renewDeadline must be greater than retryPeriod*${JITTER_FACTOR}`);
    options.metrics?.setLeading(false);
  }

  isLeader(): boolean {
    return this.leading && this.leadingController?.signal.aborted === false;
  }

  /**
   * True while this replica leads and, by the local clock, less than renewDeadline has passed since
   * its last successful renewal began; otherwise ends the term at once (its signal aborts) and
   * returns false. A timer does the same at the deadline, but after a freeze of the process
   * (SIGSTOP, a paused VM, a long GC pause) other code can run before that timer fires, so call this
   * right before each write made for the term (see fenceApi).
   *
   * Why renewDeadline from the start of the renewal is safe: another candidate takes the lease only
   * after it saw no renewal for leaseDuration, counted from when it read our last renewal, which is
   * later than the renewal began. A write checked here reaches the API server with at least
   * leaseDuration - renewDeadline to spare (5 s with the defaults).
   */
  checkLeading(): boolean {
    const term = this.leadingController;
    if (!this.leading || !term || term.signal.aborted) return false;
    if (this.clock.now() - this.renewedAt < this.renewDeadlineMs) return true;
    this.endTerm(new Error(`${this.lock.description} was not renewed within the renew deadline (${this.renewDeadlineMs} ms)`));
    return false;
  }

  /**
   * For readiness: a leader is healthy while its lease is renewed in time, a candidate while it
   * can read the lease (it is standing by and could take over).
   */
  healthy(): boolean {
    if (!this.running) return false;
    const now = this.clock.now();
    if (this.leading) return now - this.renewedAt < this.renewDeadlineMs;
    return now - this.lastObservedOk < this.leaseDurationMs;
  }

  /** Runs the election until this replica stops leading or `stop` is called. */
  run(): Promise<void> {
    this.running ??= this.loop();
    return this.running;
  }

  /** Stops campaigning; a leader releases the lease (if releaseOnCancel) and stops leading. */
  async stop(): Promise<void> {
    this.stopController.abort();
    await this.running;
  }

  private async loop(): Promise<void> {
    const stop = this.stopController.signal;
    this.log.info('Started leader election');
    do {
      while (!stop.aborted && !this.leading) {
        const acquiredAt = await this.tryAcquireOrRenew(this.retryPeriodMs);
        if (acquiredAt !== undefined) {
          this.becomeLeader(acquiredAt);
          break;
        }
        await sleep(this.clock, this.jittered(this.retryPeriodMs), stop);
      }
      if (this.leading) await this.renewLoop(stop, this.leadingController!.signal);
      // Waits until the term's work has ended (onStoppedLeading), so a new term never overlaps it.
      if (this.leading) await this.stopLeading(stop.aborted ? 'stopped' : 'lost');
      if (this.options.reelectAfterLoss && !stop.aborted) await sleep(this.clock, this.jittered(this.retryPeriodMs), stop);
    } while (this.options.reelectAfterLoss && !stop.aborted);
  }

  private becomeLeader(acquiredAt: number): void {
    this.leading = true;
    this.renewedAt = acquiredAt;
    this.leadingController = new AbortController();
    this.options.metrics?.setLeading(true);
    this.log.info('Acquired lease and started leading');
    this.callback(() => this.options.onStartedLeading(this.leadingController!.signal));
  }

  /** Renews until the term ends: deadline missed, another holder seen, or stop. */
  private async renewLoop(stop: AbortSignal, term: AbortSignal): Promise<void> {
    // Ends the term when the deadline passes even if a renew request is still hanging.
    let timer: TimerHandle | undefined;
    const armDeadline = () => {
      if (timer) this.clock.clearTimeout(timer);
      timer = this.clock.setTimeout(() => {
        if (this.checkLeading()) armDeadline();
      }, this.renewDeadlineMs - (this.clock.now() - this.renewedAt));
    };
    armDeadline();
    const interrupted = AbortSignal.any([stop, term]);
    try {
      while (!interrupted.aborted) {
        await sleep(this.clock, this.retryPeriodMs, interrupted);
        // Never renew once the deadline has passed: the lease may be another replica's by now.
        if (interrupted.aborted || !this.checkLeading()) break;
        const remaining = this.renewDeadlineMs - (this.clock.now() - this.renewedAt);
        const renewedAt = await untilAborted(this.tryAcquireOrRenew(Math.max(1, remaining)), interrupted);
        if (renewedAt !== undefined && !interrupted.aborted) {
          this.renewedAt = renewedAt;
          // A renewal that took longer than the deadline does not extend the term.
          if (!this.checkLeading()) break;
          armDeadline();
        } else if (this.heldByOther()) {
          const holder = this.observed?.spec?.holderIdentity;
          this.log.info('Observed another holder of the lease', { holder });
          this.endTerm(new Error(`${this.lock.description} is held by ${holder}`));
          return;
        }
      }
      if (term.aborted && !stop.aborted) {
        this.log.error('Failed to renew lease before the renew deadline', { renewDeadlineMs: this.renewDeadlineMs });
      }
    } finally {
      if (timer) this.clock.clearTimeout(timer);
    }
  }

  private endTerm(reason: Error): void {
    const term = this.leadingController;
    if (term && !term.signal.aborted) term.abort(reason);
  }

  private async stopLeading(why: 'stopped' | 'lost'): Promise<void> {
    this.endTerm(new Error(why === 'stopped' ? 'leader election stopped' : `lost ${this.lock.description}`));
    this.leading = false;
    this.options.metrics?.setLeading(false);
    this.log.info(why === 'stopped' ? 'Stopped leading' : 'Lost lease and stopped leading');
    try {
      await this.options.onStoppedLeading();
    } catch (err) {
      this.log.error('Leader election callback failed', { err: errorField(err) });
    }
    if (why === 'stopped' && this.releaseOnCancel) await this.release();
  }

  /** Gives the lease up so the next candidate need not wait for it to expire. */
  private async release(): Promise<void> {
    const lease = this.observed;
    if (!lease || lease.spec?.holderIdentity !== this.identity) return;
    const now = formatMicroTime(this.clock.now());
    try {
      await this.lock.update(
        { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: now, acquireTime: now } },
        this.renewDeadlineMs,
      );
      this.log.info('Released lease');
    } catch (err) {
      this.log.warn('Failed to release lease; it expires by itself', { err: errorField(err) });
    }
  }

  /**
   * One attempt, as client-go's tryAcquireOrRenew. When this replica holds the lease after it,
   * returns when the attempt began (the time written as renewTime); otherwise undefined.
   */
  private async tryAcquireOrRenew(timeoutMs: number): Promise<number | undefined> {
    const now = this.clock.now();
    const leaseDurationSeconds = Math.ceil(this.leaseDurationMs / 1000);
    let current: Lease | undefined;
    try {
      current = await this.lock.get(timeoutMs);
    } catch (err) {
      this.log.warn('Failed to read lease', { err: errorField(err) });
      return undefined;
    }
    this.lastObservedOk = this.clock.now();
    if (!current) {
      try {
        this.observe(
          await this.lock.create(
            {
              apiVersion: 'coordination.k8s.io/v1',
              kind: 'Lease',
              metadata: { namespace: this.lock.namespace, name: this.lock.name },
              spec: { holderIdentity: this.identity, leaseDurationSeconds, acquireTime: formatMicroTime(now), renewTime: formatMicroTime(now), leaseTransitions: 0 },
            },
            timeoutMs,
          ),
        );
        return now;
      } catch (err) {
        if (!isConflict(err)) this.log.warn('Failed to create lease', { err: errorField(err) });
        return undefined;
      }
    }
    this.observe(current);
    const holder = current.spec?.holderIdentity ?? '';
    const held = holder !== '' && holder !== this.identity;
    const durationMs = (current.spec?.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
    if (held && this.observedAt + durationMs > now) return undefined;
    const spec = current.spec ?? {};
    const renewal = holder === this.identity;
    const next: Lease = {
      ...current,
      spec: {
        ...spec,
        holderIdentity: this.identity,
        leaseDurationSeconds,
        renewTime: formatMicroTime(now),
        acquireTime: renewal ? spec.acquireTime ?? formatMicroTime(now) : formatMicroTime(now),
        leaseTransitions: renewal ? (spec.leaseTransitions ?? 0) : (spec.leaseTransitions ?? 0) + 1,
      },
    };
    try {
      this.observe(await this.lock.update(next, timeoutMs));
      return now;
    } catch (err) {
      if (!isConflict(err)) this.log.warn('Failed to update lease', { err: errorField(err) });
      return undefined;
    }
  }

  /** Records the lease as seen; the expiry clock restarts whenever its content changes. */
  private observe(lease: Lease): void {
    const changed =
      !this.observed ||
      this.observed.spec?.holderIdentity !== lease.spec?.holderIdentity ||
      this.observed.spec?.renewTime !== lease.spec?.renewTime ||
      this.observed.metadata.resourceVersion !== lease.metadata.resourceVersion;
    this.observed = lease;
    if (changed) this.observedAt = this.clock.now();
    const holder = lease.spec?.holderIdentity ?? '';
    if (holder && holder !== this.reportedLeader) {
      this.reportedLeader = holder;
      if (holder !== this.identity) {
        this.log.info('Observed new leader', { leader: holder });
        this.callback(() => this.options.onNewLeader?.(holder));
      }
    }
  }

  private heldByOther(): boolean {
    const holder = this.observed?.spec?.holderIdentity ?? '';
    return holder !== '' && holder !== this.identity;
  }

  private jittered(ms: number): number {
    return ms * (1 + (JITTER_FACTOR - 1) * this.random());
  }

  private callback(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error('Leader election callback failed', { err: errorField(err) });
    }
  }
}

/** Settles with `work`, or with undefined as soon as `signal` aborts (work is then left to finish alone). */
async function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) return undefined;
  let onAbort!: () => void;
  const aborted = new Promise<undefined>((resolve) => {
    onAbort = () => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/**
 * The client for work done on behalf of a leadership term: a write (POST, PUT, PATCH, DELETE) that
 * carries an AbortSignal (a reconcile's, see ReconcileContext.signal) is sent only after
 * `elector.checkLeading()` re-checked the renew deadline on the clock, so a replica resumed after a
 * freeze aborts instead of writing on a lease that another replica may hold by now, and checked
 * again right before it is written to a connection (fenced-dispatcher.ts). Reads are never fenced:
 * a standby's caches list and watch (and stay warm for its term) while it does not lead. Writes
 * without a signal (the election's own Lease requests) pass unchecked.
 */
export function fenceApi(api: KubeApi, elector: Pick<LeaderElector, 'checkLeading'>): KubeApi {
  return {
    request<T>(req: ApiRequest): Promise<T> {
      if (!req.signal || req.method === 'GET') return api.request<T>(req);
      elector.checkLeading();
      // And once more right before it goes on the wire: the client may hold it through a freeze.
      return api.request<T>({ ...req, mayWrite: () => elector.checkLeading() });
    },
  };
}
