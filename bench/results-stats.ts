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
  return judge(a.mean - b.mean, margin(a, b));
}

/**
 * `a − b` seed by seed, for two sides trained from the same list of seeds: the mean difference,
 * the standard error from the differences' own spread, and a verdict at 95 % of Student's t with
 * n − 1 degrees of freedom (2 standard errors understates the bar below about 30 seeds: 4.3 at
 * three). Pairing is tighter than `above`'s reading only where a seed moves both sides alike, as
 * shared initial weights do; elsewhere it is as sound and costs degrees of freedom. Every side is
 * scored on one test split, and the split's own sampling error is not in `se`: the verdict is
 * about that split.
 */
export function pairedGap(a: readonly number[], b: readonly number[]): Estimate & { verdict: Verdict } {
  if (a.length !== b.length) throw new Error(`pairedGap: ${a.length} values against ${b.length}`);
  const gap = estimate(a.map((x, i) => x - (b[i] as number)));
  return { ...gap, verdict: judge(gap.mean, studentT975(gap.n - 1) * gap.se) };
}

/** The two-sided 95 % quantile of Student's t with `df` degrees of freedom (NaN below 1). */
export function studentT975(df: number): number {
  if (!(df >= 1)) return NaN;
  return T975[Math.floor(df) - 1] ?? 1.96 + 2.4 / df; // past 30, within 0.004 of the table's values
}

// scipy.stats.t.ppf(0.975, df) for df = 1 … 30
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086,
  2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

function judge(gap: number, need: number): Verdict {
  if (!Number.isFinite(need)) return 'not judged (one seed)';
  return Math.abs(gap) <= need ? 'within noise' : gap > 0 ? 'yes' : '**no**';
}

/** Two standard errors of `a − b`, the gap a check needs. */
export function margin(a: Estimate, b: Estimate): number {
  return 2 * Math.hypot(a.se, b.se);
}
