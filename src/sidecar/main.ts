// Entry point of the process-mapper sidecar (same image as the operator):
//   node src/sidecar/main.ts --namespace shop --name web-1 --uid <vmi uid> --profiles /etc/hyperspector/kernel-profiles
// Runs with hostPID, CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH on the server VMI's node; reads guest memory read-only.
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { loadKubeConfig } from '../kube/client/client.ts';
import { createKubeApi, type KubeApi } from '../kube/client/rest.ts';
import { AlertReporter } from './alert-reporter.ts';
import { RequestAuthorizer } from './api-auth.ts';
import { Command } from 'commander';
import { realClock } from '../kube/util/clock.ts';
import { createLogger, errorField, type Logger } from '../kube/util/logger.ts';
import { GuestIntrospector } from '../introspection/guest-introspector.ts';
import { GuestProfileCache } from '../introspection/guest-kernel-discovery.ts';
import { loadKernelProfiles } from '../introspection/profile-store.ts';
import { DEFAULT_NETWORK_SERVICES, DEFAULT_SHELLS } from './baseline.ts';
import { configMapBaselineStore, type BaselineRecord, type BaselineStore } from './baseline-store.ts';
import { createSidecarServer } from './http-server.ts';
import { createMapperMetrics } from './metrics.ts';
import { DEFAULT_SOCKET_SCAN_INTERVAL_MS, ProcessMapper } from './process-mapper.ts';
import { packageVersion } from '../version.ts';
import { createQemuFinder } from './qemu-finder.ts';
import { parseProcfsListen, procfsAttachChecker, startProcfsService } from '../procfs/procfs-service.ts';
import type { NinePServer } from '../procfs/ninep-server.ts';
import { AlertIntake, intakeAlertEvents } from './intake.ts';
import { checkIntakeToken, DEFAULT_ROTATION_MS, MIN_ROTATION_MS, parseIntakeKey } from './intake-credential.ts';

interface SidecarOptions {
  namespace: string;
  name: string;
  uid?: string;
  launcherPodUid?: string;
  profiles: string[];
  listen: string;
  pollInterval: string;
  socketScanInterval: string;
  baselineWindow: string;
  networkServices: string;
  shells: string;
  procRoot: string;
  monitoredServer?: string;
  kubeconfig?: string;
  baselineConfigmap?: string;
  baselineGeneration: string;
  procfsListen?: string;
  procfsTokenFile?: string;
  idsCredentialRotation: string;
}

const list = (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean);

export async function main(argv: string[]): Promise<void> {
  const env = process.env;
  const opts = new Command('hyperspector-process-mapper')
    .description('Serves the process table of a KubeVirt VMI, read from its guest memory without an agent')
    .version(packageVersion(), '--version', 'print the version and exit')
    .option('--namespace <ns>', 'VMI namespace (env VMI_NAMESPACE)', env.VMI_NAMESPACE)
    .option('--name <name>', 'VMI name (env VMI_NAME)', env.VMI_NAME)
    .option('--uid <uid>', 'VMI metadata.uid (env VMI_UID)', env.VMI_UID)
    .option('--launcher-pod-uid <uid>', 'UID of the VMI\'s virt-launcher pod: only a QEMU in that pod\'s cgroup is read (env LAUNCHER_POD_UID)', env.LAUNCHER_POD_UID)
    .option('--profiles <path>', 'kernel profile file or directory overriding the guest kernel\'s own BTF and kallsyms, repeatable; a missing path is no profile (env KERNEL_PROFILES, default /etc/hyperspector/kernel-profiles)', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--listen <host:port>', 'HTTP listen address (env LISTEN)', env.LISTEN ?? '0.0.0.0:9464')
    .option('--poll-interval <ms>', 'process-table poll interval', env.POLL_INTERVAL_MS ?? '1000')
    .option('--socket-scan-interval <ms>', 'how often every process\'s sockets are read (NewListeningSocket)', env.SOCKET_SCAN_INTERVAL_MS ?? String(DEFAULT_SOCKET_SCAN_INTERVAL_MS))
    .option('--baseline-window <ms>', 'learning window of the process baseline', env.BASELINE_WINDOW_MS ?? '300000')
    .option('--network-services <comms>', 'comma-separated parent names that make a root shell an alert', env.NETWORK_SERVICES ?? DEFAULT_NETWORK_SERVICES.join(','))
    .option('--shells <comms>', 'comma-separated shell names', env.SHELLS ?? DEFAULT_SHELLS.join(','))
    .option('--proc-root <dir>', 'host /proc (hostPID)', env.PROC_ROOT ?? '/proc')
    .option('--monitored-server <name>', 'the MonitoredServer (in the VMI namespace) whose Events and status.alerts receive the alerts (env MONITORED_SERVER)', env.MONITORED_SERVER)
    .option('--baseline-configmap <namespace/name>', 'ConfigMap that keeps the learned baseline across reboots and pods (env BASELINE_CONFIGMAP); without it each start learns anew', env.BASELINE_CONFIGMAP)
    .option('--baseline-generation <value>', 'relearn generation: a stored baseline of another one is not used (env BASELINE_GENERATION)', env.BASELINE_GENERATION ?? '')
    .option('--procfs-listen <host:port>', 'serve the read-only 9P process view for unmodified ps/top (docs/process-mapping.md) on this address; port 5640 when omitted (env PROCFS_LISTEN); off when not given', env.PROCFS_LISTEN)
    .option('--procfs-token-file <path>', 'a shared token that may also attach the process view (env PROCFS_TOKEN_FILE); Kubernetes tokens allowed to get monitoredservers/processes always may', env.PROCFS_TOKEN_FILE)
    .option('--ids-credential-rotation <ms>', 'rotation period of the IDS VM\'s intake token; the signing key is env IDS_INTAKE_KEY (env IDS_CREDENTIAL_ROTATION_MS)', env.IDS_CREDENTIAL_ROTATION_MS ?? String(DEFAULT_ROTATION_MS))
    .option('--kubeconfig <path>', 'kubeconfig for reporting alerts (default: the pod\'s service account)')
    .parse(argv)
    .opts<SidecarOptions>();
  if (!opts.namespace || !opts.name) throw new Error('--namespace and --name (or VMI_NAMESPACE and VMI_NAME) are required');
  const profilePaths = opts.profiles.length > 0 ? opts.profiles : list(env.KERNEL_PROFILES ?? '/etc/hyperspector/kernel-profiles');

  const logger = createLogger({ defaultMeta: { component: 'hyperspector-process-mapper' } });
  const present = profilePaths.filter((p) => existsSync(p));
  const profiles = loadKernelProfiles(present);
  logger.info('Loaded kernel profiles', { count: profiles.length, releases: profiles.map((p) => p.kernel.release), paths: present, zeroConfig: 'profiles are built from guest memory for kernels not given here' });
  const profileCache = new GuestProfileCache();
  const metrics = createMapperMetrics();
  const vmi = { namespace: opts.namespace, name: opts.name, ...(opts.uid ? { uid: opts.uid } : {}), ...(opts.launcherPodUid ? { launcherPodUid: opts.launcherPodUid } : {}) };
  const pollIntervalMs = Number(opts.pollInterval);
  // The pod's own identity reports alerts and checks who may read the API.
  let api: KubeApi | undefined;
  try {
    if (opts.monitoredServer) api = podIdentity(opts);
  } catch (err) {
    logger.error('No Kubernetes identity (no service-account token?): alerts are not reported, the API is not authenticated', { err: errorField(err) });
  }
  // A baseline learned before (another pod, VMI or boot of this server) is used as is: no new
  // learning window. Not knowing whether there is one is no reason to learn anew: retried, then fatal.
  const baselineStore = api && opts.baselineConfigmap && opts.monitoredServer
    ? configMapBaselineStore({ api, configMap: opts.baselineConfigmap, generation: opts.baselineGeneration, monitoredServer: { namespace: opts.namespace, name: opts.monitoredServer } })
    : undefined;
  const restoredBaseline = baselineStore ? await loadBaseline(baselineStore, logger) : undefined;
  if (!baselineStore) logger.warn('No --baseline-configmap or identity: the baseline is learned anew at every start');
  const mapper = new ProcessMapper({
    vmi,
    profiles,
    pollIntervalMs,
    socketScanIntervalMs: Number(opts.socketScanInterval),
    baseline: { learningWindowMs: Number(opts.baselineWindow), shells: list(opts.shells), networkServices: list(opts.networkServices) },
    clock: realClock,
    logger,
    metrics,
    findQemu: createQemuFinder(opts.procRoot),
    attach: (pid, profiles) => GuestIntrospector.attachToQemu(pid, profiles, { profileCache }),
    ...(baselineStore ? { baselineStore } : {}),
    ...(restoredBaseline ? { restoredBaseline } : {}),
  });
  const [host, port] = splitHostPort(opts.listen);
  // Without an identity nobody can be authenticated: the process table (command lines hold secrets)
  // is then served on loopback only.
  if (!api && !isLoopback(host)) throw new Error(`--listen ${opts.listen}: without a Kubernetes identity (--monitored-server and a service-account token or --kubeconfig) the API cannot authenticate callers, so it listens on loopback only`);
  let reporter: AlertReporter | undefined;
  if (api && opts.monitoredServer) {
    const r = new AlertReporter({ api, monitoredServer: { namespace: opts.namespace, name: opts.monitoredServer }, instance: process.env.POD_NAME || hostname(), clock: realClock, logger, processTable: () => mapper.state().snapshot?.processes });
    mapper.subscribe(({ event }) => {
      if (event.type === 'alert') r.report(event);
    });
    void r.start();
    reporter = r;
  } else {
    logger.warn('No --monitored-server or identity: alerts are served on /events and counted in metrics, not reported to the Kubernetes API');
  }
  const authorizer = api && opts.monitoredServer ? new RequestAuthorizer({ api, monitoredServer: { namespace: opts.namespace, name: opts.monitoredServer }, clock: realClock }) : undefined;
  // The IDS VM's alert intake: its own token (derived from the key the operator gives this pod), the
  // same pipeline as the mapper's alerts (/events, the counter, the Event, status.alerts).
  const intakeKey = env.IDS_INTAKE_KEY ? parseIntakeKey(env.IDS_INTAKE_KEY) : undefined;
  const rotationMs = Number(opts.idsCredentialRotation);
  if (intakeKey && !(rotationMs >= MIN_ROTATION_MS)) throw new Error(`--ids-credential-rotation ${opts.idsCredentialRotation}: at least ${MIN_ROTATION_MS} ms`);
  const intakeSubject = { namespace: opts.namespace, name: opts.monitoredServer ?? opts.name };
  const intake = intakeKey
    ? new AlertIntake({
        key: intakeKey,
        subject: intakeSubject,
        rotationMs,
        clock: realClock,
        requests: metrics.intakeRequests,
        onAlerts: (alerts, receivedAt) => {
          for (const event of intakeAlertEvents(alerts, receivedAt)) mapper.publishAlert(event);
        },
      })
    : undefined;
  if (!intakeKey) logger.info('No IDS_INTAKE_KEY: the IDS VM alert intake is off');
  const server = createSidecarServer({ mapper, metrics, vmi, pollIntervalMs, clock: realClock, ...(authorizer ? { authorizer } : {}), ...(intake ? { intake } : {}) });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const address = server.address();
  logger.info('Started process mapper', { vmi: `${vmi.namespace}/${vmi.name}`, uid: vmi.uid, listen: typeof address === 'object' && address ? `${address.address}:${address.port}` : opts.listen, pollIntervalMs });
  let procfs: NinePServer | undefined;
  if (opts.procfsListen) {
    // Who may attach: Kubernetes users allowed to get monitoredservers/processes, a shared token,
    // and the IDS VM with its own intake token (hyperspector-intake mount-proc).
    const intakeToken = intakeKey ? (token: string) => checkIntakeToken(intakeKey, intakeSubject, token, realClock.now(), rotationMs).valid : undefined;
    const checker = procfsAttachChecker({ listen: opts.procfsListen, ...(authorizer ? { authorizer } : {}), ...(opts.procfsTokenFile ? { sharedToken: readFileSync(opts.procfsTokenFile, 'utf8') } : {}), ...(intakeToken ? { intakeToken } : {}) });
    procfs = await startProcfsService({ ...parseProcfsListen(opts.procfsListen), mapper, checker, metrics, logger, clock: realClock, procRoot: opts.procRoot });
    const a = procfs.address();
    logger.info('Serving the 9P process view', { procfsListen: `${a.address}:${a.port}` });
  }
  mapper.start();
  // Keeps the process alive: the mapper's timers are unref'd by design.
  const keepAlive = setInterval(() => undefined, 1 << 30);

  const shutdown = (signal: string) => {
    logger.info('Stopping process mapper', { signal });
    clearInterval(keepAlive);
    mapper.stop();
    void reporter?.stop();
    void procfs?.close();
    server.closeAllConnections();
    server.close(() => process.exit(0));
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

async function loadBaseline(store: BaselineStore, logger: Logger): Promise<BaselineRecord | undefined> {
  for (let attempt = 1; ; attempt++) {
    try {
      const record = await store.load();
      if (record) logger.info('Restored the learned process baseline: no learning window', { location: store.location, identities: record.identities.length, learnedAt: record.learnedAt, learnedOnVmi: record.vmiUid });
      else logger.info('No stored process baseline for this generation: learning', { location: store.location });
      return record;
    } catch (err) {
      if (attempt >= 10) throw new Error(`cannot read the stored process baseline (${store.location}): ${(err as Error).message}`);
      logger.warn('Could not read the stored process baseline; retrying', { location: store.location, attempt, err: errorField(err) });
      await new Promise((r) => setTimeout(r, 3000));
    }
  }
}

/** The pod's own identity: its service account (in-cluster) or an explicit kubeconfig; never a node's or user's default kubeconfig. */
function podIdentity(opts: SidecarOptions): KubeApi {
  const kubeConfig = opts.kubeconfig ? loadKubeConfig({ kubeconfigPath: opts.kubeconfig }) : loadKubeConfig({ env: { KUBERNETES_SERVICE_HOST: process.env.KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT: process.env.KUBERNETES_SERVICE_PORT } });
  return createKubeApi(kubeConfig);
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

function splitHostPort(listen: string): [string, number] {
  const i = listen.lastIndexOf(':');
  return [listen.slice(0, i) || '0.0.0.0', Number(listen.slice(i + 1))];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv).catch((err) => {
    process.stderr.write(`hyperspector-process-mapper: ${errorField(err)}\n`);
    process.exit(1);
  });
}
