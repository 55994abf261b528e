import { describe, expect, it } from 'vitest';
import { cellSimilarities } from '../bench/cells.js';

describe('cellSimilarities (npm run bench -- cells)', () => {
  it('averages within-image cosines by the cells’ ground truth, hand-computed', () => {
    // One 4×4 image on a 2×2 grid of 2-d cells: the top-left cell is foreground (all 4 pixels),
    // the top-right has 2 of 4 (not more than half: background), the bottom row none.
    const foreground = Uint8Array.from([1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    // Cells (row-major): fg (1,0); bg (0,2) → (0,1); bg (3,4) → (0.6,0.8); bg (−1,0).
    const dense = Float32Array.from([1, 0, 0, 2, 3, 4, -1, 0]);
    const r = cellSimilarities(dense, 2, 2, foreground, 4);
    // fg–bg: cos with (0,1), (0.6,0.8), (−1,0) = 0, 0.6, −1 → mean −0.4/3.
    expect(r.fgbg).toBeCloseTo(-0.4 / 3, 6);
    // bg–bg: (0,1)·(0.6,0.8) = 0.8, (0,1)·(−1,0) = 0, (0.6,0.8)·(−1,0) = −0.6 → mean 0.2/3.
    expect(r.bgbg).toBeCloseTo(0.2 / 3, 6);
    expect(r.pairs).toEqual({ fgfg: 0, bgbg: 3, fgbg: 3, fgAcross: 0, bgAcross: 0 });
    expect(r.fgfg).toBeNaN(); // no pair of foreground cells: no mean, not a zero
    expect(r.bgAcross).toBeNaN(); // one image: nothing across images
  });

  it('pools pairs over images, gives the contrast, and compares each image with the next', () => {
    // Two 2×2 images, 1×1 cells: image 0 has two fg cells equal, two bg cells opposite.
    const foreground = Uint8Array.from([1, 1, 0, 0, 1, 0, 0, 0]);
    const dense = Float32Array.from([1, 0, 1, 0, 0, 1, 0, -1, /* image 1 */ 1, 0, 0, 1, 0, 1, 0, 1]);
    const r = cellSimilarities(dense, 2, 2, foreground, 2);
    expect(r.pairs).toEqual({ fgfg: 1, bgbg: 1 + 3, fgbg: 4 + 3, fgAcross: 2 + 2, bgAcross: 6 + 6 });
    expect(r.fgfg).toBeCloseTo(1, 6);
    expect(r.bgbg).toBeCloseTo((-1 + 1 + 1 + 1) / 4, 6);
    expect(r.fgbg).toBeCloseTo(0, 6);
    expect(r.contrast).toBeCloseTo((1 + 0.5) / 2, 6);
    // Across: every fg cell is (1, 0) in both images; image 0's bg cells (0, ±1) meet image 1's (0, 1).
    expect(r.fgAcross).toBeCloseTo(1, 6);
    expect(r.bgAcross).toBeCloseTo(0, 6);
  });

  it('refuses features and masks that do not agree', () => {
    expect(() => cellSimilarities(new Float32Array(8), 2, 2, new Uint8Array(9), 3)).toThrow('do not agree');
  });
});
