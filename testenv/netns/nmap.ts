// Running Debian's nmap inside a namespace and reading its XML report (-oX -).
import type { TestNetns } from './netns-host.ts';

export interface NmapHost {
  readonly address: string;
  /** The MAC nmap saw the host answer from (on-link targets only). */
  readonly mac?: string;
  readonly state: string;
  /** Ports nmap listed individually, with their state (open, closed, filtered, ...). */
  readonly ports: readonly { port: number; protocol: string; state: string }[];
  /** Summarised ports: state → count. */
  readonly extraPorts: Readonly<Record<string, number>>;
  /** nmap gave up on the host (--host-timeout): its port list is incomplete. */
  readonly timedOut: boolean;
}

export interface NmapReport {
  readonly hostsUp: number;
  readonly hosts: readonly NmapHost[];
  readonly exitSummary: string;
}

export function parseNmapXml(xml: string): NmapReport {
  const hosts: NmapHost[] = [];
  for (const block of xml.match(/<host[\s>][\s\S]*?<\/host>/g) ?? []) {
    const address = /<address addr="([^"]+)" addrtype="ipv[46]"/.exec(block)?.[1] ?? '';
    const mac = /<address addr="([^"]+)" addrtype="mac"/.exec(block)?.[1]?.toLowerCase();
    const state = /<status state="([^"]+)"/.exec(block)?.[1] ?? 'unknown';
    const ports = [...block.matchAll(/<port protocol="(\w+)" portid="(\d+)"><state state="([^"]+)"/g)].map((m) => ({
      protocol: m[1]!,
      port: Number(m[2]),
      state: m[3]!,
    }));
    const extraPorts: Record<string, number> = {};
    for (const m of block.matchAll(/<extraports state="([^"]+)" count="(\d+)"/g)) extraPorts[m[1]!] = (extraPorts[m[1]!] ?? 0) + Number(m[2]);
    const timedOut = /<host[^>]*timedout="true"/.test(block);
    hosts.push({ address, ...(mac ? { mac } : {}), state, ports, extraPorts, timedOut });
  }
  const hostsUp = Number(/<hosts up="(\d+)"/.exec(xml)?.[1] ?? NaN);
  const exitSummary = /<finished [^>]*summary="([^"]*)"/.exec(xml)?.[1] ?? '';
  if (!/<finished /.test(xml) || Number.isNaN(hostsUp)) throw new Error(`nmap did not finish: ${xml.slice(-500)}`);
  return { hostsUp, hosts, exitSummary };
}

/**
 * Fast, bounded settings. Our namespaces answer in microseconds or not at all (a node forwarding
 * to an unroutable address answers only a few probes with ICMP "network unreachable": the kernel
 * rate-limits those errors), so a probe unanswered after 300 ms and one retry is filtered; the
 * IDS-side positive control runs with the same settings and must find its peers.
 */
const FAST = ['-n', '-T5', '--max-retries', '1', '--min-rate', '2000', '--initial-rtt-timeout', '100ms', '--max-rtt-timeout', '300ms', '--host-timeout', '120s', '-oX', '-'];

/** Ping scan (ICMP echo/timestamp, TCP SYN 443, TCP ACK 80, ARP on a local segment). */
export async function nmapHostDiscovery(from: TestNetns, target: string): Promise<NmapReport> {
  return parseNmapXml(await from.exec(['nmap', '-sn', ...FAST, target], 180_000));
}

/** TCP SYN scan of `ports` on every target, without host discovery (-Pn: every port is probed). */
export async function nmapPortScan(from: TestNetns, targets: readonly string[], ports: string): Promise<NmapReport> {
  return parseNmapXml(await from.exec(['nmap', '-Pn', '-sS', '-p', ports, ...FAST, ...targets], 180_000));
}

/**
 * Any nmap scan with the same bounded settings: `args` choose the scan (-sS, -sU, -sn -PR, -6 ...)
 * and the vantage point (-e <interface> -S <source>: nmap then sends raw frames on that interface
 * and treats the targets as on-link, which needs no route in the namespace); they come after the
 * settings, so they may also override them (e.g. longer timeouts for a slow QEMU guest).
 */
export async function nmapScan(from: TestNetns, args: readonly string[], targets: readonly string[]): Promise<NmapReport> {
  return parseNmapXml(await from.exec(['nmap', ...FAST, ...args, ...targets], 180_000));
}

/**
 * What a scan found of a host: ports with an answer — open, closed (a TCP RST, an ICMP port
 * unreachable) or unfiltered — and, for a host discovery scan (`discovery`), that it is up. UDP ports
 * without an answer are `open|filtered`, TCP ones `filtered`: nothing found. (With -Pn nmap reports
 * every target it could send to as up, so up means nothing there.)
 */
export function foundOf(host: NmapHost, discovery = false): string[] {
  const answered = (state: string) => state === 'open' || state === 'closed' || state === 'unfiltered';
  return [
    ...(discovery && host.state === 'up' ? ['up'] : []),
    ...host.ports.filter((p) => answered(p.state)).map((p) => `${p.port}/${p.protocol} ${p.state}`),
    ...Object.entries(host.extraPorts).filter(([state]) => answered(state)).map(([state, n]) => `${n} ports ${state}`),
  ];
}

/** How many ports nmap reports a state for (listed + summarised): all scanned ones when it finished. */
export function portsAccountedFor(host: NmapHost): number {
  return host.ports.length + Object.values(host.extraPorts).reduce((a, b) => a + b, 0);
}

/** Ports nmap found reachable: open, closed (an RST came back) or unfiltered. */
export function reachablePorts(host: NmapHost): number[] {
  return [
    ...host.ports.filter((p) => p.state !== 'filtered').map((p) => p.port),
    ...Object.entries(host.extraPorts).filter(([state]) => state !== 'filtered').map(() => -1),
  ];
}
