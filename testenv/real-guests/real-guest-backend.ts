// A GuestBackend for the virt-handler stand-in that backs each VMI with a real QEMU guest — a TEST
// DOUBLE of what virt-launcher does on a node, with real processes:
// - the launcher pod's network namespace with KubeVirt's bridge binding (real-guests/node-network.ts),
//   joined to its node's host namespace, which sits on an underlay bridge;
// - the compute container's cgroup, named after the pod's UID as a kubelet names it (pod-cgroup.ts);
// - QEMU started in both, with libvirt's command-line shape (launcher-qemu.ts) and the Debian
//   kernel + busybox initramfs of testenv/guest; its QMP monitor for pause (stop/cont).
// start() returns once QEMU runs (as virt-handler reports a domain Running, not a booted OS);
// guest(...).waitForBoot() waits for the guest's init. stop() leaves no process, namespace,
// cgroup or tap behind; close() stops every guest and removes the node namespaces.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Qmp } from '../guest/qmp.ts';
import { READY_MARKER } from '../guest/initramfs.ts';
import { testGuestAssets } from '../guest/test-guest.ts';
import { ManagedProcess } from '../managed-process.ts';
import { GuestConsole } from './guest-console.ts';
import { launcherQemu, type LauncherQemu } from './launcher-qemu.ts';
import { RealGuestNetwork, type LauncherNetwork } from './node-network.ts';
import { removeLeftovers } from './leftovers.ts';
import { PodCgroup, type QosClass } from './pod-cgroup.ts';
import type { GuestBackend } from '../kubevirt/virt-handler-standin.ts';
import type { Pod, Vmi } from '../kubevirt/virt-handler-status.ts';

export interface RealGuestBackendOptions {
  /** Upper bound of each guest's memory in MiB (default 256). */
  maxMemoryMiB?: number;
  /** Prefix of the network namespaces (default hs<pid>-rg). */
  netnsPrefix?: string;
  /** Kernel and initramfs (default: the test guest's Debian kernel and scenario initramfs). */
  kernel?: string;
  initrd?: string;
  log?: (line: string) => void;
}

/** One VMI's guest: its QEMU process and everything made for it. */
export class RealGuest {
  private qmpConnection?: Qmp;

  constructor(
    readonly namespace: string,
    readonly name: string,
    readonly vmiUid: string,
    readonly podUid: string,
    readonly nodeName: string,
    readonly qemu: ManagedProcess,
    readonly launcher: LauncherNetwork,
    readonly cgroup: PodCgroup,
    readonly command: LauncherQemu,
    readonly console: GuestConsole,
    readonly runDir: string,
    readonly startedAt: number,
  ) {}

  get pid(): number {
    return this.qemu.pid;
  }

  async qmp(): Promise<Qmp> {
    this.qmpConnection ??= await Qmp.connect(this.command.qmpSocket);
    return this.qmpConnection;
  }

  /** Waits for the guest's init to read commands; resolves with the boot time in ms since QEMU started. */
  async waitForBoot(timeoutMs = 180_000): Promise<number> {
    await this.console.waitForText(READY_MARKER, timeoutMs, 0, () => this.qemu.running);
    return Date.now() - this.startedAt;
  }

  /** QMP query-status: `running`, `paused`, ... */
  async status(): Promise<string> {
    return ((await (await this.qmp()).execute('query-status')) as { status: string }).status;
  }

  async close(): Promise<void> {
    this.qmpConnection?.close();
    this.console.close();
    await this.qemu.stop(5000);
  }
}

function qosClassOf(pod: Pod): QosClass {
  const qos = pod.status?.qosClass;
  return qos === 'Guaranteed' || qos === 'Burstable' ? qos : 'BestEffort';
}

/** The compute container's id as the pod reports it (`containerd://<id>`), else one derived from the pod UID. */
function computeContainerId(pod: Pod): string {
  const reported = pod.status?.containerStatuses?.find((c) => c.name === 'compute')?.containerID;
  const id = reported?.replace(/^[a-z]+:\/\//, '');
  return id && /^[0-9a-f]+$/.test(id) ? id : `${(pod.metadata?.uid ?? '').replace(/-/g, '')}compute`;
}

export class RealGuestBackend implements GuestBackend {
  readonly network: RealGuestNetwork;
  private readonly guests = new Map<string, RealGuest>();
  private readonly starting = new Map<string, Promise<void>>();
  private readonly log: (line: string) => void;
  private closed = false;
  private swept?: Promise<void>;

  constructor(private readonly options: RealGuestBackendOptions = {}) {
    this.network = new RealGuestNetwork(options.netnsPrefix);
    this.log = options.log ?? (() => {});
  }

  /** The running guest of a VMI (by namespace and name), if any. */
  guest(namespace: string, name: string): RealGuest | undefined {
    return [...this.guests.values()].find((g) => g.namespace === namespace && g.name === name);
  }

  list(): RealGuest[] {
    return [...this.guests.values()];
  }

  async start(vmi: Vmi, pod: Pod): Promise<void> {
    const uid = vmi.metadata.uid!;
    if (this.closed) throw new Error('the real-guest backend is closed');
    this.swept ??= removeLeftovers(this.log);
    await this.swept;
    if (this.guests.has(uid)) return;
    let starting = this.starting.get(uid);
    if (!starting) {
      starting = this.launch(vmi, pod).finally(() => this.starting.delete(uid));
      this.starting.set(uid, starting);
    }
    await starting;
  }

  private async launch(vmi: Vmi, pod: Pod): Promise<void> {
    const uid = vmi.metadata.uid!;
    const namespace = vmi.metadata.namespace!;
    const name = vmi.metadata.name!;
    const nodeName = pod.spec?.nodeName ?? vmi.status?.nodeName;
    const podUid = pod.metadata?.uid;
    const podIp = pod.status?.podIP;
    if (!nodeName || !podUid || !podIp) throw new Error(`launcher pod ${pod.metadata?.namespace}/${pod.metadata?.name} has no node, uid or IP yet`);
    const assets = this.options.kernel && this.options.initrd ? undefined : testGuestAssets();
    const runDir = mkdtempSync(join(tmpdir(), `hs-launcher-${process.pid}-`)); // the pid: see leftovers.ts
    const command = launcherQemu({
      vmi,
      runDir,
      kernel: this.options.kernel ?? assets!.kernel.vmlinuz,
      initrd: this.options.initrd ?? assets!.initrd,
      ...(this.options.maxMemoryMiB ? { maxMemoryMiB: this.options.maxMemoryMiB } : {}),
    });
    mkdirSync(join(runDir, 'kubevirt-private', uid), { recursive: true });
    mkdirSync(join(runDir, 'libvirt'), { recursive: true });
    const cgroup = new PodCgroup(podUid, qosClassOf(pod), computeContainerId(pod));
    let launcher: LauncherNetwork | undefined;
    try {
      launcher = await this.network.createLauncher(nodeName, `${this.network.prefix}-${namespace}-${pod.metadata?.name}`, podUid, podIp);
      cgroup.create();
      const qemu = new ManagedProcess(
        `qemu ${namespace}/${name}`,
        cgroup.joinCommand()[0]!,
        [...cgroup.joinCommand().slice(1), 'ip', 'netns', 'exec', launcher.ns.name, 'qemu-system-x86_64', ...command.args],
        join(runDir, 'qemu.log'),
      );
      const guest = new RealGuest(namespace, name, uid, podUid, nodeName, qemu, launcher, cgroup, command, new GuestConsole(command.serialSocket, command.serialLog), runDir, Date.now());
      this.guests.set(uid, guest);
      // Running as far as virt-handler can tell: QEMU answers on its monitor.
      await Promise.race([
        guest.qmp(),
        qemu.exited.then((code) => {
          throw new Error(`QEMU of ${namespace}/${name} exited with ${code} at start`);
        }),
      ]);
      this.log(`real guest ${namespace}/${name} started on ${nodeName} (QEMU pid ${qemu.pid}, ${command.memoryMiB} MiB, pod IP ${podIp})`);
    } catch (err) {
      const guest = this.guests.get(uid);
      this.guests.delete(uid);
      await guest?.close().catch(() => undefined);
      await cgroup.remove().catch(() => undefined);
      if (launcher) await this.network.removeLauncher(launcher);
      rmSync(runDir, { recursive: true, force: true });
      throw err;
    }
  }

  async stop(vmi: Vmi): Promise<void> {
    const uid = vmi.metadata.uid!;
    await this.starting.get(uid)?.catch(() => undefined);
    const guest = this.guests.get(uid);
    if (!guest) return;
    this.guests.delete(uid);
    await this.teardown(guest);
    this.log(`real guest ${guest.namespace}/${guest.name} stopped`);
  }

  private async teardown(guest: RealGuest): Promise<void> {
    await guest.close();
    await guest.cgroup.remove();
    await this.network.removeLauncher(guest.launcher);
    rmSync(guest.runDir, { recursive: true, force: true });
  }

  async pause(vmi: Vmi, paused: boolean): Promise<void> {
    const guest = this.guests.get(vmi.metadata.uid!);
    if (!guest) throw new Error(`no real guest for VMI ${vmi.metadata.namespace}/${vmi.metadata.name}`);
    await (await guest.qmp()).execute(paused ? 'stop' : 'cont');
  }

  /** Stops every guest and removes the node namespaces and the underlay. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled(this.starting.values());
    for (const guest of [...this.guests.values()]) {
      this.guests.delete(guest.vmiUid);
      await this.teardown(guest);
    }
    await this.network.close();
  }
}
