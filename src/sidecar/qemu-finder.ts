// Finds the QEMU process of one KubeVirt VMI among all host processes (the sidecar runs with
// hostPID). virt-launcher starts QEMU as `qemu-kvm -name guest=<namespace>_<vmi>,...` and puts the
// VMI's UID in its socket paths (/var/run/kubevirt-private/<uid>/...), which tells a VMI apart from
// an earlier VMI of the same name.
import { isQemu, listPids, parseQemuCommandLine, readCommandLine } from '../introspection/qemu-process.ts';

export interface VmiIdentity {
  namespace: string;
  name: string;
  /** metadata.uid of the VirtualMachineInstance; optional in development. */
  uid?: string;
}

export function matchesVmi(args: string[], vmi: VmiIdentity): boolean {
  if (!isQemu(args)) return false;
  if (parseQemuCommandLine(args).guestName !== `${vmi.namespace}_${vmi.name}`) return false;
  return vmi.uid === undefined || args.some((a) => a.includes(`/${vmi.uid}/`));
}

/** The matching QEMU pid, or undefined. With several (should not happen), the newest (highest start) wins. */
export function findQemuForVmi(vmi: VmiIdentity, procRoot = '/proc'): number | undefined {
  const matches = listPids(procRoot).filter((pid) => {
    const args = readCommandLine(pid, procRoot);
    return args !== undefined && matchesVmi(args, vmi);
  });
  return matches.sort((a, b) => b - a)[0];
}

/**
 * findQemuForVmi with a shortcut: while the last pid found still runs the same VMI, /proc is not
 * rescanned (a node may run thousands of processes and we poll every second).
 */
export function createQemuFinder(procRoot = '/proc'): (vmi: VmiIdentity) => number | undefined {
  let last: number | undefined;
  return (vmi) => {
    if (last !== undefined) {
      const args = readCommandLine(last, procRoot);
      if (args !== undefined && matchesVmi(args, vmi)) return last;
    }
    last = findQemuForVmi(vmi, procRoot);
    return last;
  };
}
