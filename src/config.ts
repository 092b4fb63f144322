// Operator configuration from flags and environment (flags win). Pure, so it is unit-tested.
import { Command, InvalidArgumentError } from 'commander';
import { parseIpv4Prefix } from './builders/ids-address.ts';
import { DEFAULT_NETWORKING, IDS_NETWORK_PROVIDERS, MIRRORING_PROVIDERS, type IdsNetworkProvider, type MirroringProvider, type NetworkingSettings } from './builders/networking.ts';
import { packageVersion } from './version.ts';

export interface OperatorConfig {
  kubeconfig?: string;
  /** Namespaces to watch; empty = all. */
  namespaces: string[];
  concurrency: number;
  leaderElect: boolean;
  leaderElectionNamespace: string;
  leaderElectionId: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  /** Port of the /metrics, /healthz and /readyz server; 0 picks a free one. */
  httpPort: number;
  httpHost: string;
  logLevel: string;
  notReadyRecheckMs: number;
  notReadyRecheckMaxMs: number;
  processMapperImage: string;
  kernelProfilesConfigMap: string;
  /** Namespace of the process-mapper pods (the operator's own; the only one that must allow privileged pods). */
  processMapperNamespace: string;
  processMapperServiceAccount: string;
  /** The headless Service (installed by the chart) that gives each process mapper a DNS name for its IDS VM. */
  processMapperService: string;
  /** Namespace of the KubeVirt CR (its feature gates decide how disks are hot-plugged). */
  kubevirtNamespace: string;
  /** Providers of the mirror and of the IDS network, and their settings (builders/networking.ts). */
  networking: NetworkingSettings;
  /** Where the IDS-network address claims live (the operator's namespace). */
  idsAddressNamespace: string;
  /** How long one minute of spec.diskInspection.snapshot lasts (60 s; tests shorten it). */
  snapshotMinuteMs: number;
  /** Rotation period of the IDS VMs' alert intake tokens. */
  idsCredentialRotationMs: number;
}

function oneOf<T extends string>(name: string, values: readonly T[]) {
  return (value: string): T => {
    if (!(values as readonly string[]).includes(value)) throw new InvalidArgumentError(`${name} must be one of ${values.join(', ')}, got "${value}"`);
    return value as T;
  };
}

function mtu(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 576 || n > 9216) throw new InvalidArgumentError(`${name} must be an integer in 576..9216, got "${value}"`);
    return n;
  };
}

function ipv4Prefix(value: string): string {
  try {
    parseIpv4Prefix(value);
  } catch (err) {
    throw new InvalidArgumentError(`--ids-network-cidr: ${(err as Error).message}`);
  }
  return value.trim();
}

function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer, got "${value}"`);
    return n;
  };
}

function duration(name: string) {
  return (value: string): number => {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
    if (!m) throw new InvalidArgumentError(`${name} must be a duration such as 15s, 500ms or 1m, got "${value}"`);
    const n = Number(m[1]);
    return Math.round(m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : m[2] === 'h' ? n * 3_600_000 : n * 1000);
  };
}

export function parseConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): OperatorConfig {
  const program = new Command('hyperspector-operator')
    .description('HyperSpector operator: pairs each MonitoredServer VM with an isolated IDS VM on the same node')
    .exitOverride()
    .version(packageVersion(), '--version', 'print the version and exit')
    .option('--kubeconfig <path>', 'kubeconfig file (default: $KUBECONFIG, else in-cluster)', env.KUBECONFIG || undefined)
    .option('--namespace <ns...>', 'namespaces to watch (default: $WATCH_NAMESPACES, comma-separated; empty = all)')
    .option('--concurrency <n>', 'MonitoredServers reconciled at once', positiveInt('--concurrency'), Number(env.MAX_CONCURRENT_RECONCILES ?? 4))
    .option('--leader-elect <bool>', 'elect a leader on a coordination.k8s.io Lease before reconciling', (v) => v !== 'false', env.LEADER_ELECT !== 'false')
    .option('--leader-election-namespace <ns>', 'namespace of the Lease', env.POD_NAMESPACE || 'hyperspector-system')
    .option('--leader-election-id <name>', 'name of the Lease', 'hyperspector-operator')
    .option('--lease-duration <d>', 'lease duration', duration('--lease-duration'), 15_000)
    .option('--renew-deadline <d>', 'renew deadline', duration('--renew-deadline'), 10_000)
    .option('--retry-period <d>', 'retry period', duration('--retry-period'), 2_000)
    .option('--http-port <port>', 'port of /metrics, /healthz, /readyz (0: any free port)', positiveInt('--http-port'), Number(env.HTTP_PORT ?? 8080))
    .option('--http-host <host>', 'address to bind /metrics and health on', env.HTTP_HOST ?? '0.0.0.0')
    .option('--log-level <level>', 'error, warn, info or debug', env.LOG_LEVEL ?? 'info')
    .option('--process-mapper-image <image>', 'image of the process-mapper sidecar (the operator image)', env.PROCESS_MAPPER_IMAGE ?? 'hyperspector/operator:0.1.0')
    .option('--kernel-profiles-configmap <name>', 'ConfigMap of kernel profiles used when a MonitoredServer names none', env.KERNEL_PROFILES_CONFIGMAP ?? 'hyperspector-kernel-profiles')
    .option('--process-mapper-namespace <ns>', 'namespace of the process-mapper pods: the operator\'s own (env POD_NAMESPACE); it alone must allow privileged pods', env.POD_NAMESPACE || 'hyperspector-system')
    .option('--process-mapper-service-account <name>', 'ServiceAccount of the process-mapper pods (Events and status.alerts of MonitoredServers only)', env.PROCESS_MAPPER_SERVICE_ACCOUNT || 'hyperspector-process-mapper')
    .option('--process-mapper-service <name>', 'headless Service (in the process mappers\' namespace) that gives each process mapper the DNS name its IDS VM posts alerts to', env.PROCESS_MAPPER_SERVICE || 'hyperspector-process-mappers')
    .option('--kubevirt-namespace <ns>', 'namespace of the KubeVirt CR, read for its hotplug feature gates', env.KUBEVIRT_NAMESPACE || 'kubevirt')
    .option('--mirroring-provider <name>', `who mirrors the server's traffic: ${MIRRORING_PROVIDERS.join(' or ')}`, oneOf('--mirroring-provider', MIRRORING_PROVIDERS), (env.MIRRORING_PROVIDER as MirroringProvider | undefined) ?? DEFAULT_NETWORKING.mirroring)
    .option('--ids-network <name>', `the IDS-only network's provider: ${IDS_NETWORK_PROVIDERS.join(' or ')}`, oneOf('--ids-network', IDS_NETWORK_PROVIDERS), (env.IDS_NETWORK as IdsNetworkProvider | undefined) ?? DEFAULT_NETWORKING.idsNetwork)
    .option('--ids-network-cidr <prefix>', 'IPv4 prefix the IDS VMs get their addresses from', ipv4Prefix, env.IDS_NETWORK_CIDR ?? DEFAULT_NETWORKING.idsCidr)
    .option('--ids-network-mtu <bytes>', "MTU of the IDS VM's IDS-network NIC (vxlan: underlay MTU - 50)", mtu('--ids-network-mtu'), Number(env.IDS_NETWORK_MTU ?? DEFAULT_NETWORKING.idsMtu))
    .option('--mirror-mtu <bytes>', "MTU of the IDS VM's mirror NIC (at least the mirrored interface's)", mtu('--mirror-mtu'), Number(env.MIRROR_MTU ?? DEFAULT_NETWORKING.mirrorMtu))
    .option('--overlay-bridge <name>', "vxlan: the node agent's overlay bridge the IDS NICs attach to", env.OVERLAY_BRIDGE ?? DEFAULT_NETWORKING.overlayBridge)
    .option('--ovn-network-name <name>', 'ovn-k8s-layer2: the network name of the IDS NADs', env.OVN_NETWORK_NAME ?? DEFAULT_NETWORKING.ovnNetworkName)
    .option('--ovs-bridge <name>', 'ovs-cni: the OVS bridge of the mirror producer and consumer', env.OVS_BRIDGE ?? DEFAULT_NETWORKING.ovsBridge)
    .option('--ids-network-policy <bool>', 'a MultiNetworkPolicy per IDS VM on the IDS network (where the provider enforces them)', (v) => v === 'true', env.IDS_NETWORK_POLICY === 'true')
    .option('--ids-address-namespace <ns>', "namespace of the IDS-network address claims (default: the operator's, $POD_NAMESPACE)", env.POD_NAMESPACE || 'hyperspector-system')
    .option('--not-ready-recheck <d>', 'how soon a MonitoredServer that is not Ready is rechecked after its status changed (a safety net: watches wake it)', duration('--not-ready-recheck'), 60_000)
    .option('--not-ready-recheck-max <d>', 'the longest that recheck backs off to, doubling while the status does not change', duration('--not-ready-recheck-max'), 300_000)
    .option('--ids-credential-rotation <d>', "rotation period of the IDS VMs' alert intake tokens (a token is accepted for one to two periods; guests renew every half period)", duration('--ids-credential-rotation'), env.IDS_CREDENTIAL_ROTATION ? duration('IDS_CREDENTIAL_ROTATION')(env.IDS_CREDENTIAL_ROTATION) : 24 * 3_600_000)
    .option('--snapshot-minute <d>', 'for tests only: how long one minute of spec.diskInspection.snapshot (intervalMinutes, readyTimeoutMinutes) lasts', duration('--snapshot-minute'), 60_000);
  program.parse(argv, { from: 'user' });
  const o = program.opts<{
    kubeconfig?: string;
    namespace?: string[];
    concurrency: number;
    leaderElect: boolean;
    leaderElectionNamespace: string;
    leaderElectionId: string;
    leaseDuration: number;
    renewDeadline: number;
    retryPeriod: number;
    httpPort: number;
    httpHost: string;
    logLevel: string;
    notReadyRecheck: number;
    notReadyRecheckMax: number;
    processMapperImage: string;
    kernelProfilesConfigmap: string;
    processMapperNamespace: string;
    processMapperServiceAccount: string;
    processMapperService: string;
    kubevirtNamespace: string;
    mirroringProvider: MirroringProvider;
    idsNetwork: IdsNetworkProvider;
    idsNetworkCidr: string;
    idsNetworkMtu: number;
    mirrorMtu: number;
    overlayBridge: string;
    ovnNetworkName: string;
    ovsBridge: string;
    idsNetworkPolicy: boolean;
    idsAddressNamespace: string;
    snapshotMinute: number;
    idsCredentialRotation: number;
  }>();
  const namespaces = (o.namespace ?? (env.WATCH_NAMESPACES ?? '').split(',')).map((n) => n.trim()).filter(Boolean);
  // Values from the environment are defaults, which commander does not pass through the parsers.
  oneOf('--mirroring-provider', MIRRORING_PROVIDERS)(o.mirroringProvider);
  oneOf('--ids-network', IDS_NETWORK_PROVIDERS)(o.idsNetwork);
  ipv4Prefix(o.idsNetworkCidr);
  if (o.idsCredentialRotation < 10_000) throw new InvalidArgumentError('--ids-credential-rotation must be at least 10s');
  if (o.snapshotMinute < 1000) throw new InvalidArgumentError('--snapshot-minute must be at least 1s');
  if (o.notReadyRecheckMax < o.notReadyRecheck) throw new InvalidArgumentError('--not-ready-recheck-max must not be shorter than --not-ready-recheck');
  if (o.concurrency < 1) throw new InvalidArgumentError('--concurrency must be at least 1');
  if (o.renewDeadline >= o.leaseDuration) throw new InvalidArgumentError('--renew-deadline must be shorter than --lease-duration');
  if (o.retryPeriod >= o.renewDeadline) throw new InvalidArgumentError('--retry-period must be shorter than --renew-deadline');
  return {
    ...(o.kubeconfig ? { kubeconfig: o.kubeconfig } : {}),
    namespaces,
    concurrency: o.concurrency,
    leaderElect: o.leaderElect,
    leaderElectionNamespace: o.leaderElectionNamespace,
    leaderElectionId: o.leaderElectionId,
    leaseDurationMs: o.leaseDuration,
    renewDeadlineMs: o.renewDeadline,
    retryPeriodMs: o.retryPeriod,
    httpPort: o.httpPort,
    httpHost: o.httpHost,
    logLevel: o.logLevel,
    notReadyRecheckMs: o.notReadyRecheck,
    notReadyRecheckMaxMs: o.notReadyRecheckMax,
    processMapperImage: o.processMapperImage,
    kernelProfilesConfigMap: o.kernelProfilesConfigmap,
    processMapperNamespace: o.processMapperNamespace,
    processMapperServiceAccount: o.processMapperServiceAccount,
    processMapperService: o.processMapperService,
    kubevirtNamespace: o.kubevirtNamespace,
    networking: {
      mirroring: o.mirroringProvider,
      idsNetwork: o.idsNetwork,
      idsCidr: o.idsNetworkCidr,
      idsMtu: o.idsNetworkMtu,
      mirrorMtu: o.mirrorMtu,
      overlayBridge: o.overlayBridge,
      ovnNetworkName: o.ovnNetworkName,
      ovsBridge: o.ovsBridge,
      multiNetworkPolicy: o.idsNetworkPolicy,
    },
    idsAddressNamespace: o.idsAddressNamespace,
    snapshotMinuteMs: o.snapshotMinute,
    idsCredentialRotationMs: o.idsCredentialRotation,
  };
}
