// Reads the kernel's own symbol table (kallsyms, what /proc/kallsyms prints) out of a copy of the
// kernel image's read-only data, with no System.map and no knowledge of the build.
//
// scripts/kallsyms.c emits, each table 8-byte aligned:
//   up to 6.3:  kallsyms_offsets[n] · kallsyms_relative_base · kallsyms_num_syms · kallsyms_names ·
//               kallsyms_markers · (6.2–6.3: kallsyms_seqs_of_names) · kallsyms_token_table · kallsyms_token_index
//   6.4 on:     kallsyms_num_syms · kallsyms_names · kallsyms_markers · kallsyms_token_table ·
//               kallsyms_token_index · kallsyms_offsets[n] · kallsyms_relative_base · kallsyms_seqs_of_names
// Names are compressed: each byte of a name is an index into a table of 256 tokens, and every byte
// value a symbol name uses literally stays a one-character token at its own index. So the digits
// "0".."9" appear as ten consecutive one-character NUL-terminated strings at indices 0x30..0x39:
// that is the anchor we search for. Everything else is found from there and cross-checked: the
// token index must list exactly the token offsets, the markers must count the names, the names
// must decode to exactly fill their table, and the addresses kallsyms gives its own tables must be
// as far apart as the tables are in memory.
export class KallsymsError extends Error {}

/** "0\0" "1\0" ... "9\0": the digit tokens, present in every kernel's token table. */
export const DIGIT_TOKENS = Buffer.from('0\x001\x002\x003\x004\x005\x006\x007\x008\x009\x00', 'latin1');

const KSYM_NAME_MAX = 512;
const align8 = (n: number) => (n + 7) & ~7;

export interface Kallsyms {
  /** Number of symbols. */
  readonly count: number;
  /** Runtime address of a wanted symbol (the first of that name), or undefined. */
  address(name: string): bigint | undefined;
  /** Type letter of a wanted symbol as /proc/kallsyms shows it ('T', 'd', ...). */
  type(name: string): string | undefined;
  /** Offsets of the tables within the buffer given to parseKallsyms. */
  readonly layout: { tokenTable: number; tokenIndex: number; markers: number; names: number; offsets: number; relativeBase: number; order: 'offsets-first' | 'names-first' };
}

/**
 * What to search for: "7\0" "8\0" "9", short enough for Buffer.indexOf's first-byte (memchr) search.
 * The whole DIGIT_TOKENS with its many NULs makes Boyer-Moore-Horspool crawl through zero pages
 * (2.3 s instead of 0.05 s for 256 MiB); a hit is then checked against DIGIT_TOKENS.
 */
export const DIGIT_TOKENS_TAIL = Buffer.from('7\x008\x009', 'latin1');
/** Where DIGIT_TOKENS starts relative to a DIGIT_TOKENS_TAIL hit. */
export const DIGIT_TOKENS_TAIL_OFFSET = DIGIT_TOKENS.indexOf(DIGIT_TOKENS_TAIL);

/** Every offset in `buf` where the digit tokens start (candidates for the token table). */
export function findDigitTokens(buf: Buffer, from = 0): number[] {
  const hits: number[] = [];
  for (let i = buf.indexOf(DIGIT_TOKENS_TAIL, from); i >= 0; i = buf.indexOf(DIGIT_TOKENS_TAIL, i + 1)) {
    const start = i - DIGIT_TOKENS_TAIL_OFFSET;
    if (start >= 0 && buf.subarray(start, start + DIGIT_TOKENS.length).equals(DIGIT_TOKENS)) hits.push(start);
  }
  return hits;
}

/** Whether the 256 tokens around digitsAt form a token table (a cheap check before reading more). */
export function isTokenTable(buf: Buffer, digitsAt: number): boolean {
  try {
    readTokenTable(buf, digitsAt);
    return true;
  } catch (err) {
    if (err instanceof KallsymsError || err instanceof RangeError) return false;
    throw err;
  }
}

/** The tables' own symbols, used to check what was found. */
const SELF_SYMBOLS = ['kallsyms_names', 'kallsyms_token_table', 'kallsyms_markers'];

/**
 * Parses kallsyms from a buffer holding the kernel's .rodata around the token table, given where
 * the digit tokens are in it, and resolves the wanted symbol names (decoding only those: a kernel
 * has 150 000+). Throws KallsymsError when the structures around are not kallsyms.
 */
export function parseKallsyms(buf: Buffer, digitsAt: number, wanted: readonly string[]): Kallsyms {
  const tokens = readTokenTable(buf, digitsAt);
  const tokenIndex = findTokenIndex(buf, tokens);
  let markers: Markers | undefined;
  let names: Names | undefined;
  for (const candidate of markerCandidates(buf, tokens.start)) {
    names = findNames(buf, candidate, tokens.strings);
    if (names) {
      markers = candidate;
      break;
    }
  }
  if (!markers || !names) throw new KallsymsError('kallsyms_markers and kallsyms_names not found before the token table');
  const n = names.count;
  const candidates: Array<{ order: 'offsets-first' | 'names-first'; offsets: number; relativeBase: number }> = [
    { order: 'offsets-first', relativeBase: names.start - 16, offsets: names.start - 16 - align8(4 * n) },
    { order: 'names-first', offsets: align8(tokenIndex + 512), relativeBase: align8(tokenIndex + 512) + align8(4 * n) },
  ];
  const found = findSymbols(buf, names.start, n, tokens.strings, [...SELF_SYMBOLS, ...wanted]);
  const problems: string[] = [];
  for (const c of candidates) {
    if (c.offsets < 0 || c.relativeBase + 8 > buf.length) continue;
    const base = buf.readBigUInt64LE(c.relativeBase);
    if (base >> 32n !== 0xffffffffn) {
      problems.push(`${c.order}: relative base ${base.toString(16)} is not a kernel-image address`);
      continue;
    }
    const raw = new Int32Array(n);
    let negative = 0;
    for (let i = 0; i < n; i++) {
      raw[i] = buf.readInt32LE(c.offsets + 4 * i);
      if (raw[i]! < 0) negative++;
    }
    // CONFIG_KALLSYMS_ABSOLUTE_PERCPU (x86-64 SMP up to 6.14): per-CPU symbols are absolute
    // (non-negative), all others are stored as relative_base - 1 - address (negative).
    const absolutePercpu = negative > n / 2;
    const addressOf = (i: number): bigint => {
      const v = raw[i]!;
      if (!absolutePercpu) return base + BigInt(v >>> 0);
      return v >= 0 ? BigInt(v) : base - 1n - BigInt(v);
    };
    const index = new Map([...found].map(([name, f]) => [name, f.index]));
    // kallsyms is sorted by address (scripts/kallsyms.c sort_symbols).
    let sorted = true;
    for (let i = 64; i < n && sorted; i += 64) sorted = addressOf(i - 64) <= addressOf(i);
    if (!sorted) {
      problems.push(`${c.order}: addresses are not sorted`);
      continue;
    }
    // Kernels from 6.4 on list the tables' own symbols (older ones leave them out): then they must be
    // exactly as far apart as the tables are in the buffer.
    const self = [['kallsyms_names', names.start], ['kallsyms_token_table', tokens.start], ['kallsyms_markers', markers.start]] as const;
    const present = self.filter(([sym]) => index.has(sym));
    const [first] = present;
    if (first) {
      const delta = addressOf(index.get(first[0])!) - BigInt(first[1]);
      const mismatch = present.find(([sym, at]) => addressOf(index.get(sym)!) - BigInt(at) !== delta);
      if (mismatch) {
        problems.push(`${c.order}: ${mismatch[0]} is not where its own address says`);
        continue;
      }
    }
    return {
      count: n,
      address: (name) => {
        const i = index.get(name);
        return i === undefined ? undefined : addressOf(i);
      },
      type: (name) => {
        const i = index.get(name);
        return i === undefined ? undefined : found.get(name)!.type;
      },
      layout: { tokenTable: tokens.start, tokenIndex, markers: markers.start, names: names.start, offsets: c.offsets, relativeBase: c.relativeBase, order: c.order },
    };
  }
  throw new KallsymsError(`kallsyms addresses not found: ${problems.join('; ')}`);
}

interface TokenTable { start: number; end: number; offsets: number[]; strings: string[] }

function readTokenTable(buf: Buffer, digitsAt: number): TokenTable {
  // Walk back over the 0x30 tokens before "0".
  let start = digitsAt;
  for (let k = 0; k < 0x30; k++) {
    if (start < 2 || buf[start - 1] !== 0 || buf[start - 2] === 0) throw new KallsymsError('no token table before the digit tokens');
    let p = start - 2;
    while (p >= 0 && buf[p] !== 0) p--;
    start = p + 1;
  }
  if (start % 8 !== 0) {
    // The table starts 8-byte aligned in the image (buffers given here start 8-byte aligned too).
    throw new KallsymsError(`token table start ${start} is not 8-byte aligned`);
  }
  const offsets: number[] = [];
  const strings: string[] = [];
  let p = start;
  for (let i = 0; i < 256; i++) {
    const end = buf.indexOf(0, p);
    if (end < 0 || end === p || end - p > 64) throw new KallsymsError(`token ${i} is empty or too long`);
    offsets.push(p - start);
    strings.push(buf.toString('latin1', p, end));
    p = end + 1;
  }
  for (let d = 0; d < 10; d++) if (strings[0x30 + d] !== String(d)) throw new KallsymsError('digit tokens not at their own indices');
  return { start, end: p, offsets, strings };
}

function findTokenIndex(buf: Buffer, tokens: TokenTable): number {
  const expected = Buffer.alloc(512);
  tokens.offsets.forEach((o, i) => expected.writeUInt16LE(o, 2 * i));
  const at = buf.indexOf(expected, tokens.end);
  if (at < 0 || at - tokens.end > 16) throw new KallsymsError('no kallsyms_token_index after the token table');
  return at;
}

interface Markers {
  start: number;
  values: number[];
  /** Bytes of kallsyms_seqs_of_names between the markers and the token table (0 when absent). */
  seqsBytes: number;
}

/** Plausible distance between two markers: 256 names of 2 to KSYM_NAME_MAX bytes. */
const markerStepOk = (step: number) => step >= 256 * 2 && step <= 256 * (KSYM_NAME_MAX + 2);

/** kallsyms_markers[m] (u32) at `start`, checked: starts at 0, increases by plausible steps. */
function markersAt(buf: Buffer, start: number, m: number): number[] | undefined {
  if (start < 0 || buf.readUInt32LE(start) !== 0) return undefined;
  const values = [0];
  for (let i = 1; i < m; i++) {
    const v = buf.readUInt32LE(start + 4 * i);
    if (!markerStepOk(v - values[i - 1]!)) return undefined;
    values.push(v);
  }
  return values;
}

/**
 * kallsyms_markers (u32 each; the offset of every 256th name) ends just before the token table,
 * or before kallsyms_seqs_of_names (3 bytes per symbol; 6.2+, and backported to some 6.1 stable
 * kernels, e.g. Debian's 6.1.19x) that then sits in between. Tries m markers with no gap, then with
 * the gap that n symbols (256(m-1) < n <= 256m) would need. Candidates are confirmed by the names.
 */
function* markerCandidates(buf: Buffer, tokenTableStart: number): Generator<Markers> {
  const maxMarkers = 1 << 14; // 4M symbols
  for (let m = 2; m <= maxMarkers; m++) {
    const markerBytes = align8(4 * m);
    const direct = markersAt(buf, tokenTableStart - markerBytes, m);
    if (direct) yield { start: tokenTableStart - markerBytes, values: direct, seqsBytes: 0 };
    let lastGap = -1;
    for (let n = 256 * (m - 1) + 1; n <= 256 * m; n++) {
      const gap = align8(3 * n);
      if (gap === lastGap) continue;
      lastGap = gap;
      const start = tokenTableStart - gap - markerBytes;
      if (start < 0) break;
      const values = markersAt(buf, start, m);
      if (values) yield { start, values, seqsBytes: gap };
    }
  }
}

interface Names { start: number; count: number }

function entryAt(buf: Buffer, p: number): { length: number; header: number } {
  const first = buf[p]!;
  // Since 6.1 names longer than 127 bytes have a two-byte (ULEB128) length.
  if (first & 0x80) return { length: (first & 0x7f) | (buf[p + 1]! << 7), header: 2 };
  return { length: first, header: 1 };
}

/** Skips `count` names from p; undefined when an entry is implausible. */
function skipNames(buf: Buffer, p: number, count: number, limit: number): number | undefined {
  for (let i = 0; i < count; i++) {
    if (p >= limit) return undefined;
    const { length, header } = entryAt(buf, p);
    if (length === 0 || length > KSYM_NAME_MAX) return undefined;
    p += header + length;
  }
  return p;
}

function findNames(buf: Buffer, markers: Markers, tokens: string[]): Names | undefined {
  const m = markers.values.length;
  const last = markers.values[m - 1]!;
  const highest = markers.start - last;
  for (let start = highest & ~7; start >= Math.max(16, highest - 256 * (KSYM_NAME_MAX + 2)); start -= 8) {
    const n = buf.readUInt32LE(start - 8);
    if (n <= 256 * (m - 1) || n > 256 * m) continue;
    if (markers.seqsBytes !== 0 && align8(3 * n) !== markers.seqsBytes) continue;
    // Every marker must be the offset of name 256*i, and the names must end at the markers.
    let p: number | undefined = start;
    let ok = true;
    for (let i = 1; i < m && ok; i++) {
      p = skipNames(buf, p!, 256, markers.start);
      ok = p === start + markers.values[i]!;
    }
    if (!ok) continue;
    const end = skipNames(buf, p!, n - 256 * (m - 1), markers.start + 1);
    if (end === undefined || end > markers.start || markers.start - end >= 8) continue;
    const firstType = expand(buf, start, tokens)[0];
    if (!firstType || !/[a-zA-Z?]/.test(firstType)) continue;
    return { start, count: n };
  }
  return undefined;
}

function expand(buf: Buffer, p: number, tokens: string[]): string {
  const { length, header } = entryAt(buf, p);
  let s = '';
  for (let i = p + header; i < p + header + length; i++) s += tokens[buf[i]!];
  return s;
}

/**
 * Finds the wanted names among all n, expanding a name only when its expanded length is that of a
 * wanted one (the token lengths are summed first): a few milliseconds instead of building 150 000
 * strings.
 */
function findSymbols(buf: Buffer, start: number, n: number, tokens: string[], wanted: readonly string[]): Map<string, { index: number; type: string }> {
  const tokenLength = Uint8Array.from(tokens, (t) => t.length);
  const tokenBytes = tokens.map((t) => Buffer.from(t, 'latin1'));
  const lengths = new Set(wanted.map((w) => w.length + 1)); // + the type letter
  const wantedSet = new Set(wanted);
  const found = new Map<string, { index: number; type: string }>();
  const scratch = Buffer.alloc(4 * KSYM_NAME_MAX);
  let p = start;
  for (let i = 0; i < n && found.size < wantedSet.size; i++) {
    const { length, header } = entryAt(buf, p);
    const from = p + header;
    const to = from + length;
    let expanded = 0;
    for (let j = from; j < to; j++) expanded += tokenLength[buf[j]!]!;
    if (lengths.has(expanded)) {
      let w = 0;
      for (let j = from; j < to; j++) w += tokenBytes[buf[j]!]!.copy(scratch, w);
      const name = scratch.toString('latin1', 1, w);
      if (wantedSet.has(name) && !found.has(name)) found.set(name, { index: i, type: String.fromCharCode(scratch[0]!) });
    }
    p = to;
  }
  return found;
}
