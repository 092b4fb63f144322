// Entry point of the operator: `node dist/src/main.js [flags]` (see --help).
import { CommanderError } from 'commander';
import { parseConfig } from './config.ts';
import { createLogger, errorField } from './kube/util/logger.ts';
import { handleTerminationSignals } from './kube/runtime/shutdown.ts';
import { startOperator } from './operator.ts';

let config;
try {
  config = parseConfig(process.argv.slice(2));
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  throw err;
}
const logger = createLogger({ level: config.logLevel, defaultMeta: { component: 'hyperspector-operator' } });
try {
  const operator = await startOperator(config, logger);
  logger.info('Started operator', { identity: operator.identity, httpPort: operator.httpPort });
  // The first SIGTERM/SIGINT stops reconciling, releases the lease and exits; a second one exits at once.
  handleTerminationSignals({ shutdown: () => operator.stop(), logger });
  const code = await operator.ended;
  // Leave room for the last log lines, then exit even if a handle lingers.
  setTimeout(() => process.exit(code), 100).unref();
  if (code !== 0) process.exitCode = code;
} catch (err) {
  logger.error('Failed to start operator', { err: errorField(err) });
  process.exit(1);
}
