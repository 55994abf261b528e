import { Observable } from 'rxjs';
import type { SampleBudget } from './sample-budget.js';

const YIELD_EVERY = 32;

/**
 * A pull-driven source: emits the items of `items` one at a time, each only after taking a
 * permit from `budget`. The iterator is never advanced further than the budget allows, so
 * reading (file I/O, rendering) stops while the consumer is behind.
 *
 * ```
 * budget:   ●●●○○○○●○●  (● a permit taken, ○ waiting for one)
 * items:    a b c       d   e
 * output:   a b c-------d---e|
 * ```
 *
 * Unsubscribing stops the loop and calls the iterator's `return`, closing file handles.
 *
 * @example
 * const budget = new SampleBudget(64);
 * fromSource(readSamples(source, order), budget).pipe(decode(...), multiView(...), batch(32))
 *
 * @param items Samples in epoch order; sync or async.
 * @param budget The bound on samples alive downstream; the consumer releases permits.
 * @see SampleBudget
 */
export function fromSource<T>(items: AsyncIterable<T> | Iterable<T>, budget: SampleBudget): Observable<T> {
  return new Observable<T>((subscriber) => {
    let stopped = false;
    const iterator =
      Symbol.asyncIterator in items ? (items as AsyncIterable<T>)[Symbol.asyncIterator]() : (items as Iterable<T>)[Symbol.iterator]();
    (async () => {
      for (let n = 1; ; n++) {
        // A synchronous source with a consumer that frees permits at once would otherwise
        // loop on microtasks and starve timers and I/O; yield to the event loop now and then.
        if (n % YIELD_EVERY === 0) await new Promise((resolve) => setImmediate(resolve));
        await budget.acquire();
        if (stopped) return budget.release();
        const next = await iterator.next();
        if (stopped) return budget.release();
        if (next.done) {
          budget.release();
          subscriber.complete();
          return;
        }
        subscriber.next(next.value);
      }
    })().catch((err: unknown) => subscriber.error(err));
    return () => {
      stopped = true;
      void iterator.return?.();
    };
  });
}
