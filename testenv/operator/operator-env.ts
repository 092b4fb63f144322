// A ready-to-use environment for operator integration tests: a LocalCluster running KubeVirt's own
// virt-controller and virt-api with the virt-handler stand-in, the operator's RBAC, and helpers to
// read and wait on objects.
import * as k8s from '@kubernetes/client-node';
import type { MonitoredServer } from '../../src/api/v1alpha1/monitoredserver-types.ts';
import { startCluster, type LocalCluster } from '../cluster/local-cluster.ts';
import type { KubeVirtWorld, KubeVirtWorldOptions } from '../kubevirt/kubevirt-world.ts';
import { grantOperatorRbac } from './operator-rbac.ts';
import { ensureNamespace } from '../cluster/namespaces.ts';
import { startOperatorProcess, type OperatorProcess } from './operator-process.ts';
import { waitFor } from '../wait.ts';

type Obj = { metadata: k8s.V1ObjectMeta; spec?: any; status?: any }; // eslint-disable-line @typescript-eslint/no-explicit-any

export const MS = { group: 'hyperspector.io', version: 'v1alpha1', plural: 'monitoredservers' };
export const VM = { group: 'kubevirt.io', version: 'v1', plural: 'virtualmachines' };
export const VMI = { group: 'kubevirt.io', version: 'v1', plural: 'virtualmachineinstances' };

export class OperatorTestEnv {
  readonly custom: k8s.CustomObjectsApi;
  readonly core: k8s.CoreV1Api;

  constructor(readonly cluster: LocalCluster) {
    this.custom = cluster.api(k8s.CustomObjectsApi);
    this.core = cluster.api(k8s.CoreV1Api);
  }

  static async start(
    nodes = 3,
    nodeCapacity?: { cpu: string; memory: string; pods: string },
    kubevirt: KubeVirtWorldOptions = {},
  ): Promise<OperatorTestEnv> {
    const cluster = await startCluster({ nodes, kubevirt, ...(nodeCapacity ? { nodeCapacity } : {}) });
    try {
      await grantOperatorRbac(cluster);
      return new OperatorTestEnv(cluster);
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }

  /** KubeVirt's controllers and the virt-handler stand-in of this environment. */
  get kubevirt(): KubeVirtWorld {
    if (!this.cluster.kubevirt) throw new Error('the cluster runs without KubeVirt');
    return this.cluster.kubevirt;
  }

  async stop(): Promise<void> {
    await this.cluster.stop();
  }

  namespace(name: string): Promise<void> {
    return ensureNamespace(this.cluster, name);
  }

  async get(kind: typeof MS, namespace: string, name: string): Promise<Obj | undefined> {
    try {
      return (await this.custom.getNamespacedCustomObject({ ...kind, namespace, name })) as Obj;
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  }

  async list(kind: typeof MS, namespace?: string, labelSelector?: string): Promise<Obj[]> {
    const res = namespace
      ? await this.custom.listNamespacedCustomObject({ ...kind, namespace, ...(labelSelector ? { labelSelector } : {}) })
      : await this.custom.listClusterCustomObject({ ...kind, ...(labelSelector ? { labelSelector } : {}) });
    return (res as { items: Obj[] }).items;
  }

  async create(kind: typeof MS, namespace: string, body: object): Promise<Obj> {
    return (await this.custom.createNamespacedCustomObject({ ...kind, namespace, body })) as Obj;
  }

  async mergePatch(kind: typeof MS, namespace: string, name: string, body: object): Promise<Obj> {
    return (await this.custom.patchNamespacedCustomObject(
      { ...kind, namespace, name, body },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    )) as Obj;
  }

  async delete(kind: typeof MS, namespace: string, name: string): Promise<void> {
    try {
      await this.custom.deleteNamespacedCustomObject({ ...kind, namespace, name });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
    }
  }

  async createMonitoredServer(ms: MonitoredServer): Promise<Obj> {
    return this.create(MS, ms.metadata.namespace ?? 'default', ms);
  }

  condition(obj: Obj | undefined, type: string): { status: string; reason: string; message: string; lastTransitionTime: string } | undefined {
    return (obj?.status?.conditions ?? []).find((c: { type: string }) => c.type === type);
  }

  /** Waits until the MonitoredServer's condition has the status (and reason, if given). */
  async waitForCondition(namespace: string, name: string, type: string, status: string, reason?: string, timeoutMs = 60_000): Promise<Obj> {
    let last: unknown;
    return waitFor(
      async () => {
        const ms = await this.get(MS, namespace, name);
        const c = this.condition(ms, type);
        last = c ?? `no ${type} condition`;
        return c && c.status === status && (!reason || c.reason === reason) ? ms : undefined;
      },
      { timeoutMs, intervalMs: 200, description: `${namespace}/${name} ${type}=${status}${reason ? ` (${reason})` : ''}` },
    ).catch((err: Error) => {
      // What the condition said last tells why it never came.
      throw new Error(`${err.message}; the condition was last ${JSON.stringify(last)}`);
    });
  }

  async waitGone(kind: typeof MS, namespace: string, name: string, timeoutMs = 60_000): Promise<void> {
    await waitFor(async () => (await this.get(kind, namespace, name)) === undefined || undefined, {
      timeoutMs,
      description: `${kind.plural} ${namespace}/${name} to be gone`,
    });
  }

  async events(namespace: string, involvedName: string): Promise<Array<{ reason: string; note: string; type: string }>> {
    const api = this.cluster.api(k8s.EventsV1Api);
    const list = await api.listNamespacedEvent({ namespace });
    return list.items
      .filter((e) => e.regarding?.name === involvedName)
      .map((e) => ({ reason: e.reason ?? '', note: e.note ?? '', type: e.type ?? '' }));
  }

  async waitForEvent(namespace: string, involvedName: string, reason: string, timeoutMs = 30_000): Promise<{ reason: string; note: string; type: string }> {
    return waitFor(async () => (await this.events(namespace, involvedName)).find((e) => e.reason === reason), {
      timeoutMs,
      description: `Event ${reason} on ${namespace}/${involvedName}`,
    });
  }
}

/**
 * Mocha hooks for a suite that runs the operator (as its own service account) in an environment
 * with KubeVirt: started before the suite, checked alive after each test, stopped after the suite.
 */
export function useOperatorEnv(namespace: string, nodes = 3, kubevirt: KubeVirtWorldOptions = {}): { env: () => OperatorTestEnv; operator: () => OperatorProcess } {
  let env: OperatorTestEnv | undefined;
  let operator: OperatorProcess | undefined;
  before(async function () {
    env = await OperatorTestEnv.start(nodes, undefined, kubevirt);
    await env.namespace(namespace);
    operator = await startOperatorProcess(env.cluster, { user: 'operator' });
  });
  after(async function () {
    await operator?.stop();
    await env?.stop();
  });
  afterEach(function () {
    if (!operator?.process.running) throw new Error('the operator process must never crash');
  });
  return {
    env: () => env ?? assertNever('the environment did not start'),
    operator: () => operator ?? assertNever('the operator did not start'),
  };
}

function assertNever(message: string): never {
  throw new Error(message);
}
