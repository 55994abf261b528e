/**
 * Projection heads. One MLP type serves all three uses:
 * - global projector (MoCo v2): `[B, C]` → fc → ReLU → fc → `[B, D]`;
 * - dense projector (DenseCL): the same on every cell of `[B, S, S, C]` — a 1×1 convolution is
 *   a fully connected layer applied per cell, done here as one matMul over `B·S·S` rows;
 * - predictor (EMA methods): an MLP on the projection.
 */
import * as tf from '@tensorflow/tfjs';
import { variableFrom } from './variables.js';
import { tfSeed } from './seed.js';
import { linearBound, type WeightInit } from './weight-init.js';

export interface Mlp {
  readonly trainable: tf.Variable[];
  /** Variables by their name within the head (without the scope). */
  readonly weights: Record<string, tf.Variable>;
  /** `[N, in]` → `[N, out]`. */
  apply(x: tf.Tensor2D): tf.Tensor2D;
  /** `[B, S, S, in]` → `[B, S, S, out]`, cell by cell. */
  applyDense(x: tf.Tensor4D): tf.Tensor4D;
  dispose(): void;
}

/**
 * An MLP with ReLU between layers; `dims` = [in, hidden…, out]; `name` scopes its variables.
 * Seeded; drawn He-uniform with zero biases, or with `init: 'reference'` as PyTorch's
 * `nn.Linear` draws, weights and biases U(±1/√in) (weight-init.ts).
 */
export function createMlp(dims: number[], seed: number, name: string, init: WeightInit = 'densestream'): Mlp {
  if (dims.length < 2 || !dims.every((d) => Number.isInteger(d) && d >= 1)) {
    throw new Error(`${name}: expected layer sizes [in, …, out] of positive integers, got ${JSON.stringify(dims)}`);
  }
  const layers = dims.slice(1).map((out, i) => {
    const inDim = dims[i] as number;
    const limit = linearBound(inDim, init);
    const bias =
      init === 'reference' ? tf.randomUniform([out], -limit, limit, 'float32', tfSeed(seed, `${name}/fc${i}/b`)) : tf.zeros([out]);
    return {
      w: variableFrom(tf.randomUniform([inDim, out], -limit, limit, 'float32', tfSeed(seed, `${name}/fc${i}`)), true, `${name}/fc${i}/w`),
      b: variableFrom(bias, true, `${name}/fc${i}/b`),
    };
  });
  const weights: Record<string, tf.Variable> = {};
  layers.forEach((l, i) => {
    weights[`fc${i}/w`] = l.w;
    weights[`fc${i}/b`] = l.b;
  });
  const apply = (x: tf.Tensor2D): tf.Tensor2D =>
    tf.tidy(() => {
      let h = x;
      layers.forEach((l, i) => {
        h = tf.add(tf.matMul(h, l.w as tf.Tensor2D), l.b);
        if (i < layers.length - 1) h = tf.relu(h);
      });
      return h;
    });
  return {
    trainable: layers.flatMap((l) => [l.w, l.b]),
    weights,
    apply,
    applyDense: (x) =>
      tf.tidy(() => {
        const [b, s1, s2, c] = x.shape;
        return tf.reshape(apply(tf.reshape(x, [b * s1 * s2, c])), [b, s1, s2, dims[dims.length - 1] as number]);
      }),
    dispose: () => tf.dispose(layers.flatMap((l) => [l.w, l.b])),
  };
}
