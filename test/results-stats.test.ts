import { describe, expect, it } from 'vitest';
import { above, estimate, margin, type Estimate } from '../bench/results-stats.js';

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
});
