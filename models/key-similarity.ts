/**
 * Queries against a bank of keys that takes no gradient (a MoCo queue): `q · keysᵀ`, `[N, K]`.
 *
 * On wasm it is computed as `(keys · qᵀ)ᵀ`, with the gradient `dy · keys`. XNNPACK packs a
 * product's right-hand operand on every call, and a queue is a new tensor every step: `q · keysᵀ`
 * packed the queue's 4 096 × 128 values each step, `keys · qᵀ` packs the batch's 128 × 64. The
 * engine's form also transposed the queue forward and back again for the gradient. Measured side
 * by side on `[64, 128]` queries and a fresh `[4 096, 128]` queue, with the forward and the query
 * gradient: 15.8 ms the engine's form, 12.3 the transposed product with the engine's gradient;
 * the values and the gradient come out bit for bit the same.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * `q · keysᵀ` for queries `[N, D]` and keys `[K, D]`. Only `q` is differentiated: no gradient
 * reaches `keys` through this, on any backend, so pass keys that take none (a queue).
 */
export function keySimilarities(q: tf.Tensor2D, keys: tf.Tensor2D): tf.Tensor2D {
  const wasm = tf.getBackend() === 'wasm';
  const similarities = tf.customGrad((...inputs: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [x, save] = inputs as [tf.Tensor2D, tf.GradSaveFunc];
    save([keys]); // kept for the gradient: keys made inside the differentiated function are freed after the forward
    return {
      value: wasm ? tf.transpose(tf.matMul(keys, tf.transpose(x))) : tf.matMul(x, keys, false, true),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.matMul(dy as tf.Tensor2D, saved[0] as tf.Tensor2D),
    };
  });
  return similarities(q) as tf.Tensor2D;
}
