import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';

type Pad = 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;

/** The engine's `Conv2DBackpropFilter` on whatever backend is active: dW of a Conv2D of x whose output gradient is dy. */
export function backpropFilter(x: tf.Tensor, dy: tf.Tensor, filterShape: readonly number[], pad: Pad, strides = 1): tf.Tensor {
  return tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, {
    strides,
    pad,
    dataFormat: 'NHWC',
    filterShape,
  } as unknown as tf.NamedAttrMap) as tf.Tensor;
}

/**
 * Runs `run` on cpu, then on wasm, and expects the same result from both, value for value,
 * with wasm's `numTensors` flat (`run` reads its values back inside a tidy).
 */
export async function expectWasmMatchesCpu<T>(run: () => T): Promise<void> {
  await tf.setBackend('cpu');
  const ref = run();
  await tf.setBackend('wasm');
  const before = tf.memory().numTensors;
  expect(run()).toEqual(ref);
  expect(tf.memory().numTensors).toBe(before);
}
