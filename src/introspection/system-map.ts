// System.map ("<address> <type> <name>" per line), optional input to `profile build`.
export class SystemMapError extends Error {}

export interface SystemMap {
  require(name: string): bigint;
}

export function parseSystemMap(text: string): SystemMap {
  const symbols = new Map<string, bigint>();
  for (const line of text.split('\n')) {
    const [address, , name] = line.trim().split(/\s+/);
    if (!address || !name || !/^[0-9a-fA-F]+$/.test(address)) continue;
    symbols.set(name, BigInt(`0x${address}`));
  }
  return {
    require(name: string): bigint {
      const v = symbols.get(name);
      if (v === undefined) {
        // Debian ships a stub System.map ("The real System.map is in the linux-image-<version>-dbg package").
        const stub = symbols.size <= 2 ? ' (this System.map looks like a distribution stub; omit --system-map to use the image itself)' : '';
        throw new SystemMapError(`System.map has no symbol ${name}${stub}`);
      }
      return v;
    },
  };
}
