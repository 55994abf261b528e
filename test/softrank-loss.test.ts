import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { negativesPerRow, offDiagonal, pairCellSimilarities, similarityStats, softRankImageLoss } from '../methods/softrank-loss.js';
import { selectBackend } from '../models/backend.js';
import { rankReference } from './helpers/rank-reference.js';

beforeAll(async () => {
  await selectBackend('wasm', { threads: 2 });
});

const unit = (rows: number[][]) =>
  rows.map((r) => {
    const n = Math.hypot(...r);
    return r.map((x) => x / n);
  });
const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i]!, 0);
/** Four rows of the image-level loss tests: online queries `q`, online keys `k`, target projections `z` (unit, D = 3). */
const q = unit([
  [1, 0.2, 0],
  [0.1, 1, 0.3],
  [0.5, 0.5, 0.2],
  [-0.3, 0.2, 1],
]);
const k = unit([
  [0.9, 0.1, 0.2],
  [0.2, 0.8, 0.1],
  [0.4, 0.6, 0],
  [0, 0.3, 0.9],
]);
const z = unit([
  [1, 0, 0.1],
  [0.8, 0.5, 0],
  [0.1, 1, 0.2],
  [0.2, 0.1, 1],
]);

describe('soft-ranking pieces', () => {
  it("measures the target's collapse: the mean off-diagonal cosine and its mean per-row spread", () => {
    // Unit rows at 0°, 90° and 180°: cosines (0, −1), (0, 0), (−1, 0) off the diagonal.
    const { mean, spread } = similarityStats(
      tf.tensor2d([
        [1, 0],
        [0, 1],
        [-1, 0],
      ]),
    );
    expect(mean.dataSync()[0]).toBeCloseTo(-1 / 3, 6); // (0 − 1 + 0 + 0 − 1 + 0) / 6
    expect(spread.dataSync()[0]).toBeCloseTo((0.5 + 0 + 0.5) / 3, 6); // row standard deviations ½, 0, ½
    const collapsed = similarityStats(
      tf.tensor2d([
        [0.6, 0.8],
        [0.6, 0.8],
        [0.6, 0.8],
      ]),
    );
    expect(collapsed.mean.dataSync()[0]).toBeCloseTo(1, 5);
    expect(collapsed.spread.dataSync()[0]).toBeCloseTo(0, 3);
    tf.dispose([mean, spread, collapsed.mean, collapsed.spread]);
  });

  it('drops the diagonal of a square matrix row by row, keeping the order of the others', () => {
    const m = tf.tensor2d([
      [0, 1, 2, 3],
      [4, 5, 6, 7],
      [8, 9, 10, 11],
      [12, 13, 14, 15],
    ]);
    expect(offDiagonal(m).arraySync()).toEqual([
      [1, 2, 3],
      [4, 6, 7],
      [8, 9, 11],
      [12, 13, 14],
    ]);
    expect(
      offDiagonal(
        tf.tensor2d([
          [1, 2],
          [3, 4],
        ]),
      ).arraySync(),
    ).toEqual([[2], [3]]);
    expect(() => offDiagonal(tf.zeros([2, 3]) as tf.Tensor2D)).toThrow(/square/);
  });

  it('image loss: cos(p(y_a), y_c) against cos(z_a, z_c) over the other rows, as a loop computes it', () => {
    const s = q.map((qa, a) => k.filter((_, c) => c !== a).map((kc) => dot(qa, kc)));
    const t = z.map((za, a) => z.filter((_, c) => c !== a).map((zc) => dot(za, zc)));
    for (const [tauS, tauT, tauW] of [
      [0.1, 0.04, 0.1],
      [1, 0.5, 2],
    ] as const) {
      const loss = softRankImageLoss(tf.tensor2d(q), tf.tensor2d(k), tf.tensor2d(z), tauS, tauT, tauW);
      expect(loss.dataSync()[0]).toBeCloseTo(rankReference(s, t, tauS, tauT, tauW), 4);
    }
  });

  it('image loss with K negatives: each row ranks the other rows and then its own negatives, by q·n online and z·n target, as a loop computes it', () => {
    // Row a's negatives (K = 2): bank vectors, the same for both rows of a pair.
    const pairNegatives = [
      unit([
        [0, 0, 1],
        [-1, 0.5, 0],
      ]),
      unit([
        [1, 1, 0],
        [0.3, -1, 0.2],
      ]),
    ];
    const n = [0, 1, 2, 3].map((a) => pairNegatives[Math.floor(a / 2)]!);
    const s = q.map((qa, a) => [...k.filter((_, c) => c !== a).map((kc) => dot(qa, kc)), ...n[a]!.map((v) => dot(qa, v))]);
    const t = z.map((za, a) => [...z.filter((_, c) => c !== a).map((zc) => dot(za, zc)), ...n[a]!.map((v) => dot(za, v))]);
    const negatives = negativesPerRow(Float32Array.from(pairNegatives.flat(2)), 4, 3);
    expect(negatives.shape).toEqual([4, 2, 3]);
    expect(negatives.arraySync()).toEqual(n.map((rows) => rows.map((r) => r.map(Math.fround))));
    for (const [tauS, tauT, tauW] of [
      [0.1, 0.04, 0.1],
      [1, 0.5, 2],
    ] as const) {
      const loss = softRankImageLoss(tf.tensor2d(q), tf.tensor2d(k), tf.tensor2d(z), tauS, tauT, tauW, negatives);
      expect(loss.dataSync()[0]).toBeCloseTo(rankReference(s, t, tauS, tauT, tauW), 4);
      // …and differs from the loss without them.
      expect(
        Math.abs(loss.dataSync()[0]! - softRankImageLoss(tf.tensor2d(q), tf.tensor2d(k), tf.tensor2d(z), tauS, tauT, tauW).dataSync()[0]!),
      ).toBeGreaterThan(1e-3);
    }
    expect(() =>
      softRankImageLoss(tf.tensor2d(q), tf.tensor2d(k), tf.tensor2d(z), 0.1, 0.04, 0.1, tf.zeros([4, 2, 5]) as tf.Tensor3D),
    ).toThrow(/expected \[4, K, 3\]/);
    expect(() => negativesPerRow(new Float32Array(7), 4, 3)).toThrow(/do not make 2 pairs of K × 3/);
  });

  it("relation 'cross': each row ranks every row's target z, its own included (t_aa = 1), by q·z online, as a loop computes it", () => {
    const s = q.map((qa) => z.map((zc) => dot(qa, zc)));
    const t = z.map((za) => z.map((zc) => dot(za, zc)));
    t.forEach((row, a) => expect(row[a]).toBeCloseTo(1, 6)); // the anchor's own view 2 tops its target ranking
    for (const [tauS, tauT, tauW] of [
      [0.1, 0.04, 0.1],
      [1, 0.5, 2],
    ] as const) {
      const loss = softRankImageLoss(tf.tensor2d(q), tf.tensor2d(z), tf.tensor2d(z), tauS, tauT, tauW, undefined, true);
      expect(loss.dataSync()[0]).toBeCloseTo(rankReference(s, t, tauS, tauT, tauW), 4);
    }
  });

  it('image loss is lower when the online ranking follows the target than when it reverses it', () => {
    const z = unit([
      [1, 0],
      [0.9, 0.44],
      [0.2, 1],
      [-1, 0.1],
    ]);
    const zt = tf.tensor2d(z);
    const reversed = tf.tensor2d(z.map(([a, b]) => [a!, -b!]));
    const follow = softRankImageLoss(zt, zt, zt).dataSync()[0]!;
    const reverse = softRankImageLoss(reversed, zt, zt).dataSync()[0]!;
    expect(follow).toBeLessThan(reverse);
  });

  it('patch similarities: the cosine of anchor and positive cells at the same grid position', () => {
    const rows = Array.from({ length: 4 * 4 }, (_, i) => unit([[Math.sin(i), Math.cos(i * 1.3), 0.5]])[0]!);
    const cells = tf.tensor4d(rows.flat(), [4, 2, 2, 3]); // 2 pairs, 2×2 grid, D = 3
    const expected = [0, 1].map((p) => [0, 1, 2, 3].map((c) => dot(rows[2 * p * 4 + c]!, rows[(2 * p + 1) * 4 + c]!)));
    const got = pairCellSimilarities(cells).arraySync();
    got.forEach((row, p) => row.forEach((v, c) => expect(v).toBeCloseTo(expected[p]![c]!, 5)));
  });
});
