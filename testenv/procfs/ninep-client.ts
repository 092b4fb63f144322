// A minimal 9P2000.L client for tests: one request at a time over TCP, replies decoded with the
// product's codec. Not a product client: the Linux kernel is the real one (host tests).
import { connect, type Socket } from 'node:net';
import { decodeMessage, encodeMessage, NOFID, type Message } from '../../src/procfs/ninep-codec.ts';

export class NinePTestClient {
  private buffered: Buffer = Buffer.alloc(0);
  private readonly replies: Buffer[] = [];
  private waiter?: () => void;
  private closed = false;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, d]);
      while (this.buffered.length >= 4 && this.buffered.length >= this.buffered.readUInt32LE(0)) {
        const size = this.buffered.readUInt32LE(0);
        this.replies.push(this.buffered.subarray(0, size));
        this.buffered = this.buffered.subarray(size);
      }
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on('error', () => undefined);
  }

  static connect(port: number, host = '127.0.0.1'): Promise<NinePTestClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, host, () => resolve(new NinePTestClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Sends one message and returns the decoded reply, or fails at the deadline or when the server closes. */
  async call(m: Message, timeoutMs = 10_000): Promise<ReturnType<typeof decodeMessage>> {
    this.socket.write(encodeMessage(m));
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length === 0) {
      if (this.closed) throw new Error(`the server closed the connection instead of answering ${m.kind}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply to ${m.kind} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return decodeMessage(this.replies.shift()!);
  }

  /** Tversion then Tattach of fid 0 with the token as aname: the reply to the attach. */
  async attach(token: string): Promise<ReturnType<typeof decodeMessage>> {
    await this.call({ kind: 'Tversion', tag: 0xffff, msize: 65536, version: '9P2000.L' });
    return this.call({ kind: 'Tattach', tag: 1, fid: 0, afid: NOFID, uname: '', aname: token, nUname: 0 });
  }

  close(): void {
    this.socket.destroy();
  }
}
