// Nodes that run real guests, as one harness option: the GuestBackend the virt-handler stand-in
// takes (every VMI a real QEMU guest) and the kubelet double for the operator's pods. Created
// before the cluster's KubeVirt world (which takes `backend`), attached once the cluster runs,
// stopped after it (nothing is left: processes, namespaces, cgroups).
import type * as k8s from '@kubernetes/client-node';
import { RealGuestBackend, type RealGuestBackendOptions } from './real-guest-backend.ts';
import { RealPodRunner, type PodRunnerOptions } from './pod-runner.ts';

export interface RealGuestNodesOptions extends RealGuestBackendOptions {
  /** Which pods run as real processes (default: the process mapper's, `hyperspector.io/role=process-mapper`). */
  podSelector?: string;
  /** Nodes whose pods run for real (default: every node). */
  nodes?: string[];
}

export class RealGuestNodes {
  readonly backend: RealGuestBackend;
  private runner?: RealPodRunner;

  constructor(private readonly options: RealGuestNodesOptions = {}) {
    this.backend = new RealGuestBackend(options);
  }

  /** The kubelet double; defined once attached. */
  get pods(): RealPodRunner {
    if (!this.runner) throw new Error('real-guest nodes are not attached to a cluster yet');
    return this.runner;
  }

  /** Starts running the selected pods of the cluster (container logs to logDir, e.g. the cluster's directory) and following its claims. */
  attach(kubeConfig: k8s.KubeConfig, logDir?: string): void {
    const options: PodRunnerOptions = {
      ...(this.options.podSelector ? { labelSelector: this.options.podSelector } : {}),
      ...(this.options.nodes ? { nodes: this.options.nodes } : {}),
      ...(logDir ? { logDir } : {}),
      ...(this.options.log ? { log: this.options.log } : {}),
    };
    this.runner ??= RealPodRunner.start(kubeConfig, options);
    this.backend.attach(kubeConfig);
  }

  /** Stops every pod process and every guest, and removes every namespace and cgroup they had. */
  async stop(): Promise<void> {
    await this.runner?.stop();
    await this.backend.close();
  }
}
