/**
 * softrank's loss pieces (METHODS.md §4; the method is softrank.ts): the image-level ranking of
 * every other row of the batch (and, with `negatives`, of each pair's bank negatives), the
 * patch-level similarities of a pair's cells, and the target's collapse indicators.
 */
import * as tf from '@tensorflow/tfjs';
import { rankDistillation } from './losses.js';

/**
 * The off-diagonal entries of a square matrix, row by row: `[B, B]` → `[B, B − 1]`, row `a`
 * holding `m[a, c]` for `c ≠ a` in increasing `c`. Reshapes and two contiguous slices (no
 * gather, tile or strided slice, slow on wasm): the flat matrix without its first entry, cut
 * into rows of B + 1, has every remaining diagonal entry in its last column.
 */
export function offDiagonal(m: tf.Tensor2D): tf.Tensor2D {
  const [b, b2] = m.shape;
  if (b !== b2) throw new Error(`offDiagonal: expected a square matrix, got ${b}×${b2}`);
  if (b < 2) throw new Error(`offDiagonal: a ${b}×${b} matrix has no off-diagonal entries`);
  return tf.tidy(() => {
    const rest = tf.slice(tf.reshape(m, [b * b]), [1], [b * b - 1]); // (B − 1)(B + 1) entries
    return tf.reshape(tf.slice(tf.reshape(rest, [b - 1, b + 1]), [0, 0], [b - 1, b]), [b, b - 1]) as tf.Tensor2D;
  });
}

/**
 * The image-level soft-ranking loss: each row is an anchor, every other row a candidate.
 * `S = Q·Kᵀ`, `T = Z·Zᵀ`, both without their diagonal, then
 * `L_img = rankDistillation(S_offdiag, T_offdiag; τ_s, τ_t, τ_w)`; with `keepSelf` the
 * diagonal stays, each anchor a candidate of its own (relation `'cross'`: `K = Z`, so
 * `s_aa = cos(q_a, z_a)` against `t_aa = 1`).
 *
 * @param queries normalised predictions `p(y)` of the online branch `[B, D]`
 * @param keys normalised online projections `y` `[B, D]`, or the targets `z` (relation `'cross'`)
 * @param targets normalised target projections `z` `[B, D]` (soft labels; not differentiated)
 */
export function softRankImageLoss(
  queries: tf.Tensor2D,
  keys: tf.Tensor2D,
  targets: tf.Tensor2D,
  tauS = 0.1,
  tauT = 0.04,
  tauW = 0.1,
  negatives?: tf.Tensor3D,
  keepSelf = false,
): tf.Scalar {
  const b = queries.shape[0];
  if (keys.shape[0] !== b || targets.shape[0] !== b) {
    throw new Error(
      `softRankImageLoss: queries, keys and targets hold ${b}, ${keys.shape[0]} and ${targets.shape[0]} rows; expected the same B`,
    );
  }
  if (b < 3) throw new Error(`softRankImageLoss: ${b} rows give each anchor ${b - 1} candidate(s); ranking needs at least 2 (B ≥ 3)`);
  if (negatives && (negatives.shape[0] !== b || negatives.shape[2] !== queries.shape[1])) {
    throw new Error(`softRankImageLoss: negatives of shape [${negatives.shape.join(', ')}]; expected [${b}, K, ${queries.shape[1]}]`);
  }
  return tf.tidy(() => {
    const candidates = (m: tf.Tensor2D) => (keepSelf ? m : offDiagonal(m));
    let s = candidates(tf.matMul(queries, keys, false, true));
    let t = candidates(tf.matMul(targets, targets, false, true));
    if (negatives) {
      // Row a's K extra candidates: cos(q_a, n) and cos(z_a, n) for its own negatives n, after the batch's.
      const against = (x: tf.Tensor2D) => tf.sum(tf.mul(tf.expandDims(x, 1), negatives), 2) as tf.Tensor2D;
      s = tf.concat([s, against(queries)], 1);
      t = tf.concat([t, against(targets)], 1);
    }
    return rankDistillation(s, t, tauS, tauT, tauW);
  });
}

/**
 * Collapse indicators of unit embeddings `z` `[B, D]` (B ≥ 2), logged each step as the parts
 * `targetSimilarity` and `targetSpread`: the mean cosine between two different rows, and the
 * mean over rows of the standard deviation of a row's cosines with the others. The target's
 * similarities are softrank's soft labels; where their spread falls well below τ_t the labels
 * tell the candidates apart no more (every P^t near ½), and the image-level loss sits at their
 * entropy, near ln 2 (docs/experiments.md, "Measured: why softrank does not learn").
 */
export function similarityStats(z: tf.Tensor2D): { mean: tf.Scalar; spread: tf.Scalar } {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(offDiagonal(tf.matMul(z, z, false, true)), 1);
    return { mean: tf.mean(mean) as tf.Scalar, spread: tf.mean(tf.sqrt(variance)) as tf.Scalar };
  });
}

/** Pair i's negatives `[B/2, K, D]` repeated for both its rows: `[B, K, D]`. */
export function negativesPerRow(perPair: Float32Array, b: number, dims: number): tf.Tensor3D {
  const block = perPair.length / (b / 2);
  const k = block / dims;
  if (!Number.isInteger(k) || k < 1)
    throw new Error(`softrank negatives: ${perPair.length} values do not make ${b / 2} pairs of K × ${dims}`);
  const rows = new Float32Array(b * block);
  for (let i = 0; i < b / 2; i++) {
    const pair = perPair.subarray(i * block, (i + 1) * block);
    rows.set(pair, 2 * i * block);
    rows.set(pair, (2 * i + 1) * block);
  }
  return tf.tensor3d(rows, [b, k, dims]);
}

/**
 * Per-cell cosine similarities within each adjacent pair: normalised dense projections
 * `[B, S, S, D]` (rows 2i, 2i + 1 a pair) → `[B/2, S·S]`, entry (i, p) = `r_{2i,p} · r_{2i+1,p}`.
 */
export function pairCellSimilarities(cells: tf.Tensor4D): tf.Tensor2D {
  const [b, s1, s2, d] = cells.shape;
  if (b % 2 !== 0) throw new Error(`pairCellSimilarities: ${b} rows do not make adjacent pairs; expected an even B`);
  return tf.tidy(() => {
    const p = s1 * s2;
    const [anchors, positives] = tf.split(tf.reshape(cells, [b / 2, 2 * p * d]), 2, 1) as [tf.Tensor2D, tf.Tensor2D];
    return tf.sum(tf.reshape(tf.mul(anchors, positives), [b / 2, p, d]), 2) as tf.Tensor2D;
  });
}
