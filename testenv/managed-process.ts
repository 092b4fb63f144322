// A child process of the test harness that can never outlive it: started under
// `setpriv --pdeathsig KILL`, so the kernel kills it if the harness dies (SIGKILL, crash), and
// killed explicitly on normal exit, SIGINT and SIGTERM.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';

const live = new Set<ManagedProcess>();
let hooksInstalled = false;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // 'exit' handlers must be synchronous: a plain SIGKILL to each child.
  process.on('exit', () => {
    for (const p of live) p.killNow();
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      // A program that handles the signal itself (the demo stops its cluster cleanly, removing
      // namespaces and cgroups) is left to do so; the 'exit' hook still kills what it left running.
      if (process.listenerCount(signal) > 0) return;
      for (const p of live) p.killNow();
      process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1));
    });
  }
}

export class ManagedProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  private stopped = false;

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    readonly logFile: string,
    env: NodeJS.ProcessEnv = process.env,
    cwd?: string,
  ) {
    installExitHooks();
    const log = createWriteStream(logFile, { flags: 'a' });
    this.child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', command, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
      ...(cwd ? { cwd } : {}),
    });
    this.child.stdout?.pipe(log);
    this.child.stderr?.pipe(log);
    live.add(this);
    this.exited = once(this.child, 'exit').then(([code]) => {
      live.delete(this);
      return code as number | null;
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  killNow(): void {
    try {
      this.child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }

  /** SIGTERM, then SIGKILL if it has not exited within graceMs. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.stopped || !this.running) {
      await this.exited;
      return;
    }
    this.stopped = true;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.killNow(), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}
