/**
 * A BatchMatMul gradient for wasm with explicit transposes. tfjs's own gradient multiplies with
 * the transpose flags (`matMul(a, dy, true, false)`), and wasm runs flagged products far
 * slower: [2048, 4096]ᵀ × [2048, 128] took 3.9 s flagged and 0.11 s transposed first
 * (measured), which made DenseCL's dense queue the whole step.
 *
 * `c = op(a)·op(b)` with `op` a transpose when flagged; with `T` a transpose of the last two axes:
 * - `a·b`:     da = dy·bᵀ,   db = aᵀ·dy
 * - `a·bᵀ`:    da = dy·b,    db = dyᵀ·a
 * - `aᵀ·b`:    da = b·dyᵀ,   db = a·dy
 * - `aᵀ·bᵀ`:   da = bᵀ·dyᵀ,  db = dyᵀ·aᵀ
 */
import * as tf from '@tensorflow/tfjs';

const T = (x: tf.Tensor): tf.Tensor => {
  const perm = x.shape.map((_, i) => i);
  perm.push(perm.splice(perm.length - 2, 1)[0] as number); // swap the last two axes
  return tf.transpose(x, perm);
};
const mm = (x: tf.Tensor, y: tf.Tensor): tf.Tensor => tf.matMul(x as tf.Tensor3D, y as tf.Tensor3D);

let installed = false;

/** Installs the gradient (idempotent); other backends and broadcast batch shapes keep tfjs's own. */
export function installFastMatMulGradient(): void {
  if (installed) return;
  const original = tf.getGradient(tf.BatchMatMul);
  if (!original) throw new Error('matmul gradient: tfjs has no BatchMatMul gradient to wrap');
  installed = true;
  tf.registerGradient({
    kernelName: tf.BatchMatMul,
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, saved, attrs) => {
      const [a, b] = saved as [tf.Tensor, tf.Tensor];
      const sameBatch = a.rank === b.rank && a.shape.slice(0, -2).join() === b.shape.slice(0, -2).join();
      if (tf.getBackend() !== 'wasm' || !sameBatch) return original.gradFunc(dy, saved, attrs);
      const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
      const g = dy as tf.Tensor;
      if (!transposeA && !transposeB) return { a: () => mm(g, T(b)), b: () => mm(T(a), g) };
      if (!transposeA && transposeB) return { a: () => mm(g, b), b: () => mm(T(g), a) };
      if (transposeA && !transposeB) return { a: () => mm(b, T(g)), b: () => mm(a, g) };
      return { a: () => mm(T(b), T(g)), b: () => mm(T(g), T(a)) };
    },
  });
}
