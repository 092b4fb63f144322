// Observe → plan → apply, repeated until the plan is empty: planners stay simple (a step may
// create a device and leave its settings to the next observation) and every reconcile proves it
// converged instead of trusting that the commands did what was meant.

export interface ReconcileStep {
  /** Observes the kernel, plans and applies; returns how many commands it ran. */
  (): Promise<number>;
}

export async function reconcileUntilStable(what: string, step: ReconcileStep, maxRounds = 5): Promise<{ commandsRun: number }> {
  let commandsRun = 0;
  for (let round = 0; round < maxRounds; round++) {
    const ran = await step();
    if (ran === 0) return { commandsRun };
    commandsRun += ran;
  }
  throw new Error(`${what} did not converge after ${maxRounds} rounds (the kernel keeps differing from the plan)`);
}
