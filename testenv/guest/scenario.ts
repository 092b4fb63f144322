// The test guest's known world: a passwd with a non-root user, and scripts with distinct names so
// their processes have distinct comms and command lines; plus reading the guest's own `ps`.
import { createHash } from 'node:crypto';
import type { GuestFile } from './initramfs.ts';
import type { GuestProcess } from '../../src/introspection/process-info.ts';
import type { QemuGuest } from './qemu-guest.ts';

export const GUEST_USERS: Record<string, number> = { root: 0, alice: 1000, bob: 1001 };

export const SCENARIO_FILES: Record<string, GuestFile> = {
  '/etc/passwd': { content: 'root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/tmp:/bin/sh\nbob:x:1001:1001::/tmp:/bin/sh\n' },
  '/etc/group': { content: 'root:x:0:\nalice:x:1000:\nbob:x:1001:\n' },
  // A long-running script: its own process (comm = script name) plus a sleep child.
  '/usr/bin/web-frontend': { content: '#!/bin/sh\nsleep 100001\n', mode: 0o755 },
  '/usr/bin/batch-worker': { content: '#!/bin/sh\nsleep 100002\n', mode: 0o755 },
  '/usr/bin/log-shipper': { content: '#!/bin/sh\nsleep 100003\n', mode: 0o755 },
  '/usr/bin/intruder-tool': { content: '#!/bin/sh\nsleep 100004\n', mode: 0o755 },
  // A "network service" that spawns a root shell, as a remote-code-execution exploit would.
  '/usr/sbin/nginx': { content: "#!/bin/sh\nsh -c 'sleep 100005; echo done'\n", mode: 0o755 },
};

/** Shell lines that start the known processes (some as non-root users, with arguments). */
export const START_KNOWN_PROCESSES = [
  '/usr/bin/web-frontend --port 8080 --workers 2 &',
  "su -s /bin/sh alice -c 'exec /usr/bin/batch-worker --queue reports --nice 5' &",
  "su -s /bin/sh bob -c 'exec /usr/bin/log-shipper /var/log/app.log' &",
  'sleep 100000 &',
];

export const KNOWN_COMMS = ['web-frontend', 'batch-worker', 'log-shipper'];

/** A program the baseline never saw, started by root from the console shell: what an intruder runs. */
export const INTRUDER_COMM = 'reverse-shell';
export const START_INTRUDER = `printf '#!/bin/sh\\nwhile :; do sleep 5; done\\n' > /tmp/${INTRUDER_COMM} && chmod +x /tmp/${INTRUDER_COMM} && /tmp/${INTRUDER_COMM} &`;

export interface PsRow {
  pid: number;
  ppid: number;
  uid: number;
  comm: string;
  args: string;
}

/** The guest's own view: busybox `ps -o pid,ppid,user,comm,args`, with users mapped back to uids. */
const PS_FILE = '/tmp/hs-ps.txt';
const CONSOLE_READS = 6;

/**
 * A command's output, run once into a file and read back with its md5: a serial console under load
 * sometimes doubles a character, so a read whose checksum differs is read again (the same output),
 * not taken for the guest's view.
 */
export async function guestCommandOutput(guest: Pick<QemuGuest, 'run'>, command: string, file = PS_FILE): Promise<string> {
  await guest.run(`${command} > ${file}`);
  for (let read = 0; read < CONSOLE_READS; read++) {
    const out = await guest.run(`md5sum ${file}; cat ${file}`);
    const newline = out.indexOf('\n');
    const sum = out.slice(0, newline).split(/\s+/)[0];
    const content = out.slice(newline + 1);
    if (createHash('md5').update(content, 'latin1').digest('hex') === sum) return content;
  }
  throw new Error(`the output of ${command} was garbled on the serial console in ${CONSOLE_READS} reads`);
}

/** The guest's own ps (guestCommandOutput). */
export async function guestPs(guest: Pick<QemuGuest, 'run'>): Promise<PsRow[]> {
  return parsePs(await guestCommandOutput(guest, 'COLUMNS=4096 ps -o pid,ppid,user,comm,args'));
}

export function parsePs(out: string): PsRow[] {
  const rows: PsRow[] = [];
  for (const line of out.split('\n')) {
    const m = /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(\S+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const [, pid, ppid, user, comm, rawArgs] = m;
    const uid = /^\d+$/.test(user!) ? Number(user) : GUEST_USERS[user!];
    if (uid === undefined) throw new Error(`unknown user ${user} in guest ps output`);
    // busybox prints "{comm} argv..." when comm differs from argv[0]'s basename; the argv is what follows.
    const prefix = `{${comm}} `;
    const args = rawArgs!.startsWith(prefix) ? rawArgs!.slice(prefix.length) : rawArgs!;
    rows.push({ pid: Number(pid), ppid: Number(ppid), uid, comm: comm!, args: args.trim() });
  }
  if (rows.length === 0) throw new Error(`no rows in guest ps output:\n${out}`);
  return rows;
}

/** busybox ps keeps 15 characters of a name (its buffer is TASK_COMM_LEN). */
const BUSYBOX_COMM_MAX = 15;

/** The same columns from an introspected process, as busybox ps prints them (effective uid, short names). */
export function asPsRow(p: GuestProcess): PsRow {
  const comm = p.comm.slice(0, BUSYBOX_COMM_MAX);
  return { pid: p.pid, ppid: p.ppid, uid: p.euid, comm, args: p.cmdline.length > 0 ? p.args.trim() : `[${comm}]` };
}

/** Polls the guest's own ps until a predicate holds (e.g. processes started in the background are there). */
export async function waitForGuestPs(guest: Pick<QemuGuest, 'run'>, predicate: (rows: PsRow[]) => boolean, timeoutMs: number): Promise<PsRow[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // A garbled serial-console read (a doubled character while the guest echoes) is not a view of
    // the guest: read again until the deadline.
    const rows = await guestPs(guest).catch((err: Error) => err);
    if (!(rows instanceof Error) && predicate(rows)) return rows;
    if (Date.now() > deadline) {
      const last = rows instanceof Error ? rows.message : rows.map((r) => JSON.stringify(r)).join('\n');
      throw new Error(`guest ps never satisfied the condition; last:\n${last}`);
    }
  }
}
