/**
 * Soft-ranking self-distillation with clustering positives (METHODS.md §4). The batch holds
 * adjacent (anchor, positive) pairs — `clusterPositives` emits them: sample 2i is an anchor,
 * 2i + 1 an image drawn from its k-means cluster. An online branch (trained) sees view 1 of
 * every sample, a target branch (EMA of the online one, not differentiated) sees view 2. The
 * target's similarities are soft labels: the online branch must *rank* candidates as the target
 * does (`rankDistillation`, losses.ts), not copy the values.
 *
 * - Image level: every sample a is an anchor whose candidates are all other B − 1 samples of
 *   the batch (its pair partner the positive, the rest negatives);
 *   `s_ac = cos(p(y_a), y_c)`, `t_ac = cos(z_a, z_c)`, with `y` the online global projection of
 *   view 1, `p` a BYOL-style predictor MLP on it, `z` the target global projection of view 2.
 *   `L_img = rankDistillation(S, T)` over the `[B, B − 1]` off-diagonal rows.
 * - Patch level: for each pair (x, x⁺), per-cell similarities at the same grid position (i, j)
 *   of the two feature maps, online `s_ij = cos(r(v₁(x))_ij, r(v₁(x⁺))_ij)` and target
 *   `t_ij = cos(r̄(v₂(x))_ij, r̄(v₂(x⁺))_ij)` with `r`, `r̄` the online and target dense
 *   projections; `L_patch = rankDistillation` over the S·S cells of each pair (`[B/2, S·S]`).
 * - `L = α·L_img + β·L_patch`, α = β = 1, τ_s = 0.1, τ_t = 0.04, τ_w = 0.1, EMA m = 0.99.
 *
 * Shapes by letter: `B` samples (even, B/2 pairs), `D` projection size, `S×S` the feature grid,
 * `P = S·S` cells.
 *
 * Our reading where METHODS.md §4 leaves a choice:
 * - The predictor sits on the anchor side only (`cos(p(y_a), y_c)`, as BYOL predicts a target
 *   from a query); METHODS writes `p` on both sides, which with a predictor would make S
 *   symmetric and the predictor a mere re-projection of both ends.
 * - Candidates are the batch (no queue): every sample is an anchor, positives included, so each
 *   pair is ranked from both ends. The self-similarity (diagonal) is dropped: with t = 1 it would
 *   take nearly all of w = softmax(t/τ_w).
 * - By default (`relation: 'cross'`) the image level reads as ReSSL's relation does: the online
 *   query of view 1 ranks the candidates' *target* projections of view 2, `s_ac = cos(p(y_a), z_c)`,
 *   the anchor's own `z_a` among them (`t_aa = 1`), not the online `y_c` the formulas above
 *   write (`'within'`). As written, no term compares the two views of one image and the target
 *   collapses; across views it does not, and the encoder scores higher (docs/experiments.md, "Measured: why
 *   softrank does not learn").
 * - Patch similarities compare cells at the same grid position of two *different* images
 *   (the patent's "same position (i, j)"), with no geometric or feature matching.
 * - A pair whose two ids are equal (no clustering yet, a singleton cluster, a failed fetch: the
 *   anchor is its own positive) gets its two views crossed on the positive row: online sees
 *   view 2, target view 1, so the pair is "the two views of the same image". Without the swap
 *   both copies would carry identical views (multiView keys views by id) and the pair's online
 *   patch similarities would all be 1.
 * - The target branch runs its batch norm in training mode (batch statistics), as MoCo and
 *   DenseCL here do; its similarities are copied off the gradient tape.
 *
 * `targetEmbeddings()` hands the embedding bank the normalised target projections `z` of the
 * last batch, by id: what clustering runs on.
 *
 * Negatives from other clusters (`negatives`, `--negatives K`): each pair's K bank vectors join
 * every row of the pair as extra candidates, in both lists: `s_an = cos(p(y_a), b_n)` and
 * `t_an = cos(z_a, b_n)`, with `b_n` the bank's target embedding of negative n. Why the bank
 * vector on the online side too: an online projection `y_n` would take a forward and backward
 * pass of the online encoder per negative (K more images a pair), while the bank already holds
 * a target embedding of each, the key MoCo's queue and ReSSL's relational targets use on both
 * sides (METHODS.md §4's "related published forms"). Only `p(y_a)` receives their gradient.
 *
 * Frozen targets (`frozenTargets`): two copies of the target encoder and global head, each
 * taken when a clustering snapshots the bank (`freezeTarget`); `embedFrozen` embeds an anchor
 * the clustering does not hold in that clustering's space, so it gets a cluster positive from
 * its first visit, by the same weights in any run, resumed or not.
 */
import * as tf from '@tensorflow/tfjs';
import { createMlp } from '../models/heads.js';
import type { Batch } from '../core/batch.js';
import { l2Normalize, rankDistillation } from './losses.js';
import { negativesPerRow, pairCellSimilarities, similarityStats, softRankImageLoss } from './softrank-loss.js';
import { logPart, type Method } from './method.js';
import { detach } from './detach.js';
import { SOFTRANK_RELATIONS, type SoftRankRelation } from './softrank-relation.js';
import { assertSameWeights, copyWeights } from './momentum.js';
import { branchWeights, createBranch, createSiamese, siameseMethod, type Branch, type SiameseOptions } from './siamese.js';

export interface SoftRankOptions extends SiameseOptions {
  /** EMA momentum m of the target branch (default 0.99). */
  momentum?: number;
  /** Weight α of the image-level loss (default 1). */
  alpha?: number;
  /** Weight β of the patch-level loss (default 1). */
  beta?: number;
  /** Temperature τ_s of the online similarity differences (default 0.1). */
  tauS?: number;
  /** Temperature τ_t of the target (soft-label) differences (default 0.04). */
  tauT?: number;
  /** Temperature τ_w of the candidate weights w = softmax(t/τ_w) (default 0.1). */
  tauW?: number;
  /**
   * Extra candidates of each pair, called in every loss with the batch ids and the target's
   * unit projections `z` (`[B, D]` row-major): `[B/2, K, D]` unit vectors (pair i's K
   * negatives, for both its rows), or undefined for none this step.
   */
  negatives?: (ids: readonly string[], z: Float32Array, dims: number) => Float32Array | undefined;
  /** Keep two frozen copies of the target branch for `freezeTarget` / `embedFrozen` (default false). */
  frozenTargets?: boolean;
  /** What the image-level ranking compares across (default `'cross'`; `SoftRankRelation`, and this file's comment). */
  relation?: SoftRankRelation;
}

/** The target branch's normalised global projections of one batch, row `i` for `ids[i]`. */
export interface TargetEmbeddings {
  ids: string[];
  /** `[ids.length, dims]` row-major, unit rows. */
  rows: Float32Array;
  dims: number;
}

/** A batch's target: computed in `prepare` before the step (its rows read asynchronously), or in the loss. */
interface Target {
  batch: Batch;
  z: tf.Tensor2D;
  cellTargets: tf.Tensor2D;
  rows: Float32Array;
}

/** A slot of the frozen target copies. */
export type FrozenSlot = 0 | 1;

export interface SoftRank extends Method {
  /** `z` of the last batch's samples (anchors and positives), for the embedding bank; undefined before the first loss. */
  targetEmbeddings(): TargetEmbeddings | undefined;
  /** Copies the target encoder and global head as they are now into `slot` (needs `frozenTargets`). */
  freezeTarget(slot: FrozenSlot): void;
  /** Unit global projections `[N, D]` of `images` by the copy in `slot`, batch norm in inference mode (needs `frozenTargets`). */
  embedFrozen(slot: FrozenSlot, images: tf.Tensor4D): tf.Tensor2D;
}

function checkPositive(value: number, name: string): void {
  if (!(value > 0) || !Number.isFinite(value)) throw new Error(`softrank ${name}: expected a positive number, got ${value}`);
}

function checkWeight(value: number, name: string): void {
  if (!(value >= 0) || !Number.isFinite(value)) throw new Error(`softrank ${name}: expected a finite weight ≥ 0, got ${value}`);
}

/** `[B]` 1 on the positive row of each pair whose anchor is its own positive, else 0; undefined when there is none. */
function selfPairRows(ids: readonly string[]): Float32Array | undefined {
  let mask: Float32Array | undefined;
  for (let i = 0; i + 1 < ids.length; i += 2) {
    if (ids[i] === ids[i + 1]) (mask ??= new Float32Array(ids.length))[i + 1] = 1;
  }
  return mask;
}

/** Refuses a batch that is not made of at least two adjacent pairs, saying why. */
function checkPairedBatch(batch: Batch): [tf.Tensor4D, tf.Tensor4D] {
  const [v1, v2] = batch.views;
  if (!v1 || !v2) throw new Error(`softrank: each sample needs two views (view 1 online, view 2 target), got ${batch.views.length}`);
  const b = v1.shape[0];
  if (b % 2 !== 0) {
    throw new Error(
      `softrank: a batch of ${b} samples; expected an even B of adjacent (anchor, positive) pairs (use clusterPositives and an even batch size)`,
    );
  }
  if (b < 4) throw new Error(`softrank: a batch of ${b} samples leaves each anchor 1 candidate; ranking needs B ≥ 4 (two pairs)`);
  return [v1, v2];
}

/**
 * The soft-ranking method on an online/target pair with global and dense heads and an online
 * predictor. See the file's comment for the loss.
 *
 * @example
 * const method = createSoftRank({ encoder: RESNET_PRESETS.slim, seed: 1 });
 * const loss = optimizer.minimize(() => method.loss(batch, parts), true, method.trainable);
 * method.afterStep?.();
 * const z = method.targetEmbeddings(); if (z) bank.putBatch(z.ids, z.rows);
 */
export function createSoftRank(o: SoftRankOptions): SoftRank {
  const m = o.momentum ?? 0.99;
  if (!(m >= 0 && m <= 1)) throw new Error(`softrank momentum: expected a number in [0, 1], got ${m}`);
  const alpha = o.alpha ?? 1;
  const beta = o.beta ?? 1;
  checkWeight(alpha, 'alpha');
  checkWeight(beta, 'beta');
  if (alpha + beta === 0) throw new Error('softrank alpha, beta: both weights are 0; expected at least one > 0');
  const tauS = o.tauS ?? 0.1;
  const tauT = o.tauT ?? 0.04;
  const tauW = o.tauW ?? 0.1;
  const relation = o.relation ?? 'cross';
  if (!SOFTRANK_RELATIONS.includes(relation))
    throw new Error(`softrank relation: expected ${SOFTRANK_RELATIONS.join(' or ')}, got ${String(relation)}`);
  const cross = relation === 'cross';
  checkPositive(tauS, 'tauS');
  checkPositive(tauT, 'tauT');
  checkPositive(tauW, 'tauW');

  const pair = createSiamese({ ...o, denseHead: true });
  const dim = o.dim ?? 128;
  const predictor = createMlp([dim, o.hidden ?? 2 * pair.online.encoder.channels, dim], (o.seed ?? 0) + 3, 'online/predictor', o.init);
  let last: TargetEmbeddings | undefined;
  // Not trained and never differentiated; filled by freezeTarget (until then, copies of the initial target).
  // The target's encoder and global head (what embedFrozen runs), built as every branch is: same names, same shapes.
  const targetWeights = branchWeights({ encoder: pair.momentum.encoder, global: pair.momentum.global });
  const frozen: Branch[] = o.frozenTargets ? [0, 1].map((slot) => createBranch({ ...o, denseHead: false }, `frozen/${slot}`)) : [];
  const frozenWeights = frozen.map((b) => branchWeights(b));
  frozenWeights.forEach((w, slot) => {
    assertSameWeights(targetWeights, w, `softrank frozen target ${slot}`);
    copyWeights(targetWeights, w);
  });
  const frozenSlot = (slot: FrozenSlot): Branch => {
    const b = frozen[slot];
    if (!b)
      throw new Error(
        o.frozenTargets ? `softrank: frozen target slot ${String(slot)}; expected 0 or 1` : 'softrank: created without frozenTargets',
      );
    return b;
  };

  /** The batch's two views, swapped per row where an anchor was paired with itself (see selfPairRows). */
  const pairInputs = (batch: Batch): { onlineIn: tf.Tensor4D; targetIn: tf.Tensor4D } => {
    const [v1, v2] = checkPairedBatch(batch);
    const self = selfPairRows(batch.ids);
    if (!self) return { onlineIn: v1, targetIn: v2 };
    // Inputs, not weights: nothing to differentiate here.
    const swap = tf.tensor4d(self, [v1.shape[0], 1, 1, 1]);
    return {
      onlineIn: tf.add(v1, tf.mul(swap, tf.sub(v2, v1))) as tf.Tensor4D,
      targetIn: tf.add(v2, tf.mul(swap, tf.sub(v1, v2))) as tf.Tensor4D,
    };
  };
  /** The target branch's unit projections `[B, D]` and cell similarities, off the gradient tape. */
  const targetOf = (targetIn: tf.Tensor4D): { z: tf.Tensor2D; cellTargets: tf.Tensor2D } => {
    // detach takes one tensor: the two outputs travel flattened as one.
    const b = targetIn.shape[0];
    let cellShape: [number, number] = [0, 0];
    const packed = detach(() => {
      const out = pair.momentum.encoder.apply(targetIn, { training: true });
      const z = l2Normalize(pair.momentum.global.apply(out.pooled));
      const t = pairCellSimilarities(l2Normalize(pair.momentum.dense!.applyDense(out.dense)));
      cellShape = t.shape;
      return tf.concat([tf.reshape(z, [-1]), tf.reshape(t, [-1])]) as tf.Tensor1D;
    });
    const [zFlat, tFlat] = tf.split(packed, [b * dim, cellShape[0] * cellShape[1]]);
    return { z: tf.reshape(zFlat!, [b, dim]) as tf.Tensor2D, cellTargets: tf.reshape(tFlat!, cellShape) as tf.Tensor2D };
  };
  let prepared: Target | undefined;
  const dropPrepared = (): void => {
    if (prepared) tf.dispose([prepared.z, prepared.cellTargets]);
    prepared = undefined;
  };

  const base = siameseMethod({
    name: 'softrank',
    pair,
    momentum: m,
    queues: {},
    loss(batch: Batch, parts) {
      const { onlineIn, targetIn } = pairInputs(batch);
      const online = pair.online.encoder.apply(onlineIn, { training: true });
      const y = pair.online.global.apply(online.pooled);
      const queries = l2Normalize(predictor.apply(y));
      const cells = l2Normalize(pair.online.dense!.applyDense(online.dense));
      let target: Target;
      if (prepared?.batch === batch) target = prepared;
      else {
        // Not prepared (a library caller): the same target, read synchronously (wasm and cpu only).
        const { z, cellTargets } = targetOf(targetIn);
        target = { batch, z, cellTargets, rows: Float32Array.from(z.dataSync() as Float32Array) };
      }
      const b = onlineIn.shape[0];
      last = { ids: batch.ids.slice(), rows: target.rows, dims: dim };

      const extra = o.negatives?.(batch.ids, last.rows, dim);
      const negatives = extra ? negativesPerRow(extra, b, dim) : undefined;
      if (negatives) parts['negatives'] = negatives.shape[1];
      const keys = cross ? target.z : l2Normalize(y);
      const image = softRankImageLoss(queries, keys, target.z, tauS, tauT, tauW, negatives, cross);
      const patch = rankDistillation(pairCellSimilarities(cells), target.cellTargets, tauS, tauT, tauW);
      logPart(parts, 'image', image);
      logPart(parts, 'patch', patch);
      const stats = similarityStats(target.z);
      logPart(parts, 'targetSimilarity', stats.mean);
      logPart(parts, 'targetSpread', stats.spread);
      tf.dispose([stats.mean, stats.spread]);
      return tf.add(tf.mul(image, alpha), tf.mul(patch, beta)) as tf.Scalar;
    },
  });

  return {
    ...base,
    trainable: [...base.trainable, ...predictor.trainable],
    checkpointState() {
      const state = base.checkpointState();
      for (const [k, v] of Object.entries(predictor.weights)) state[`online/predictor/${k}`] = v;
      frozen.forEach((b, slot) => {
        for (const [k, v] of Object.entries(branchWeights(b))) state[`frozen/${slot}/${k}`] = v;
      });
      return state;
    },
    async prepare(batch) {
      dropPrepared();
      const { z, cellTargets } = tf.tidy(() => targetOf(pairInputs(batch).targetIn));
      prepared = { batch, z, cellTargets, rows: Float32Array.from((await z.data()) as Float32Array) };
    },
    afterStep() {
      base.afterStep?.();
      dropPrepared();
    },
    targetEmbeddings: () => last,
    freezeTarget(slot) {
      frozenSlot(slot); // refuses a bad slot, or a method created without frozenTargets
      copyWeights(targetWeights, frozenWeights[slot] as Record<string, tf.Variable>);
    },
    embedFrozen(slot, images) {
      const b = frozenSlot(slot);
      return tf.tidy(() => l2Normalize(b.global.apply(b.encoder.apply(images, { training: false }).pooled)));
    },
    dispose() {
      dropPrepared();
      base.dispose();
      predictor.dispose();
      frozen.forEach((b) => tf.dispose(Object.values(branchWeights(b))));
      last = undefined;
    },
  };
}
