// Fields of an object that other writers added (per metadata.managedFields) and that we do not
// want: the basis for taking back an object the operator owns whole, which server-side apply
// alone never does (it removes only fields the applier itself owned). Fields written by trusted
// managers (e.g. KubeVirt's own controllers persisting a firmware UUID) and fields we desire are
// left alone; a foreign value for a field we desire is taken back by the apply itself (force).
import type { KubeObject } from './objects.ts';

export interface ForeignFieldsOptions {
  /** Our field manager: its fields are never foreign. */
  ownManager: string;
  /** Managers whose writes are part of the platform (e.g. KubeVirt's own controllers), not drift. */
  trustedManagers?: readonly string[];
  /** Top-level field (FieldsV1 `f:<name>`) to look under; default `spec`. */
  under?: string;
}

export type JsonPatchOp = { op: 'test'; path: string; value: unknown } | { op: 'remove'; path: string };

export interface ForeignFields {
  /** Managers that added fields we do not desire. */
  managers: string[];
  /** JSON pointers to remove, deepest and highest index first (safe to apply in order). */
  paths: string[];
}

type Fields = Record<string, unknown>;

const escape = (segment: string) => segment.replace(/~/g, '~0').replace(/\//g, '~1');

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Merges FieldsV1 trees (the union of what several managers own). */
function mergeFields(trees: Fields[]): Fields {
  const out: Fields = {};
  for (const tree of trees) {
    for (const [k, v] of Object.entries(tree)) out[k] = mergeFields([isRecord(out[k]) ? (out[k] as Fields) : {}, isRecord(v) ? (v as Fields) : {}]);
  }
  return out;
}

/** Whether a list element is the one a FieldsV1 list key names: `k:{...}` (merge key), `v:...` (set value), `i:N` (index). */
function elementMatcher(key: string): (element: unknown, index: number) => boolean {
  if (key.startsWith('i:')) {
    const wanted = Number(key.slice(2));
    return (_e, index) => index === wanted;
  }
  if (key.startsWith('v:')) {
    const value = JSON.stringify(JSON.parse(key.slice(2)));
    return (e) => JSON.stringify(e) === value;
  }
  const match = JSON.parse(key.slice(2)) as Record<string, unknown>;
  return (e) => isRecord(e) && Object.entries(match).every(([k, v]) => e[k] === v);
}

/** Walks a foreign manager's fields alongside live, desired and the trusted fields; collects removals. */
function walk(fields: Fields, live: unknown, desired: unknown, trusted: Fields | undefined, pointer: string, out: Set<string>): void {
  for (const [key, sub] of Object.entries(fields)) {
    if (key === '.') continue;
    const child = isRecord(sub) ? (sub as Fields) : {};
    const trustedChild = isRecord(trusted?.[key]) ? (trusted?.[key] as Fields) : undefined;
    let liveChild: unknown;
    let desiredChild: unknown;
    let childPointer: string;
    if (key.startsWith('f:')) {
      if (!isRecord(live)) continue;
      const name = key.slice(2);
      if (!(name in live)) continue;
      liveChild = live[name];
      desiredChild = isRecord(desired) ? desired[name] : undefined;
      childPointer = `${pointer}/${escape(name)}`;
    } else if (key.startsWith('k:') || key.startsWith('i:') || key.startsWith('v:')) {
      if (!Array.isArray(live)) continue;
      const matches = elementMatcher(key);
      const index = live.findIndex(matches);
      if (index < 0) continue;
      liveChild = live[index];
      desiredChild = Array.isArray(desired) ? desired.find(matches) : undefined;
      childPointer = `${pointer}/${index}`;
    } else {
      continue;
    }
    if (desiredChild === undefined && trustedChild === undefined) {
      out.add(childPointer); // added by someone else, wanted by nobody we trust: remove it whole
      continue;
    }
    walk(child, liveChild, desiredChild, trustedChild, childPointer, out);
  }
}

/**
 * What others added under `options.under` (default spec) of the main resource that `desired` does
 * not ask for and no trusted manager (nor we) owns. Empty when nothing or when there are no managedFields.
 */
export function foreignFields(live: KubeObject, desired: KubeObject, options: ForeignFieldsOptions): ForeignFields {
  const top = `f:${options.under ?? 'spec'}`;
  const trustedNames = new Set([options.ownManager, ...(options.trustedManagers ?? [])]);
  const entries = (live.metadata?.managedFields ?? []).filter((e) => !e.subresource);
  const trustedTree = mergeFields(entries.filter((e) => trustedNames.has(e.manager ?? '')).map((e) => (isRecord(e.fieldsV1) ? (e.fieldsV1 as Fields) : {})));
  const managers = new Set<string>();
  const paths = new Set<string>();
  for (const entry of entries) {
    const manager = entry.manager ?? '';
    if (trustedNames.has(manager)) continue;
    const fields = isRecord(entry.fieldsV1) ? (entry.fieldsV1 as Fields)[top] : undefined;
    if (!isRecord(fields)) continue;
    const before = paths.size;
    const name = top.slice(2);
    walk(fields as Fields, Reflect.get(live, name) as unknown, Reflect.get(desired, name) as unknown, isRecord(trustedTree[top]) ? (trustedTree[top] as Fields) : undefined, `/${escape(name)}`, paths);
    if (paths.size > before) managers.add(manager || '(unnamed)');
  }
  const sorted = [...paths].sort((a, b) => b.localeCompare(a, 'en', { numeric: true }));
  return { managers: [...managers].sort(), paths: sorted };
}

/** A JSON patch that removes `paths` only if the object is still at `resourceVersion`. */
export function removalPatch(resourceVersion: string | undefined, paths: readonly string[]): JsonPatchOp[] {
  return [...(resourceVersion ? [{ op: 'test' as const, path: '/metadata/resourceVersion', value: resourceVersion }] : []), ...paths.map((path) => ({ op: 'remove' as const, path }))];
}
