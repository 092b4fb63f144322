import { access } from 'node:fs/promises';

// A network namespace the data plane acts in, named by a file the kernel keeps for it.
//
// The node agent enters a launcher pod's namespace through its process (/proc/<pid>/ns/net);
// tests and `ip netns` use bind mounts under /run/netns. Both are just paths to nsenter.

export interface NetnsRef {
  /** Path of the namespace file, e.g. /proc/1234/ns/net or /run/netns/hs-1-node0. */
  readonly path: string;
  /** Short label for logs and error messages. */
  readonly label: string;
  /** How `ip link ... netns <x>` names it (a pid or a /run/netns name; ip takes no paths there). */
  readonly ipNetnsArg: string;
}

/** The network namespace of a process (a virt-launcher pod's QEMU or compute container). */
export function netnsOfPid(pid: number): NetnsRef {
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`Invalid pid ${pid} for a network namespace`);
  return { path: `/proc/${pid}/ns/net`, label: `pid:${pid}`, ipNetnsArg: String(pid) };
}

/** A namespace created by `ip netns add <name>`. */
export function namedNetns(name: string): NetnsRef {
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new Error(`Invalid network namespace name "${name}"`);
  return { path: `/run/netns/${name}`, label: name, ipNetnsArg: name };
}

/** False once the pod's process (or the named namespace) is gone, and with it every device in it. */
export async function netnsExists(netns: NetnsRef): Promise<boolean> {
  return access(netns.path).then(
    () => true,
    () => false,
  );
}
