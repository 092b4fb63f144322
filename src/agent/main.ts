// Entry point of the node agent: `node dist/src/agent/main.js [flags]` (see --help). One per node
// (DaemonSet with hostNetwork and hostPID).
import { CommanderError } from 'commander';
import { createKubeApi } from '../kube/client/rest.ts';
import { createLogger, errorField } from '../kube/util/logger.ts';
import { loadKubeConfig } from '../kube/client/client.ts';
import { startAgent } from './agent.ts';
import { parseAgentConfig } from './config.ts';
import { handleTerminationSignals } from '../kube/runtime/shutdown.ts';

let config;
try {
  config = parseAgentConfig(process.argv.slice(2));
} catch (err) {
  // Commander has printed its own errors (and --help, --version); ours are printed here.
  if (err instanceof CommanderError) process.exit(err.exitCode);
  console.error(`error: ${errorField(err)}`);
  process.exit(1);
}
const logger = createLogger({ level: config.logLevel, defaultMeta: { component: 'hyperspector-agent', node: config.nodeName } });
try {
  const kubeConfig = loadKubeConfig(config.kubeconfig ? { kubeconfigPath: config.kubeconfig } : {});
  const running = await startAgent({ kubeConfig, api: createKubeApi(kubeConfig), config, logger, httpPort: config.httpPort, httpHost: config.httpHost });
  logger.info('Started node agent', { httpPort: running.httpPort });
  // The first SIGTERM/SIGINT stops the agent and exits; a second one exits at once.
  handleTerminationSignals({ shutdown: () => running.stop(), logger });
} catch (err) {
  logger.error('Failed to start node agent', { err: errorField(err) });
  process.exit(1);
}
