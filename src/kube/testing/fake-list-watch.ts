import type { KubeObject } from '../client/apply.ts';
import type { ListResult, ListWatchSource, WatchEventType, WatchOptions } from '../runtime/list-watch.ts';

interface ActiveWatch<T> {
  options: WatchOptions;
  onEvent: (type: WatchEventType, object: T) => void;
  onDone: (err?: unknown) => void;
  aborted: boolean;
}

/**
 * An in-memory ListWatchSource for unit tests of informer behaviour: the test sets what a list
 * returns (or makes it fail), and pushes events or errors into the current watch by hand.
 */
export class FakeListWatch<T extends KubeObject> implements ListWatchSource<T> {
  readonly description = 'fake';
  items: T[] = [];
  resourceVersion = '1';
  /** When set, the next list calls reject with it (one per entry). */
  listErrors: unknown[] = [];
  /** When set, the next watch calls end at once with it (one per entry). */
  watchErrors: unknown[] = [];
  listCalls = 0;
  readonly watches: ActiveWatch<T>[] = [];

  async list(_signal?: AbortSignal, transform?: (object: T) => T): Promise<ListResult<T>> {
    this.listCalls++;
    const err = this.listErrors.shift();
    if (err !== undefined) throw err;
    const items = structuredClone(this.items);
    return { items: transform ? items.map(transform) : items, resourceVersion: this.resourceVersion };
  }

  watch(options: WatchOptions, onEvent: (type: WatchEventType, object: T) => void, onDone: (err?: unknown) => void) {
    const active: ActiveWatch<T> = { options, onEvent, onDone, aborted: false };
    this.watches.push(active);
    const err = this.watchErrors.shift();
    if (err !== undefined) queueMicrotask(() => onDone(err));
    return {
      abort: () => {
        active.aborted = true;
      },
    };
  }

  /** The newest watch that was not aborted. */
  current(): ActiveWatch<T> | undefined {
    const last = this.watches[this.watches.length - 1];
    return last && !last.aborted ? last : undefined;
  }

  send(type: WatchEventType, object: T): void {
    const watch = this.current();
    if (!watch) throw new Error('FakeListWatch: no active watch to send an event to');
    watch.onEvent(type, structuredClone(object));
  }

  end(err?: unknown): void {
    const watch = this.current();
    if (!watch) throw new Error('FakeListWatch: no active watch to end');
    watch.aborted = true;
    watch.onDone(err);
  }
}
