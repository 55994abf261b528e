/**
 * DenseCL (METHODS.md §1): MoCo v2 plus a dense head that keeps the S×S grid. Each query cell
 * is matched to the most similar key cell by the normalised *backbone* features
 * (or geometrically, from the crop boxes), and contrasted with that key cell's dense
 * projection against a dense queue of average-pooled dense keys.
 * `L = (1 − λ)·L_global + λ·L_dense`, λ = 0.5, τ = 0.2. The authors' code (and mmselfsup's
 * `DenseCLHook`) sets λ = 0 for the first 1 000 iterations, while an argmax over random-init
 * features matches noise; `denseWarmup` does the same for its first N steps (default 0 here).
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../core/batch.js';
import { checkCellCount, gridCells as cells, onePick, sampledCells } from './dense-cells.js';
import { detach } from './detach.js';
import { argmaxCorrespondence, denseInfoNCE, infoNCE, l2Normalize } from './losses.js';
import { logPart, type Method } from './method.js';
import { KeyQueue } from './momentum.js';
import { createSiamese, siameseMethod, withAlign, type SiameseOptions } from './siamese.js';

export interface DenseclOptions extends SiameseOptions {
  temperature?: number;
  momentum?: number;
  queueSize?: number;
  /** Weight λ of the dense loss (default 0.5). */
  lambda?: number;
  /**
   * How a query cell finds its positive key cell: `feature` (default, the paper's: argmax of
   * backbone-feature similarity) or `geometric` (the cell at the same source spot, from the crop
   * boxes; needs batches made with `batch(…, { geometricGrid })`). The paper reports feature
   * matching better.
   */
  match?: 'feature' | 'geometric';
  /**
   * Query cells per image in the dense term (default: all S² cells, the paper's). The dense
   * logits are `[B·N × K]`, by far the largest matrix of a DenseCL step: at 64 px (8×8 cells,
   * K = 4096) they took about half of it. N < S² draws N distinct cells per image for each step,
   * keyed by the batch's ids, so a run and its resume draw the same cells (`train --dense-cells`).
   */
  denseCells?: number;
  /**
   * Entries of the dense queue, the dense term's negatives (default `queueSize`, as the paper).
   * Its logits are `[B·N × (1 + K)]`: a smaller queue shrinks the dense term as N does
   * (`train --dense-queue`).
   */
  denseQueueSize?: number;
  /**
   * Steps at the start whose loss is the global term alone, λ = 0, as the official code's first
   * 1 000 iterations (default 0: none). The dense keys still join the dense queue, so the dense
   * term starts against real negatives (`train --dense-warmup`; the trainer says the step through
   * `atStep`).
   */
  denseWarmup?: number;
}

/** The batch's geometric matches, or a clear error when the data plane did not make them. */
function geometric(batch: Batch): tf.Tensor2D {
  if (!batch.geometricMatch)
    throw new Error('densecl --match geometric: batches carry no geometric matches (collate with batch(…, { geometricGrid }))');
  return tf.clone(batch.geometricMatch); // the tidy disposes its copy; the batch keeps its own
}

/**
 * The dense queue's entry per image: the average of its dense projection `[B, P, D]`, then
 * normalised, as the official code's avgpool2 (not an average of normalised cells).
 */
const pooledDenseKey = (projected: tf.Tensor3D): tf.Tensor2D => l2Normalize(tf.mean(projected, 1) as tf.Tensor2D);

export function createDenseCL(o: DenseclOptions): Method {
  const tau = o.temperature ?? 0.2;
  const m = o.momentum ?? 0.99;
  const lambda = o.lambda ?? 0.5;
  if (!(lambda >= 0 && lambda <= 1)) throw new Error(`lambda: expected a weight in [0, 1], got ${lambda}`);
  const sampled = o.denseCells;
  checkCellCount('denseCells', sampled);
  const warmup = o.denseWarmup ?? 0;
  if (!(Number.isInteger(warmup) && warmup >= 0)) throw new Error(`denseWarmup: expected an integer ≥ 0, got ${warmup}`);
  let step = 0;
  const pair = createSiamese({ ...o, denseHead: true });
  const dim = o.dim ?? 128;
  const queue = new KeyQueue(o.queueSize ?? 4096, dim, (o.seed ?? 0) + 7, 'densecl/queue');
  const denseQueue = new KeyQueue(o.denseQueueSize ?? o.queueSize ?? 4096, dim, (o.seed ?? 0) + 8, 'densecl/dense-queue');
  return siameseMethod({
    name: 'densecl',
    pair,
    momentum: m,
    queues: { queue, 'dense-queue': denseQueue },
    atStep(s) {
      step = s;
    },
    loss(batch: Batch, parts, stage) {
      const [v1, v2] = batch.views as [tf.Tensor4D, tf.Tensor4D];
      const online = pair.online.encoder.apply(v1, { training: true });
      const q = l2Normalize(pair.online.global.apply(online.pooled));
      const warm = step < warmup; // λ = 0: the global term alone; the dense keys still fill the dense queue
      const key: { k: tf.Tensor2D; pooledDense: tf.Tensor2D; t?: tf.Tensor3D; match?: tf.Tensor2D } = tf.tidy(() => {
        const out = pair.momentum.encoder.apply(v2, { training: true });
        const projected = cells(pair.momentum.dense!.applyDense(out.dense));
        const k = l2Normalize(pair.momentum.global.apply(out.pooled));
        const pooledDense = pooledDenseKey(projected);
        if (warm) return { k, pooledDense };
        return {
          k,
          pooledDense,
          t: l2Normalize(projected),
          // The matching is not differentiated (argmax); rebuilding it from its values takes it
          // off the gradient tape, which would otherwise ask for a gradient of gather's indices.
          match: o.match === 'geometric' ? geometric(batch) : detach(() => argmaxCorrespondence(cells(online.dense), cells(out.dense))),
        };
      });
      stage(queue, key.k);
      stage(denseQueue, key.pooledDense);
      const global = infoNCE(q, key.k, queue.keys as tf.Tensor2D, tau);
      logPart(parts, 'global', global);
      if (!key.t || !key.match) return withAlign(global, q, key.k, o.alignWeight, parts);
      const [b, s1, s2, channels] = online.dense.shape;
      const p = s1 * s2;
      const n = sampled === undefined || sampled >= p ? p : sampled;
      // The query cells: all, or N per image picked before the dense head (it works cell by cell,
      // so picking first gives the same projections and spares the head's work on the others).
      const rows = n === p ? undefined : sampledCells(batch.ids, p, n, o.seed ?? 0);
      const backbone = cells(online.dense);
      const picked = rows ? (tf.matMul(onePick(rows, b, n, p), backbone) as tf.Tensor3D) : backbone;
      const r = l2Normalize(
        tf.reshape(pair.online.dense!.apply(tf.reshape(picked, [b * n, channels]) as tf.Tensor2D), [b, n, dim]) as tf.Tensor3D,
      );
      const match = rows
        ? (tf.reshape(tf.gather(tf.reshape(key.match, [b * p]), tf.tensor1d(rows, 'int32')), [b, n]) as tf.Tensor2D)
        : key.match;
      const dense = denseInfoNCE(r, key.t, match, denseQueue.keys as tf.Tensor2D, tau);
      logPart(parts, 'dense', dense);
      return withAlign(tf.add(tf.mul(global, 1 - lambda), tf.mul(dense, lambda)) as tf.Scalar, q, key.k, o.alignWeight, parts);
    },
  });
}
