// What a container of a pod becomes as a host process on a real-guest node (pure). The pods run
// here are the operator's own image (process mapper, node agent): its entry points are
// `node dist/src/<x>.js`, which run from this checkout as `node --import tsx src/<x>.ts` with the
// repository's Node. There is no container runtime, so:
// - a ConfigMap volume is written to a directory, and paths under its mountPath in the container's
//   env and args are rewritten to that directory (no mount namespace); the service-account volume
//   is the one exception, mounted at its real path in a mount namespace (pod-runner.ts);
// - the pod has no network namespace of its own: a listen address on a declared containerPort
//   (`0.0.0.0:<port>` or `:<port>` in env or args) becomes a free loopback port of the host;
// - hostPID is what every such process has anyway (the host's PID namespace).
import { join } from 'node:path';
import type * as k8s from '@kubernetes/client-node';

export interface ProcessSpec {
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  /** Host port for each declared containerPort. */
  ports: Map<number, number>;
  /** Files to write before start: path → content. */
  files: Map<string, string>;
  /** The readiness probe's URL on the host, if the container has an HTTP one. */
  readinessUrl?: string;
}

export interface PodProcessContext {
  repoRoot: string;
  /** Directory of this pod's materialised volumes. */
  volumesDir: string;
  /** ConfigMaps of the pod's namespace, by name (data only). */
  configMaps: Map<string, Record<string, string>>;
  /** Secrets of the pod's namespace named by env secretKeyRef, by name (data decoded); absent: none. */
  secrets?: Map<string, Record<string, string>>;
  hostPorts: Map<number, number>;
  nodeIp: string;
}

export class UnsupportedPodError extends Error {}

/** Where ServiceAccount admission mounts the pod's token, CA and namespace. */
export const SERVICE_ACCOUNT_MOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';

/** `node dist/src/x/y.js` → the TypeScript entry point `src/x/y.ts` of this checkout. */
export function entryPointOf(container: k8s.V1Container): string {
  const argv = [...(container.command ?? []), ...(container.args ?? [])];
  const script = argv[1];
  const m = script ? /^(?:\/app\/)?dist\/(src\/.+)\.js$/.exec(script) : null;
  if (argv[0] !== 'node' || !m) throw new UnsupportedPodError(`container ${container.name} runs ${JSON.stringify(argv)}, not the operator image's \`node dist/src/<entry>.js\``);
  return `${m[1]}.ts`;
}

function resolveEnv(pod: k8s.V1Pod, container: k8s.V1Container, ctx: PodProcessContext): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    // An empty value is omitted on the wire: a variable with neither value nor valueFrom is "" (as kubelet sets it).
    if (e.value !== undefined || !e.valueFrom) env[e.name] = e.value ?? '';
    else if (e.valueFrom.fieldRef) {
      const field = e.valueFrom.fieldRef.fieldPath;
      const value = {
        'metadata.name': pod.metadata?.name,
        'metadata.namespace': pod.metadata?.namespace,
        'metadata.uid': pod.metadata?.uid,
        'spec.nodeName': pod.spec?.nodeName,
        'spec.serviceAccountName': pod.spec?.serviceAccountName,
        'status.podIP': '127.0.0.1',
        'status.hostIP': ctx.nodeIp,
      }[field];
      if (value === undefined) throw new UnsupportedPodError(`env ${e.name}: fieldRef ${field} is not supported`);
      env[e.name] = value;
    } else if (e.valueFrom.configMapKeyRef) {
      const ref = e.valueFrom.configMapKeyRef;
      const value = ctx.configMaps.get(ref.name ?? '')?.[ref.key];
      if (value === undefined && !ref.optional) throw new UnsupportedPodError(`env ${e.name}: ConfigMap key ${ref.name}/${ref.key} not found`);
      if (value !== undefined) env[e.name] = value;
    } else if (e.valueFrom.secretKeyRef) {
      // As kubelet: the container waits for a missing Secret or key unless the reference is optional.
      const ref = e.valueFrom.secretKeyRef;
      const value = ctx.secrets?.get(ref.name ?? '')?.[ref.key];
      if (value === undefined && !ref.optional) throw new UnsupportedPodError(`env ${e.name}: Secret key ${ref.name}/${ref.key} not found`);
      if (value !== undefined) env[e.name] = value;
    } else {
      throw new UnsupportedPodError(`env ${e.name}: only value, fieldRef, configMapKeyRef and secretKeyRef are supported`);
    }
  }
  return env;
}

/** The capabilities a container runtime gives a container that is not privileged (containerd's and CRI-O's default set). */
export const RUNTIME_DEFAULT_CAPABILITIES = ['CHOWN', 'DAC_OVERRIDE', 'FSETID', 'FOWNER', 'MKNOD', 'NET_RAW', 'SETGID', 'SETUID', 'SETFCAP', 'SETPCAP', 'NET_BIND_SERVICE', 'SYS_CHROOT', 'KILL', 'AUDIT_WRITE'];

/**
 * The container's capabilities as a runtime sets them, as a `setpriv` prefix: a privileged
 * container keeps all (undefined); otherwise the runtime's default set minus `drop` plus `add` is
 * the bounding set (a root process gets exactly those), and allowPrivilegeEscalation: false is
 * no_new_privs.
 */
export function capabilityLimits(sc: k8s.V1SecurityContext | undefined): string[] | undefined {
  if (sc?.privileged) return undefined;
  const drop = new Set((sc?.capabilities?.drop ?? []).map((c) => c.toUpperCase()));
  const kept = drop.has('ALL') ? [] : RUNTIME_DEFAULT_CAPABILITIES.filter((c) => !drop.has(c));
  const caps = [...new Set([...kept, ...(sc?.capabilities?.add ?? []).map((c) => c.toUpperCase())])];
  const bounding = ['-all', ...caps.map((c) => `+${c.toLowerCase()}`)].join(',');
  return ['setpriv', '--bounding-set', bounding, '--inh-caps', '-all', ...(sc?.allowPrivilegeEscalation === false ? ['--no-new-privs'] : []), '--'];
}

export function podProcessSpec(pod: k8s.V1Pod, container: k8s.V1Container, ctx: PodProcessContext): ProcessSpec {
  const entry = entryPointOf(container);
  const files = new Map<string, string>();
  const mounts: { mountPath: string; dir: string }[] = [];
  for (const mount of container.volumeMounts ?? []) {
    const volume = pod.spec?.volumes?.find((v) => v.name === mount.name);
    // ServiceAccount admission's kube-api-access volume (token, CA, namespace): the runner mounts
    // it at its in-cluster path in the container's own mount namespace (pod-runner.ts).
    if (volume?.projected && mount.mountPath === SERVICE_ACCOUNT_MOUNT) continue;
    if (!volume?.configMap) throw new UnsupportedPodError(`volume ${mount.name}: only ConfigMap volumes are supported`);
    const data = ctx.configMaps.get(volume.configMap.name ?? '');
    if (!data) {
      if (volume.configMap.optional) continue;
      throw new UnsupportedPodError(`volume ${mount.name}: ConfigMap ${volume.configMap.name} not found`);
    }
    const dir = join(ctx.volumesDir, mount.name);
    const items = volume.configMap.items ?? Object.keys(data).map((key) => ({ key, path: key }));
    for (const item of items) {
      if (data[item.key] === undefined) throw new UnsupportedPodError(`volume ${mount.name}: ConfigMap ${volume.configMap.name} has no key ${item.key}`);
      files.set(join(dir, item.path), data[item.key]!);
    }
    mounts.push({ mountPath: mount.mountPath.replace(/\/+$/, ''), dir });
  }
  const rewrite = (value: string): string => {
    let out = value;
    // Longest mount path first, so a nested mount wins over its parent.
    for (const { mountPath, dir } of [...mounts].sort((a, b) => b.mountPath.length - a.mountPath.length)) {
      out = out.replace(new RegExp(`(^|[,:=\\s])${mountPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?=/|$|[,:\\s])`, 'g'), `$1${dir}`);
    }
    for (const [containerPort, hostPort] of ctx.hostPorts) {
      out = out.replace(new RegExp(`^(?:0\\.0\\.0\\.0)?:${containerPort}$`), `127.0.0.1:${hostPort}`);
    }
    return out;
  };
  const env: Record<string, string> = {
    PATH: `${join(ctx.repoRoot, 'node_modules', '.bin')}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    HOSTNAME: pod.metadata?.name ?? '',
    HOME: '/root',
  };
  for (const [k, v] of Object.entries(resolveEnv(pod, container, ctx))) env[k] = rewrite(v);
  const extraArgs = (container.command ?? []).slice(2).concat(container.args ?? []).map(rewrite);
  const probe = container.readinessProbe?.httpGet;
  let readinessUrl: string | undefined;
  if (probe) {
    const port = typeof probe.port === 'number' ? probe.port : (container.ports ?? []).find((p) => p.name === probe.port)?.containerPort ?? Number(probe.port);
    const hostPort = ctx.hostPorts.get(port);
    if (hostPort === undefined) throw new UnsupportedPodError(`readiness probe port ${String(probe.port)} is not a declared containerPort`);
    readinessUrl = `http://127.0.0.1:${hostPort}${probe.path ?? '/'}`;
  }
  const node = [join(ctx.repoRoot, 'node_modules', '.bin', 'node'), '--import', 'tsx', join(ctx.repoRoot, entry), ...extraArgs];
  const limits = capabilityLimits(container.securityContext);
  const [command, ...args] = limits ? [...limits, ...node] : node;
  return {
    command: command!,
    args,
    env,
    cwd: ctx.repoRoot,
    ports: ctx.hostPorts,
    files,
    ...(readinessUrl ? { readinessUrl } : {}),
  };
}
