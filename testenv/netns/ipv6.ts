// IPv6 addresses the tests predict (pure).

/**
 * The link-local address the kernel gives an interface with this MAC (EUI-64, addr_gen_mode eui64),
 * in the compressed form nmap and ping print.
 */
export function linkLocalOf(mac: string): string {
  const b = mac.split(':').map((x) => parseInt(x, 16));
  if (b.length !== 6 || b.some((x) => Number.isNaN(x))) throw new Error(`not a MAC: ${mac}`);
  const groups = [((b[0]! ^ 2) << 8) | b[1]!, (b[2]! << 8) | 0xff, (0xfe << 8) | b[3]!, (b[4]! << 8) | b[5]!].map((g) => g.toString(16));
  // The three zero groups after fe80 are the longest run, and a zero first interface group joins it.
  return groups[0] === '0' ? `fe80::${groups.slice(1).join(':')}` : `fe80::${groups.join(':')}`;
}
