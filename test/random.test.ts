import { describe, expect, it } from 'vitest';
import { keyedRng } from '../core/index.js';

describe('keyedRng', () => {
  // Values from the generator before 2026-12-02's speed-up (its state as four captured numbers):
  // every published run, fixture and resumed checkpoint depends on these draws.
  it('keyedRng draws what it always drew', () => {
    const r = keyedRng(7, 'golden', 'scenes:3', 1);
    expect([r.next(), r.next(), r.uniform(2, 5), r.int(1000), r.chance(0.5), r.normal()]).toEqual([
      0.40016299672424793,
      0.7037440910935402,
      2.7429907836485654,
      926,
      true,
      -0.9744141554827914,
    ]);
    const draw = keyedRng(7, 'golden', 'scenes:3', 1).next; // passed on alone, as reservoir draws are
    expect(draw()).toBe(0.40016299672424793);
    const big = keyedRng(2 ** 31 + 5, 'x'); // lanes past 2^30: no longer small integers
    expect([big.next(), big.next(), big.next()]).toEqual([0.5174852025229484, 0.153385168639943, 0.23021280788816512]);
  });
});
