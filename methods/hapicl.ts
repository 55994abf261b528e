/**
 * HAPiCL (METHODS.md §2): unsupervised foreground masks split every feature map into
 * foreground and background, and the encoder learns what belongs to the object.
 * - Pixel level: NT-Xent over the cells of an image's two views, positives = cells that are
 *   foreground in both, `L_pix = −log((Σ_pos e^{s/τ} + 1) / (Σ_pos e^{s/τ} + Σ_neg e^{s/τ} + 2))`.
 * - Image level (HARL): masked average pooling `v_fg = Σ f·m / (Σ m + 1)` (bg with 1 − m);
 *   `L_harl = β·L_img + (1−β)·(α·L_fg + (1−α)·L_bg)`, fg compared only with fg, bg with bg,
 *   each an InfoNCE against the batch's other images (and the queue for L_img); L_fg counts only
 *   images with foreground cells in both views, L_bg only those with background cells in both.
 * `L = L_pix + L_harl`; α = β = 0.5, τ = 0.2. Masks arrive with the batch (`masks[k]`, view
 * resolution) and are pooled to the feature grid: a cell is foreground when ≥ half its pixels are.
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../core/batch.js';
import { checkCellCount, gridCells, onePick, sampledCells } from './dense-cells.js';
import { infoNCE, l2Normalize, maskedAveragePool, pixelNTXent } from './losses.js';
import { logPart, type Method } from './method.js';
import { KeyQueue } from './momentum.js';
import { createSiamese, siameseMethod, withAlign, type SiameseOptions } from './siamese.js';

export interface HapiclOptions extends SiameseOptions {
  temperature?: number;
  momentum?: number;
  queueSize?: number;
  alpha?: number;
  beta?: number;
  /**
   * Query cells of view 1 per image in the pixel term (default: all S², the paper's). The term
   * compares every cell of one view with every cell of the other, and the dense head runs on
   * every online cell. N < S² draws N cells per image each step, keyed by the batch's ids (as
   * DenseCL's `denseCells`), and scales the sampled sums by S²/N (`train --pixel-cells`).
   */
  pixelCells?: number;
}

/**
 * 1 where `condition` holds, else 0, as float32. Not `tf.cast(condition, 'float32')`: on
 * tfjs-backend-webgpu 4.22 that cast keeps the boolean buffer under a float32 tensor, and a later
 * kernel typed from the buffer (a transpose in the gradient) fails to compile (a WGSL type
 * mismatch), which made HAPiCL's loss NaN on WebGPU.
 */
function indicator(condition: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.where(condition, tf.ones(condition.shape), tf.zeros(condition.shape)));
}

/** A view's mask `[B, H, W]` pooled to the feature grid `[B, S, S]` (1 where ≥ half the pixels are foreground). */
export function maskToGrid(mask: tf.Tensor3D, grid: number): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, h, w] = mask.shape;
    if (h % grid !== 0 || w % grid !== 0) throw new Error(`hapicl: view size ${h}×${w} is not a multiple of the feature grid ${grid}`);
    const [ch, cw] = [h / grid, w / grid];
    // Each cell's foreground count: a sum over its columns, then over its rows. Not an average
    // pool: wasm's avgPool of a one-channel [64, 32, 32] took 0.95 ms, these two sums 0.36.
    const rows = tf.sum(tf.reshape(mask, [b * h * grid, cw]), 1); // [B, S, ch, S] as [B·S·ch·S]
    const cells = tf.sum(tf.reshape(rows, [b * grid, ch, grid]), 1); // [B·S, S]
    return tf.reshape(indicator(tf.greaterEqual(cells, (ch * cw) / 2)), [b, grid, grid]) as tf.Tensor3D;
  });
}

/**
 * InfoNCE where each row's positive is the same row of `k` and the other rows are negatives,
 * over the images `valid` marks (1/0 `[B]`): the others are neither queries nor negatives, and
 * the mean is over the valid rows (0 when there are none).
 */
function inBatchInfoNCE(q: tf.Tensor2D, k: tf.Tensor2D, tau: number, valid: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const n = q.shape[0];
    const logits = tf.add(tf.div(tf.matMul(q, tf.transpose(k)), tau), tf.mul(tf.sub(1, tf.reshape(valid, [1, n])), -1e9)); // [B, B], positives on the diagonal
    const positive = tf.sum(tf.mul(tf.logSoftmax(logits, 1), tf.eye(n)), 1);
    return tf.div(tf.neg(tf.sum(tf.mul(positive, valid))), tf.maximum(tf.sum(valid), 1)) as tf.Scalar;
  });
}

/**
 * Images whose region is present in both views' grids (`[B]`, 1/0). Without this, an image with
 * no foreground cell pools to the zero vector, the head maps it to its bias — zero at init — and
 * normalising a zero vector has a gradient of 1/√ε: one step blew the global head's bias up to
 * a norm of 10⁴ and every embedding collapsed onto it (issue #16).
 */
function present(m1: tf.Tensor3D, m2: tf.Tensor3D): tf.Tensor1D {
  return tf.tidy(() => tf.mul(indicator(tf.greater(tf.sum(m1, [1, 2]), 0)), indicator(tf.greater(tf.sum(m2, [1, 2]), 0))) as tf.Tensor1D);
}

/**
 * A projector's normalised embeddings of the whole image, its foreground and its background,
 * `[B, D]` each, from one pass over the three stacked: the projector works row by row (fc → ReLU
 * → fc, no batch statistics), so this is the three passes' result (up to the rounding of the
 * matrix products) at a third of the kernels.
 */
function imageFgBg(head: { apply(x: tf.Tensor2D): tf.Tensor2D }, dense: tf.Tensor4D, pooled: tf.Tensor2D, mask: tf.Tensor3D) {
  return tf.tidy(() => {
    const fg = maskedAveragePool(dense, mask);
    const bg = maskedAveragePool(dense, tf.sub(1, mask) as tf.Tensor3D);
    const [image, fgOut, bgOut] = tf.split(l2Normalize(head.apply(tf.concat([pooled, fg, bg], 0))), 3, 0) as [
      tf.Tensor2D,
      tf.Tensor2D,
      tf.Tensor2D,
    ];
    return { image, fg: fgOut, bg: bgOut };
  });
}

export function createHapicl(o: HapiclOptions): Method {
  const tau = o.temperature ?? 0.2;
  const m = o.momentum ?? 0.99;
  const alpha = o.alpha ?? 0.5;
  const beta = o.beta ?? 0.5;
  for (const [name, v] of [
    ['alpha', alpha],
    ['beta', beta],
  ] as const) {
    if (!(v >= 0 && v <= 1)) throw new Error(`${name}: expected a weight in [0, 1], got ${v}`);
  }
  checkCellCount('pixelCells', o.pixelCells);
  const pair = createSiamese({ ...o, denseHead: true });
  const queue = new KeyQueue(o.queueSize ?? 4096, o.dim ?? 128, (o.seed ?? 0) + 7, 'hapicl/queue');
  return siameseMethod({
    name: 'hapicl',
    pair,
    momentum: m,
    queues: { queue },
    loss(batch: Batch, parts, stage) {
      const [v1, v2] = batch.views as [tf.Tensor4D, tf.Tensor4D];
      const [m1full, m2full] = batch.masks;
      if (!m1full || !m2full) throw new Error('hapicl: the batch has no foreground masks (train with --masks saliency|kmeans|gt)');
      const online = pair.online.encoder.apply(v1, { training: true });
      const grid = online.dense.shape[1];
      const m1 = maskToGrid(m1full, grid);
      const m2 = maskToGrid(m2full, grid);
      const key = tf.tidy(() => {
        const out = pair.momentum.encoder.apply(v2, { training: true });
        const { image, fg, bg } = imageFgBg(pair.momentum.global, out.dense, out.pooled, m2);
        return {
          dense: out.dense,
          cells: l2Normalize(tf.reshape(pair.momentum.dense!.applyDense(out.dense), [out.dense.shape[0], grid * grid, -1])) as tf.Tensor3D,
          k: image,
          fg,
          bg,
        };
      });
      stage(queue, key.k);
      const b = v1.shape[0];
      const p = grid * grid;
      const n = o.pixelCells === undefined || o.pixelCells >= p ? p : o.pixelCells;
      const mask1 = tf.reshape(m1, [b, p]) as tf.Tensor2D;
      const mask2 = tf.reshape(m2, [b, p]) as tf.Tensor2D;
      let pix: tf.Scalar;
      if (n === p) {
        const cells = l2Normalize(tf.reshape(pair.online.dense!.applyDense(online.dense), [b, p, -1])) as tf.Tensor3D;
        pix = pixelNTXent(cells, key.cells, mask1, mask2, tau);
      } else {
        // N cells per image, picked before the dense head (it works cell by cell), and their masks.
        const pick = onePick(sampledCells(batch.ids, p, n, o.seed ?? 0), b, n, p);
        const picked = tf.reshape(tf.matMul(pick, gridCells(online.dense)), [b * n, -1]) as tf.Tensor2D;
        const cells = l2Normalize(tf.reshape(pair.online.dense!.apply(picked), [b, n, -1])) as tf.Tensor3D;
        const pickedMask = tf.reshape(tf.matMul(pick, tf.expandDims(mask1, 2)), [b, n]) as tf.Tensor2D;
        pix = pixelNTXent(cells, key.cells, pickedMask, mask2, tau, false, p / n);
      }
      const { image: q, fg: qFg, bg: qBg } = imageFgBg(pair.online.global, online.dense, online.pooled, m1);
      const img = infoNCE(q, key.k, queue.keys as tf.Tensor2D, tau);
      const fg = inBatchInfoNCE(qFg, key.fg, tau, present(m1, m2));
      const bg = inBatchInfoNCE(qBg, key.bg, tau, present(tf.sub(1, m1) as tf.Tensor3D, tf.sub(1, m2) as tf.Tensor3D));
      const harl = tf.add(tf.mul(img, beta), tf.mul(tf.add(tf.mul(fg, alpha), tf.mul(bg, 1 - alpha)), 1 - beta));
      logPart(parts, 'pixel', pix);
      logPart(parts, 'image', img as tf.Scalar);
      logPart(parts, 'fg', fg);
      logPart(parts, 'bg', bg);
      return withAlign(tf.add(pix, harl) as tf.Scalar, q, key.k, o.alignWeight, parts);
    },
  });
}
