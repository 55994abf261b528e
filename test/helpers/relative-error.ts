import { expect } from 'vitest';

/** max |a − b| divided by the reference's largest magnitude (the absolute error if it is all zeros). */
export function relativeError(actual: ArrayLike<number>, reference: ArrayLike<number>): number {
  expect(actual.length).toBe(reference.length);
  let err = 0;
  let mag = 0;
  for (let i = 0; i < reference.length; i++) {
    err = Math.max(err, Math.abs((actual[i] as number) - (reference[i] as number)));
    mag = Math.max(mag, Math.abs(reference[i] as number));
  }
  return mag === 0 ? err : err / mag;
}
