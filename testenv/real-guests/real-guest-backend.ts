// A GuestBackend for the virt-handler stand-in that backs each VMI with a real QEMU guest — a TEST
// DOUBLE of what virt-launcher does on a node, with real processes:
// - the launcher pod's network namespace with KubeVirt's bridge binding (real-guests/node-network.ts),
//   joined to its node's host namespace, which sits on an underlay bridge;
// - the compute container's cgroup, named after the pod's UID as a kubelet names it (pod-cgroup.ts);
// - QEMU started in both, with libvirt's command-line shape (launcher-qemu.ts) and the Debian
//   kernel + busybox initramfs of testenv/guest; its QMP monitor for pause (stop/cont).
// - the VMI's PVC/DataVolume disks over raw images, one per claim (pvc-images.ts): attached at boot
//   read-write (or as the disk says), or, for hot-plugged volumes, plugged over QMP when the stand-in
//   moves them to Ready (blockdev-add + device_add on a free root port, libvirt's options) and
//   unplugged (device_del, DEVICE_DELETED, blockdev-del) once gone from the VMI spec;
// start() returns once QEMU runs (as virt-handler reports a domain Running, not a booted OS);
// guest(...).waitForBoot() waits for the guest's init. stop() leaves no process, namespace,
// cgroup or tap behind; close() stops every guest and removes the node namespaces.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import type * as k8s from '@kubernetes/client-node';
import { Qmp } from '../guest/qmp.ts';
import { kubevirtDiskSpec, type KubeVirtDisk } from '../kubevirt/kubevirt-disk-options.ts';
import { bootDiskArgs, claimDisks, libvirtDisk } from './guest-disks.ts';
import { PvcImages } from './pvc-images.ts';
import { READY_MARKER } from '../guest/initramfs.ts';
import { testGuestAssets } from '../guest/test-guest.ts';
import { ManagedProcess } from '../managed-process.ts';
import { GuestConsole } from './guest-console.ts';
import { applyCloudInit, planCloudInit, resolveUserData, type CloudInitReport } from './cloud-init-standin.ts';
import { HOTPLUG_PORTS, launcherQemu, type LauncherQemu } from './launcher-qemu.ts';
import { RealGuestNetwork, type LauncherNetwork } from './node-network.ts';
import { attachSecondaryNetworks } from './multus-attachments.ts';
import { readNadConfig } from './nad-reader.ts';
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
  /**
   * Play cloud-init in each guest that has a cloudInitNoCloud/ConfigDrive volume: once booted, its
   * user data's write_files and scripts are applied through the console (cloud-init-standin.ts).
   */
  cloudInit?: boolean;
}

/** A volume hot-plugged into a guest: libvirt's disk objects and the root port it sits on. */
export interface PluggedVolume {
  disk: KubeVirtDisk;
  port: string;
}

/** How long a guest has to release an unplugged disk (DEVICE_DELETED) before the detach counts as failed. */
const UNPLUG_TIMEOUT_MS = 60_000;

/** One VMI's guest: its QEMU process and everything made for it. */
export class RealGuest {
  private qmpConnection?: Promise<Qmp>;
  /** Hot-plugged volumes by volume name. */
  readonly plugged = new Map<string, PluggedVolume>();
  /** libvirt's next node index (the boot disks have the first ones). */
  nextDiskIndex = 1;
  /** cloud-init's run in this guest (with the backend's `cloudInit` option; undefined: no user data). */
  cloudInit?: Promise<CloudInitReport | undefined>;

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

  /** The one QMP connection (QEMU's monitor serves one client at a time: concurrent callers share it). */
  qmp(): Promise<Qmp> {
    this.qmpConnection ??= Qmp.connect(this.command.qmpSocket).catch((err: unknown) => {
      this.qmpConnection = undefined;
      throw err;
    });
    return this.qmpConnection;
  }

  /** Waits for the guest's init to read commands; resolves with the boot time in ms since QEMU started. */
  async waitForBoot(timeoutMs = 180_000): Promise<number> {
    await this.console.waitForText(READY_MARKER, timeoutMs, 0, () => this.qemu.running);
    return Date.now() - this.startedAt;
  }

  /** QMP query-block: the devices QEMU has a block backend for, with their node and read-only flag. */
  async blockDevices(): Promise<Array<{ qdev: string; node?: string; file?: string; readOnly?: boolean }>> {
    const blocks = (await (await this.qmp()).execute('query-block')) as Array<{ qdev?: string; device?: string; inserted?: { 'node-name'?: string; file?: string; ro?: boolean } }>;
    return blocks.map((b) => ({
      qdev: b.qdev ?? b.device ?? '',
      ...(b.inserted ? { node: b.inserted['node-name'], file: b.inserted.file, readOnly: b.inserted.ro } : {}),
    }));
  }

  /** QMP query-named-block-nodes: every block node (also one no device uses any more), with its file. */
  async blockNodes(): Promise<Array<{ node: string; file: string; readOnly: boolean }>> {
    const nodes = (await (await this.qmp()).execute('query-named-block-nodes')) as Array<{ 'node-name': string; file: string; ro: boolean }>;
    return nodes.map((n) => ({ node: n['node-name'], file: n.file, readOnly: n.ro }));
  }

  /** QMP query-status: `running`, `paused`, ... */
  async status(): Promise<string> {
    return ((await (await this.qmp()).execute('query-status')) as { status: string }).status;
  }

  async close(): Promise<void> {
    void this.qmpConnection?.then((q) => q.close(), () => undefined);
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
  /** The claims' images (followed once attached to a cluster). */
  readonly images: PvcImages;
  private readonly guests = new Map<string, RealGuest>();
  private readonly starting = new Map<string, Promise<void>>();
  private readonly log: (line: string) => void;
  private closed = false;
  private swept?: Promise<void>;
  private kubeConfig?: k8s.KubeConfig;
  private core?: k8s.CoreV1Api;

  constructor(private readonly options: RealGuestBackendOptions = {}) {
    this.network = new RealGuestNetwork(options.netnsPrefix);
    this.log = options.log ?? (() => {});
    this.images = new PvcImages(this.log);
  }

  /** Follows the cluster's PersistentVolumeClaims (their images back the guests' disks). */
  attach(kubeConfig: k8s.KubeConfig): void {
    this.kubeConfig = kubeConfig;
    this.images.attach(kubeConfig);
    this.core ??= kubeConfig.makeApiClient(CoreV1Api);
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
    // A VMI name belongs to one VMI at a time: a guest of an earlier VMI of this name (deleted and
    // replaced, e.g. a VM restart, before its deletion reached us) is shut down first.
    for (const stale of this.list().filter((g) => g.namespace === vmi.metadata.namespace && g.name === vmi.metadata.name && g.vmiUid !== uid)) {
      this.guests.delete(stale.vmiUid);
      await this.teardown(stale);
      this.log(`real guest ${stale.namespace}/${stale.name} of an earlier VMI (uid ${stale.vmiUid}) stopped`);
    }
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
    // The disks attached at boot, over their claims' images (throws, and the stand-in retries, until the claims are known).
    const bootDisks = claimDisks(vmi)
      .filter((d) => !d.hotplug)
      .map((disk) => ({ disk, image: this.images.imageFor(namespace, disk.claimName) }));
    const assets = this.options.kernel && this.options.initrd ? undefined : testGuestAssets();
    const runDir = mkdtempSync(join(tmpdir(), `hs-launcher-${process.pid}-`)); // the pid: see leftovers.ts
    const command = launcherQemu({
      vmi,
      runDir,
      kernel: this.options.kernel ?? assets!.kernel.vmlinuz,
      initrd: this.options.initrd ?? assets!.initrd,
      ...(this.options.maxMemoryMiB ? { maxMemoryMiB: this.options.maxMemoryMiB } : {}),
      diskArgs: bootDiskArgs(bootDisks),
    });
    mkdirSync(join(runDir, 'kubevirt-private', uid), { recursive: true });
    mkdirSync(join(runDir, 'libvirt'), { recursive: true });
    const cgroup = new PodCgroup(podUid, qosClassOf(pod), computeContainerId(pod));
    let launcher: LauncherNetwork | undefined;
    try {
      launcher = await this.network.createLauncher(nodeName, `${this.network.prefix}-${namespace}-${pod.metadata?.name}`, podUid, podIp);
      // Secondary (Multus) networks, from the NADs they name (multus-attachments.ts).
      const kubeConfig = this.kubeConfig;
      if (kubeConfig) await attachSecondaryNetworks(launcher, podUid, vmi, (ns, nad) => readNadConfig(kubeConfig, ns, nad));
      cgroup.create();
      const qemu = new ManagedProcess(
        `qemu ${namespace}/${name}`,
        cgroup.joinCommand()[0]!,
        [...cgroup.joinCommand().slice(1), 'ip', 'netns', 'exec', launcher.ns.name, 'qemu-system-x86_64', ...command.args],
        join(runDir, 'qemu.log'),
      );
      const guest = new RealGuest(namespace, name, uid, podUid, nodeName, qemu, launcher, cgroup, command, new GuestConsole(command.serialSocket, command.serialLog), runDir, Date.now());
      guest.nextDiskIndex = bootDisks.length + 1;
      this.guests.set(uid, guest);
      // Running as far as virt-handler can tell: QEMU answers on its monitor.
      await Promise.race([
        guest.qmp(),
        qemu.exited.then((code) => {
          throw new Error(`QEMU of ${namespace}/${name} exited with ${code} at start`);
        }),
      ]);
      if (this.options.cloudInit) {
        guest.cloudInit = this.runCloudInit(guest, vmi);
        guest.cloudInit.catch((err: Error) => this.log(`real guest ${namespace}/${name}: cloud-init failed: ${err.message}`));
      }
      const disks = bootDisks.map(({ disk }) => `${disk.volumeName}${disk.readOnly ? ' (ro)' : ''}`).join(', ');
      this.log(`real guest ${namespace}/${name} started on ${nodeName} (QEMU pid ${qemu.pid}, ${command.memoryMiB} MiB, pod IP ${podIp}${disks ? `, disks ${disks}` : ''})`);
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

  /** cloud-init's stages in a booted guest, with the user data virt-launcher would hand it. */
  private async runCloudInit(guest: RealGuest, vmi: Vmi): Promise<CloudInitReport | undefined> {
    const core = this.core;
    if (!core) throw new Error('the real-guest backend is not attached to a cluster: cannot read cloud-init Secrets');
    const userData = await resolveUserData(vmi.spec?.volumes ?? [], async (name) => (await core.readNamespacedSecret({ namespace: guest.namespace, name })).data);
    if (userData === undefined) return undefined;
    const plan = planCloudInit(userData);
    await guest.waitForBoot();
    const report = await applyCloudInit(guest.console, plan);
    this.log(`real guest ${guest.namespace}/${guest.name}: cloud-init wrote ${plan.files.map((f) => f.path).join(', ') || 'no file'}, scripts exited ${report.exitCodes.join(', ') || '(none)'}`);
    return report;
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

  private async runningGuest(vmi: Vmi): Promise<RealGuest> {
    await this.starting.get(vmi.metadata.uid!)?.catch(() => undefined);
    const guest = this.guests.get(vmi.metadata.uid!);
    if (!guest) throw new Error(`no real guest for VMI ${vmi.metadata.namespace}/${vmi.metadata.name}`);
    return guest;
  }

  /**
   * Hot-plugs a volume as libvirt does (qemuDomainAttachDiskGeneric): blockdev-add of the claim's
   * image with the disk's options, then device_add of a virtio-blk-pci with its serial on a free
   * PCIe root port; a refused device_add takes the blockdev back. Already plugged: nothing to do.
   */
  async attachVolume(vmi: Vmi, volumeName: string): Promise<void> {
    const guest = await this.runningGuest(vmi);
    if (guest.plugged.has(volumeName)) return;
    const claim = claimDisks(vmi).find((d) => d.volumeName === volumeName && d.hotplug);
    if (!claim) throw new Error(`volume ${volumeName} of VMI ${vmi.metadata.namespace}/${vmi.metadata.name} is not a hot-plugged PVC or DataVolume disk`);
    const used = new Set([...guest.plugged.values()].map((p) => p.port));
    const port = Array.from({ length: HOTPLUG_PORTS }, (_, i) => `pci.${i + 1}`).find((p) => !used.has(p));
    if (!port) throw new Error(`no free PCIe root port left for ${volumeName} (${HOTPLUG_PORTS} in use)`);
    const disk = libvirtDisk(claim, this.images.imageFor(vmi.metadata.namespace!, claim.claimName), guest.nextDiskIndex++);
    const { blockdevs, device } = kubevirtDiskSpec(disk);
    const qmp = await guest.qmp();
    const added: string[] = [];
    try {
      for (const b of blockdevs) {
        await qmp.execute('blockdev-add', b);
        added.push(b['node-name'] as string);
      }
      await qmp.execute('device_add', { ...device, bus: port });
    } catch (err) {
      for (const node of added.reverse()) await qmp.execute('blockdev-del', { 'node-name': node }).catch(() => undefined);
      throw err;
    }
    guest.plugged.set(volumeName, { disk, port });
    this.log(`real guest ${guest.namespace}/${guest.name}: volume ${volumeName} plugged (${disk.image}, ${disk.readOnly ? 'read-only' : 'read-write'}${disk.shareable ? ', shareable' : ''}${disk.serial ? `, serial ${disk.serial}` : ''}, ${port})`);
  }

  /** Unplugs what is gone from the VMI spec: device_del, the guest releases it (DEVICE_DELETED), blockdev-del. */
  async detachRemovedVolumes(vmi: Vmi): Promise<void> {
    const guest = this.guests.get(vmi.metadata.uid!);
    if (!guest || guest.plugged.size === 0) return;
    const inSpec = new Set((vmi.spec?.volumes ?? []).map((v: { name: string }) => v.name));
    for (const [volumeName, { disk }] of [...guest.plugged]) {
      if (inSpec.has(volumeName)) continue;
      const { blockdevs, device } = kubevirtDiskSpec(disk);
      const qmp = await guest.qmp();
      const id = device.id as string;
      if ((await guest.blockDevices()).some((b) => b.qdev === id || b.qdev.endsWith(`/${id}/virtio-backend`))) {
        await qmp.execute('device_del', { id }).catch((err: Error) => {
          if (!/not found|already in the process of unplug/i.test(err.message)) throw err; // gone, or a device_del already under way
        });
        await qmp.event('DEVICE_DELETED', (d) => d.device === id, UNPLUG_TIMEOUT_MS);
      }
      for (const b of [...blockdevs].reverse()) {
        await qmp.execute('blockdev-del', { 'node-name': b['node-name'] }).catch((err: Error) => {
          if (!/(not find|not found)/i.test(err.message)) throw err;
        });
      }
      guest.plugged.delete(volumeName);
      this.log(`real guest ${guest.namespace}/${guest.name}: volume ${volumeName} unplugged`);
    }
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
    this.images.close();
  }
}
