// Node agent configuration from flags and environment (flags win). Pure, so it is unit-tested.
import { Command, InvalidArgumentError } from 'commander';
import { VXLAN_DEFAULT_PORT } from '../dataplane/vxlan-overlay-plan.ts';
import { packageVersion } from '../version.ts';

export const IDS_NETWORK_TYPES = ['vxlan', 'none'] as const;
export type IdsNetworkType = (typeof IDS_NETWORK_TYPES)[number];
/** tc: this agent mirrors; ovs-cni: ovs-cni does (the operator reports MirrorAttached) and the agent stands aside. */
export const AGENT_MIRRORING_PROVIDERS = ['tc', 'ovs-cni'] as const;
export type AgentMirroringProvider = (typeof AGENT_MIRRORING_PROVIDERS)[number];

/** A configuration commander accepted but the agent cannot run with (printed by main). */
export class AgentConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentConfigError';
  }
}

export interface AgentConfig {
  /** This node (the downward API's spec.nodeName). */
  nodeName: string;
  kubeconfig?: string;
  logLevel: string;
  /** Port of /metrics, /healthz and /readyz; 0 picks a free one. */
  httpPort: number;
  httpHost: string;
  /** The host's /proc (hostPID): where launcher pods' processes and namespaces are found. */
  procRoot: string;
  /** The node's own network namespace, where the overlay lives (hostNetwork: the agent's own). */
  nodeNetns: string;
  /** The IDS VM's network that receives mirrored traffic. */
  idsMirrorNetwork: string;
  /** The operator's mirroring provider: the agent mirrors only with tc. */
  mirroringProvider: AgentMirroringProvider;
  /** `vxlan`: the agent keeps the IDS overlay; `none`: another provider does (e.g. OVN-Kubernetes layer2). */
  idsNetwork: IdsNetworkType;
  underlayInterface?: string;
  vni: number;
  vxlanPort: number;
  overlayBridge: string;
  overlayVxlan: string;
  /** How often everything is reconciled without any change (repairs what others removed). */
  resyncPeriodMs: number;
}

function integer(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer in ${min}..${max}, got "${value}"`);
    return n;
  };
}

function duration(name: string) {
  return (value: string): number => {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim());
    if (!m) throw new InvalidArgumentError(`${name} must be a duration such as 30s, 500ms or 1m, got "${value}"`);
    const n = Number(m[1]);
    return Math.round(m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000);
  };
}

export function parseAgentConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const program = new Command('hyperspector-agent')
    .description("HyperSpector node agent: mirrors each server VM's traffic into its IDS VM and keeps the IDS overlay on this node")
    .exitOverride()
    .version(packageVersion(), '--version', 'print the version and exit')
    .option('--node-name <name>', 'this node (default: $NODE_NAME, from the downward API)', env.NODE_NAME || undefined)
    .option('--kubeconfig <path>', 'kubeconfig file (default: $KUBECONFIG, else in-cluster)', env.KUBECONFIG || undefined)
    .option('--log-level <level>', 'error, warn, info or debug', env.LOG_LEVEL ?? 'info')
    .option('--http-port <port>', 'port of /metrics, /healthz, /readyz (0: any free port)', integer('--http-port', 0, 65535), Number(env.HTTP_PORT ?? 9478))
    .option('--http-host <host>', 'address to bind /metrics and health on', env.HTTP_HOST ?? '0.0.0.0')
    .option('--proc-root <dir>', "the host's /proc (the pod needs hostPID)", env.PROC_ROOT ?? '/proc')
    .option('--node-netns <path>', "the node's network namespace file (hostNetwork: the agent's own)", env.NODE_NETNS ?? '/proc/self/ns/net')
    .option('--ids-mirror-network <name>', "the IDS VM's network that receives the mirrored traffic", env.IDS_MIRROR_NETWORK ?? 'hyperspector-mirror')
    .option('--mirroring-provider <name>', 'the operator\'s mirroring provider: tc (this agent mirrors) or ovs-cni (it stands aside)', env.MIRRORING_PROVIDER ?? 'tc')
    .option('--ids-network <type>', 'IDS network provider: vxlan (this agent keeps the overlay) or none', env.IDS_NETWORK ?? 'vxlan')
    .option('--underlay-interface <name>', "the overlay's underlay interface (default: the one holding the node's InternalIP)", env.UNDERLAY_INTERFACE || undefined)
    .option('--vni <id>', 'VXLAN network identifier of the IDS overlay', integer('--vni', 1, 0xffffff), Number(env.VXLAN_VNI ?? 4242))
    .option('--vxlan-port <port>', 'UDP port of the IDS overlay', integer('--vxlan-port', 1, 65535), Number(env.VXLAN_PORT ?? VXLAN_DEFAULT_PORT))
    .option('--overlay-bridge <name>', "the node's IDS overlay bridge (the IDS pods' attachments plug into it)", env.OVERLAY_BRIDGE ?? 'hsids0')
    .option('--overlay-vxlan <name>', "the node's IDS overlay VXLAN device", env.OVERLAY_VXLAN ?? 'hsids0-vx')
    .option('--resync-period <d>', 'how often everything is reconciled without a change', duration('--resync-period'), 60_000);
  program.parse(argv, { from: 'user' });
  const o = program.opts<{
    nodeName?: string;
    kubeconfig?: string;
    logLevel: string;
    httpPort: number;
    httpHost: string;
    procRoot: string;
    nodeNetns: string;
    idsMirrorNetwork: string;
    mirroringProvider: string;
    idsNetwork: string;
    underlayInterface?: string;
    vni: number;
    vxlanPort: number;
    overlayBridge: string;
    overlayVxlan: string;
    resyncPeriod: number;
  }>();
  if (!o.nodeName) throw new AgentConfigError('the node name is required: --node-name or $NODE_NAME (downward API spec.nodeName)');
  if (!(IDS_NETWORK_TYPES as readonly string[]).includes(o.idsNetwork)) throw new AgentConfigError(`--ids-network must be one of ${IDS_NETWORK_TYPES.join(', ')}, got "${o.idsNetwork}"`);
  if (!(AGENT_MIRRORING_PROVIDERS as readonly string[]).includes(o.mirroringProvider)) {
    throw new AgentConfigError(`--mirroring-provider must be one of ${AGENT_MIRRORING_PROVIDERS.join(', ')}, got "${o.mirroringProvider}"`);
  }
  if (o.resyncPeriod < 1000) throw new AgentConfigError('--resync-period must be at least 1s');
  return {
    nodeName: o.nodeName,
    ...(o.kubeconfig ? { kubeconfig: o.kubeconfig } : {}),
    logLevel: o.logLevel,
    httpPort: o.httpPort,
    httpHost: o.httpHost,
    procRoot: o.procRoot,
    nodeNetns: o.nodeNetns,
    idsMirrorNetwork: o.idsMirrorNetwork,
    mirroringProvider: o.mirroringProvider as AgentMirroringProvider,
    idsNetwork: o.idsNetwork as IdsNetworkType,
    ...(o.underlayInterface ? { underlayInterface: o.underlayInterface } : {}),
    vni: o.vni,
    vxlanPort: o.vxlanPort,
    overlayBridge: o.overlayBridge,
    overlayVxlan: o.overlayVxlan,
    resyncPeriodMs: o.resyncPeriod,
  };
}
