// Helper process for the harness test: starts a cluster, prints the pids of its components as one
// JSON line, then waits to be killed.
import { startCluster } from './local-cluster.ts';

const cluster = await startCluster({ nodes: 1 });
console.log(JSON.stringify({ pids: cluster.pids() }));
setInterval(() => {}, 1 << 30);
