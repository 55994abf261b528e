/**
 * Queries against a bank of keys that takes no gradient (a MoCo queue): `q · keysᵀ`, `[N, K]`.
 *
 * On wasm it is computed as `(keys · qᵀ)ᵀ`, with the gradient `dy · keys`. The engine's form
 * `q · keysᵀ` is a product with a right operand 4 096 wide, which goes to XNNPACK, and XNNPACK
 * packs that operand on every call (the queue is a new tensor every step); `keys · qᵀ` has one
 * as wide as the batch, densestream's `batch_matmul`'s. The engine's gradient also transposed
 * the queue forward and back again. At a 4 096-key queue the values and the query gradient came
 * out the same bits as the engine's form.
 * Measured (forward and query gradient, a fresh queue each call, 2-core EPYC beside another
 * job, median of 7 × 20 calls): 16.6 → 10.4 ms for `[64, 128]` queries against 4 096 keys,
 * 5.3 → 4.8 ms for DenseCL's `[256, 128]` against 512.
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
