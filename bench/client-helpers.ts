// What the benchmarks' clients share: a watch that lasts as long as they run, and requests in batches.
import * as k8s from '@kubernetes/client-node';

/**
 * Watches `path` until stopped, starting again whenever the API server ends the watch (its timeout):
 * a new watch begins with every object as ADDED, so nothing that happened in between is missed.
 */
export async function keepWatching<T>(kubeConfig: k8s.KubeConfig, path: string, onEvent: (type: string, object: T) => void): Promise<{ stop: () => void }> {
  let current: { abort: () => void } | undefined;
  let stopped = false;
  const start = async (): Promise<void> => {
    current = await new k8s.Watch(kubeConfig).watch(path, {}, onEvent, () => {
      if (!stopped) void start();
    });
  };
  await start();
  return {
    stop: () => {
      stopped = true;
      current?.abort();
    },
  };
}

/** Runs `fn` on the items `size` at a time (a client creating many objects without flooding the API server). */
export async function inBatches<T>(items: T[], size: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}
