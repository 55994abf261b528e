/**
 * tfjs has no stopGradient. `detach(f)` runs `f` as the forward pass of a custom gradient with
 * no inputs: the engine records nothing while a kernel runs, so `f`'s ops stay off the gradient
 * tape and its result has no history. The earlier copy through the CPU (`tf.tensor(t.dataSync())`)
 * did the same on wasm but stalls a GPU and cannot run at all on WebGPU under Node, whose
 * synchronous read needs an OffscreenCanvas.
 */
import * as tf from '@tensorflow/tfjs';

/** The result of `f`, computed off the gradient tape (no gradient flows into or through it). */
export function detach<T extends tf.Tensor>(f: () => T): T {
  return tf.customGrad(() => ({ value: f(), gradFunc: () => [] }))() as T;
}
