/**
 * What every SSL method provides to the shared trainer (solo-learn's habit): its trainable
 * variables, a loss on a batch, an optional update after each optimiser step (momentum
 * encoders, queues), and the state a checkpoint must hold.
 */
import type * as tf from '@tensorflow/tfjs';
import type { Batch } from '../operators/batch.js';

export interface Method {
  readonly name: string;
  /** Variables the optimiser updates (online encoder and heads). */
  readonly trainable: tf.Variable[];
  /** The loss on one batch; runs inside `optimizer.minimize`. Scalar parts go to `parts` for logging. */
  loss(batch: Batch, parts: Record<string, number>): tf.Scalar;
  /** L2-normalised online projections `[B, D]` of images `[B, H, W, 3]`, in inference mode (monitors, collapse checks). */
  embed(images: tf.Tensor4D): tf.Tensor2D;
  /** After the optimiser step: momentum updates, enqueueing keys. */
  afterStep?(): void;
  /** Everything a checkpoint stores besides the optimiser: weights, momentum copies, queues (by stable name). */
  checkpointState(): Record<string, tf.Variable>;
  dispose(): void;
}
