// The sidecar's core loop: find the VMI's QEMU process, attach, poll the guest process table, turn
// differences into events, judge new processes against the baseline. Follows QEMU across restarts
// (a new pid, or the old one gone) by re-finding and re-attaching. I/O is injected for tests.
import type { Clock, TimerHandle } from '../kube/util/clock.ts';
import type { Logger } from '../kube/util/logger.ts';
import { errorField } from '../kube/util/logger.ts';
import type { KernelProfile } from '../introspection/kernel-profile.ts';
import type { GuestProcess, ProcessSnapshot } from '../introspection/process-info.ts';
import type { ProcessSocket } from '../introspection/guest-introspector.ts';
import { isListening } from '../introspection/sockets.ts';
import { Baseline, type BaselinePolicy } from './baseline.ts';
import type { BaselineRecord, BaselineStore } from './baseline-store.ts';
import { diffProcesses, processKey, type MapperEvent } from './events.ts';
import type { MapperMetrics } from './metrics.ts';
import { AmbiguousQemuError, type VmiIdentity } from './qemu-finder.ts';

const MAX_ATTACH_BACKOFF_MS = 30_000;

export interface Introspector {
  snapshot(): ProcessSnapshot;
  /** Threads, executable and open files of one process; undefined when there is no such process. */
  processDetails?(pid: number): unknown;
  /** Every socket user space holds (ss -anp); undefined when the kernel profile cannot read sockets. */
  listSockets?(): ProcessSocket[] | undefined;
  /** Whether guest memory is read in process_vm_readv batches (false: pread, one piece a call). */
  readonly batchedReads?: boolean;
  close(): void;
}

/** How often the sockets of every process are read by default (each scan walks every fd table). */
export const DEFAULT_SOCKET_SCAN_INTERVAL_MS = 10_000;

export interface ProcessMapperDeps {
  vmi: VmiIdentity;
  /** Given (ConfigMap) profiles; may be empty: the guest kernel's own BTF and kallsyms are used then. */
  profiles: KernelProfile[];
  pollIntervalMs: number;
  baseline: BaselinePolicy;
  clock: Clock;
  logger: Logger;
  metrics: MapperMetrics;
  findQemu: (vmi: VmiIdentity) => number | undefined;
  attach: (qemuPid: number, profiles: KernelProfile[]) => Introspector;
  /** How many past events /events can replay to a reconnecting client (Last-Event-ID). */
  eventHistory?: number;
  /** Where the baseline is kept once learned (per MonitoredServer, across reboots and pods). */
  baselineStore?: BaselineStore;
  /** A baseline loaded from the store: no learning window. */
  restoredBaseline?: BaselineRecord;
  /** How often sockets are scanned for NewListeningSocket (DEFAULT_SOCKET_SCAN_INTERVAL_MS). */
  socketScanIntervalMs?: number;
}

export interface NumberedEvent {
  id: number;
  event: MapperEvent;
}

export interface MapperState {
  qemuPid?: number;
  snapshot?: ProcessSnapshot;
  lastError?: string;
  lastPollAt?: number;
  baselineLearning: boolean;
  /** The last socket scan (GET /sockets), and when it was taken. */
  sockets?: { takenAt: string; sockets: ProcessSocket[] };
}

export class ProcessMapper {
  private introspector?: Introspector;
  private qemuPid?: number;
  private current?: ProcessSnapshot;
  private lastError?: string;
  private lastPollAt?: number;
  private sockets?: { takenAt: string; sockets: ProcessSocket[] };
  private lastSocketScanAt?: number;
  private readonly baseline: Baseline;
  private readonly history: NumberedEvent[] = [];
  private nextEventId = 1;
  private readonly subscribers = new Set<(e: NumberedEvent) => void>();
  private timer?: TimerHandle;
  private stopped = true;
  /** Attaching scans all guest RAM; while it keeps failing (guest booting), try less and less often. */
  private attachFailures = 0;
  private nextAttachAt = 0;
  private readonly alerted = new Set<string>();
  private readonly alertedModules = new Set<string>();
  /** The pids of the last AmbiguousQemu alert, so it is raised once per set of claimants. */
  private ambiguousAlerted?: string;

  /** The learned baseline is in the store (or was loaded from it), or a save is under way. */
  private baselineSaved: boolean;
  private baselineSaving = false;

  constructor(private readonly deps: ProcessMapperDeps) {
    this.baseline = new Baseline(deps.baseline, deps.clock);
    this.baselineSaved = deps.restoredBaseline !== undefined;
    if (deps.restoredBaseline) this.baseline.restore(deps.restoredBaseline.identities);
  }

  start(): void {
    this.stopped = false;
    const tick = () => {
      if (this.stopped) return;
      try {
        this.pollOnce();
      } finally {
        // Whatever happened in this poll, the loop goes on.
        this.timer = this.deps.clock.setTimeout(tick, this.deps.pollIntervalMs);
      }
    };
    tick();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) this.deps.clock.clearTimeout(this.timer);
    this.detach('sidecar stopping', false);
  }

  state(): MapperState {
    return { qemuPid: this.qemuPid, snapshot: this.current, lastError: this.lastError, lastPollAt: this.lastPollAt, baselineLearning: this.baseline.learning, ...(this.sockets ? { sockets: this.sockets } : {}) };
  }

  /** A fresh detailed read of one process; undefined when not attached or no such process. */
  processDetails(pid: number): unknown {
    return this.introspector?.processDetails?.(pid);
  }

  subscribe(listener: (e: NumberedEvent) => void): () => void {
    this.subscribers.add(listener);
    return () => this.subscribers.delete(listener);
  }

  eventsAfter(id: number): NumberedEvent[] {
    return this.history.filter((e) => e.id > id);
  }

  /** One poll: (re)attach if needed, snapshot, publish differences. Never throws. */
  pollOnce(): void {
    this.lastPollAt = this.deps.clock.now();
    try {
      this.poll();
    } finally {
      // A poll that just ended is recent, however long attaching (a first BTF read) took.
      this.lastPollAt = this.deps.clock.now();
    }
  }

  private poll(): void {
    const { logger, metrics } = this.deps;
    let pid: number | undefined;
    try {
      pid = this.deps.findQemu(this.deps.vmi);
    } catch (err) {
      if (!(err instanceof AmbiguousQemuError)) throw err;
      // An impostor in the launcher pod: read nothing until one QEMU is left, and say so once.
      this.detach(err.message, true);
      this.lastError = err.message;
      const key = err.pids.join(',');
      if (this.ambiguousAlerted !== key) {
        this.ambiguousAlerted = key;
        logger.warn('Raised alert', { vmi: this.vmiName(), rule: 'AmbiguousQemu', pids: err.pids });
        this.publishAlert({ type: 'alert', time: new Date(this.deps.clock.now()).toISOString(), rule: 'AmbiguousQemu', message: err.message, pids: err.pids });
      }
      return;
    }
    this.ambiguousAlerted = undefined;
    if (this.introspector && pid !== this.qemuPid) {
      this.detach(pid === undefined ? 'QEMU process exited' : `QEMU restarted as pid ${pid}`, true);
    }
    if (pid === undefined) {
      this.lastError = `no QEMU process for VMI ${this.deps.vmi.namespace}/${this.deps.vmi.name}`;
      return;
    }
    if (!this.introspector) {
      if (this.deps.clock.now() < this.nextAttachAt) return;
      if (!this.tryAttach(pid)) return;
    }

    const end = metrics.snapshotDuration.startTimer();
    let snapshot: ProcessSnapshot;
    try {
      snapshot = this.introspector!.snapshot();
    } catch (err) {
      metrics.snapshots.inc({ result: 'error' });
      this.lastError = `snapshot failed: ${errorField(err)}`;
      this.detach(this.lastError, true);
      return;
    } finally {
      end();
    }
    if (!snapshot.consistent) {
      // Diffing a partial list would report processes as exited that are not: wait for the next poll.
      metrics.snapshots.inc({ result: 'inconsistent' });
      logger.debug('Skipped inconsistent snapshot', { vmi: this.vmiName(), problems: snapshot.problems });
      return;
    }
    metrics.snapshots.inc({ result: 'consistent' });
    metrics.processes.set(snapshot.processes.length);
    this.lastError = undefined;
    const previous = this.current;
    this.current = snapshot;
    this.judgeHidden(previous, snapshot);
    this.judgeHiddenModules(previous, snapshot);
    if (!previous) {
      this.judge(snapshot.processes, snapshot);
    } else {
      const changes = diffProcesses(previous.processes, snapshot.processes, snapshot.takenAt);
      for (const e of changes) this.publish(e);
      // A fork is judged when it appears; the program it then executes is judged again.
      this.judge(changes.flatMap((e) => (e.type === 'process-start' || e.type === 'process-exec' ? [e.process] : [])), snapshot);
    }
    this.scanSockets(snapshot);
  }

  /**
   * NewListeningSocket: every socket-scan interval, the sockets of every process are read; a
   * program listening where the baseline never saw it listen alerts, once per process and port.
   */
  private scanSockets(snapshot: ProcessSnapshot): void {
    const now = this.deps.clock.now();
    const interval = this.deps.socketScanIntervalMs ?? DEFAULT_SOCKET_SCAN_INTERVAL_MS;
    if (!this.introspector?.listSockets || (this.lastSocketScanAt !== undefined && now - this.lastSocketScanAt < interval)) return;
    this.lastSocketScanAt = now;
    let sockets: ProcessSocket[] | undefined;
    try {
      sockets = this.introspector.listSockets();
    } catch (err) {
      this.deps.logger.debug('Socket scan failed; trying again at the next interval', { vmi: this.vmiName(), err: errorField(err) });
      return;
    }
    if (!sockets) return;
    this.sockets = { takenAt: new Date(now).toISOString(), sockets };
    const byPid = new Map(snapshot.processes.map((p) => [p.pid, p]));
    for (const a of this.baseline.judgeListeners(sockets.filter(isListening), byPid)) {
      const key = `${processKey(a.process)}|NewListeningSocket|${a.socket.protocol}/${a.socket.localPort}`;
      if (this.alerted.has(key)) continue;
      this.alerted.add(key);
      this.deps.logger.warn('Raised socket alert', { vmi: this.vmiName(), rule: 'NewListeningSocket', pid: a.process.pid, comm: a.process.comm, message: a.message });
      this.publishAlert({ type: 'alert', time: this.sockets.takenAt, rule: 'NewListeningSocket', message: a.message, process: a.process, socket: a.socket });
    }
  }

  private tryAttach(pid: number): boolean {
    let probe: ProcessSnapshot;
    try {
      this.introspector = this.deps.attach(pid, this.deps.profiles);
      probe = this.introspector.snapshot();
    } catch (err) {
      this.introspector?.close();
      this.introspector = undefined;
      // Typically the guest is still booting; try again on the next poll.
      this.lastError = `attach to QEMU pid ${pid} failed: ${errorField(err)}`;
      this.attachFailures++;
      const backoff = Math.min(this.deps.pollIntervalMs * 2 ** (this.attachFailures - 1), MAX_ATTACH_BACKOFF_MS);
      this.nextAttachAt = this.deps.clock.now() + backoff;
      this.deps.logger.debug('Failed to attach to QEMU process', { vmi: this.vmiName(), qemuPid: pid, err: errorField(err) });
      return false;
    }
    this.qemuPid = pid;
    this.attachFailures = 0;
    this.nextAttachAt = 0;
    this.deps.metrics.attached.set(1);
    this.deps.metrics.attaches.inc();
    this.deps.metrics.kernelProfile.reset();
    this.deps.metrics.kernelProfile.set({ source: probe.kernel.profileSource, release: probe.kernel.release }, 1);
    const reads = this.introspector.batchedReads === undefined ? {} : { memoryReads: this.introspector.batchedReads ? 'process_vm_readv batches' : 'pread (native reader not built, or process_vm_readv refused)' };
    this.deps.logger.info('Attached to guest memory', { vmi: this.vmiName(), qemuPid: pid, kernel: probe.kernel, ...reads });
    this.publish({ type: 'guest-attached', time: probe.takenAt, qemuPid: pid, kernelRelease: probe.kernel.release, profileSource: probe.kernel.profileSource, processCount: probe.processes.length });
    return true;
  }

  private detach(reason: string, announce: boolean): void {
    if (!this.introspector) return;
    this.introspector.close();
    this.introspector = undefined;
    this.current = undefined;
    this.sockets = undefined;
    this.lastSocketScanAt = undefined;
    this.deps.metrics.attached.set(0);
    this.deps.metrics.kernelProfile.reset();
    if (announce) {
      this.deps.logger.info('Detached from guest memory', { vmi: this.vmiName(), qemuPid: this.qemuPid, reason });
      this.publish({ type: 'guest-detached', time: new Date(this.deps.clock.now()).toISOString(), qemuPid: this.qemuPid!, reason });
    }
    this.qemuPid = undefined;
  }

  private judge(newProcesses: GuestProcess[], snapshot: ProcessSnapshot): void {
    const byPid = new Map(snapshot.processes.map((p) => [p.pid, p]));
    // Forget alerts of processes that are gone, so the set stays as small as the process table.
    const present = new Set([...snapshot.processes.map(processKey), ...(snapshot.hiddenProcesses ?? []).map((h) => `${h.pid}@${h.startTimeNs}`)]);
    for (const key of this.alerted) if (!present.has(key.slice(0, key.indexOf('|')))) this.alerted.delete(key);
    for (const a of this.baseline.judge(newProcesses, byPid)) {
      // One alert per rule and program of a process, even when it is seen again after a re-attach.
      const key = `${processKey(a.process)}|${a.rule}|${a.process.comm}|${a.process.args}`;
      if (this.alerted.has(key)) continue;
      this.alerted.add(key);
      this.deps.logger.warn('Raised process alert', { vmi: this.vmiName(), rule: a.rule, pid: a.process.pid, comm: a.process.comm, message: a.message });
      this.publishAlert({ type: 'alert', time: snapshot.takenAt, rule: a.rule, message: a.message, process: a.process, ...(a.parent ? { parent: a.parent } : {}) });
    }
    this.saveLearnedBaseline();
  }

  /** Once the window has ended, the baseline goes to the store; a failed save is tried again at the next poll. */
  private saveLearnedBaseline(): void {
    const store = this.deps.baselineStore;
    if (!store || this.baselineSaved || this.baselineSaving || !this.baseline.learned) return;
    this.baselineSaving = true;
    const identities = this.baseline.identities();
    const record = { identities, learnedAt: new Date(this.deps.clock.now()).toISOString(), ...(this.deps.vmi.uid ? { vmiUid: this.deps.vmi.uid } : {}) };
    store.save(record).then(
      () => {
        this.baselineSaved = true;
        this.deps.logger.info('Saved the learned process baseline', { vmi: this.vmiName(), identities: identities.length, location: store.location });
      },
      (err: unknown) => this.deps.logger.error('Could not save the learned process baseline; trying again at the next poll', { vmi: this.vmiName(), location: store.location, err: errorField(err) }),
    ).finally(() => {
      this.baselineSaving = false;
    });
  }

  /**
   * HiddenProcess: a process the kernel's PID map has and the task list does not, in two
   * consecutive consistent snapshots (one could be a fork that raced the walk). Once per process.
   */
  private judgeHidden(previous: ProcessSnapshot | undefined, snapshot: ProcessSnapshot): void {
    const before = new Set((previous?.hiddenProcesses ?? []).map((h) => `${h.pid}@${h.startTimeNs}`));
    for (const h of snapshot.hiddenProcesses ?? []) {
      const key = `${h.pid}@${h.startTimeNs}|HiddenProcess`;
      if (!before.has(`${h.pid}@${h.startTimeNs}`) || this.alerted.has(key)) continue;
      this.alerted.add(key);
      const process: GuestProcess = {
        pid: h.pid, ppid: 0, comm: h.comm, commTruncated: false, uid: -1, euid: -1, gid: -1, state: '?', startTimeNs: h.startTimeNs,
        kernelThread: false, cmdline: [], cmdlineTruncated: false, args: `[${h.comm}]`,
      };
      const message = `process ${h.pid} (${h.comm}) is in the kernel's PID map but hidden from the task list (task_struct ${h.task})`;
      this.deps.logger.warn('Raised process alert', { vmi: this.vmiName(), rule: 'HiddenProcess', pid: h.pid, comm: h.comm, message });
      this.publishAlert({ type: 'alert', time: snapshot.takenAt, rule: 'HiddenProcess', message, process });
    }
  }

  /** HiddenModule: a module hidden in two consecutive consistent snapshots; once per module. */
  private judgeHiddenModules(previous: ProcessSnapshot | undefined, snapshot: ProcessSnapshot): void {
    const before = new Set((previous?.hiddenModules ?? []).map((m) => `${m.name}@${m.address}`));
    for (const m of snapshot.hiddenModules ?? []) {
      const key = `module:${m.name}@${m.address}`;
      if (!before.has(`${m.name}@${m.address}`) || this.alertedModules.has(key)) continue;
      this.alertedModules.add(key);
      const message = `kernel module ${m.name} (struct module ${m.address}) is in /sys/module but hidden from the module list`;
      this.deps.logger.warn('Raised module alert', { vmi: this.vmiName(), rule: 'HiddenModule', module: m.name, message });
      this.publishAlert({ type: 'alert', time: snapshot.takenAt, rule: 'HiddenModule', message, module: m });
    }
  }

  /** Counts an alert by rule and publishes it: the mapper's own rules and the IDS VM's intake alike. */
  publishAlert(event: Extract<MapperEvent, { type: 'alert' }>): void {
    this.deps.metrics.alerts.inc({ rule: event.rule });
    this.publish(event);
  }

  private publish(event: MapperEvent): void {
    const numbered = { id: this.nextEventId++, event };
    this.history.push(numbered);
    if (this.history.length > (this.deps.eventHistory ?? 1000)) this.history.shift();
    this.deps.metrics.events.inc({ type: event.type });
    for (const s of this.subscribers) s(numbered);
  }

  private vmiName(): string {
    return `${this.deps.vmi.namespace}/${this.deps.vmi.name}`;
  }
}
