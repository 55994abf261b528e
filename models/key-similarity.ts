/**
 * Queries against a bank of keys that takes no gradient (a MoCo queue): `q · keysᵀ`, `[N, K]`.
 *
 * The gradient is written out, `dq = dy · keys`: the engine's, through a transpose of the keys,
 * transposed the queue forward and back again every step. On wasm, a batch's few queries are
 * multiplied keys first, `(keys · qᵀ)ᵀ`. The engine's form `q · keysᵀ` has a right operand as
 * wide as the queue (4 096), which goes to XNNPACK, and XNNPACK packs it on every call (a queue is
 * a new tensor every step); `keys · qᵀ` has one as wide as the batch, densestream's
 * `batch_matmul`'s. At a 4 096-key queue the values and the query gradient came out the same
 * bits as the engine's form. Measured (forward and query gradient, a fresh queue each call,
 * 2-core EPYC beside another job, medians of 7 × 15 calls, ms): 64 queries against 4 096 keys
 * 12.9 the engine's form, 9.4 flagged (`q · keysᵀ` by `batch_matmul`'s transpose flag), 8.8 keys
 * first; 128 against 4 096: 22.8, 20.8, 19.0; DenseCL's 256 against 512: 5.2, 5.0, 5.0; 1 024
 * (DenseCL on every cell) against 512: 18.7, 19.5, 20.2, and against 4 096: 133, 143, 153. So
 * keys first up to {@link KEYS_FIRST_MAX_QUERIES} queries, the engine's form above.
 */
import * as tf from '@tensorflow/tfjs';

/** The most queries that are multiplied keys first on wasm (measured above). */
export const KEYS_FIRST_MAX_QUERIES = 256;

/**
 * `q · keysᵀ` for queries `[N, D]` and keys `[K, D]`. Only `q` is differentiated: no gradient
 * reaches `keys` through this, on any backend, so pass keys that take none (a queue).
 */
export function keySimilarities(q: tf.Tensor2D, keys: tf.Tensor2D): tf.Tensor2D {
  const backend = tf.getBackend();
  const forward = (x: tf.Tensor2D): tf.Tensor2D => {
    if (backend !== 'wasm') return tf.matMul(x, keys, false, true);
    if (x.shape[0] <= KEYS_FIRST_MAX_QUERIES) return tf.transpose(tf.matMul(keys, tf.transpose(x))) as tf.Tensor2D;
    // The engine's form: no slower here (above), and without densestream's kernels tfjs's wasm
    // kernel multiplies a flagged product element by element.
    return tf.matMul(x, tf.transpose(keys));
  };
  const similarities = tf.customGrad((...inputs: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [x, save] = inputs as [tf.Tensor2D, tf.GradSaveFunc];
    save([keys]); // kept for the gradient: keys made inside the differentiated function are freed after the forward
    return {
      value: forward(x),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.matMul(dy as tf.Tensor2D, saved[0] as tf.Tensor2D),
    };
  });
  return similarities(q) as tf.Tensor2D;
}
