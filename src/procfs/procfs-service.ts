// Wires the 9P process view into the process mapper: the view of the mapper's latest snapshot,
// served on --procfs-listen, attach checked by the given checker, counted in the mapper's metrics.
import type { Clock } from '../kube/util/clock.ts';
import type { Logger } from '../kube/util/logger.ts';
import type { MapperMetrics } from '../sidecar/metrics.ts';
import type { ProcessMapper } from '../sidecar/process-mapper.ts';
import type { GuestThread } from '../introspection/process-details.ts';
import { startNinePServer, type AttachChecker, type NinePServer } from './ninep-server.ts';
import { buildProcView } from './proc-view.ts';
import { parseQemuCommandLine, readCommandLine } from '../introspection/qemu-process.ts';
import type { RequestAuthorizer } from '../sidecar/api-auth.ts';
import { anyAttachChecker, kubernetesAttachChecker, sharedTokenChecker, intakeTokenAttachChecker } from './attach-auth.ts';

import { PROCFS_PORT } from './port.ts';

export interface ProcfsServiceOptions {
  host: string;
  port: number;
  mapper: Pick<ProcessMapper, 'state' | 'processDetails'>;
  checker: AttachChecker;
  metrics: MapperMetrics;
  logger: Logger;
  clock: Clock;
  /** Host /proc (hostPID), where QEMU's command line gives the guest's RAM size. */
  procRoot: string;
}

export function startProcfsService(o: ProcfsServiceOptions): Promise<NinePServer> {
  let ram: { qemuPid: number; bytes: number | undefined } | undefined;
  const ramBytes = (): number | undefined => {
    const qemuPid = o.mapper.state().qemuPid;
    if (qemuPid === undefined) return undefined;
    if (ram?.qemuPid !== qemuPid) {
      let bytes: number | undefined;
      try {
        const args = readCommandLine(qemuPid, o.procRoot);
        bytes = args ? parseQemuCommandLine(args).ramBytes : undefined;
      } catch {
        bytes = undefined;
      }
      ram = { qemuPid, bytes };
    }
    return ram.bytes;
  };
  const root = buildProcView({
    ramBytes,
    snapshot: () => o.mapper.state().snapshot,
    threads: (pid) => (o.mapper.processDetails(pid) as { threads?: GuestThread[] } | undefined)?.threads,
    now: () => o.clock.now(),
  });
  return startNinePServer({
    host: o.host,
    port: o.port,
    root,
    checker: o.checker,
    events: {
      connection: () => o.metrics.procfsConnections.inc(),
      attach: ({ allowed, remote, user, reason, durationMs }) => {
        o.metrics.procfsAttaches.inc({ result: allowed ? 'allowed' : 'refused' });
        if (allowed) o.logger.info('Process view attached', { remote, user, durationMs });
        else o.logger.warn('Refused a process-view attach', { remote, reason, durationMs });
      },
      protocolError: (remote, message) => {
        o.metrics.procfsProtocolErrors.inc();
        o.logger.warn('Closed a process-view connection', { remote, reason: message });
      },
    },
  });
}

/** `host:port`, `host` (port 5640) or `:port` (all addresses). */
export function parseProcfsListen(value: string): { host: string; port: number } {
  const m = /^(.*?)(?::(\d+))?$/.exec(value.trim())!;
  const host = m[1] === '' ? '0.0.0.0' : m[1]!.replace(/^\[(.*)\]$/, '$1');
  const port = m[2] === undefined ? PROCFS_PORT : Number(m[2]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--procfs-listen ${value}: bad port`);
  return { host, port };
}

/**
 * Who may attach: Kubernetes users allowed to get monitoredservers/processes (with the pod's
 * identity), the holder of a shared token, and the IDS VM with its intake token (with the intake's
 * signing key). With none of them nobody could attach, and a view without authentication is not
 * served: that is an error.
 */
export function procfsAttachChecker(o: { listen: string; authorizer?: Pick<RequestAuthorizer, 'authorizeToken'>; sharedToken?: string; intakeToken?: (token: string) => boolean }): AttachChecker {
  const checkers: AttachChecker[] = [];
  if (o.authorizer) checkers.push(kubernetesAttachChecker(o.authorizer));
  if (o.sharedToken !== undefined) checkers.push(sharedTokenChecker(o.sharedToken));
  if (o.intakeToken) checkers.push(intakeTokenAttachChecker(o.intakeToken));
  if (checkers.length === 0) throw new Error(`--procfs-listen ${o.listen}: needs a Kubernetes identity (--monitored-server and a token), the intake key (IDS_INTAKE_KEY) or --procfs-token-file to check attaches`);
  return anyAttachChecker(checkers);
}
