import type { KubeObject } from './objects.ts';
import type { KubeApi } from './rest.ts';
import { type ResourceType, objectPath } from './resources.ts';

/** The one field manager every write of the operator uses. */
export const FIELD_MANAGER = 'hyperspector-operator';

export type { KubeObject, ManagedFieldsEntry, ObjectMeta } from './objects.ts';

export interface ApplyOptions {
  fieldManager?: string;
  dryRun?: boolean;
  timeoutMs?: number;
  /** Cancels the request (e.g. when leadership is lost). */
  signal?: AbortSignal;
}

/**
 * Server-side apply of `desired` under one field manager with force (the operator owns these
 * fields and takes them back from anyone who changed them) and strict field validation (a typo in
 * a builder fails loudly instead of being dropped).
 */
export async function applyObject<T extends KubeObject>(api: KubeApi, type: ResourceType, desired: KubeObject, options: ApplyOptions = {}): Promise<T> {
  return sendApply<T>(api, type, desired, undefined, options);
}

/**
 * Server-side apply to the status subresource. `status` holds only the fields this manager sets;
 * the patch carries apiVersion, kind, name and namespace of `object` and nothing of its spec.
 */
export async function applyStatus<T extends KubeObject>(api: KubeApi, type: ResourceType, object: Pick<KubeObject, 'apiVersion' | 'kind' | 'metadata'>, status: Record<string, unknown>, options: ApplyOptions = {}): Promise<T> {
  const patch: KubeObject & { status: Record<string, unknown> } = {
    ...(object.apiVersion ? { apiVersion: object.apiVersion } : {}),
    ...(object.kind ? { kind: object.kind } : {}),
    metadata: { name: object.metadata?.name ?? '', ...(object.metadata?.namespace ? { namespace: object.metadata.namespace } : {}) },
    status,
  };
  return sendApply<T>(api, type, patch, 'status', options);
}

/** JSON merge patch of the status subresource, for callers that must not take field ownership. */
export async function mergePatchStatus<T extends KubeObject>(api: KubeApi, type: ResourceType, namespace: string | undefined, name: string, status: Record<string, unknown>, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<T> {
  return api.request<T>({
    method: 'PATCH',
    path: objectPath(type, namespace, name, 'status'),
    body: { status },
    contentType: 'application/merge-patch+json',
    timeoutMs: options.timeoutMs,
    signal: options.signal,
  });
}

async function sendApply<T>(api: KubeApi, type: ResourceType, body: KubeObject, subresource: string | undefined, options: ApplyOptions): Promise<T> {
  if (body.apiVersion !== type.apiVersion || body.kind !== type.kind) {
    throw new Error(`Cannot apply ${body.kind} ${describe(body)} as ${type.kind} (${type.apiVersion}): apiVersion/kind mismatch`);
  }
  try {
    return await api.request<T>({
      method: 'PATCH',
      path: objectPath(type, body.metadata?.namespace, body.metadata?.name ?? '', subresource),
      query: {
        fieldManager: options.fieldManager ?? FIELD_MANAGER,
        force: true,
        fieldValidation: 'Strict',
        ...(options.dryRun ? { dryRun: 'All' } : {}),
      },
      // JSON is valid YAML, so the apply-patch+yaml content type takes the JSON body as is.
      body: JSON.stringify(body),
      contentType: 'application/apply-patch+yaml',
      timeoutMs: options.timeoutMs,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (err) {
    if (err instanceof Error) err.message = `Server-side apply of ${body.kind}${subresource ? ` ${subresource}` : ''} ${describe(body)} failed: ${err.message}`;
    throw err;
  }
}

function describe(obj: KubeObject): string {
  const name = obj.metadata?.name ?? '';
  return obj.metadata?.namespace ? `${obj.metadata.namespace}/${name}` : name;
}

export interface ApplyIfChangedResult<T> {
  /** False when the live object already matched and no request was sent. */
  applied: boolean;
  object: T;
}

/**
 * Applies `desired` unless `live` (e.g. from an informer cache) already holds it (see
 * needsApply), so a steady state costs no writes.
 */
export async function applyIfChanged<T extends KubeObject>(api: KubeApi, type: ResourceType, desired: KubeObject, live: T | undefined, options: ApplyOptions = {}): Promise<ApplyIfChangedResult<T>> {
  if (live && !needsApply(desired, live, options.fieldManager ?? FIELD_MANAGER)) return { applied: false, object: live };
  return { applied: true, object: await applyObject<T>(api, type, desired, options) };
}

/** Like applyIfChanged, for the status subresource: no request when live.status already matches. */
export async function applyStatusIfChanged<T extends KubeObject>(api: KubeApi, type: ResourceType, live: T, status: Record<string, unknown>, options: ApplyOptions = {}): Promise<ApplyIfChangedResult<T>> {
  if (!statusNeedsApply(live, status, options.fieldManager ?? FIELD_MANAGER)) return { applied: false, object: live };
  return { applied: true, object: await applyStatus<T>(api, type, live, status, options) };
}

/** needsApply for a status apply: compares `status` with live.status and the manager's status fields. */
export function statusNeedsApply(live: KubeObject, status: Record<string, unknown>, fieldManager: string = FIELD_MANAGER): boolean {
  const desired: KubeObject & { status: Record<string, unknown> } = { ...(live.apiVersion ? { apiVersion: live.apiVersion } : {}), ...(live.kind ? { kind: live.kind } : {}), metadata: { name: live.metadata?.name ?? '' }, status };
  return needsApply(desired, live, fieldManager, 'status');
}

/**
 * True when applying `desired` could change `live`: a desired field is missing or different in
 * live, or a field this manager owns in live (per managedFields) is no longer desired and would be
 * removed by the apply.
 */
export function needsApply(desired: KubeObject, live: KubeObject, fieldManager: string = FIELD_MANAGER, subresource?: string): boolean {
  if (!isSubset(desired, live)) return true;
  const owned = live.metadata?.managedFields?.find(
    (e) => e.manager === fieldManager && e.operation === 'Apply' && (e.subresource ?? '') === (subresource ?? ''),
  );
  return owned?.fieldsV1 !== undefined && ownsFieldsNotIn(owned.fieldsV1 as Record<string, unknown>, desired);
}

// Keys by which Kubernetes merges lists of objects (listType=map); the first one present in every
// desired element is used to pair elements with live ones.
const LIST_MERGE_KEYS = ['name', 'type', 'mountPath', 'devicePath', 'containerPort', 'uid', 'ip', 'key'];

/**
 * True when every field of `desired` is present in `live` with an equal value. Fields only in live
 * (defaults, status, other managers' fields) are ignored. Lists:
 * - objects with a merge key (`name`, `type`, ...): paired by key, extra live elements allowed
 *   (another manager or an admission plugin may add entries; apply would not remove them);
 * - scalars: must equal exactly (such lists are atomic and apply replaces them whole);
 * - other objects: paired by index, lengths must match.
 * Values are compared as sent, so builders must write them the way the API server stores them
 * (e.g. canonical quantities: '1Gi', not '1024Mi'), or every check reports a change.
 */
export function isSubset(desired: unknown, live: unknown): boolean {
  if (desired === live) return true;
  if (desired === null || typeof desired !== 'object') return scalarEqual(desired, live);
  if (Array.isArray(desired)) return Array.isArray(live) && listIsSubset(desired, live);
  if (live === null || typeof live !== 'object' || Array.isArray(live)) return false;
  const liveRecord = live as Record<string, unknown>;
  return Object.entries(desired as Record<string, unknown>).every(([key, value]) => {
    // An explicitly undefined field is not sent by JSON.stringify, so it asks for nothing.
    if (value === undefined) return true;
    return key in liveRecord && isSubset(value, liveRecord[key]);
  });
}

function listIsSubset(desired: unknown[], live: unknown[]): boolean {
  const allObjects = desired.length > 0 && desired.every((e) => e !== null && typeof e === 'object' && !Array.isArray(e));
  if (!allObjects) {
    return desired.length === live.length && desired.every((e, i) => isSubset(e, live[i]));
  }
  const records = desired as Record<string, unknown>[];
  const mergeKey = LIST_MERGE_KEYS.find((k) => records.every((e) => e[k] !== undefined));
  if (!mergeKey) return desired.length === live.length && desired.every((e, i) => isSubset(e, live[i]));
  return records.every((element) => {
    const match = live.find((l) => l !== null && typeof l === 'object' && scalarEqual(element[mergeKey], (l as Record<string, unknown>)[mergeKey]));
    return match !== undefined && isSubset(element, match);
  });
}

function scalarEqual(a: unknown, b: unknown): boolean {
  return a === b;
}

/**
 * True when the FieldsV1 set (managedFields[].fieldsV1) names a field that `desired` lacks: the
 * apply would remove it, so a write is needed even though desired ⊆ live.
 */
export function ownsFieldsNotIn(fields: Record<string, unknown>, desired: unknown): boolean {
  for (const [path, sub] of Object.entries(fields)) {
    if (path === '.') continue;
    const child = sub as Record<string, unknown>;
    if (path.startsWith('f:')) {
      const name = path.slice(2);
      if (desired === null || typeof desired !== 'object' || Array.isArray(desired)) return true;
      const record = desired as Record<string, unknown>;
      if (record[name] === undefined) return true;
      if (ownsFieldsNotIn(child, record[name])) return true;
    } else if (path.startsWith('k:')) {
      if (!Array.isArray(desired)) return true;
      const key = JSON.parse(path.slice(2)) as Record<string, unknown>;
      // A key field the desired element leaves out (e.g. a port's defaulted protocol) matches any value.
      const element = desired.find(
        (e) =>
          e !== null &&
          typeof e === 'object' &&
          Object.entries(key).every(([k, v]) => (e as Record<string, unknown>)[k] === undefined || (e as Record<string, unknown>)[k] === v),
      );
      if (element === undefined || ownsFieldsNotIn(child, element)) return true;
    } else if (path.startsWith('v:')) {
      if (!Array.isArray(desired)) return true;
      const value = JSON.parse(path.slice(2)) as unknown;
      if (!desired.some((e) => isSubset(value, e) && isSubset(e, value))) return true;
    } else if (path.startsWith('i:')) {
      const index = Number(path.slice(2));
      if (!Array.isArray(desired) || index >= desired.length || ownsFieldsNotIn(child, desired[index])) return true;
    }
  }
  return false;
}
