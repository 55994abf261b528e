/**
 * Batch norm over the leading axes of `[…, C]` activations, in training (batch statistics) and
 * in inference (running statistics).
 *
 * Training runs as one fused kernel pair on wasm with densestream's kernels
 * (`kernels/layer-kernels.ts`: moments and normalisation forward, with a ResNet's residual and
 * ReLU when asked; the three gradients backward), and as broadcasting tfjs ops everywhere else.
 * Both give the same values and gradients (tested).
 */
import * as tf from '@tensorflow/tfjs';
import { BATCH_NORM_KERNEL, BATCH_NORM_RELU_KERNEL, type BatchNormAttrs } from './kernels/layer-kernels.js';
import { wasmKernelThreads } from './kernels/wasm-kernels.js';

export const BN_EPSILON = 1e-5;

/**
 * Batch norm of an already centred input, as broadcasting ops: `(x − μ)·(γ / √(σ² + ε)) + β`.
 * Not `tf.batchNorm`: its gradient broadcasts per-channel values with `tf.tile`, which on wasm
 * took 510 of 1 117 ms of a ResNet step (measured); broadcasting ops' gradients reduce with
 * `Sum` instead. Same values and gradients (tested).
 */
export function scaleCentred<T extends tf.Tensor>(
  centred: T,
  variance: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  epsilon = BN_EPSILON,
): T {
  return tf.add(tf.mul(centred, tf.mul(tf.rsqrt(tf.add(variance, epsilon)), gamma)), beta) as T;
}

export interface BatchNormResult<T extends tf.Tensor> {
  /** The normalised activation, `γ·(x − mean)/√(variance + ε) + β`. */
  y: T;
  /** The batch's per-channel mean `[C]`. */
  mean: tf.Tensor1D;
  /** The batch's per-channel biased variance `[C]` (divided by the row count, as in the normalisation). */
  variance: tf.Tensor1D;
}

/**
 * Training-mode batch norm of `x [..., C]` with `gamma`, `beta` `[C]`. Every output is
 * differentiable, the statistics too (a caller that only updates running statistics from them
 * adds no gradient).
 */
export function batchNormTraining<T extends tf.Tensor>(x: T, gamma: tf.Tensor, beta: tf.Tensor, epsilon = BN_EPSILON): BatchNormResult<T> {
  return normaliseTraining(x, gamma, beta, epsilon, undefined, false);
}

/**
 * `relu(batchNormTraining(x).y + residual)`, a ResNet layer's end (`residual` optional: the
 * skip connection). On wasm one kernel does the three passes' work in one, and its gradient
 * one fewer (same values, bit for bit); elsewhere it is those ops. `mean` and `variance` are
 * x's batch statistics, as from batchNormTraining.
 */
export function batchNormRelu<T extends tf.Tensor>(
  x: T,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  residual?: T,
  epsilon = BN_EPSILON,
): BatchNormResult<T> {
  if (residual && !tf.util.arraysEqual(residual.shape, x.shape)) {
    throw new Error(`batch norm: the residual ${JSON.stringify(residual.shape)} must have x's shape ${JSON.stringify(x.shape)}`);
  }
  return normaliseTraining(x, gamma, beta, epsilon, residual, true);
}

function normaliseTraining<T extends tf.Tensor>(
  x: T,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  epsilon: number,
  residual: T | undefined,
  relu: boolean,
): BatchNormResult<T> {
  const channels = x.shape[x.rank - 1];
  if (x.rank < 2 || gamma.size !== channels || beta.size !== channels) {
    throw new Error(`batch norm: expected x [..., C] with gamma and beta [C], got ${JSON.stringify([x.shape, gamma.shape, beta.shape])}`);
  }
  const fused = wasmKernelThreads() > 0 && x.dtype === 'float32' && (residual?.dtype ?? 'float32') === 'float32';
  if (fused && x.size > 0 && gamma.rank === 1 && beta.rank === 1) {
    const inputs: tf.NamedTensorMap = residual ? { x, gamma, beta, residual } : { x, gamma, beta };
    const attrs: BatchNormAttrs = { epsilon };
    const kernel = relu ? BATCH_NORM_RELU_KERNEL : BATCH_NORM_KERNEL;
    const [y, mean, variance] = tf.engine().runKernel(kernel, inputs, attrs as unknown as tf.NamedAttrMap) as [T, tf.Tensor1D, tf.Tensor1D];
    return { y, mean, variance };
  }
  const axes = Array.from({ length: x.rank - 1 }, (_, i) => i);
  const mean = tf.mean(x, axes) as tf.Tensor1D;
  const centred = tf.sub(x, mean) as T;
  const variance = tf.mean(tf.square(centred), axes) as tf.Tensor1D;
  let y = scaleCentred(centred, variance, gamma, beta, epsilon);
  if (residual) y = tf.add(y, residual) as T;
  if (relu) y = tf.relu(y) as T;
  return { y, mean, variance };
}
