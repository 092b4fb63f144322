// A real guest's serial console as KubeVirt exposes it: the `virt-serial0` socket (one client at a
// time, as `virtctl console`) and its log file, which holds everything the guest printed since boot.
// Commands run in the test initramfs's init shell with the marker protocol of qemu-guest.ts.
import { createConnection, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { waitFor } from '../wait.ts';

export class GuestConsole {
  private socket?: Socket;
  private commandSeq = 0;

  constructor(
    readonly socketPath: string,
    readonly logPath: string,
  ) {}

  /** Everything the guest printed so far (carriage returns removed). */
  get output(): string {
    try {
      return readFileSync(this.logPath, 'latin1').replace(/\r/g, '');
    } catch {
      return '';
    }
  }

  /** Resolves with the offset of text in the output (searched from `from`), or rejects at the deadline. */
  async waitForText(text: string | RegExp, timeoutMs: number, from = 0, isAlive: () => boolean = () => true): Promise<number> {
    return waitFor(
      () => {
        const rest = this.output.slice(from);
        const i = typeof text === 'string' ? rest.indexOf(text) : rest.search(text);
        if (i >= 0) return from + i;
        if (!isAlive()) throw new Error(`QEMU exited while waiting for ${String(text)}; console:\n${this.output.slice(-2000)}`);
        return undefined;
      },
      { timeoutMs, intervalMs: 50, description: `${String(text)} on the serial console ${this.logPath}` },
    );
  }

  private async connection(): Promise<Socket> {
    if (this.socket && !this.socket.destroyed) return this.socket;
    this.socket = await new Promise<Socket>((resolve, reject) => {
      const s = createConnection(this.socketPath, () => resolve(s));
      s.once('error', reject);
    });
    this.socket.on('error', () => undefined);
    this.socket.resume(); // what it says is in the log file
    return this.socket;
  }

  /** Sends a shell line without waiting (e.g. to start a background process). */
  async send(command: string): Promise<void> {
    (await this.connection()).write(`${command}\n`);
  }

  /** Runs one shell line in the guest's init shell and returns its output. */
  async run(command: string, timeoutMs = 60_000): Promise<string> {
    const n = ++this.commandSeq;
    const begin = `@@BEGIN-${n}@@`;
    const end = `@@END-${n}@@`;
    const from = this.output.length;
    await this.send(`printf '%s\\n' "@@BEGIN-${n}""@@"\n${command}\nprintf '%s\\n' "@@END-${n}""@@"`);
    const endAt = await this.waitForText(`${end}\n`, timeoutMs, from);
    const output = this.output;
    const beginAt = output.indexOf(`${begin}\n`, from);
    return output.slice(beginAt + begin.length + 1, endAt);
  }

  close(): void {
    this.socket?.destroy();
    this.socket = undefined;
  }
}
