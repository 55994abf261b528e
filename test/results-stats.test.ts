import { describe, expect, it } from 'vitest';
import { above, estimate, margin, pairedGap, studentT975, type Estimate } from '../bench/results-stats.js';

const e = (mean: number, se: number): Estimate => ({ mean, sd: NaN, n: 2, se });

describe('results table arithmetic', () => {
  it('a top-1 over seeds: the seeds’ spread / √n and the split’s sampling error, added in quadrature', () => {
    // mean 0.3, sd 0.1; (0.1² / 3 + 0.3·0.7 / 100)^½ = (0.003333 + 0.0021)^½
    const x = estimate([0.2, 0.3, 0.4], 100);
    expect(x.mean).toBeCloseTo(0.3, 12);
    expect(x.sd).toBeCloseTo(0.1, 12);
    expect(x.n).toBe(3);
    expect(x.se).toBeCloseTo(Math.sqrt(0.01 / 3 + 0.0021), 12);
  });

  it('one seed: a top-1 keeps its split’s error, a dense score has none', () => {
    expect(estimate([0.5], 100).se).toBeCloseTo(0.05, 12);
    const dense = estimate([0.5]);
    expect(dense.mean).toBe(0.5);
    expect(Number.isNaN(dense.sd) && Number.isNaN(dense.se)).toBe(true);
  });

  it('drops unscored seeds and counts the rest', () => {
    const x = estimate([0.1, NaN, 0.3]);
    expect(x.n).toBe(2);
    expect(x.mean).toBeCloseTo(0.2, 12);
    expect(x.sd).toBeCloseTo(Math.SQRT2 / 10, 12);
    expect(x.se).toBeCloseTo(0.1, 12);
    expect(Number.isNaN(estimate([]).mean)).toBe(true);
  });

  it('reads a gap only beyond two standard errors of the difference', () => {
    // 2·(0.03² + 0.04²)^½ = 0.1
    expect(margin(e(0.3, 0.03), e(0.2, 0.04))).toBeCloseTo(0.1, 12);
    expect(above(e(0.29, 0.03), e(0.2, 0.04))).toBe('within noise');
    expect(above(e(0.31, 0.03), e(0.2, 0.04))).toBe('yes');
    expect(above(e(0.2, 0.04), e(0.31, 0.03))).toBe('**no**');
    expect(above(e(0.5, NaN), e(0.2, 0.01))).toBe('not judged (one seed)');
  });

  it('pairs two sides seed by seed and judges at Student’s t, not at 2 standard errors', () => {
    // differences 0.02, 0.01, 0.03, 0.02, 0.02: mean 0.02, sd 0.007071, se 0.003162; t(4) = 2.776 → 0.00878
    const a = [0.72, 0.75, 0.7, 0.73, 0.74];
    const b = [0.7, 0.74, 0.67, 0.71, 0.72];
    const gap = pairedGap(a, b);
    expect(gap.mean).toBeCloseTo(0.02, 12);
    expect(gap.sd).toBeCloseTo(Math.sqrt(0.0002 / 4), 12);
    expect(gap.se).toBeCloseTo(Math.sqrt(0.0002 / 4) / Math.sqrt(5), 12);
    expect(gap.verdict).toBe('yes');
    expect(pairedGap(b, a).verdict).toBe('**no**');
    // the same two sides read as independent: their seeds' spreads (0.019, 0.026) hide the gap
    expect(above(estimate(a), estimate(b))).toBe('within noise');
    // three seeds of 0.02, 0.01, 0.03: 2·se = 0.0115 would pass; t(2)·se = 4.303 · 0.005774 = 0.0248 does not
    expect(pairedGap([0.72, 0.75, 0.7], [0.7, 0.74, 0.67]).verdict).toBe('within noise');
    expect(pairedGap([0.7], [0.6]).verdict).toBe('not judged (one seed)');
    expect(() => pairedGap([0.7], [0.6, 0.5])).toThrow(/1 values against 2/);
  });

  it('Student’s t at 95 %: the table to 30 degrees of freedom, then within 0.004', () => {
    expect(studentT975(1)).toBe(12.706);
    expect(studentT975(9)).toBe(2.262);
    expect(studentT975(30)).toBe(2.042);
    expect(studentT975(31)).toBeCloseTo(2.0395, 2); // scipy.stats.t.ppf(0.975, 31)
    expect(studentT975(120)).toBeCloseTo(1.9799, 2);
    expect(Number.isNaN(studentT975(0))).toBe(true);
  });
});
