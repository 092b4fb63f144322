/**
 * Pure helpers for metav1.Condition lists (status.conditions, listType=map keyed by type), with
 * apimachinery's meta.SetStatusCondition semantics.
 */
export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  observedGeneration?: number;
  /** RFC 3339, second precision, as the API server stores it. */
  lastTransitionTime: string;
}

/** A condition to set; lastTransitionTime is filled in by setCondition. */
export type ConditionUpdate = Omit<Condition, 'lastTransitionTime'> & { lastTransitionTime?: string };

/** RFC 3339 with second precision (metav1.Time drops sub-seconds on the wire). */
export function formatTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Returns a new list with `update` set. lastTransitionTime changes only when the status changes
 * (or the condition is new); reason, message and observedGeneration always take the new values.
 * The input list is not modified; other conditions keep their order.
 */
export function setCondition(conditions: readonly Condition[] | undefined, update: ConditionUpdate, now: Date = new Date()): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((c) => c.type === update.type);
  const existing = index >= 0 ? list[index] : undefined;
  const transitioned = !existing || existing.status !== update.status;
  const next: Condition = {
    type: update.type,
    status: update.status,
    reason: update.reason,
    message: update.message,
    ...(update.observedGeneration !== undefined ? { observedGeneration: update.observedGeneration } : {}),
    lastTransitionTime: transitioned ? (update.lastTransitionTime ?? formatTime(now)) : existing.lastTransitionTime,
  };
  if (index >= 0) list[index] = next;
  else list.push(next);
  return list;
}

/** Returns a new list without the condition of `type`. */
export function removeCondition(conditions: readonly Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type);
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isConditionTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === 'True';
}

export function isConditionFalse(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === 'False';
}

/**
 * True when both lists hold the same conditions with every field equal, order ignored (the list is
 * a map keyed by type). Lets the reconciler skip a status write when nothing changed.
 */
export function conditionsEqual(a: readonly Condition[] | undefined, b: readonly Condition[] | undefined): boolean {
  const left = a ?? [];
  const right = b ?? [];
  if (left.length !== right.length) return false;
  const covers = (xs: readonly Condition[], ys: readonly Condition[]) =>
    xs.every((x) => {
      const y = ys.find((c) => c.type === x.type);
      return (
        y !== undefined &&
        x.status === y.status &&
        x.reason === y.reason &&
        x.message === y.message &&
        x.observedGeneration === y.observedGeneration &&
        x.lastTransitionTime === y.lastTransitionTime
      );
    });
  return covers(left, right) && covers(right, left);
}
