import { type Logger, errorField, silentLogger } from '../util/logger.ts';

/** The part of `process` the handler uses; injected in tests. */
export interface SignalSource {
  once(signal: NodeJS.Signals, listener: () => void): unknown;
  removeListener(signal: NodeJS.Signals, listener: () => void): unknown;
  exit(code: number): never | void;
}

export interface GracefulShutdownOptions {
  /** Runs once on the first SIGTERM/SIGINT: stop leading (release the lease), drain workers, close servers. */
  shutdown: () => Promise<void>;
  /** Exit code after a clean shutdown; default 0. */
  exitCode?: number;
  logger?: Logger;
  signals?: NodeJS.Signals[];
  source?: SignalSource;
}

/**
 * Installs SIGTERM/SIGINT handling for the operator: the first signal runs `shutdown` and exits;
 * a second signal exits at once (1), so an operator stuck in shutdown can still be killed.
 * Returns a function that removes the handlers.
 */
export function handleTerminationSignals(options: GracefulShutdownOptions): () => void {
  const source: SignalSource = options.source ?? process;
  const signals = options.signals ?? ['SIGTERM', 'SIGINT'];
  const log = options.logger ?? silentLogger();
  let shuttingDown = false;
  const listeners = new Map<NodeJS.Signals, () => void>();
  const onSignal = (signal: NodeJS.Signals) => {
    if (shuttingDown) {
      log.warn('Received a second termination signal; exiting at once', { signal });
      source.exit(1);
      return;
    }
    shuttingDown = true;
    // Listen again so a second signal reaches us instead of the default handler.
    source.once(signal, listeners.get(signal)!);
    log.info('Received termination signal; shutting down', { signal });
    options.shutdown().then(
      () => {
        log.info('Shut down cleanly');
        source.exit(options.exitCode ?? 0);
      },
      (err: unknown) => {
        log.error('Failed to shut down cleanly', { err: errorField(err) });
        source.exit(1);
      },
    );
  };
  for (const signal of signals) {
    const listener = () => onSignal(signal);
    listeners.set(signal, listener);
    source.once(signal, listener);
  }
  return () => {
    for (const [signal, listener] of listeners) source.removeListener(signal, listener);
  };
}
