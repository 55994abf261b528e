import { concatMap, from, of, type OperatorFunction } from 'rxjs';

/**
 * Maps each item through `f`, one call at a time, in input order; a result given at once passes
 * on synchronously (as `map` would), a promise is awaited. For per-sample work that may run on
 * a GPU backend, whose results are read back asynchronously.
 *
 * ```
 * input:    a b c
 * calls:    [a-][b][c--]
 * output:   ---A-B----C|
 * ```
 */
export function mapInOrder<T, R>(f: (item: T) => R | Promise<R>): OperatorFunction<T, R> {
  return concatMap((item) => {
    const result = f(item);
    return result instanceof Promise ? from(result) : of(result);
  });
}

/** `f` of `value`, now if it is there, or once its promise resolves. */
export function thenOrNow<T, R>(value: T | Promise<T>, f: (v: T) => R): R | Promise<R> {
  return value instanceof Promise ? value.then(f) : f(value);
}
