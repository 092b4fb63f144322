// `tc -j filter show dev X <hook>` rows, merged per preference: u32 prints its hash table as rows of
// their own, so one classifier instance may span several rows. Each plan keeps the actions it reads.

/** A row of `tc -j filter show` as far as the plans read it. */
export interface TcFilterRow<A> {
  pref?: number;
  kind?: string;
  options?: { actions?: A[] };
}

export interface MergedFilter<T> {
  pref: number;
  kind: string;
  actions: T[];
}

/** The rows grouped by preference (ascending), each row's actions mapped by `action` (undefined: left out). */
export function mergeFilterRows<A, T>(rows: readonly TcFilterRow<A>[], action: (a: A) => T | undefined): MergedFilter<T>[] {
  const byPref = new Map<number, { kind: string; actions: T[] }>();
  for (const row of rows) {
    if (row.pref === undefined) continue;
    const entry = byPref.get(row.pref) ?? { kind: row.kind ?? 'unknown', actions: [] };
    byPref.set(row.pref, entry);
    for (const a of row.options?.actions ?? []) {
      const mapped = action(a);
      if (mapped !== undefined) entry.actions.push(mapped);
    }
  }
  return [...byPref.entries()].sort(([a], [b]) => a - b).map(([pref, e]) => ({ pref, kind: e.kind, actions: e.actions }));
}
