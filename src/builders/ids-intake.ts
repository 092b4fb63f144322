// The IDS VM's alert intake, the operator's side (pure builders; docs/process-mapping.md, "Alerts
// from the IDS VM"):
// - the signing key: a Secret per MonitoredServer in the operator's namespace (labelled like the
//   process-mapper pod, deleted in teardown and as an orphan), given to the mapper pod as env
//   IDS_INTAKE_KEY (secretKeyRef); never in the tenant's namespace;
// - the token data, in the IDS VM's one Secret `<name>-ids-cloud-init` of the tenant's namespace
//   (owned by the MonitoredServer; beside the cloud-init user and network data when there are any,
//   planners/disk-inspection.ts): the current token, the intake URL, how often to renew, and the
//   forwarder script; rewritten at each rotation epoch. The IDS VM has that Secret as a disk too
//   (serial hs-intake; the forwarder reads the files it knows and nothing else): a Secret's content
//   is not part of the VM spec, so a new token never restarts the IDS VM; a new VMI starts with the
//   current token and a running guest renews over the intake itself. The server VM never has it.
//   Older versions kept the token in a Secret `<name>-ids-intake` of its own; the planner deletes it;
// - no object of its own for the URL the guest posts to: the process mapper has a hostname and the
//   chart's headless Service as its subdomain, so <hostname>.<service>.<namespace>.svc names it
//   whichever pod runs (its IP changes on replacement, the name does not). Older versions made a
//   Service per MonitoredServer; the planner deletes those it finds.
import { createHash } from 'node:crypto';
import type { MonitoredServer } from '../api/v1alpha1/monitoredserver-types.ts';
import type { ObjectMeta, Secret } from '../kube/client/objects.ts';
import { currentIntakeToken, nextEpochStart, rotationEpoch } from '../sidecar/intake-credential.ts';
import { FORWARDER_SCRIPT } from './ids-intake-forwarder.ts';
import { idsCloudInitSecretName, LABEL_MONITORED_SERVER_NAMESPACE, processMapperHostname, roleLabels } from './names.ts';
import { PROCESS_MAPPER_PORT, PROCESS_VIEW_PORT } from './process-mapper-pod.ts';

export const INTAKE_KEY_FIELD = 'key';
/** The IDS VM's disk with the intake Secret: found in the guest as /dev/disk/by-id/virtio-hs-intake. */
export const INTAKE_VOLUME = 'hyperspector-intake';
export const INTAKE_DISK_SERIAL = 'hs-intake';

/** The intake's names: the key Secret (operator's namespace); the token Secret of older versions (tenant's). */
export function intakeKeySecretName(ms: MonitoredServer): string {
  const ns = ms.metadata.namespace ?? '';
  const name = ms.metadata.name ?? '';
  const hash = createHash('sha256').update(`${ns}/${name}`).digest('hex').slice(0, 8);
  return `${`${ns}-${name}`.slice(0, 200).replace(/[.-]+$/, '')}-ids-intake-key-${hash}`;
}

export function legacyIntakeTokenSecretName(ms: MonitoredServer): string {
  return `${ms.metadata.name}-ids-intake`;
}

/** The keys of the token data in the IDS VM's Secret (files on its hs-intake disk). */
export const INTAKE_DATA_KEYS = ['token', 'epoch', 'url', 'renew-seconds', 'procfs-port', 'hyperspector-intake'] as const;

/** The process mapper's DNS name through the headless Service `service` of the operator's namespace. */
export function intakeUrl(ms: MonitoredServer, operatorNamespace: string, service: string): string {
  return `http://${processMapperHostname(ms)}.${service}.${operatorNamespace}.svc:${PROCESS_MAPPER_PORT}`;
}

/** The alert intake lives in the process mapper: it is there while process mapping is enabled. */
export function intakeEnabled(ms: MonitoredServer): boolean {
  return ms.spec.processMapping?.enabled !== false;
}

function operatorNamespaceLabels(ms: MonitoredServer, role: 'ids-intake-key'): Record<string, string> {
  return { ...roleLabels(ms, role), [LABEL_MONITORED_SERVER_NAMESPACE]: ms.metadata.namespace ?? '' };
}

export type BuiltSecret = Secret & { apiVersion: 'v1'; kind: 'Secret'; metadata: ObjectMeta & { name: string } };

export function buildIntakeKeySecret(ms: MonitoredServer, operatorNamespace: string, key: Buffer): BuiltSecret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: intakeKeySecretName(ms), namespace: operatorNamespace, labels: operatorNamespaceLabels(ms, 'ids-intake-key') },
    type: 'Opaque',
    // The value the pod's env gets (secretKeyRef: the decoded data) is the key's base64 text: an
    // environment variable cannot carry the raw bytes (a NUL ends it).
    data: { [INTAKE_KEY_FIELD]: Buffer.from(key.toString('base64'), 'utf8').toString('base64') },
  };
}

export interface IntakeTokenSettings {
  operatorNamespace: string;
  /** The chart's headless Service selecting the process mappers. */
  mapperService: string;
  rotationMs: number;
}

/** The token data for the epoch of `nowMs`, as Secret data (base64 values): merged into the IDS VM's Secret. */
export function intakeSecretData(ms: MonitoredServer, key: Buffer, nowMs: number, settings: IntakeTokenSettings): Record<string, string> {
  const subject = { namespace: ms.metadata.namespace ?? '', name: ms.metadata.name ?? '' };
  const data: Record<(typeof INTAKE_DATA_KEYS)[number], string> = {
    token: currentIntakeToken(key, subject, nowMs, settings.rotationMs),
    epoch: String(rotationEpoch(nowMs, settings.rotationMs)),
    url: intakeUrl(ms, settings.operatorNamespace, settings.mapperService),
    'renew-seconds': String(Math.max(1, Math.floor(settings.rotationMs / 2000))),
    // The read-only 9P process view at the same name (hyperspector-intake mount-proc).
    'procfs-port': String(PROCESS_VIEW_PORT),
    'hyperspector-intake': FORWARDER_SCRIPT,
  };
  return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
}

/** When the token data must be rewritten next: the start of the next epoch. */
export function intakeRecheckMs(nowMs: number, rotationMs: number): number {
  return Math.max(1, nextEpochStart(nowMs, rotationMs) - nowMs);
}

/** The VMI spec with the IDS VM's Secret (the token data) as a disk (serial hs-intake), once. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function withIntakeDisk<T extends { volumes?: any[]; domain: { devices?: { disks?: any[] } } }>(spec: T, ms: MonitoredServer): T {
  if ((spec.volumes ?? []).some((v: { name: string }) => v.name === INTAKE_VOLUME)) return spec;
  const devices = spec.domain.devices ?? {};
  return {
    ...spec,
    domain: { ...spec.domain, devices: { ...devices, disks: [...(devices.disks ?? []), { name: INTAKE_VOLUME, serial: INTAKE_DISK_SERIAL, disk: { bus: 'virtio' } }] } },
    volumes: [...(spec.volumes ?? []), { name: INTAKE_VOLUME, secret: { secretName: idsCloudInitSecretName(ms) } }],
  };
}
