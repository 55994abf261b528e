import type * as tf from '@tensorflow/tfjs';
import type { Batch } from '../../core/batch.js';
import { disposeParts, type LossParts, type Method } from '../../methods/method.js';

/** `method.loss(batch)` with its logged parts freed at once: for tests that do not read them. */
export function lossOnly(method: Method, batch: Batch): tf.Scalar {
  const parts: LossParts = {};
  try {
    return method.loss(batch, parts);
  } finally {
    disposeParts(parts);
  }
}
