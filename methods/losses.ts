/**
 * The SSL objectives of METHODS.md as plain functions on tensors — each states its formula
 * and shapes, checks its hyper-parameters, and can be called without the trainer. The
 * `Method` classes (heads, momentum encoders, queues) build on these.
 *
 * Shapes by letter: `N` query vectors, `K` negatives, `D` embedding size, `B` images,
 * `P` cells per view (S·S), `A` anchors, `C` candidates. Inputs named "normalised" must be
 * L2-normalised rows ({@link l2Normalize}).
 */
import * as tf from '@tensorflow/tfjs';
import { contrastLogProb } from '../models/kernels/contrast.js';
import { keySimilarities } from '../models/key-similarity.js';

function checkTemperature(tau: number, name = 'temperature'): void {
  if (!(tau > 0) || !Number.isFinite(tau)) throw new Error(`${name}: expected a positive number, got ${tau}`);
}

/**
 * Rows scaled to unit L2 norm: `y = x·r`, `r = 1/√(Σx² + ε)`. The ε sits inside the root so the
 * gradient stays finite at a zero row (`x / (‖x‖ + ε)` has a 0/0 gradient there: a masked pool
 * of an image without foreground turned HAPiCL's first step into NaN).
 *
 * Its gradient is written out, `dx = r·(dy − y·Σ(dy·y))`: five kernels where the engine's chain
 * rule through the product, the root (a Pow), the sum and the square took about a dozen, and a
 * HAPiCL step differentiates it for every cell and every pooled region. First-order only: a
 * gradient of that gradient throws (the saved `y` and `r` carry no history), and no objective
 * here takes one.
 */
export function l2Normalize<T extends tf.Tensor>(x: T, axis = -1): T {
  const normalize = tf.customGrad((...inputs: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [v, save] = inputs as [tf.Tensor, tf.GradSaveFunc];
    const r = tf.rsqrt(tf.add(tf.sum(tf.mul(v, v), axis, true), 1e-12));
    const y = tf.mul(v, r);
    save([y, r]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [y, r] = saved as [tf.Tensor, tf.Tensor];
        return tf.mul(tf.sub(dy, tf.mul(y, tf.sum(tf.mul(dy, y), axis, true))), r);
      },
    };
  });
  return tf.tidy(() => normalize(x) as T);
}

/**
 * InfoNCE with one positive per query and shared negatives (MoCo):
 * `L = mean_n −log( e^{q_n·k⁺_n/τ} / (e^{q_n·k⁺_n/τ} + Σ_{k⁻} e^{q_n·k⁻/τ}) )`.
 *
 * @param q normalised queries `[N, D]`
 * @param positive normalised positive keys `[N, D]`
 * @param negatives normalised negative keys `[K, D]` (the queue; no gradient reaches them)
 * @param tau temperature (MoCo v2: 0.2)
 */
export function infoNCE(q: tf.Tensor2D, positive: tf.Tensor2D, negatives: tf.Tensor2D, tau = 0.2): tf.Scalar {
  checkTemperature(tau);
  return tf.tidy(() => {
    const pos = tf.sum(tf.mul(q, positive), 1, true) as tf.Tensor2D; // [N, 1]
    const neg = keySimilarities(q, negatives); // [N, K]; the queue takes no gradient
    // On wasm one kernel takes it from here, the [N, 1 + K] logits never built (same formula).
    const fused = contrastLogProb(pos, neg, tau);
    if (fused) return tf.neg(tf.mean(fused)) as tf.Scalar;
    const logits = tf.div(tf.concat([pos, neg], 1), tau);
    // −log softmax at column 0. logSoftmax, not logSumExp: the latter's gradient goes through
    // max → Equal, which on wasm took 1 s for [2048, 4097] (measured).
    return tf.neg(tf.mean(tf.slice(tf.logSoftmax(logits, 1), [0, 0], [-1, 1]))) as tf.Scalar;
  });
}

/**
 * DenseCL's correspondence: for each query cell, the key cell whose backbone feature is most
 * similar, `argmax_j F_q,i · F_k,j` over normalised backbone features.
 *
 * @param queryFeatures `[B, P, C]` backbone features of view 1
 * @param keyFeatures `[B, P, C]` backbone features of view 2
 * @returns `[B, P]` int32 indices into the key cells
 */
export function argmaxCorrespondence(queryFeatures: tf.Tensor3D, keyFeatures: tf.Tensor3D): tf.Tensor2D {
  return tf.tidy(
    () => tf.argMax(tf.matMul(l2Normalize(queryFeatures), tf.transpose(l2Normalize(keyFeatures), [0, 2, 1])), 2) as tf.Tensor2D,
  );
}

/**
 * DenseCL's dense loss: each query cell's positive is the key's dense projection at its
 * matched cell; negatives are the dense queue (average-pooled dense keys of past images).
 * `L_dense = mean_{b,i} −log( e^{r·t/τ} / (e^{r·t/τ} + Σ_{t⁻} e^{r·t⁻/τ}) )`.
 *
 * @param queryCells normalised dense projections of view 1 `[B, N, D]`: all P cells, or N sampled ones
 * @param keyCells normalised dense projections of view 2 `[B, P, D]`
 * @param match `[B, N]` key cell per query cell ({@link argmaxCorrespondence} or geometric)
 * @param negatives normalised dense queue `[K, D]` (no gradient reaches it)
 */
export function denseInfoNCE(
  queryCells: tf.Tensor3D,
  keyCells: tf.Tensor3D,
  match: tf.Tensor2D,
  negatives: tf.Tensor2D,
  tau = 0.2,
): tf.Scalar {
  return tf.tidy(() => {
    const [b, n, d] = queryCells.shape;
    const p = keyCells.shape[1]; // the key grid's cells; the query may hold a sample of its own (n ≤ p)
    // Row b·P + match[b, i] of the flattened key cells. Not `tf.gather(keyCells, match, 1, 1)`:
    // tfjs-backend-wasm 4.22 gathers with batchDims wrongly for every image after the first
    // (tensorflow/tfjs#8658), so on wasm DenseCL contrasted most cells with the wrong positive.
    const rows = tf.add(match, tf.mul(tf.range(0, b, 1, 'int32').reshape([b, 1]), tf.scalar(p, 'int32')));
    const positives = tf.gather(tf.reshape(keyCells, [b * p, d]), tf.reshape(rows, [b * n])) as tf.Tensor2D;
    return infoNCE(tf.reshape(queryCells, [b * n, d]), positives, negatives, tau);
  });
}

/**
 * HAPiCL's pixel-level NT-Xent, per image over the P×P cell pairs of its two views: positive
 * pairs are foreground in both views (and, with `backgroundPositives`, background in both),
 * every other pair is a negative, `s` the cosine similarity:
 * `L_pix = mean_b −log( (Σ_pos e^{s/τ} + 1) / (Σ_pos e^{s/τ} + Σ_neg e^{s/τ} + 2) )`.
 *
 * @param cells1 normalised cell embeddings of view 1 `[B, P, D]`
 * @param cells2 normalised cell embeddings of view 2 `[B, P, D]`
 * @param mask1 foreground (0/1) of view 1's cells `[B, P]`
 * @param mask2 foreground (0/1) of view 2's cells `[B, P]`
 * @param pairScale for N < P query cells sampled from view 1 (`cells1` `[B, N, D]`, `mask1`
 *   `[B, N]`): P / N, which scales the sampled sums to estimates of the full ones, so the `+1`
 *   and `+2` weigh as they do over every pair
 */
export function pixelNTXent(
  cells1: tf.Tensor3D,
  cells2: tf.Tensor3D,
  mask1: tf.Tensor2D,
  mask2: tf.Tensor2D,
  tau = 0.2,
  backgroundPositives = false,
  pairScale = 1,
): tf.Scalar {
  checkTemperature(tau);
  if (!(pairScale >= 1)) throw new Error(`pixelNTXent: pairScale is P / N ≥ 1, got ${pairScale}`);
  return tf.tidy(() => {
    const e = tf.exp(tf.div(tf.matMul(cells1, tf.transpose(cells2, [0, 2, 1])), tau)); // [B, N, P]
    // Pairs as outer products, [B, N, 1]·[B, 1, P]: the same products as a broadcast multiply,
    // which tfjs's wasm kernel runs through its general loop (1.4 ms against 0.4 for [64, 16, 16], measured).
    const pairs = (a: tf.Tensor2D, b: tf.Tensor2D) => tf.matMul(tf.expandDims(a, 2) as tf.Tensor3D, tf.expandDims(b, 1) as tf.Tensor3D);
    let positive = pairs(mask1, mask2); // fg–fg
    if (backgroundPositives) positive = tf.add(positive, pairs(tf.sub(1, mask1), tf.sub(1, mask2)));
    let pos = tf.sum(tf.mul(e, positive), [1, 2]);
    let all = tf.sum(e, [1, 2]);
    if (pairScale !== 1) [pos, all] = [tf.mul(pos, pairScale), tf.mul(all, pairScale)];
    return tf.mean(tf.neg(tf.log(tf.div(tf.add(pos, 1), tf.add(all, 2))))) as tf.Scalar;
  });
}

/**
 * HARL's masked average pooling: `v = Σ_cells f·m / (Σ m + 1)` (the +1 keeps empty masks finite).
 *
 * @param dense `[B, S, S, C]`; @param mask `[B, S, S]` (0/1, or 1 − mask for background)
 * @returns `[B, C]`
 */
export function maskedAveragePool(dense: tf.Tensor4D, mask: tf.Tensor3D): tf.Tensor2D {
  return tf.tidy(() => {
    const [b, h, w, c] = dense.shape;
    // Σ_cells m·f as one batched product [B, 1, S²]·[B, S², C]: the broadcast product and sum it
    // replaces cost HAPiCL 11 ms a step at 64 px on wasm (per-cell broadcasts are its slowest ops).
    const weights = tf.reshape(mask, [b, 1, h * w]);
    const sums = tf.reshape(tf.matMul(weights, tf.reshape(dense, [b, h * w, c])), [b, c]);
    return tf.div(sums, tf.add(tf.sum(weights, 2), 1)) as tf.Tensor2D;
  });
}

/**
 * Soft-ranking distillation (METHODS.md §4): the online similarities `s` must rank candidates
 * as the target's `t` do.
 * `P^t_ij = σ((t_i − t_j)/τ_t)`, `P^s_ij = σ((s_i − s_j)/τ_s)`, `w = softmax(t/τ_w)`,
 * `L = Σ_{i≠j} w_i · BCE(P^s_ij, P^t_ij) / Σ_{i≠j} w_i`, averaged over anchors.
 *
 * @param online `s` `[A, C]` online similarities of each anchor to its candidates
 * @param target `t` `[A, C]` target (EMA) similarities — the soft labels, not differentiated
 */
export function rankDistillation(online: tf.Tensor2D, target: tf.Tensor2D, tauS = 0.1, tauT = 0.04, tauW = 0.1): tf.Scalar {
  checkTemperature(tauS, 'tauS');
  checkTemperature(tauT, 'tauT');
  checkTemperature(tauW, 'tauW');
  return tf.tidy(() => {
    const c = online.shape[1];
    const pairwise = (x: tf.Tensor2D, tau: number) => tf.div(tf.sub(tf.expandDims(x, 2), tf.expandDims(x, 1)), tau); // [A, C, C]: (x_i − x_j)/τ
    const pt = tf.sigmoid(pairwise(target, tauT));
    const logitS = pairwise(online, tauS);
    // BCE(P^s, P^t) = −[P^t log σ(z) + (1 − P^t) log(1 − σ(z))], computed stably from the logit z.
    const bce = tf.sub(tf.softplus(logitS), tf.mul(pt, logitS));
    const offDiagonal = tf.sub(1, tf.eye(c)); // i ≠ j
    const w = tf.mul(tf.expandDims(tf.softmax(tf.div(target, tauW), 1), 2), offDiagonal); // w_i on row i
    return tf.mean(tf.div(tf.sum(tf.mul(w, bce), [1, 2]), tf.sum(w, [1, 2]))) as tf.Scalar;
  });
}

/**
 * The align loss of attention-driven views (Wang & Isola's alignment): `L_align = mean ‖z₁ − z₂‖²`
 * over positive pairs of normalised projections `[N, D]`.
 */
export function alignLoss(z1: tf.Tensor2D, z2: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.sum(tf.square(tf.sub(z1, z2)), 1)) as tf.Scalar);
}
