// How virt-launcher names a VMI network's devices inside the launcher pod (pure). These are
// KubeVirt's naming rules (pkg/network/namescheme and pkg/network/link), restated so the agent finds
// the server VM's tap and the IDS VM's in-pod bridge without asking virt-handler:
// - pod interface: the primary network (pod network, or Multus default) is `eth0` (or the name the
//   VMI status reports); a secondary Multus network is `pod` + the first 11 hex digits of
//   sha256(network name), or `net<i>` when the pod uses the older ordinal scheme;
// - tap (QEMU's NIC): `tap0` for the primary network, `tap` + the pod interface name without its
//   first three characters for a secondary one;
// - in-pod bridge (bridge and masquerade bindings): `k6t-` + the pod interface name without `pod`.
import { createHash } from 'node:crypto';
import type { VirtualMachineInstance } from '../kube/client/objects.ts';

type VmiNetwork = NonNullable<NonNullable<VirtualMachineInstance['spec']['networks']>[number]>;
type VmiInterface = NonNullable<VirtualMachineInstance['spec']['domain']['devices']['interfaces']>[number];

export const PRIMARY_POD_INTERFACE = 'eth0';
const HASHED_PREFIX = 'pod';

export function hashedPodInterfaceName(networkName: string): string {
  return HASHED_PREFIX + createHash('sha256').update(networkName).digest('hex').slice(0, 11);
}

export function isSecondaryMultusNetwork(network: VmiNetwork): boolean {
  // The generated type calls the wire field `default` `_default`.
  return network.multus !== undefined && Reflect.get(network.multus, 'default') !== true;
}

/** Bindings whose VM NIC is a tap on an in-pod bridge: the ones a tc mirror can take copies from. */
export const TAP_BINDINGS = ['bridge', 'masquerade'] as const;

export interface LauncherDevices {
  readonly podInterface: string;
  readonly tap: string;
  readonly bridge: string;
}

export type DevicesLookup = { devices: LauncherDevices } | { problem: 'NetworkNotFound' | 'UnsupportedBinding'; message: string };

/** The binding of a VMI interface: bridge, masquerade, sriov, passt, a binding plugin's name, ... */
export function bindingOf(iface: VmiInterface | undefined): string {
  if (!iface) return 'bridge';
  if (iface.binding?.name) return iface.binding.name;
  for (const core of ['bridge', 'masquerade', 'sriov', 'slirp', 'macvtap', 'passt'] as const) {
    if (core in iface && Reflect.get(iface, core) !== undefined) return core;
  }
  return 'bridge';
}

/**
 * The launcher pod's devices of one VMI network: `networkName`, or the first network when it is
 * undefined. `ordinal` is true when the pod's Multus interfaces are named net1, net2, ...
 */
export function launcherDevices(vmi: VirtualMachineInstance, networkName: string | undefined, ordinal = false): DevicesLookup {
  const networks = vmi.spec.networks ?? [];
  const network = networkName === undefined ? networks[0] : networks.find((n) => n.name === networkName);
  if (!network) {
    const names = networks.map((n) => n.name).join(', ') || 'none';
    return { problem: 'NetworkNotFound', message: `VMI ${vmi.metadata?.name} has no network ${networkName ?? '(any)'} (its networks: ${names})` };
  }
  const iface = vmi.spec.domain.devices.interfaces?.find((i) => i.name === network.name);
  const binding = bindingOf(iface);
  if (!(TAP_BINDINGS as readonly string[]).includes(binding)) {
    return {
      problem: 'UnsupportedBinding',
      message: `network ${network.name} of VMI ${vmi.metadata?.name} uses the ${binding} binding, which has no tap in the launcher pod to mirror; use the bridge or masquerade binding`,
    };
  }
  let podInterface: string;
  if (isSecondaryMultusNetwork(network)) {
    const secondaries = networks.filter(isSecondaryMultusNetwork);
    podInterface = ordinal ? `net${secondaries.indexOf(network) + 1}` : hashedPodInterfaceName(network.name);
  } else {
    const reported = vmi.status?.interfaces?.find((s) => s.name === network.name) as { podInterfaceName?: string } | undefined;
    podInterface = reported?.podInterfaceName || PRIMARY_POD_INTERFACE;
  }
  const tap = isSecondaryMultusNetwork(network) ? `tap${podInterface.slice(3)}` : 'tap0';
  const bridge = `k6t-${podInterface.startsWith(HASHED_PREFIX) ? podInterface.slice(HASHED_PREFIX.length) : podInterface}`;
  return { devices: { podInterface, tap, bridge } };
}

/** True when a launcher pod's Multus network-status annotation uses the ordinal names (net1, ...). */
export function podUsesOrdinalNames(networkStatusAnnotation: string | undefined): boolean {
  if (!networkStatusAnnotation) return false;
  try {
    const statuses = JSON.parse(networkStatusAnnotation) as { interface?: string }[];
    return Array.isArray(statuses) && statuses.some((s) => /^net\d+$/.test(s.interface ?? ''));
  } catch {
    return false;
  }
}
