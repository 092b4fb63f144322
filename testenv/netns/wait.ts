// The data-plane tests' spelling of waitFor (description first, short default deadline).
import { waitFor } from '../wait.ts';

export function waitUntil<T>(
  description: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
  intervalMs = 50,
): Promise<T> {
  return waitFor(probe, { description, timeoutMs, intervalMs });
}
