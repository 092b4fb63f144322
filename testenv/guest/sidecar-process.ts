// Runs the real sidecar entry point (src/sidecar/main.ts) as a child process and reads its API:
// the listen port from its start log line, and /events through an SSE parser.
import { spawn, type ChildProcess } from 'node:child_process';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { MapperEvent } from '../../src/sidecar/events.ts';

export interface ReceivedEvent {
  at: number;
  id: string;
  event: MapperEvent;
}

export class SidecarProcess {
  private log = '';
  readonly events: ReceivedEvent[] = [];
  private abort = new AbortController();
  private waiters: Array<() => void> = [];

  private constructor(readonly child: ChildProcess, readonly baseUrl: string) {}

  get pid(): number {
    return this.child.pid!;
  }

  get output(): string {
    return this.log;
  }

  /** `wrapper`: a command prefix, e.g. `setpriv … --` to run with a container's capabilities; `env`: added to the environment. */
  static async start(args: string[], timeoutMs = 60_000, wrapper: string[] = [], env: Record<string, string> = {}): Promise<SidecarProcess> {
    const command = [...wrapper, process.execPath, '--import', 'tsx', 'src/sidecar/main.ts', '--listen', '127.0.0.1:0', ...args];
    const child = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let log = '';
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`sidecar did not start within ${timeoutMs} ms:\n${log}`)), timeoutMs);
      const onData = (d: Buffer) => {
        log += d.toString();
        const m = /"listen":"([\d.]+:\d+)"/.exec(log);
        if (m) {
          clearTimeout(timer);
          resolve(`http://${m[1]}`);
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.on('exit', (code) => reject(new Error(`sidecar exited with ${code}:\n${log}`)));
    });
    const sidecar = new SidecarProcess(child, url);
    sidecar.log = log;
    child.stderr!.on('data', (d: Buffer) => (sidecar.log += d.toString()));
    await sidecar.subscribe();
    return sidecar;
  }

  private async subscribe(): Promise<void> {
    // Last-Event-ID 0 replays what was published before we connected (e.g. guest-attached).
    const res = await fetch(`${this.baseUrl}/events`, { signal: this.abort.signal, headers: { 'last-event-id': '0' } });
    if (!res.ok || !res.body) throw new Error(`/events answered ${res.status}`);
    const parser = createParser({
      onEvent: (m: EventSourceMessage) => {
        this.events.push({ at: Date.now(), id: m.id ?? '', event: JSON.parse(m.data) as MapperEvent });
        for (const w of this.waiters.splice(0)) w();
      },
    });
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    void (async () => {
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parser.feed(value);
        }
      } catch {
        // aborted on stop
      }
    })();
  }

  /** The first event (received after index `from`) matching the predicate, or an error at the deadline. */
  async waitForEvent(predicate: (e: MapperEvent) => boolean, timeoutMs: number, from = 0): Promise<ReceivedEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.slice(from).find((e) => predicate(e.event));
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching event within ${timeoutMs} ms; got: ${this.events.slice(from).map((e) => JSON.stringify(e.event).slice(0, 200)).join('\n')}\n--- sidecar log ---\n${this.log.slice(-2000)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Polls a JSON endpoint until the predicate holds, or fails at the deadline. */
  async waitForJson<T>(path: string, predicate: (body: T) => boolean, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { body } = await this.getJson<T>(path);
      if (predicate(body)) return body;
      if (Date.now() > deadline) throw new Error(`${path} never satisfied the condition within ${timeoutMs} ms; last: ${JSON.stringify(body).slice(0, 500)}`);
      await new Promise((resolve) => setTimeout(resolve, 100)); // polling period, not a wait for the world
    }
  }

  async getJson<T>(path: string): Promise<{ status: number; body: T }> {
    const res = await fetch(`${this.baseUrl}${path}`);
    return { status: res.status, body: (await res.json()) as T };
  }

  async stop(): Promise<void> {
    this.abort.abort();
    if (this.child.exitCode === null) {
      const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
      this.child.kill('SIGTERM');
      await gone;
    }
  }
}
