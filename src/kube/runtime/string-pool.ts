// One copy of each repeated string the caches keep. JSON.parse gives every object its own copy of
// each string value: 14 652 copies of "kubevirt.io/v1", one per condition of "LiveMigratable", one
// forwarder script per IDS Secret (5 KB each) at N=1000 beside 2000 VMs. Informers pass what they
// store through internStrings, so equal values share one string (object keys V8 shares already).
//
// Bounded: short values (labels, kinds, condition types and reasons, names) up to SHORT_ENTRIES,
// started over when full; long ones (Secret data: a script every IDS VM gets) in a small
// least-recently-used set, so values that change (tokens, network data) pass through without
// piling up. Values that are unique by nature (UIDs, resourceVersions, timestamps) are left alone.

/** A string up to this long is a short value. */
const SHORT_MAX_LENGTH = 128;
/** Longer strings than this are never interned. */
const LONG_MAX_LENGTH = 64 * 1024;
const SHORT_ENTRIES = 50_000;
const LONG_ENTRIES = 64;

/** Keys whose values are unique per object or per change: interning them would only fill the pool. */
const UNIQUE_KEYS: ReadonlySet<string> = new Set([
  'uid',
  'resourceVersion',
  'creationTimestamp',
  'deletionTimestamp',
  'lastTransitionTime',
  'lastProbeTime',
  'lastHeartbeatTime',
  'lastUpdateTime',
  'startTimestamp',
  'endTimestamp',
  'startedAt',
  'finishedAt',
  'containerID',
  'imageID',
  'time',
]);

export class StringPool {
  private short = new Map<string, string>();
  private readonly long = new Map<string, string>();

  intern(value: string): string {
    if (value.length <= SHORT_MAX_LENGTH) {
      const hit = this.short.get(value);
      if (hit !== undefined) return hit;
      if (this.short.size >= SHORT_ENTRIES) this.short = new Map();
      this.short.set(value, value);
      return value;
    }
    if (value.length > LONG_MAX_LENGTH) return value;
    const hit = this.long.get(value);
    if (hit !== undefined) {
      // Most recently used last: the first key is the one to drop.
      this.long.delete(value);
      this.long.set(value, hit);
      return hit;
    }
    if (this.long.size >= LONG_ENTRIES) this.long.delete(this.long.keys().next().value!);
    this.long.set(value, value);
    return value;
  }

  get size(): number {
    return this.short.size + this.long.size;
  }
}

/** The pool every informer of the process shares (a label value in a VM, its VMI and its pod is one string). */
export const CACHE_STRINGS = new StringPool();

/**
 * Replaces, in place, every string value of `value` (nested objects and arrays included) by the
 * pool's copy, except those under UNIQUE_KEYS. Returns `value`.
 */
export function internStrings<T>(value: T, pool: StringPool = CACHE_STRINGS): T {
  internInto(value, pool);
  return value;
}

function internInto(node: unknown, pool: StringPool): void {
  // A frozen object (a shared constant) cannot take the pool's copies: left as it is.
  if (node === null || typeof node !== 'object' || Object.isFrozen(node)) return;
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) {
      const item: unknown = node[i];
      if (typeof item === 'string') node[i] = pool.intern(item);
      else internInto(item, pool);
    }
    return;
  }
  const record = node as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    const item = record[key];
    if (typeof item === 'string') {
      if (!UNIQUE_KEYS.has(key)) record[key] = pool.intern(item);
    } else {
      internInto(item, pool);
    }
  }
}
