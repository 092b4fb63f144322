// What is normal for this server: the processes seen during a learning window after the sidecar
// starts. Afterwards a new user process whose identity (command name, executable, user) was never
// seen raises an alert, and so does a root shell whose parent is a network service (the classic
// sign of a remote-code-execution exploit), baseline or not. Kernel threads are not judged: their
// names carry changing work-queue suffixes and user space cannot create them.
import type { Clock } from '../kube/util/clock.ts';
import type { GuestProcess } from '../introspection/process-info.ts';
import type { ProcessSocket } from '../introspection/guest-introspector.ts';
import { processKey, type ProcessAlertRule } from './events.ts';

export interface BaselinePolicy {
  /** How long after the first snapshot processes are learned as normal. */
  learningWindowMs: number;
  shells: string[];
  networkServices: string[];
}

export const DEFAULT_SHELLS = ['sh', 'ash', 'bash', 'dash', 'zsh', 'ksh', 'csh', 'tcsh', 'fish', 'busybox'];
export const DEFAULT_NETWORK_SERVICES = [
  'httpd', 'apache2', 'nginx', 'lighttpd', 'caddy', 'php-fpm', 'php-fpm8.2', 'uwsgi', 'gunicorn', 'node', 'java',
  'tomcat', 'mysqld', 'mariadbd', 'postgres', 'redis-server', 'memcached', 'mongod', 'named', 'dnsmasq',
  'vsftpd', 'proftpd', 'smbd', 'telnetd', 'inetd', 'xinetd', 'tcpsvd', 'nc', 'ncat', 'socat', 'exim4', 'postfix', 'dovecot',
];

export interface Alert {
  rule: ProcessAlertRule;
  message: string;
  parent?: GuestProcess;
}

/** Stored with every learned baseline: its listening sockets were learned too (see restore()). */
const LISTENERS_KNOWN = JSON.stringify(['listeners-known']);

export class Baseline {
  private readonly known = new Set<string>();
  private learningStartedAt?: number;
  /** A baseline restored from a record made before listeners were learned learns them at its first scan. */
  private listenersKnown = true;
  /** New user processes seen without a command line, judged at the next snapshot (see judge()). */
  private readonly unsettled = new Map<string, { process: GuestProcess; learning: boolean }>();

  constructor(private readonly policy: BaselinePolicy, private readonly clock: Clock) {}

  get learning(): boolean {
    return this.learningStartedAt === undefined || this.clock.now() - this.learningStartedAt < this.policy.learningWindowMs;
  }

  get size(): number {
    return this.known.size;
  }

  /** The learning window has begun and ended: what is known is the baseline to keep. */
  get learned(): boolean {
    return this.learningStartedAt !== undefined && !this.learning;
  }

  /** What is known, sorted (to be stored). */
  identities(): string[] {
    return [...this.known, LISTENERS_KNOWN].sort();
  }

  /** Takes a stored baseline: no learning window, every process is judged from the first snapshot on. */
  restore(identities: Iterable<string>): void {
    this.known.clear();
    for (const i of identities) if (i !== LISTENERS_KNOWN) this.known.add(i);
    this.listenersKnown = [...identities].includes(LISTENERS_KNOWN);
    this.learningStartedAt = Number.NEGATIVE_INFINITY;
  }

  /**
   * Learns (during the window) and judges the listening sockets of one scan: after the window, a
   * program listening on a protocol and port it did not listen on then raises NewListeningSocket.
   * Returns the sockets to alert on (every process holding one).
   */
  judgeListeners(listeners: ProcessSocket[], processes: Map<number, GuestProcess>): Array<{ process: GuestProcess; socket: ProcessSocket; message: string }> {
    this.learningStartedAt ??= this.clock.now();
    const learnNow = this.learning || !this.listenersKnown;
    const alerts: Array<{ process: GuestProcess; socket: ProcessSocket; message: string }> = [];
    for (const socket of listeners) {
      const process = processes.get(socket.pid);
      if (!process) continue;
      const identity = listenerIdentity(process, socket);
      if (learnNow) this.known.add(identity);
      else if (!this.known.has(identity)) {
        alerts.push({ process, socket, message: `${process.comm} (pid ${process.pid}, uid ${process.euid}) listens on ${socket.protocol} ${socket.local}, which the baseline did not have` });
      }
    }
    this.listenersKnown = true;
    return alerts;
  }

  /**
   * Learns (during the window) and judges the processes newly seen in a snapshot (`all`, by pid).
   * A user process with no command line yet is caught inside execve (the new program's memory
   * is mapped, its arguments not yet written, comm still the old name): which program it is shows
   * at the next snapshot, as an exec that is judged then. One still without a command line at
   * the next snapshot (its pages not resident, or an argument area emptied on purpose) is judged
   * then by what it shows.
   */
  judge(newProcesses: GuestProcess[], all: Map<number, GuestProcess>): Array<{ process: GuestProcess } & Alert> {
    this.learningStartedAt ??= this.clock.now();
    const alerts: Array<{ process: GuestProcess } & Alert> = [];
    for (const [key, { process, learning }] of this.unsettled) {
      this.unsettled.delete(key);
      const now = all.get(process.pid);
      if (now && now.startTimeNs === process.startTimeNs && now.cmdline.length === 0) this.judgeProgram(now, learning, alerts);
    }
    const learning = this.learning;
    for (const p of newProcesses) {
      if (p.kernelThread) continue;
      const parent = all.get(p.ppid);
      if (p.euid === 0 && this.policy.shells.includes(p.comm) && parent && this.policy.networkServices.includes(parent.comm)) {
        alerts.push({ process: p, parent, rule: 'RootShellFromNetworkService', message: `root shell ${p.comm} (pid ${p.pid}) started by network service ${parent.comm} (pid ${parent.pid})` });
      }
      if (p.cmdline.length === 0) this.unsettled.set(processKey(p), { process: p, learning });
      else this.judgeProgram(p, learning, alerts);
    }
    return alerts;
  }

  private judgeProgram(p: GuestProcess, learning: boolean, alerts: Array<{ process: GuestProcess } & Alert>): void {
    const identity = identityOf(p);
    if (learning) {
      this.known.add(identity);
    } else if (!this.known.has(identity)) {
      alerts.push({ process: p, rule: 'ProcessOutsideBaseline', message: `process ${p.comm} (pid ${p.pid}, uid ${p.euid}) is outside the baseline: ${p.args}` });
    }
  }
}

/** A program listening on a protocol and port: the address is left out (loopback or every address, the same service). */
function listenerIdentity(p: GuestProcess, s: ProcessSocket): string {
  return JSON.stringify(['listen', s.protocol, s.localPort ?? 0, p.comm]);
}

/** What makes two processes "the same program run by the same user" for the baseline. */
function identityOf(p: GuestProcess): string {
  return JSON.stringify([p.comm, p.cmdline[0] ?? '', p.euid]);
}
