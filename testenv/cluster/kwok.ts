// kwok: the cluster's nodes. It manages the Node objects annotated kwok.x-k8s.io/node=fake (renews
// their leases, keeps them Ready) and plays the kubelet for the pods bound to them, which run
// nothing.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { controlPlaneBinaries } from './binaries.ts';
import type { ClusterProcesses } from './processes.ts';
import { freePort } from '../free-port.ts';
import { waitFor } from '../wait.ts';

/** Allocatable (and capacity) resources of a node. */
export type NodeCapacity = { cpu: string; memory: string; pods: string };

export async function startKwok(processes: ClusterProcesses, adminKubeconfig: string): Promise<void> {
  const stages = kwokPodStages(processes.dir);
  processes.start('kwok', controlPlaneBinaries().kwok, [
    `--kubeconfig=${adminKubeconfig}`,
    ...(stages ? [`--config=${stages}`] : []),
    '--manage-all-nodes=false',
    '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
    '--manage-nodes-with-label-selector=',
    '--cidr=10.128.0.1/12',
    '--node-ip=127.0.0.1',
    // kwok renews a Lease per node (as kubelet does); without it the node lifecycle controller
    // marks the nodes Unknown after the grace period and every pod on them NotReady.
    '--node-lease-duration-seconds=40',
    `--server-address=127.0.0.1:${await freePort()}`,
    '--v=WARN',
  ]);
}

/**
 * kwok's own default pod stages, except that deleting a pod no longer strips its finalizers: a
 * kubelet deletes a pod's containers, never its finalizers, so a pod held by a finalizer (the
 * virt-handler stand-in holds launcher pods until the domain stopped) stays Terminating as it would.
 * Returns the config file, or undefined where the stages were not copied (kwok's defaults apply).
 */
function kwokPodStages(clusterDir: string): string | undefined {
  const dir = join(controlPlaneBinaries().dir, 'kwok-stages');
  if (!existsSync(join(dir, 'pod-delete.yaml'))) return undefined;
  const docs = ['pod-ready.yaml', 'pod-complete.yaml', 'pod-delete.yaml'].map((f) => readFileSync(join(dir, f), 'utf8'));
  const podDelete = docs[2]!.replace(/\n {4}finalizers:\n {6}empty: true\n/, '\n');
  if (podDelete === docs[2]) throw new Error(`kwok's pod-delete stage changed shape (${dir}); update the harness`);
  const path = join(clusterDir, 'kwok-stages.yaml');
  writeFileSync(path, [docs[0] ?? '', docs[1] ?? '', podDelete].map((d) => d.trim()).join('\n---\n') + '\n');
  return path;
}

/** Creates `count` kwok nodes (node-a, node-b, ...) and waits until kwok reports them Ready. */
export async function createKwokNodes(core: k8s.CoreV1Api, count: number, capacity: NodeCapacity = { cpu: '64', memory: '512Gi', pods: '2000' }): Promise<string[]> {
  const names = Array.from({ length: count }, (_, i) => `node-${String.fromCharCode(97 + i)}`);
  for (const name of names) {
    await core.createNode({
      body: {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: {
          name,
          annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
          labels: {
            'kubernetes.io/hostname': name,
            'kubernetes.io/os': 'linux',
            'kubernetes.io/arch': 'amd64',
            type: 'kwok',
            // virt-handler labels the nodes it runs on; virt-launcher pods select it.
            'kubevirt.io/schedulable': 'true',
          },
        },
        spec: {},
        status: {
          allocatable: capacity,
          capacity,
        },
      },
    });
  }
  await waitFor(
    async () => {
      const nodes = await core.listNode();
      const ready = nodes.items.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
      return ready.length >= count || undefined;
    },
    { timeoutMs: 60_000, description: `${count} kwok nodes to be Ready` },
  );
  return names;
}
