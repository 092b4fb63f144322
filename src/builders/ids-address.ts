// IDS-network addresses (pure): one IPv4 address of the configured prefix per IDS VM, claimed by an
// object in the API so that the allocation is neither kept in memory nor lost on a restart, and two
// MonitoredServers never get the same one. The claim is a ConfigMap in the operator's namespace
// named after the address (`hyperspector-ids-addr-10-99-0-7`): creating it is the allocation (the
// API server refuses a second object of that name with 409, whatever a cache said), deleting it the
// release. Its labels name the MonitoredServer by UID, so a new MonitoredServer of the same name
// never inherits an old claim.
import type { MonitoredServer } from '../api/v1alpha1/monitoredserver-types.ts';
import type { KubeObject } from '../kube/client/objects.ts';
import { LABEL_MANAGED_BY, LABEL_ROLE, MANAGED_BY } from './names.ts';

export const ADDRESS_CLAIM_PREFIX = 'hyperspector-ids-addr-';
export const LABEL_CLAIM_UID = 'hyperspector.io/monitored-server-uid';
export const ANNOTATION_CLAIM_OWNER = 'hyperspector.io/monitored-server';

export interface AddressClaim extends KubeObject {
  apiVersion: 'v1';
  kind: 'ConfigMap';
  data?: Record<string, string>;
}

export interface Ipv4Prefix {
  /** Network address as a 32-bit number. */
  network: number;
  length: number;
}

export function parseIpv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) return undefined;
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

export function formatIpv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

/** `a.b.c.d/len` with 8 ≤ len ≤ 30 and no host bits set; throws with the reason otherwise. */
export function parseIpv4Prefix(cidr: string): Ipv4Prefix {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(cidr.trim());
  const address = m ? parseIpv4(m[1]!) : undefined;
  const length = m ? Number(m[2]) : NaN;
  if (address === undefined || !(length >= 8 && length <= 30)) throw new Error(`"${cidr}" is not an IPv4 prefix a.b.c.d/len with len 8..30`);
  const size = 2 ** (32 - length);
  if (address % size !== 0) throw new Error(`"${cidr}" has host bits set; the network address is ${formatIpv4(address - (address % size))}/${length}`);
  return { network: address, length };
}

export function claimNameFor(address: string): string {
  return `${ADDRESS_CLAIM_PREFIX}${address.replace(/\./g, '-')}`;
}

/** The address a claim stands for, from its name (undefined: not a claim of ours). */
export function addressOfClaim(claim: KubeObject): string | undefined {
  const name = claim.metadata?.name ?? '';
  if (!name.startsWith(ADDRESS_CLAIM_PREFIX)) return undefined;
  const address = name.slice(ADDRESS_CLAIM_PREFIX.length).replace(/-/g, '.');
  return parseIpv4(address) === undefined ? undefined : address;
}

/** The claim of the MonitoredServer with this UID, if any (the oldest name wins if a race left two). */
export function claimOf(claims: readonly KubeObject[], uid: string | undefined): KubeObject | undefined {
  if (!uid) return undefined;
  return claims
    .filter((c) => c.metadata?.labels?.[LABEL_CLAIM_UID] === uid && !c.metadata?.deletionTimestamp && addressOfClaim(c))
    .sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''))[0];
}

/**
 * The lowest free host address of the prefix (network and broadcast addresses excluded), given the
 * addresses claimed now; undefined when the prefix is full.
 */
export function lowestFreeAddress(prefix: Ipv4Prefix, taken: ReadonlySet<string>): string | undefined {
  const size = 2 ** (32 - prefix.length);
  for (let i = 1; i < size - 1; i++) {
    const candidate = formatIpv4(prefix.network + i);
    if (!taken.has(candidate)) return candidate;
  }
  return undefined;
}

export function buildAddressClaim(ms: MonitoredServer, address: string, namespace: string): AddressClaim {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: claimNameFor(address),
      namespace,
      labels: { [LABEL_ROLE]: 'ids-address', [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_CLAIM_UID]: ms.metadata.uid ?? '' },
      annotations: { [ANNOTATION_CLAIM_OWNER]: `${ms.metadata.namespace}/${ms.metadata.name}` },
    },
    data: { address, monitoredServer: `${ms.metadata.namespace}/${ms.metadata.name}`, uid: ms.metadata.uid ?? '' },
  };
}
