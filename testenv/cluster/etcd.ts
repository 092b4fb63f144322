// etcd for the local control plane: one member on loopback with free ports, its data in the
// cluster directory, no fsync (a test cluster's data never outlives it).
import { join } from 'node:path';
import { controlPlaneBinaries } from './binaries.ts';
import type { ClusterProcesses } from './processes.ts';
import { freePort } from '../free-port.ts';
import { waitFor } from '../wait.ts';

/** Starts etcd as the component `etcd` and returns its client URL once it is healthy. */
export async function startEtcd(processes: ClusterProcesses): Promise<string> {
  const bins = controlPlaneBinaries();
  const [client, peer] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${client}`;
  processes.start('etcd', bins.etcd, [
    '--name=default',
    `--data-dir=${join(processes.dir, 'etcd')}`,
    `--listen-client-urls=${url}`,
    `--advertise-client-urls=${url}`,
    `--listen-peer-urls=http://127.0.0.1:${peer}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
    `--initial-cluster=default=http://127.0.0.1:${peer}`,
    '--unsafe-no-fsync=true',
    '--log-level=warn',
  ]);
  await waitFor(async () => (await fetch(`${url}/health`).then((r) => r.ok, () => false)) || undefined, {
    timeoutMs: 30_000,
    description: 'etcd to be healthy',
  });
  return url;
}
