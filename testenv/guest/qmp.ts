// A minimal QMP client: what libvirt does over the monitor socket to hot-plug a disk into a running
// QEMU (blockdev-add, then device_add) and to unplug it (device_del, DEVICE_DELETED, blockdev-del).
import { createConnection, type Socket } from 'node:net';

type Message = { return?: unknown; error?: { class: string; desc: string }; event?: string; data?: Record<string, unknown>; QMP?: unknown };

export class QmpError extends Error {}

export class Qmp {
  private buffer = '';
  private readonly messages: Message[] = [];
  private waiters: Array<() => void> = [];
  private closed = false;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      for (let nl = this.buffer.indexOf('\n'); nl >= 0; nl = this.buffer.indexOf('\n')) {
        const line = this.buffer.slice(0, nl).trim();
        this.buffer = this.buffer.slice(nl + 1);
        if (line) this.messages.push(JSON.parse(line) as Message);
      }
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Connects to a QMP socket (retrying until QEMU has created it) and leaves negotiation mode. */
  static async connect(path: string, timeoutMs = 30_000): Promise<Qmp> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = createConnection(path, () => resolve(s));
          s.once('error', reject);
        });
        const qmp = new Qmp(socket);
        await qmp.next((m) => m.QMP !== undefined, deadline);
        await qmp.execute('qmp_capabilities');
        return qmp;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`QMP socket ${path} did not answer: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  private async next(match: (m: Message) => boolean, deadline: number): Promise<Message> {
    for (;;) {
      const i = this.messages.findIndex(match);
      if (i >= 0) return this.messages.splice(i, 1)[0]!;
      if (this.closed) throw new Error('QMP connection closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a QMP message');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Runs one command; rejects with QmpError carrying QEMU's message when it fails. */
  async execute(command: string, args?: Record<string, unknown>, timeoutMs = 60_000): Promise<unknown> {
    this.socket.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
    const reply = await this.next((m) => m.return !== undefined || m.error !== undefined, Date.now() + timeoutMs);
    if (reply.error) throw new QmpError(`${command}: ${reply.error.desc}`);
    return reply.return;
  }

  /** Waits for an event (e.g. DEVICE_DELETED for a device id). */
  async event(name: string, match: (data: Record<string, unknown>) => boolean, timeoutMs: number): Promise<Record<string, unknown>> {
    const m = await this.next((msg) => msg.event === name && match(msg.data ?? {}), Date.now() + timeoutMs);
    return m.data ?? {};
  }

  close(): void {
    this.socket.destroy();
  }
}
