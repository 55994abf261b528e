import type { Observable } from 'rxjs';

/**
 * The trainer's side of the stream: an async iterator over an observable, so the training loop
 * asks for the next batch when it is ready for it. Items that arrive early wait in a queue;
 * the sample budget upstream bounds how many can. `discard` frees the items still queued when
 * the consumer closes early (a stopped run's batches hold tensors).
 */
export function pull<T>(source: Observable<T>, discard?: (item: T) => void): AsyncIterableIterator<T> & { close(): void } {
  const ready: T[] = [];
  const waiting: Array<{ resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void }> = [];
  let finished = false;
  let failure: unknown;
  const subscription = source.subscribe({
    next: (item) => {
      const w = waiting.shift();
      if (w) w.resolve({ value: item, done: false });
      else ready.push(item);
    },
    error: (err: unknown) => {
      failure = err;
      for (const w of waiting.splice(0)) w.reject(err);
    },
    complete: () => {
      finished = true;
      for (const w of waiting.splice(0)) w.resolve({ value: undefined, done: true });
    },
  });
  const iterator = {
    next(): Promise<IteratorResult<T>> {
      if (ready.length > 0) return Promise.resolve({ value: ready.shift() as T, done: false });
      if (failure !== undefined) return Promise.reject(failure);
      if (finished) return Promise.resolve({ value: undefined, done: true });
      return new Promise<IteratorResult<T>>((resolve, reject) => waiting.push({ resolve, reject }));
    },
    close: () => {
      subscription.unsubscribe();
      for (const item of ready.splice(0)) discard?.(item);
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator as AsyncIterableIterator<T> & { close(): void };
}
