// KubeVirt simulator — a TEST DOUBLE, not part of the product.
//
// KubeVirt cannot run on the test machines (no nested virtualization for every node), so this
// stands in for virt-controller and virt-handler on top of a real control plane: it turns
// VirtualMachines into VirtualMachineInstances per runStrategy, creates a virt-launcher Pod per VMI
// (which the real kube-scheduler places and kwok "runs"), and fills VMI and VM status the way
// KubeVirt v1.9 does where an operator can observe it. Where it differs from KubeVirt, that is a
// bug of the simulator.
//
// Extension points for later issues: `extensions` hooks may add to a VMI's status (volume hotplug,
// migration) before it is written.
import * as k8s from '@kubernetes/client-node';
import { WatchCache } from './watch-cache.ts';
import { canonicalJson as canonical } from '../../../src/kube/canonical-json.ts';
import { createKubeApi, statusCodeOf, type KubeApi } from '../../../src/kube/rest.ts';
import { buildVmi, buildVmStatus, nextVmAction, runStrategyOf, startedAnnotation } from './vm-logic.ts';
import { buildLauncherPod, nextVmiStatus } from './vmi-logic.ts';
import { CREATED_BY_LABEL, APP_LABEL, type Pod, type VirtualMachine, type VirtualMachineInstance } from './types.ts';

export interface SimulatorExtension {
  /** Adds to the VMI status computed by the simulator (e.g. hotplug volume phases). */
  vmiStatus?(vmi: VirtualMachineInstance, pod: Pod | undefined, status: Record<string, unknown>): void;
}

const VM_PATH = '/apis/kubevirt.io/v1/virtualmachines';
const VMI_PATH = '/apis/kubevirt.io/v1/virtualmachineinstances';
const MERGE_PATCH = 'application/merge-patch+json';

export class KubeVirtSimulator {
  readonly extensions: SimulatorExtension[] = [];
  private readonly vms: WatchCache<VirtualMachine>;
  private readonly vmis: WatchCache<VirtualMachineInstance>;
  private readonly pods: WatchCache<Pod>;
  private readonly pending = new Set<string>();
  private readonly active = new Set<string>();
  private readonly dirty = new Set<string>();
  /** Pods created but not yet seen in the cache, by VMI uid (KubeVirt's "expectations"). */
  private readonly expectedPods = new Map<string, number>();
  private running = false;
  private wake?: () => void;
  private loop?: Promise<void>;
  errors = 0;
  lastError?: string;
  private readonly api: KubeApi;

  constructor(
    private readonly kubeConfig: k8s.KubeConfig,
    private readonly concurrency = 4,
  ) {
    this.api = createKubeApi(kubeConfig);
    this.vms = new WatchCache<VirtualMachine>(kubeConfig, VM_PATH, (vm) => this.enqueue(`vm:${WatchCache.key(vm)}`));
    this.vmis = new WatchCache<VirtualMachineInstance>(kubeConfig, VMI_PATH, (vmi) => {
      this.enqueue(`vmi:${WatchCache.key(vmi)}`);
      this.enqueue(`vm:${WatchCache.key(vmi)}`);
    });
    this.pods = new WatchCache<Pod>(
      kubeConfig,
      '/api/v1/pods',
      (pod) => {
        const uid = pod.metadata?.labels?.[CREATED_BY_LABEL];
        if (uid) this.expectedPods.delete(uid);
        const vmiName = pod.metadata?.ownerReferences?.find((o) => o.kind === 'VirtualMachineInstance')?.name;
        if (vmiName) this.enqueue(`vmi:${pod.metadata?.namespace}/${vmiName}`);
      },
      `${APP_LABEL}=virt-launcher`,
    );
  }

  start(): void {
    this.running = true;
    this.vms.start();
    this.vmis.start();
    this.pods.start();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.vms.stop();
    this.vmis.stop();
    this.pods.stop();
    this.wake?.();
    await this.loop;
  }

  hasSynced(): boolean {
    return this.vms.hasSynced() && this.vmis.hasSynced() && this.pods.hasSynced();
  }

  private enqueue(key: string): void {
    if (this.active.has(key)) this.dirty.add(key);
    else this.pending.add(key);
    this.wake?.();
  }

  private async run(): Promise<void> {
    const workers = new Set<Promise<void>>();
    while (this.running) {
      if (!this.hasSynced() || this.pending.size === 0 || workers.size >= this.concurrency) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          setTimeout(resolve, 200);
        });
        continue;
      }
      const key = this.pending.values().next().value as string;
      this.pending.delete(key);
      this.active.add(key);
      const work = this.process(key).finally(() => {
        this.active.delete(key);
        workers.delete(work);
        if (this.dirty.delete(key)) this.pending.add(key);
        this.wake?.();
      });
      workers.add(work);
    }
    await Promise.allSettled(workers);
  }

  private async process(key: string): Promise<void> {
    try {
      if (key.startsWith('vm:')) await this.syncVm(key.slice(3));
      else await this.syncVmi(key.slice(4));
    } catch (err) {
      this.errors++;
      this.lastError = `${key}: ${(err as Error).message}`;
      // Retry later, like a controller's rate-limited requeue.
      setTimeout(() => this.enqueue(key), 500).unref();
    }
  }

  private async syncVm(key: string): Promise<void> {
    const vm = this.vms.get(key);
    if (!vm) return;
    const vmi = this.vmis.get(key);
    const ns = vm.metadata.namespace ?? '';
    const name = vm.metadata.name ?? '';
    const action = nextVmAction(vm, vmi);
    if (action.type === 'create') {
      await this.send('POST', `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachineinstances`, buildVmi(vm)).catch(ignore(409));
      if (runStrategyOf(vm) === 'Once') {
        await this.send('PATCH', `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines/${name}`, { metadata: { annotations: startedAnnotation } }, MERGE_PATCH);
      }
      return; // the new VMI's event brings us back to write status
    }
    if (action.type === 'delete') {
      await this.send('DELETE', `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachineinstances/${name}`, {
        preconditions: { uid: vmi?.metadata.uid },
      }).catch(ignore(404, 409));
    }
    const status = buildVmStatus(vm, vmi, new Date().toISOString());
    if (canonical(status) !== canonical(pick(vm.status as Record<string, unknown> | undefined, Object.keys(status)))) {
      await this.send('PATCH', `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines/${name}/status`, { status }, MERGE_PATCH).catch(ignore(404));
    }
  }

  private async syncVmi(key: string): Promise<void> {
    const vmi = this.vmis.get(key);
    if (!vmi || vmi.metadata.deletionTimestamp) return;
    const uid = vmi.metadata.uid ?? '';
    const ns = vmi.metadata.namespace ?? '';
    const pods = this.pods.list().filter((p) => p.metadata?.labels?.[CREATED_BY_LABEL] === uid && p.metadata?.namespace === ns);
    const pod = pods.find((p) => !p.metadata?.deletionTimestamp) ?? pods[0];
    const phase = (vmi.status?.phase as string | undefined) ?? '';
    if (!pod && (phase === '' || phase === 'Pending')) {
      const expected = this.expectedPods.get(uid);
      if (expected && Date.now() - expected < 30_000) return; // created, not yet observed
      await this.send('POST', `/api/v1/namespaces/${ns}/pods`, buildLauncherPod(vmi));
      this.expectedPods.set(uid, Date.now());
      await this.writeVmi(vmi, { status: { ...(vmi.status ?? {}), phase: 'Scheduling' } });
      return;
    }
    if (!pod && this.expectedPods.has(uid)) return;
    const update = nextVmiStatus(vmi, pod, new Date().toISOString());
    for (const extension of this.extensions) extension.vmiStatus?.(vmi, pod, update.status);
    const labelsChanged = Object.entries(update.labels ?? {}).some(([k, v]) => vmi.metadata.labels?.[k] !== v);
    if (labelsChanged || canonical(update.status) !== canonical(vmi.status ?? {})) {
      await this.writeVmi(vmi, update);
    }
  }

  private send(method: 'POST' | 'PATCH' | 'DELETE', path: string, body: unknown, contentType?: string): Promise<unknown> {
    return this.api.request({ method, path, body, ...(contentType ? { contentType } : {}) });
  }

  private async writeVmi(vmi: VirtualMachineInstance, update: { labels?: Record<string, string>; status: Record<string, unknown> }): Promise<void> {
    // VirtualMachineInstance has no status subresource: virt-handler updates the whole object.
    // The resourceVersion precondition makes a stale write fail (409) and be retried from the cache.
    await this.send(
      'PATCH',
      `/apis/kubevirt.io/v1/namespaces/${vmi.metadata.namespace}/virtualmachineinstances/${vmi.metadata.name}`,
      { metadata: { resourceVersion: vmi.metadata.resourceVersion, ...(update.labels ? { labels: update.labels } : {}) }, status: update.status },
      MERGE_PATCH,
    ).catch(ignore(404));
  }
}

function pick(obj: Record<string, unknown> | undefined, keys: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (obj && k in obj) out[k] = obj[k];
  return out;
}

function ignore(...codes: number[]) {
  return (err: unknown) => {
    if (!codes.includes(statusCodeOf(err) ?? 0)) throw err;
  };
}

export { WatchCache };
