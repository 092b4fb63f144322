// A second test guest that reads another guest's processes through the process mapper's 9P view
// (docs/process-mapping.md): the scenario guest plus the virtio NIC and the kernel's 9P client
// (9p, 9pnet, its TCP transport 9pnet_fd, netfs, fscache), loaded by /setup, and `server-ps`/`server-top`, which
// run the unmodified busybox tool in a private mount namespace where /proc is the mounted view;
// the host's unmodified procps-ng `ps` and `top` and psmisc `pstree` (Debian's, with their
// libraries) with their wrappers `server-procps-ps`, `server-procps-top`, `server-pstree`; and
// the operator's forwarder (`hyperspector-intake mount-proc`, `server`) as the IDS VM has it.
// QEMU's user-mode network gives it 10.0.2.15; 10.0.2.2 is the host's loopback.
import { ensureDebianKernel, type DebianKernel } from './debian-kernel.ts';
import { hostProgramFiles } from './host-programs.ts';
import { buildInitramfs } from './initramfs.ts';
import { guestKernelModules } from './kernel-modules.ts';
import { SCENARIO_FILES } from './scenario.ts';
import { FORWARDER_SCRIPT } from '../../src/builders/ids-intake-forwarder.ts';

export const VIEW_MOUNT = '/run/hyperspector/server/proc';
/** Printed by /setup when a module did not load. */
export const PROCFS_MODULES_FAILED_MARKER = '@@9P-MODULES-FAILED';
/** The host as the guest reaches it through QEMU's user-mode network (its 127.0.0.1). */
export const HOST_FROM_GUEST = '10.0.2.2';

/** Where the host's procps-ng and psmisc programs are in the guest (busybox's applets stay first in PATH). */
export const PROCPS_NG = { ps: '/opt/procps-ng/bin/ps', top: '/opt/procps-ng/bin/top', pstree: '/opt/psmisc/bin/pstree' };

/**
 * The tool of the server, not of this guest: /proc is the mounted process view in a private mount
 * namespace, and the tool is pid 1 of a new pid namespace, so that the view's /proc/self (the
 * server's init, src/procfs/proc-view.ts) is also /proc/<its getpid()>, as procps-ng's ps needs.
 */
const inView = (tool: string) => `#!/bin/sh\n# ${tool} of the server, not of this guest: /proc is the mounted process view in private mount and pid namespaces.\nexec unshare -m -p -f sh -c 'mount --bind ${VIEW_MOUNT} /proc && exec ${tool} "$@"' ${tool} "$@"\n`;

let cached: { kernel: DebianKernel; initrd: string } | undefined;

export function procfsReaderGuestAssets(): { kernel: DebianKernel; initrd: string } {
  if (cached) return cached;
  const kernel = ensureDebianKernel();
  const modules = guestKernelModules(kernel, ['virtio_pci', 'virtio_net', '9pnet_fd', '9p']);
  const initrd = buildInitramfs({
    ...SCENARIO_FILES,
    ...modules.files,
    '/setup': { content: `#!/bin/sh\n${modules.loadCommand} || echo "${PROCFS_MODULES_FAILED_MARKER}"\nmkdir -p ${VIEW_MOUNT}\n`, mode: 0o755 },
    '/bin/server-ps': { content: inView('ps'), mode: 0o755 },
    '/bin/server-top': { content: inView('top'), mode: 0o755 },
    // Debian's procps-ng and psmisc as they are, with the loader and libraries ldd names on the host;
    // top (even in batch mode) sets up the terminal from terminfo's dumb entry.
    ...hostProgramFiles({ [PROCPS_NG.ps]: '/usr/bin/ps', [PROCPS_NG.top]: '/usr/bin/top', [PROCPS_NG.pstree]: '/usr/bin/pstree' }, ['/lib/terminfo/d/dumb', '/lib/terminfo/l/linux']),
    '/bin/server-procps-ps': { content: inView(PROCPS_NG.ps), mode: 0o755 },
    '/bin/server-procps-top': { content: inView(PROCPS_NG.top), mode: 0o755 },
    '/bin/server-pstree': { content: inView(PROCPS_NG.pstree), mode: 0o755 },
    // The operator's forwarder, as the IDS VM gets it on its intake disk: mount-proc and server.
    '/bin/hyperspector-intake': { content: FORWARDER_SCRIPT, mode: 0o755 },
  });
  cached = { kernel, initrd };
  return cached;
}

/** QEMU arguments: a virtio NIC on a user-mode network that reaches nothing but the host's loopback. */
export function userNetworkArgs(): string[] {
  return ['-netdev', 'user,id=hsnet,net=10.0.2.0/24,host=10.0.2.2', '-device', 'virtio-net-pci,netdev=hsnet'];
}

export const CONFIGURE_USER_NETWORK = 'ip link set lo up && ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && echo @@NIC-UP';

/** The mount line: read-only, 9P2000.L over TCP, the token as the attach name. */
export function mountViewCommand(port: number, tokenExpr: string, target = VIEW_MOUNT, readOnly = true): string {
  return `mount -t 9p -o trans=tcp,port=${port},version=9p2000.L,${readOnly ? 'ro,' : ''}aname=${tokenExpr} ${HOST_FROM_GUEST} ${target}`;
}
