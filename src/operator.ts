// Wires the operator together: caches, controller, leader election, Events, /metrics and health,
// and graceful shutdown.
import type { OperatorConfig } from './config.ts';
import { MonitoredServerController } from './controllers/monitoredserver/controller.ts';
import type { EventSink } from './controllers/monitoredserver/events.ts';
import { EventRecorder, referenceTo } from './kube/runtime/events.ts';
import { HealthServer, informersSyncedCheck, leaderElectionCheck } from './kube/runtime/health-server.ts';
import { apiLeaseLock, defaultIdentity, fenceApi, LeaderElector } from './kube/runtime/leader-election.ts';
import { createLogger, errorField, type Logger } from './kube/util/logger.ts';
import { OperatorMetrics } from './kube/runtime/metrics.ts';
import { createKubeApi } from './kube/client/rest.ts';
import { NO_KUBECONFIG_MESSAGE } from './kube/client/kubeconfig-sources.ts';
import { loadKubeAuth } from './kube/client/light-kubeconfig.ts';

export { NO_KUBECONFIG_MESSAGE };

export interface RunningOperator {
  httpPort: number;
  identity: string;
  /** Stops reconciling, releases the lease, closes the caches and the HTTP server. */
  stop(): Promise<void>;
  /** Resolves when the operator ends on its own (lost leadership); with the exit code to use. */
  ended: Promise<number>;
}

export async function startOperator(config: OperatorConfig, logger: Logger = createLogger({ level: config.logLevel, defaultMeta: { component: 'hyperspector-operator' } })): Promise<RunningOperator> {
  // The light kubeconfig unless the credentials need client-node's (exec, auth provider): ~50 MiB less resident.
  const kubeConfig = await loadKubeAuth(config.kubeconfig ? { kubeconfigPath: config.kubeconfig } : {});
  const api = createKubeApi(kubeConfig);
  const metrics = new OperatorMetrics();
  const identity = defaultIdentity();
  // Requests made for a leadership term (reconciles and their Events carry its signal) re-check
  // the renew deadline right before they are sent; `elector` is set below when election is on.
  let elector: LeaderElector | undefined;
  const termApi = fenceApi(api, { checkLeading: () => elector?.checkLeading() ?? false });
  const recorder = new EventRecorder({ api: termApi, reportingInstance: identity, logger });
  // The signal of the current leadership term; an Event is written for the term that recorded it.
  let term: AbortSignal | undefined;
  const events: EventSink = {
    record: (ms, type, reason, message) => recorder.event(referenceTo(ms), type, reason, 'Reconcile', message, { signal: term }),
  };
  const controller = new MonitoredServerController({
    kubeConfig,
    api: termApi,
    namespaces: config.namespaces,
    concurrency: config.concurrency,
    logger,
    metrics,
    events,
    notReadyRecheckMs: config.notReadyRecheckMs,
    notReadyRecheckMaxMs: config.notReadyRecheckMaxMs,
    processMapper: {
      image: config.processMapperImage,
      defaultKernelProfilesConfigMap: config.kernelProfilesConfigMap,
      namespace: config.processMapperNamespace,
      serviceAccountName: config.processMapperServiceAccount,
      serviceName: config.processMapperService,
      idsCredentialRotationMs: config.idsCredentialRotationMs,
    },
    kubevirtNamespace: config.kubevirtNamespace,
    networking: { settings: config.networking, claimNamespace: config.idsAddressNamespace },
    snapshotMinuteMs: config.snapshotMinuteMs,
  });
  const health = new HealthServer({ port: config.httpPort, host: config.httpHost, metrics, logger });
  health.addLivenessCheck('ping', () => true);
  health.addReadinessCheck('informers', informersSyncedCheck([{ name: 'caches', hasSynced: () => controller.hasSynced() }]));
  const httpPort = await health.start();

  let resolveEnded!: (code: number) => void;
  const ended = new Promise<number>((resolve) => (resolveEnded = resolve));
  let stopping = false;

  controller.startInformers();
  const lead = async (signal?: AbortSignal) => {
    term = signal;
    await controller.waitForSync();
    if (stopping || signal?.aborted) return;
    // Resolves at once: the elector starts a term only after the previous one drained.
    await controller.startWorkers(signal);
    if (stopping || signal?.aborted) return;
    logger.info('Started reconciling', { namespaces: config.namespaces.length ? config.namespaces : 'all', concurrency: config.concurrency });
  };
  if (config.leaderElect) {
    elector = new LeaderElector({
      lock: apiLeaseLock(api, config.leaderElectionNamespace, config.leaderElectionId),
      identity,
      leaseDurationMs: config.leaseDurationMs,
      renewDeadlineMs: config.renewDeadlineMs,
      retryPeriodMs: config.retryPeriodMs,
      logger,
      metrics: metrics.leaderElection(config.leaderElectionId),
      // After a lost term (e.g. an API server outage longer than the renew deadline) the replica
      // keeps its caches and competes for the lease again instead of exiting.
      reelectAfterLoss: true,
      onStartedLeading: (signal) => {
        logger.info('Became leader', { identity });
        lead(signal).catch((err: unknown) => logger.error('Failed to start reconciling', { err: errorField(err) }));
      },
      onStoppedLeading: async () => {
        if (stopping) return;
        // The term's signal has aborted already: requests in flight are cancelled, no key is handed
        // out and nothing more is written. The elector campaigns again only once this resolves, so
        // a new term never overlaps the old pool; the caches stay warm for it.
        logger.error('Lost leadership; aborted reconciles in flight', { identity });
        await controller.stopWorkers();
        logger.info('Drained the lost term; standing by for the lease', { identity });
      },
    });
    health.addReadinessCheck('leader-election', leaderElectionCheck(elector));
    void elector.run();
  } else {
    void lead();
  }

  return {
    httpPort,
    identity,
    ended,
    async stop() {
      if (stopping) return;
      stopping = true;
      logger.info('Stopping operator', {});
      await controller.stop();
      await elector?.stop();
      await recorder.flush().catch(() => {});
      await health.close();
      resolveEnded(0);
    },
  };
}
