// The convergence benchmark's floor: a bare client (its own user, under the operator's RBAC role)
// creating the same children as the operator, with no reconcile loop, status or Events: the server
// VM; once its VMI has a node (from one watch), the IDS VM beside it and the process-mapper pod.
// It is done at the end state the operator reports as converged: both VMs Running as
// `kubectl get vm` shows them (virt-controller's status), the IDS VMI Ready, the mapper pod Ready.
import { loadavg } from 'node:os';
import type * as k8s from '@kubernetes/client-node';
import { buildServerVirtualMachine } from '../src/builders/server-vm.ts';
import { buildIdsVirtualMachine, HOSTNAME_LABEL, serverPodLabels } from '../src/builders/ids-vm.ts';
import { roleLabels } from '../src/builders/names.ts';
import { buildProcessMapperPod } from '../src/builders/process-mapper-pod.ts';
import { createKubeApi } from '../src/kube/client/rest.ts';
import type { Pod, VirtualMachine, VirtualMachineInstance } from '../src/kube/client/objects.ts';
import { podIsReady, printableStatus, vmiIsReady, vmiIsRunning } from '../src/controllers/monitoredserver/observed-state.ts';
import { monitoredServer } from '../testenv/fixtures/monitoredservers.ts';
import { waitFor } from '../testenv/wait.ts';
import { inBatches, keepWatching } from './client-helpers.ts';

export interface FloorResult {
  /** Seconds until every pair reached the operator's converged end state. */
  seconds: number;
  /** Seconds until every IDS VMI ran (the floor's end state before 2026-12-03: it did not wait for KubeVirt's VM status). */
  idsVmisRunningSeconds: number;
  started: Date;
  finished: Date;
}

/** Where each of a pair's children stands, judged by the operator's own predicates (observed-state.ts). */
class PairStates {
  readonly vmStatus = new Map<string, string>();
  readonly vmiRunning = new Set<string>();
  readonly vmiReady = new Set<string>();
  readonly podReady = new Set<string>();
  /** process-mapper pod name → the pair's name (s-<i>), and back. */
  readonly mapperOf = new Map<string, string>();
  readonly mapperFor = new Map<string, string>();
  readonly idsRunning = new Set<string>();
  readonly done = new Set<string>();

  update(pair: string): void {
    if (this.vmiRunning.has(`${pair}-ids`)) this.idsRunning.add(pair);
    const mapper = this.mapperFor.get(pair);
    const converged =
      this.vmStatus.get(`${pair}-server`) === 'Running' &&
      this.vmStatus.get(`${pair}-ids`) === 'Running' &&
      this.vmiRunning.has(`${pair}-server`) &&
      this.vmiReady.has(`${pair}-ids`) &&
      mapper !== undefined &&
      this.podReady.has(mapper);
    if (converged) this.done.add(pair);
    else this.done.delete(pair);
  }
}

const pairOf = (childName: string) => childName.replace(/-(server|ids)$/, '');

export async function runFloor(kubeConfig: k8s.KubeConfig, namespace: string, count: number, mapperNamespace: string, log: (line: string) => void): Promise<FloorResult> {
  const api = createKubeApi(kubeConfig);
  const started = new Date();
  const pending = new Map<string, ReturnType<typeof monitoredServer>>();
  const states = new PairStates();
  let idsVmisRunningAt: Date | undefined;
  // A child the bare client could not create fails the floor at once, not after the deadline.
  let floorFailed: (e: unknown) => void = () => {};
  const floorFailure = new Promise<never>((_resolve, reject) => {
    floorFailed = reject;
  });
  const seen = (pair: string) => {
    states.update(pair);
    if (!idsVmisRunningAt && states.idsRunning.size === count) idsVmisRunningAt = new Date();
  };
  // Watched again whenever the API server ends the watch: a run once lost the rest of its events
  // there and waited for 110 IDS VMs it never created.
  const vmis = await keepWatching(kubeConfig, `/apis/kubevirt.io/v1/namespaces/${namespace}/virtualmachineinstances`, (type, vmi: VirtualMachineInstance) => {
    const name = vmi.metadata?.name ?? '';
    const gone = type === 'DELETED';
    if (!gone && vmiIsRunning(vmi)) states.vmiRunning.add(name);
    else states.vmiRunning.delete(name);
    if (!gone && vmiIsReady(vmi)) states.vmiReady.add(name);
    else states.vmiReady.delete(name);
    seen(pairOf(name));
    const ms = pending.get(name);
    if (ms && vmi.status?.nodeName && (vmi.status.phase === 'Scheduled' || vmi.status.phase === 'Running')) {
      pending.delete(name);
      const ids = buildIdsVirtualMachine(ms, { nodeName: vmi.status.nodeName, serverVmiUid: vmi.metadata?.uid ?? '', serverPodLabels: serverPodLabels(false, roleLabels(ms, 'server'), name) });
      delete ids.metadata.ownerReferences;
      // Unlike the operator, the bare client does not follow a server VMI started again on another
      // node (seen under load): its IDS VM follows the server's pod by affinity alone, unpinned.
      const selector = ids.spec.template?.spec?.nodeSelector as Record<string, string> | undefined;
      if (selector) delete selector[HOSTNAME_LABEL];
      void api.request({ method: 'POST', path: `/apis/kubevirt.io/v1/namespaces/${namespace}/virtualmachines`, body: ids }).catch(floorFailed);
      const mapper = buildProcessMapperPod(ms, { nodeName: vmi.status.nodeName, name, uid: vmi.metadata?.uid ?? '', launcherPodUid: '', nodeUid: '' }, { image: 'hyperspector/operator:bench', defaultKernelProfilesConfigMap: 'profiles', namespace: mapperNamespace, serviceAccountName: 'hyperspector-process-mapper', serviceName: 'hyperspector-process-mappers' });
      const { ownerReferences: _drop, ...mapperMeta } = mapper.metadata;
      states.mapperOf.set(mapperMeta.name ?? '', pairOf(name));
      states.mapperFor.set(pairOf(name), mapperMeta.name ?? '');
      // The mapper runs in the operator's namespace, as the operator's are (its RBAC allows pods only there).
      void api.request({ method: 'POST', path: `/api/v1/namespaces/${mapperMeta.namespace}/pods`, body: { ...mapper, metadata: mapperMeta } }).catch(floorFailed);
    }
  });
  const vms = await keepWatching(kubeConfig, `/apis/kubevirt.io/v1/namespaces/${namespace}/virtualmachines`, (type, vm: VirtualMachine) => {
    const name = vm.metadata?.name ?? '';
    const status = printableStatus(vm);
    if (type !== 'DELETED' && status) states.vmStatus.set(name, status);
    else states.vmStatus.delete(name);
    seen(pairOf(name));
  });
  const pods = await keepWatching(kubeConfig, `/api/v1/namespaces/${mapperNamespace}/pods`, (type, pod: Pod) => {
    const name = pod.metadata?.name ?? '';
    const pair = states.mapperOf.get(name);
    if (!pair) return;
    if (type !== 'DELETED' && podIsReady(pod)) states.podReady.add(name);
    else states.podReady.delete(name);
    seen(pair);
  });
  try {
    await inBatches([...Array(count).keys()], 25, async (i) => {
      const ms = monitoredServer(`s-${i}`, namespace);
      ms.metadata.uid = 'floor';
      const server = buildServerVirtualMachine(ms);
      pending.set(server.metadata.name ?? '', ms);
      await api.request({ method: 'POST', path: `/apis/kubevirt.io/v1/namespaces/${namespace}/virtualmachines`, body: server });
    });
    let lastProgress = Date.now();
    await Promise.race([
      floorFailure,
      waitFor(
        () => {
          if (Date.now() - lastProgress >= 30_000) {
            lastProgress = Date.now();
            log(`  floor after ${((Date.now() - started.getTime()) / 1000).toFixed(0)} s: ${states.done.size} of ${count} converged (${states.idsRunning.size} IDS VMIs Running); load average ${loadavg()[0]?.toFixed(1)}`);
          }
          return states.done.size === count ? true : undefined;
        },
        { timeoutMs: 3_600_000, intervalMs: 500, description: `floor: ${count} pairs converged` },
      ),
    ]);
  } finally {
    for (const w of [vmis, vms, pods]) w.stop();
  }
  const finished = new Date();
  const secondsTo = (t: Date) => (t.getTime() - started.getTime()) / 1000;
  return { seconds: secondsTo(finished), idsVmisRunningSeconds: secondsTo(idsVmisRunningAt ?? finished), started, finished };
}
