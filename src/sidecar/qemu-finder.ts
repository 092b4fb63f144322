// Finds the QEMU process of one KubeVirt VMI among all host processes (the sidecar runs with
// hostPID). virt-launcher starts QEMU as `qemu-kvm -name guest=<namespace>_<vmi>,...` and puts the
// VMI's UID in its socket paths (/var/run/kubevirt-private/<uid>/...), which tells a VMI apart from
// an earlier VMI of the same name. A command line can be imitated by any process on the node, so
// when the launcher pod's UID is known (vmi.status.activePods, passed by the operator) only a QEMU
// in that pod's cgroup counts — what no process of another pod can fake — and two such candidates
// are refused as ambiguous instead of guessing.
import { readFileSync } from 'node:fs';
import { podUidOfCgroup } from '../introspection/pod-cgroup.ts';
import { isQemu, listPids, parseQemuCommandLine, readCommandLine } from '../introspection/qemu-process.ts';

export interface VmiIdentity {
  namespace: string;
  name: string;
  /** metadata.uid of the VirtualMachineInstance; optional in development. */
  uid?: string;
  /** UID of the virt-launcher pod running the VMI (its entry in vmi.status.activePods); optional in development. */
  launcherPodUid?: string;
}

/** More than one process claims to be the VMI's QEMU in its launcher pod: none is trusted. */
export class AmbiguousQemuError extends Error {
  constructor(readonly pids: number[], vmi: VmiIdentity) {
    super(`${pids.length} processes claim to be the QEMU of VMI ${vmi.namespace}/${vmi.name} (pids ${pids.join(', ')}): refusing to read any`);
    this.name = 'AmbiguousQemuError';
  }
}

export function matchesVmi(args: string[], vmi: VmiIdentity): boolean {
  if (!isQemu(args)) return false;
  if (parseQemuCommandLine(args).guestName !== `${vmi.namespace}_${vmi.name}`) return false;
  return vmi.uid === undefined || args.some((a) => a.includes(`/${vmi.uid}/`));
}

function podUidOfPid(pid: number, procRoot: string): string | undefined {
  try {
    return podUidOfCgroup(readFileSync(`${procRoot}/${pid}/cgroup`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** True when `pid` runs the VMI's QEMU (command line) inside its launcher pod (cgroup), when that is known. */
function isVmiQemu(pid: number, vmi: VmiIdentity, procRoot: string): boolean {
  const args = readCommandLine(pid, procRoot);
  if (args === undefined || !matchesVmi(args, vmi)) return false;
  return vmi.launcherPodUid === undefined || podUidOfPid(pid, procRoot) === vmi.launcherPodUid;
}

/**
 * The VMI's QEMU pid, or undefined. Without a launcher pod UID (development) the newest of several
 * matches wins; with one, several matches in the pod throw AmbiguousQemuError.
 */
export function findQemuForVmi(vmi: VmiIdentity, procRoot = '/proc'): number | undefined {
  const matches = listPids(procRoot).filter((pid) => isVmiQemu(pid, vmi, procRoot)).sort((a, b) => b - a);
  if (matches.length > 1 && vmi.launcherPodUid !== undefined) throw new AmbiguousQemuError(matches.sort((a, b) => a - b), vmi);
  return matches[0];
}

/**
 * findQemuForVmi with a shortcut: while the last pid found still runs the same VMI in the same
 * pod, /proc is not rescanned (a node may run thousands of processes and we poll every second)
 * — except every `rescanEvery` calls, so an impostor appearing later is still seen.
 */
export function createQemuFinder(procRoot = '/proc', rescanEvery = 30): (vmi: VmiIdentity) => number | undefined {
  let last: number | undefined;
  let calls = 0;
  return (vmi) => {
    calls++;
    if (last !== undefined && calls % rescanEvery !== 0 && isVmiQemu(last, vmi, procRoot)) return last;
    last = undefined;
    last = findQemuForVmi(vmi, procRoot);
    return last;
  };
}
