// Network namespaces for host-level tests: created with `ip netns`, named with a per-run prefix so
// parallel runs never collide, and all deleted (with every process started in them) on cleanup.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { namedNetns, type NetnsRef } from '../../src/dataplane/netns.ts';
import { waitUntil } from './wait.ts';

const execFileAsync = promisify(execFile);

export async function run(argv: readonly string[], timeoutMs = 60_000): Promise<string> {
  try {
    const { stdout } = await execFileAsync(argv[0]!, argv.slice(1), { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${argv.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

/** A unique prefix for this test process's namespaces. */
export function runPrefix(area: string): string {
  return `hs${process.pid}-${area}`;
}

export class TestNetns {
  readonly ref: NetnsRef;
  private constructor(readonly name: string) {
    this.ref = namedNetns(name);
  }

  /** Creates the namespace with loopback up and IPv6 off (no spontaneous ND/MLD traffic to count). */
  static async create(name: string): Promise<TestNetns> {
    await run(['ip', 'netns', 'add', name]);
    const ns = new TestNetns(name);
    await ns.exec(['sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    await ns.ip('link', 'set', 'lo', 'up');
    return ns;
  }

  exec(argv: readonly string[], timeoutMs?: number): Promise<string> {
    return run(['ip', 'netns', 'exec', this.name, ...argv], timeoutMs);
  }

  ip(...args: string[]): Promise<string> {
    return run(['ip', '-n', this.name, ...args]);
  }

  async json<T>(argv: readonly string[]): Promise<T> {
    const out = await this.exec(argv);
    return (out.trim() === '' ? [] : JSON.parse(out)) as T;
  }

  /** Starts a long-running process in the namespace; `ip netns exec` execs it, so the pid is its own. */
  spawn(argv: readonly string[]): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.name, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  }
}

/** Processes started by a test, stopped (and awaited) on cleanup even when the test failed. */
export class ProcessGroup {
  private readonly children = new Set<ChildProcess>();

  add(child: ChildProcess): ChildProcess {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  async stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill(signal);
    await exited;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.children].map((c) => this.stop(c, 'SIGKILL')));
  }
}

/** Waits until a spawned process prints `marker` on stdout or stderr (e.g. tcpdump's "listening on"). */
export async function waitForOutput(child: ChildProcess, marker: string | RegExp, what: string, timeoutMs = 10_000): Promise<void> {
  let seen = '';
  const collect = (chunk: Buffer) => {
    seen += chunk.toString();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  try {
    await waitUntil(`${what} to print ${String(marker)}`, () => {
      if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}: ${seen.trim()}`);
      return typeof marker === 'string' ? seen.includes(marker) : marker.test(seen);
    }, timeoutMs);
  } finally {
    child.stdout?.off('data', collect);
    child.stderr?.off('data', collect);
    // Keep draining so a chatty process never blocks on a full pipe.
    child.stdout?.resume();
    child.stderr?.resume();
  }
}

export async function deleteNamespaces(prefix: string): Promise<void> {
  const list = await run(['ip', '-j', 'netns', 'list']).catch(() => '[]');
  const names = (JSON.parse(list.trim() || '[]') as { name: string }[]).map((n) => n.name).filter((n) => n.startsWith(prefix));
  for (const name of names) await deleteNamespace(name);
}

/** Deletes one network namespace, first killing what runs in it (it would keep the namespace and its devices alive). */
export async function deleteNamespace(name: string): Promise<void> {
  const pids = (await run(['ip', 'netns', 'pids', name]).catch(() => '')).split(/\s+/).filter(Boolean);
  for (const pid of pids) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await run(['ip', 'netns', 'del', name]).catch(() => undefined);
}
