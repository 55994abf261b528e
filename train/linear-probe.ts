/**
 * Linear probes on frozen features (METHODS.md "Evaluation protocols"):
 *
 * - {@link fitLinearProbe}: multinomial logistic regression on pooled features, one label per row;
 * - {@link fitDenseProbe}: a 1×1 linear classifier on a dense feature grid whose logits are
 *   upsampled bilinearly (half-pixel centres, as PyTorch's `align_corners=False`) to the label
 *   map's resolution, trained with per-pixel cross-entropy.
 *
 * Both standardise each feature dimension with the training rows' mean and standard deviation
 * (a probe's learning rate then means the same for every encoder), and minimise the mean
 * cross-entropy plus `weightDecay/2 · ‖W‖²` with Adam over seeded mini-batches. The result is
 * plain data (weights, bias, standardisation): no tensor outlives a call.
 */
import * as tf from '@tensorflow/tfjs';
import { variableFrom } from '../models/variables.js';
import { keyedRng } from '../core/index.js';

export interface ProbeOptions {
  /** Number of classes; labels are 0 … classes−1. */
  classes: number;
  /** Passes over the training rows (default 40 pooled, 15 dense). */
  epochs?: number;
  /** Rows (pooled) or images (dense) per step (default 256 pooled, 16 dense). */
  batch?: number;
  /** Adam's step size (default 0.01). */
  learningRate?: number;
  /** L2 penalty on the weights, not the bias (default 1e-4). */
  weightDecay?: number;
  seed?: number;
}

/** A trained linear classifier on standardised features. */
export interface LinearClassifier {
  dims: number;
  classes: number;
  /** Per-dimension mean and 1/std of the training features. */
  mean: Float32Array;
  invStd: Float32Array;
  /** `[dims, classes]` row-major, and `[classes]`. */
  weights: Float32Array;
  bias: Float32Array;
  /** Mean training loss of each epoch (to see that it converged). */
  losses: number[];
}

/** Mean and 1/std of each of `dims` columns over the rows of `x` (std floored so constant columns stay finite). */
export function standardizer(x: Float32Array, dims: number): { mean: Float32Array; invStd: Float32Array } {
  const rows = x.length / dims;
  if (!Number.isInteger(rows) || rows < 1) throw new Error(`standardizer: ${x.length} values are not whole rows of ${dims}`);
  const sum = new Float64Array(dims);
  const sq = new Float64Array(dims);
  for (let r = 0, o = 0; r < rows; r++) {
    for (let d = 0; d < dims; d++, o++) {
      const v = x[o] as number;
      sum[d]! += v;
      sq[d]! += v * v;
    }
  }
  const mean = new Float32Array(dims);
  const invStd = new Float32Array(dims);
  for (let d = 0; d < dims; d++) {
    const m = (sum[d] as number) / rows;
    mean[d] = m;
    invStd[d] = 1 / Math.sqrt(Math.max((sq[d] as number) / rows - m * m, 0) + 1e-6);
  }
  return { mean, invStd };
}

/** A seeded permutation of 0…n−1 for one epoch. */
function shuffled(n: number, seed: number, epoch: number): Int32Array {
  const rng = keyedRng(seed, 'probe', epoch);
  const order = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  return order;
}

interface Fit {
  dims: number;
  classes: number;
  rows: number;
  epochs: number;
  batch: number;
  learningRate: number;
  weightDecay: number;
  seed: number;
  /** The mean cross-entropy of a mini-batch (rows `index`), given the standardised weights. */
  loss(index: Int32Array, w: tf.Variable, b: tf.Variable): tf.Scalar;
}

/**
 * Adam on `loss` over seeded mini-batches; returns the weights as plain arrays. Values are read
 * back with `data()`, not `dataSync()`: a GPU backend has no synchronous read under Node.
 */
async function fit(f: Fit): Promise<{ weights: Float32Array; bias: Float32Array; losses: number[] }> {
  if (!Number.isInteger(f.classes) || f.classes < 2) throw new Error(`probe: expected ≥ 2 classes, got ${f.classes}`);
  const w = variableFrom(tf.zeros([f.dims, f.classes]), true, `probe/w${probes}`);
  const b = variableFrom(tf.zeros([f.classes]), true, `probe/b${probes++}`);
  const optimizer = tf.train.adam(f.learningRate);
  const losses: number[] = [];
  try {
    for (let epoch = 0; epoch < f.epochs; epoch++) {
      const order = shuffled(f.rows, f.seed, epoch);
      let total = 0;
      let steps = 0;
      for (let start = 0; start < f.rows; start += f.batch) {
        const index = order.subarray(start, Math.min(f.rows, start + f.batch));
        const cost = optimizer.minimize(
          () => {
            const ce = f.loss(index, w, b);
            return tf.add(ce, tf.mul(f.weightDecay / 2, tf.sum(tf.square(w)))) as tf.Scalar;
          },
          true,
          [w, b],
        );
        try {
          total += (await (cost as tf.Scalar).data())[0] as number;
        } finally {
          cost?.dispose();
        }
        steps++;
      }
      losses.push(total / steps);
    }
    const [weights, bias] = await Promise.all([w.data(), b.data()]);
    return { weights: Float32Array.from(weights), bias: Float32Array.from(bias), losses };
  } finally {
    optimizer.dispose();
    tf.dispose([w, b]);
  }
}
let probes = 0;

/** Refuses labels outside 0…classes−1 (tf.oneHot would silently give them an all-zero row). */
function checkLabels(labels: ArrayLike<number>, classes: number, what: string): void {
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i] as number;
    if (!(Number.isInteger(l) && l >= 0 && l < classes)) throw new Error(`${what}: label ${l} outside 0…${classes - 1}`);
  }
}

/** Standardised rows `[n, dims]` of `x` as a tensor. */
function standardized(x: Float32Array, dims: number, mean: Float32Array, invStd: Float32Array): tf.Tensor2D {
  return tf.tidy(() => tf.mul(tf.sub(tf.tensor2d(x, [x.length / dims, dims]), tf.tensor1d(mean)), tf.tensor1d(invStd)) as tf.Tensor2D);
}

/** Gathers rows `index` of the `[rows, width]` array `x`. */
function gatherRows(x: Float32Array | Uint8Array, width: number, index: Int32Array): Float32Array {
  const out = new Float32Array(index.length * width);
  index.forEach((r, i) => out.set(x.subarray(r * width, (r + 1) * width), i * width));
  return out;
}

function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D, classes: number): tf.Scalar {
  return tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(labels, classes), tf.logSoftmax(logits)), -1))) as tf.Scalar;
}

/**
 * Logistic regression on `features` (`[rows, dims]` row-major) with one label per row.
 */
export function fitLinearProbe(
  features: Float32Array,
  labels: ArrayLike<number>,
  dims: number,
  options: ProbeOptions,
): Promise<LinearClassifier> {
  const { classes } = options;
  const rows = features.length / dims;
  if (!Number.isInteger(dims) || dims < 1 || !Number.isInteger(rows) || rows < 1)
    throw new Error(`linear probe: ${features.length} values are not whole rows of ${dims}`);
  if (labels.length !== rows) throw new Error(`linear probe: ${labels.length} labels for ${rows} rows`);
  checkLabels(labels, classes, 'linear probe');
  const { mean, invStd } = standardizer(features, dims);
  const labelArray = Int32Array.from(labels);
  const fitted = fit({
    dims,
    classes,
    rows,
    epochs: options.epochs ?? 40,
    batch: options.batch ?? 256,
    learningRate: options.learningRate ?? 0.01,
    weightDecay: options.weightDecay ?? 1e-4,
    seed: options.seed ?? 0,
    loss: (index, w, b) => {
      const x = standardized(gatherRows(features, dims, index), dims, mean, invStd);
      const y = tf.tensor1d(
        Int32Array.from(index, (r) => labelArray[r] as number),
        'int32',
      );
      return crossEntropy(tf.add(tf.matMul(x, w), b) as tf.Tensor2D, y, classes);
    },
  });
  return fitted.then((f) => ({ dims, classes, mean, invStd, ...f }));
}

/** The class of each row of `features` (`[rows, dims]`) under `probe`. */
export async function predictLinear(probe: LinearClassifier, features: Float32Array): Promise<Int32Array> {
  const classes = tf.tidy(() => {
    const x = standardized(features, probe.dims, probe.mean, probe.invStd);
    const logits = tf.add(tf.matMul(x, tf.tensor2d(probe.weights, [probe.dims, probe.classes])), tf.tensor1d(probe.bias));
    return tf.argMax(logits, 1);
  });
  try {
    return Int32Array.from(await classes.data());
  } finally {
    classes.dispose();
  }
}

/** The shapes of a dense probe's inputs: a `grid × grid × dims` feature map per image, labels at `size × size`. */
export interface DenseShape {
  grid: number;
  dims: number;
  size: number;
}

/** Pixel logits `[n, size, size, classes]` of standardised cells `[n·grid², dims]`. */
function denseLogits(cells: tf.Tensor2D, w: tf.Tensor, b: tf.Tensor, n: number, shape: DenseShape, classes: number): tf.Tensor4D {
  const logits = tf.reshape(tf.add(tf.matMul(cells, w), b), [n, shape.grid, shape.grid, classes]) as tf.Tensor4D;
  return tf.image.resizeBilinear(logits, [shape.size, shape.size], false, true);
}

/**
 * A 1×1 linear classifier on dense features `[images, grid, grid, dims]` against per-pixel
 * labels `[images, size, size]`, its logits upsampled to the labels' resolution.
 */
export function fitDenseProbe(
  features: Float32Array,
  labels: Uint8Array,
  shape: DenseShape,
  options: ProbeOptions,
): Promise<LinearClassifier> {
  const { classes } = options;
  const { grid, dims, size } = shape;
  const images = features.length / (grid * grid * dims);
  if (!Number.isInteger(images) || images < 1)
    throw new Error(`dense probe: ${features.length} feature values are not whole ${grid}×${grid}×${dims} maps`);
  if (labels.length !== images * size * size) throw new Error(`dense probe: ${labels.length} labels for ${images} maps of ${size}×${size}`);
  checkLabels(labels, classes, 'dense probe');
  const { mean, invStd } = standardizer(features, dims);
  const cellsPerImage = grid * grid * dims;
  const fitted = fit({
    dims,
    classes,
    rows: images,
    epochs: options.epochs ?? 15,
    batch: options.batch ?? 16,
    learningRate: options.learningRate ?? 0.01,
    weightDecay: options.weightDecay ?? 1e-4,
    seed: options.seed ?? 0,
    loss: (index, w, b) => {
      const cells = standardized(gatherRows(features, cellsPerImage, index), dims, mean, invStd);
      const y = tf.tensor1d(Int32Array.from(gatherRows(labels, size * size, index)), 'int32');
      const logits = denseLogits(cells, w, b, index.length, shape, classes);
      return crossEntropy(tf.reshape(logits, [-1, classes]) as tf.Tensor2D, y, classes);
    },
  });
  return fitted.then((f) => ({ dims, classes, mean, invStd, ...f }));
}

/** The class of each pixel (`[images, size, size]`) of dense `features` under `probe`, `chunk` images at a time. */
export async function predictDense(probe: LinearClassifier, features: Float32Array, shape: DenseShape, chunk = 32): Promise<Uint8Array> {
  const perImage = shape.grid * shape.grid * shape.dims;
  const images = features.length / perImage;
  const out = new Uint8Array(images * shape.size * shape.size);
  for (let start = 0; start < images; start += chunk) {
    const n = Math.min(chunk, images - start);
    const predicted = tf.tidy(() => {
      const cells = standardized(features.subarray(start * perImage, (start + n) * perImage), shape.dims, probe.mean, probe.invStd);
      const logits = denseLogits(
        cells,
        tf.tensor2d(probe.weights, [probe.dims, probe.classes]),
        tf.tensor1d(probe.bias),
        n,
        shape,
        probe.classes,
      );
      return tf.argMax(logits, 3);
    });
    try {
      out.set(await predicted.data(), start * shape.size * shape.size);
    } finally {
      predicted.dispose();
    }
  }
  return out;
}
