// Reading the links of a namespace (`ip -j -d link show`) into the few facts the planners use.
import { ip, type KernelCommands } from './kernel-commands.ts';
import type { NetnsRef } from './netns.ts';

/** The subset of `ip -j -d link show` the data plane reads. */
export interface ObservedLink {
  ifname: string;
  mtu: number;
  flags: string[];
  master?: string;
  /** Peer name of a veth inside the same namespace or its index elsewhere. */
  link?: string;
  linkinfo?: {
    info_kind?: string;
    info_data?: Record<string, unknown>;
    info_slave_kind?: string;
    info_slave_data?: Record<string, unknown>;
  };
  inet6_addr_gen_mode?: string;
}

export type LinkTable = ReadonlyMap<string, ObservedLink>;

export function linkTableFromJson(json: readonly ObservedLink[]): LinkTable {
  return new Map(json.map((link) => [link.ifname, link]));
}

export async function observeLinks(kernel: KernelCommands, netns: NetnsRef): Promise<LinkTable> {
  return linkTableFromJson(await kernel.query<ObservedLink[]>(netns, ip('-d', 'link', 'show')));
}

export function isUp(link: ObservedLink): boolean {
  return link.flags.includes('UP');
}

/** Linux interface names are at most 15 bytes (IFNAMSIZ - 1) and may not contain '/' or spaces. */
export function assertInterfaceName(name: string, what: string): void {
  if (name.length === 0 || Buffer.byteLength(name) > 15 || /[\s/:]/.test(name) || name === '.' || name === '..') {
    throw new Error(`Invalid interface name "${name}" for ${what}: 1-15 bytes, no spaces, '/' or ':'`);
  }
}
