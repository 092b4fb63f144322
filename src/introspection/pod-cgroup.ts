// Which pod a host process belongs to, from what only the kernel says: the pod UID in
// /proc/<pid>/cgroup. A kubelet puts every container of a pod in a cgroup under the pod's own,
// whose name carries the UID:
//   systemd driver : /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid, - as _>.slice/cri-containerd-<id>.scope
//   cgroupfs driver: /kubepods/burstable/pod<uid>/<container id>
// Used by the node agent (a launcher pod's network namespace) and the process mapper (the QEMU of
// a VMI is the one in its launcher pod's cgroup, whatever another process's command line says).
const UID = '[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}';
const POD_SEGMENT = new RegExp(`(?:^|[-/])pod(${UID})(?:\\.slice)?(?=/|$)`);

/** The pod UID a /proc/<pid>/cgroup file names (cgroup v2 or v1 lines), or undefined for a non-pod process. */
export function podUidOfCgroup(content: string): string | undefined {
  for (const line of content.split('\n')) {
    // hierarchy-ID:controllers:path; the path may itself contain ':'.
    const path = line.split(':').slice(2).join(':');
    for (const segment of path.split('/')) {
      const match = POD_SEGMENT.exec(`/${segment}`);
      if (match) return match[1]!.replace(/_/g, '-');
    }
  }
  return undefined;
}

