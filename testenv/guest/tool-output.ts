// Parsers for what procps-ng and psmisc print in the test guests (the process-view host test reads
// them through the serial console). Pure; table-tested in test/unit/test-world/tool-output.test.ts.
import { GUEST_USERS } from './scenario.ts';

/** One row of procps-ng `ps -o pid,ppid,user,args`, the user mapped back to its uid. */
export interface ProcpsRow {
  pid: number;
  ppid: number;
  uid: number;
  args: string;
}

export function parseProcpsPs(out: string): ProcpsRow[] {
  const rows = out.split('\n').flatMap((line) => {
    const m = /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(line);
    if (!m) return [];
    const uid = /^\d+$/.test(m[3]!) ? Number(m[3]) : GUEST_USERS[m[3]!];
    if (uid === undefined) throw new Error(`unknown user ${m[3]} in procps-ng ps output`);
    return [{ pid: Number(m[1]), ppid: Number(m[2]), uid, args: m[4]!.trim() }];
  });
  if (rows.length === 0) throw new Error(`no rows in procps-ng ps output:\n${out}`);
  return rows;
}

/** The name in ps's `[name]` args of a process without a command line (a kernel thread); undefined otherwise. */
export function bracketedName(args: string): string | undefined {
  return /^\[(.*)\]$/.exec(args)?.[1];
}

export interface PstreeNode {
  /** The pid of the node it hangs under; undefined at a root. */
  parent: number | undefined;
  /** As pstree prints it: `name`, or `{name}` for a thread. */
  name: string;
}

/**
 * psmisc `pstree -p -l -A` (ASCII, lines not cut) as pid -> parent and name: a child's name starts
 * three columns after its parent's `name(pid)` ends — after `---` or `-+-` on the parent's line,
 * or after `|-` or `` `- `` under the `+` on later lines. A name may hold spaces, not `---`, `-+-` or `(<digits>)`.
 */
export function parsePstree(out: string): Map<number, PstreeNode> {
  const nodes = new Map<number, PstreeNode>();
  const endedAt = new Map<number, number>(); // end column -> pid of the latest node ending there
  for (const line of out.split('\n')) {
    // A name follows the line's start (a root), its indent and `|-` or `` `- ``, or `---` or `-+-`.
    for (const m of line.matchAll(/(^[\s|]*[|`]-|^|---|-\+-)(.+?)\((\d+)\)/g)) {
      const start = m.index + m[1]!.length;
      const pid = Number(m[3]);
      nodes.set(pid, { parent: endedAt.get(start - 3), name: m[2]! });
      endedAt.set(m.index + m[0].length, pid);
    }
  }
  return nodes;
}
