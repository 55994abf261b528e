/**
 * The results table's arithmetic: a row's score over its training seeds, the standard error of
 * that mean, and whether two rows differ beyond noise. Free of I/O so its numbers are tested.
 *
 * Two sources of noise, kept apart because the seeds see only one of them:
 * - training (weights, order, views) and the probes: the spread of the seeds' scores, which all
 *   use one test split;
 * - the test split itself: for a top-1 accuracy p on `test` images, √(p(1−p)/test), which no
 *   number of seeds shrinks. Dense and mask scores have no such closed form and count the seeds'
 *   spread only.
 */

export interface Estimate {
  mean: number;
  /** Sample standard deviation over the seeds; NaN with one seed. */
  sd: number;
  n: number;
  /** Standard error of `mean`; NaN where nothing estimates it (one seed of a dense score). */
  se: number;
}

/** `values`, one per seed (non-finite ones, unscored, dropped); `test` gives a top-1 its split's sampling error. */
export function estimate(values: readonly number[], test?: number): Estimate {
  const xs = values.filter(Number.isFinite);
  const n = xs.length;
  if (n === 0) return { mean: NaN, sd: NaN, n, se: NaN };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1)) : NaN;
  const seeds = n > 1 ? (sd * sd) / n : test === undefined ? NaN : 0;
  const split = test === undefined ? 0 : (mean * (1 - mean)) / test;
  return { mean, sd, n, se: Math.sqrt(seeds + split) };
}

export type Verdict = 'yes' | '**no**' | 'within noise' | 'not judged (one seed)';

/**
 * Whether `a` is above `b`: beyond two standard errors of their difference, √(SEa² + SEb²),
 * counted as independent (conservative: rows scored on one split are positively correlated).
 */
export function above(a: Estimate, b: Estimate): Verdict {
  const need = margin(a, b);
  if (!Number.isFinite(need)) return 'not judged (one seed)';
  const gap = a.mean - b.mean;
  return Math.abs(gap) <= need ? 'within noise' : gap > 0 ? 'yes' : '**no**';
}

/** Two standard errors of `a − b`, the gap a check needs. */
export function margin(a: Estimate, b: Estimate): number {
  return 2 * Math.hypot(a.se, b.se);
}
