import { Observable, type OperatorFunction } from 'rxjs';

/**
 * Maps each item through an async function with at most `concurrency` calls in flight, and
 * emits the results in input order. `mergeMap(fn, concurrency)` bounds the calls too but emits
 * in completion order, which would make batches depend on thread timing; determinism needs
 * input order.
 *
 * ```
 * input:    a b c d
 * calls:    [a--] [b] [c-] [d]      (concurrency 2)
 * output:   ----A-B---C--D|         (B waits for A)
 * ```
 *
 * A call resolving to `undefined` drops its item (e.g. a sample skipped as bad input).
 * Completes after the source completes and every call has settled; a rejected call errors.
 *
 * @param project The async work per item (decode, augment).
 * @param concurrency Calls in flight at most (default 2).
 */
export function orderedMergeMap<T, R>(
  project: (item: T, index: number) => Promise<R | undefined>,
  concurrency = 2,
): OperatorFunction<T, R> {
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new Error(`concurrency: expected a positive integer, got "${concurrency}"`);
  }
  return (source) =>
    new Observable<R>((subscriber) => {
      const queue: T[] = [];
      const done = new Map<number, R | undefined>();
      let started = 0;
      let emitted = 0;
      let running = 0;
      let sourceDone = false;
      let failed = false;

      const flush = (): void => {
        while (done.has(emitted)) {
          const value = done.get(emitted);
          done.delete(emitted);
          emitted++;
          if (value !== undefined) subscriber.next(value);
        }
        if (sourceDone && running === 0 && queue.length === 0) subscriber.complete();
      };
      const pump = (): void => {
        while (!failed && running < concurrency && queue.length > 0) {
          const item = queue.shift() as T;
          const index = started++;
          running++;
          project(item, index).then(
            (value) => {
              running--;
              done.set(index, value);
              flush();
              pump();
            },
            (err: unknown) => {
              failed = true;
              subscriber.error(err);
            },
          );
        }
      };
      const subscription = source.subscribe({
        next: (item) => {
          queue.push(item);
          pump();
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => {
          sourceDone = true;
          flush();
        },
      });
      return () => subscription.unsubscribe();
    });
}
