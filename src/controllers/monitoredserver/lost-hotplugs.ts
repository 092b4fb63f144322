// Hot-plugged volumes that stand in the IDS VM's spec but not in its running VMI, with no request
// pending (planners/disk-inspection.ts, hotplugsMissingFromVmi). A moment of that is a VMI watch
// event lagging the VM's; a name that stands so for the whole grace period, without a break, is
// judged lost and plugged again. The memory is this replica's: after a restart or a new leader the
// grace period starts again.
export interface LostHotplugJudgement {
  /** Volume names that have stood missing from the running VMI for the grace period. */
  lost: Set<string>;
  /** When the next name still within its grace period would be judged lost. */
  recheckAfterMs?: number;
}

export class LostHotplugs {
  private readonly since = new Map<string, Map<string, number>>();

  constructor(private readonly graceMs: number) {}

  /** Records which names stand missing now for the MonitoredServer `key` (others are forgotten) and judges them. */
  judge(key: string, missing: readonly string[], now: number): LostHotplugJudgement {
    const before = this.since.get(key);
    const standing = new Map(missing.map((name) => [name, before?.get(name) ?? now]));
    if (standing.size === 0) this.since.delete(key);
    else this.since.set(key, standing);
    const lost = new Set<string>();
    let recheckAfterMs: number | undefined;
    for (const [name, at] of standing) {
      const left = at + this.graceMs - now;
      if (left <= 0) lost.add(name);
      else recheckAfterMs = Math.min(recheckAfterMs ?? Infinity, left);
    }
    return recheckAfterMs === undefined ? { lost } : { lost, recheckAfterMs };
  }

  /** The MonitoredServer is gone. */
  forget(key: string): void {
    this.since.delete(key);
  }
}
