// Boots a Linux guest under QEMU for introspection tests, with the serial console on QEMU's stdio.
// KVM is tried first when /dev/kvm is usable; a guest that does not come up under KVM in time is
// killed and booted again under TCG, and the choice is remembered for the rest of the process.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, chownSync, constants, copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { READY_MARKER } from './initramfs.ts';

export type Accelerator = 'kvm' | 'tcg';

export interface BootOptions {
  kernel: string;
  initrd: string;
  kaslr: boolean;
  memoryMiB?: number;
  /** KubeVirt-style identity: `-name guest=<namespace>_<name>` and the VMI uid in a socket path. */
  namespace?: string;
  name?: string;
  uid?: string;
  /** QEMU CPU model; `max` under TCG offers LA57 (5-level paging). */
  cpu?: string;
  bootTimeoutMs?: number;
  /** More QEMU arguments, appended as given (e.g. `-blockdev`/`-device` for a disk). */
  extraArgs?: string[];
  /** Run QEMU as this user (e.g. KubeVirt's qemu user, 107); kernel and initrd are copied where it can read them. */
  runAs?: { uid: number; gid: number };
}

let chosenAccelerator: Accelerator | undefined;
const log = (msg: string) => process.stderr.write(`[guest] ${msg}\n`);

function kvmUsable(): boolean {
  if (process.env.HYPERSPECTOR_GUEST_ACCEL === 'tcg') return false;
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

export class QemuGuest {
  private output = '';
  private waiters: Array<() => void> = [];
  private exited = false;
  private commandSeq = 0;

  private constructor(
    private readonly child: ChildProcess,
    readonly accelerator: Accelerator,
    private readonly tempDir: string,
  ) {
    const onData = (d: Buffer) => {
      this.output += d.toString('latin1').replace(/\r/g, '');
      for (const w of this.waiters.splice(0)) w();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', () => {
      this.exited = true;
      for (const w of this.waiters.splice(0)) w();
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get serial(): string {
    return this.output;
  }

  static async boot(options: BootOptions): Promise<QemuGuest> {
    if (chosenAccelerator === undefined && kvmUsable()) {
      const guest = QemuGuest.start(options, 'kvm');
      try {
        await guest.waitForText(READY_MARKER, options.bootTimeoutMs ?? 30_000);
        chosenAccelerator = 'kvm';
        log('KVM works; guests run under KVM');
        return guest;
      } catch {
        log(`KVM did not work (QEMU failed or the guest hung); falling back to TCG for this run. QEMU said: ${guest.serial.slice(-300).trim()}`);
        await guest.stop();
        chosenAccelerator = 'tcg';
      }
    }
    const accel = chosenAccelerator ?? 'tcg';
    chosenAccelerator = accel;
    const guest = QemuGuest.start(options, accel);
    try {
      await guest.waitForText(READY_MARKER, (options.bootTimeoutMs ?? 30_000) * (accel === 'tcg' ? 4 : 1));
    } catch (err) {
      await guest.stop();
      throw new Error(`guest did not boot under ${accel}: ${(err as Error).message}\n--- serial ---\n${guest.serial.slice(-3000)}`);
    }
    log(`guest booted under ${accel.toUpperCase()} (pid ${guest.pid})`);
    return guest;
  }

  private static start(o: BootOptions, accel: Accelerator): QemuGuest {
    const tempDir = mkdtempSync(join(tmpdir(), 'hs-guest-'));
    const uid = o.uid ?? '00000000-0000-0000-0000-000000000000';
    const socketDir = join(tempDir, 'kubevirt-private', uid);
    mkdirSync(socketDir, { recursive: true });
    let { kernel, initrd } = o;
    if (o.runAs) {
      kernel = join(tempDir, 'vmlinuz');
      initrd = join(tempDir, 'initrd');
      copyFileSync(o.kernel, kernel);
      copyFileSync(o.initrd, initrd);
      for (const p of [tempDir, join(tempDir, 'kubevirt-private'), socketDir, kernel, initrd]) chownSync(p, o.runAs.uid, o.runAs.gid);
    }
    const append = ['console=ttyS0', 'panic=-1', 'quiet', 'loglevel=1', o.kaslr ? 'kaslr' : 'nokaslr'].join(' ');
    const args = [
      '-name', `guest=${o.namespace ?? 'hs-test'}_${o.name ?? 'guest'},debug-threads=on`,
      '-machine', `q35,accel=${accel}`,
      '-cpu', o.cpu ?? (accel === 'kvm' ? 'host' : 'max'),
      '-m', `${o.memoryMiB ?? 256}`,
      '-smp', '1',
      '-nodefaults', '-no-reboot', '-display', 'none', '-monitor', 'none',
      '-serial', 'stdio',
      '-chardev', `socket,id=hs-mon,path=${join(socketDir, 'virt-serial0')},server=on,wait=off`,
      '-kernel', kernel, '-initrd', initrd, '-append', append,
      ...(o.extraArgs ?? []),
    ];
    const child = spawn('qemu-system-x86_64', args, { stdio: ['pipe', 'pipe', 'pipe'], ...(o.runAs ? { uid: o.runAs.uid, gid: o.runAs.gid } : {}) });
    return new QemuGuest(child, accel, tempDir);
  }

  /** Resolves when the serial output contains text (searched from `from`), or rejects at the deadline. */
  async waitForText(text: string | RegExp, timeoutMs: number, from = 0): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rest = this.output.slice(from);
      const i = typeof text === 'string' ? rest.indexOf(text) : rest.search(text);
      if (i >= 0) return from + i;
      if (this.exited) throw new Error(`QEMU exited while waiting for ${String(text)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${String(text)} on the serial console`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Runs one shell line in the guest's init shell and returns its output. */
  async run(command: string, timeoutMs = 60_000): Promise<string> {
    const n = ++this.commandSeq;
    const begin = `@@BEGIN-${n}@@`;
    const end = `@@END-${n}@@`;
    const from = this.output.length;
    // Markers are assembled by the guest's printf so an echoed command line cannot match them; the
    // command gets a line of its own so it may end with `&`.
    this.child.stdin!.write(`printf '%s\\n' "@@BEGIN-${n}""@@"\n${command}\nprintf '%s\\n' "@@END-${n}""@@"\n`);
    const endAt = await this.waitForText(`${end}\n`, timeoutMs, from);
    const beginAt = this.output.indexOf(`${begin}\n`, from);
    return this.output.slice(beginAt + begin.length + 1, endAt);
  }

  /** Sends a shell line without waiting (e.g. to start a background process). */
  send(command: string): void {
    this.child.stdin!.write(`${command}\n`);
  }

  async stop(): Promise<void> {
    if (!this.exited) {
      const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
      this.child.kill('SIGKILL');
      await gone;
    }
    rmSync(this.tempDir, { recursive: true, force: true });
  }
}
