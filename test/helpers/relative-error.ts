import { expect } from 'vitest';
import { relativeError as relative } from '../../bench/report.js';

/** max |a − b| divided by the reference's largest magnitude (the absolute error if it is all zeros); lengths must agree. */
export function relativeError(actual: ArrayLike<number>, reference: ArrayLike<number>): number {
  expect(actual.length).toBe(reference.length);
  return relative(actual, reference);
}
