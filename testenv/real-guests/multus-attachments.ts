// The secondary (Multus) networks of a launcher pod on a real-guest node — a TEST DOUBLE of what
// Multus does with the NetworkAttachmentDefinitions the VMI names, then virt-launcher's bridge
// binding, with real devices:
// - Multus runs the NAD's CNI plugins for the pod interface KubeVirt asked for (`pod<hash>`,
//   src/agent/kubevirt-names.ts): `bridge` makes a veth whose node end is a port of the NAD's bridge
//   in the node's host namespace (created when missing, as the bridge plugin does, and left behind
//   as it leaves it), with the NAD's MTU; `dummy` makes a device that drops what it is sent (this
//   kernel may have no dummy driver: a tap nobody reads stands in); `tuning` sets the MTU.
// - virt-launcher's bridge binding puts that pod interface and QEMU's tap `tap<hash>` on an in-pod
//   bridge `k6t-<hash>`, all with the pod interface's MTU.
// Any other plugin is refused with its name, so a NAD the double cannot model fails loudly.
import type { VirtualMachineInstance } from '../../src/kube/client/objects.ts';
import type { Vmi } from '../kubevirt/virt-handler-status.ts';
import { isSecondaryMultusNetwork, launcherDevices } from '../../src/agent/kubevirt-names.ts';
import type { TestNetns } from '../netns/netns-host.ts';
import type { LauncherNetwork } from './node-network.ts';

export interface CniPlugin {
  type: string;
  bridge?: string;
  mtu?: number;
}

/** A NAD's spec.config, parsed: a plugin list or a single plugin. */
export function cniPlugins(config: string): CniPlugin[] {
  const parsed = JSON.parse(config) as { plugins?: CniPlugin[] } & Partial<CniPlugin>;
  if (parsed.plugins) return parsed.plugins;
  return parsed.type ? [parsed as CniPlugin] : [];
}

/** The node end of a pod's bridge-plugin veth: "vn" + 10 hex digits of the pod UID + the attachment's index. */
export function nodeSideAttachmentName(podUid: string, index: number): string {
  return `vn${podUid.replace(/-/g, '').slice(0, 10)}${index}`;
}

async function dropDevice(ns: TestNetns, name: string): Promise<void> {
  try {
    await ns.ip('link', 'add', name, 'type', 'dummy');
  } catch (err) {
    if (!/Unknown device type/.test((err as Error).message)) throw err;
    await ns.ip('tuntap', 'add', 'dev', name, 'mode', 'tap');
  }
}

export interface SecondaryAttachment {
  network: string;
  nad: string;
  podInterface: string;
  tap: string;
  bridge: string;
}

/**
 * Builds every secondary network of `vmi` in its launcher pod from the NADs `readNadConfig` returns
 * (spec.config by namespace and name; undefined: no such NAD, which Multus refuses too).
 */
export async function attachSecondaryNetworks(
  launcher: LauncherNetwork,
  podUid: string,
  vmiObject: Vmi,
  readNadConfig: (namespace: string, name: string) => Promise<string | undefined>,
): Promise<SecondaryAttachment[]> {
  const vmi = vmiObject as VirtualMachineInstance;
  const out: SecondaryAttachment[] = [];
  const secondaries = (vmi.spec.networks ?? []).filter(isSecondaryMultusNetwork);
  for (const [index, network] of secondaries.entries()) {
    const ref = network.multus!.networkName;
    const [nadNamespace, nadName] = ref.includes('/') ? (ref.split('/') as [string, string]) : [vmi.metadata?.namespace ?? '', ref];
    const config = await readNadConfig(nadNamespace, nadName);
    if (config === undefined) throw new Error(`NetworkAttachmentDefinition ${nadNamespace}/${nadName} of network ${network.name} not found (Multus would refuse the pod)`);
    const lookup = launcherDevices(vmi, network.name);
    if ('problem' in lookup) throw new Error(lookup.message);
    const { podInterface, tap, bridge } = lookup.devices;
    const { ns, node } = launcher;
    let mtu: number | undefined;
    let made = false;
    for (const plugin of cniPlugins(config)) {
      switch (plugin.type) {
        case 'bridge': {
          const nodeBridge = plugin.bridge ?? 'cni0';
          const exists = (await node.ns.json<unknown[]>(['ip', '-j', 'link', 'show', 'dev', nodeBridge]).catch(() => [])).length > 0;
          if (!exists) {
            await node.ns.ip('link', 'add', nodeBridge, 'type', 'bridge');
            await node.ns.ip('link', 'set', nodeBridge, 'up');
          }
          const nodeEnd = nodeSideAttachmentName(podUid, index);
          await node.ns.ip('link', 'add', nodeEnd, 'type', 'veth', 'peer', 'name', podInterface, 'netns', ns.name);
          if (plugin.mtu) await node.ns.ip('link', 'set', nodeEnd, 'mtu', String(plugin.mtu));
          await node.ns.ip('link', 'set', nodeEnd, 'master', nodeBridge);
          await node.ns.ip('link', 'set', nodeEnd, 'up');
          mtu = plugin.mtu ?? mtu;
          made = true;
          break;
        }
        case 'dummy':
          await dropDevice(ns, podInterface);
          made = true;
          break;
        case 'tuning':
          mtu = plugin.mtu ?? mtu;
          break;
        default:
          throw new Error(`CNI plugin ${plugin.type} of NetworkAttachmentDefinition ${nadNamespace}/${nadName} is not modelled by the real-guest nodes`);
      }
    }
    if (!made) throw new Error(`NetworkAttachmentDefinition ${nadNamespace}/${nadName} makes no interface the real-guest nodes model`);
    // virt-launcher's bridge binding.
    await ns.ip('link', 'add', bridge, 'type', 'bridge');
    await ns.ip('tuntap', 'add', 'dev', tap, 'mode', 'tap');
    for (const dev of [podInterface, tap, bridge]) if (mtu) await ns.ip('link', 'set', dev, 'mtu', String(mtu));
    await ns.ip('link', 'set', podInterface, 'master', bridge);
    await ns.ip('link', 'set', tap, 'master', bridge);
    for (const dev of [podInterface, tap, bridge]) await ns.ip('link', 'set', dev, 'up');
    out.push({ network: network.name, nad: `${nadNamespace}/${nadName}`, podInterface, tap, bridge });
  }
  return out;
}
