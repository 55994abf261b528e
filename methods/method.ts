/**
 * What every SSL method provides to the shared trainer (solo-learn's habit): its trainable
 * variables, a loss on a batch, an optional update after each optimiser step (momentum
 * encoders, queues), and the state a checkpoint must hold.
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../core/batch.js';

export interface Method {
  readonly name: string;
  /** Variables the optimiser updates (online encoder and heads). */
  readonly trainable: tf.Variable[];
  /** The loss on one batch; runs inside `optimizer.minimize`. Its parts go to `parts` for logging ({@link logPart}). */
  loss(batch: Batch, parts: LossParts): tf.Scalar;
  /** L2-normalised online projections `[B, D]` of images `[B, H, W, 3]`, in inference mode (monitors, collapse checks). */
  embed(images: tf.Tensor4D): tf.Tensor2D;
  /**
   * Before the step, off the gradient tape: what the loss needs on the CPU, read asynchronously
   * (a GPU backend stalls on a synchronous read, and WebGPU under Node has none). The trainer
   * awaits it before `loss`; `loss` works without it on wasm and cpu.
   */
  prepare?(batch: Batch): Promise<void>;
  /**
   * Before each step (and before `prepare`): the 0-based index of the step about to run, a resumed
   * run's included, for a method whose loss follows a schedule (DenseCL's dense warm-up). A
   * caller that never calls it gets step 0's loss.
   */
  atStep?(step: number): void;
  /** After the optimiser step: momentum updates, enqueueing keys. */
  afterStep?(): void;
  /** Everything a checkpoint stores besides the optimiser: weights, momentum copies, queues (by stable name). */
  checkpointState(): Record<string, tf.Variable>;
  dispose(): void;
}

/**
 * The parts of a loss, for the metrics log: scalars the trainer reads only when it writes a log
 * line, or numbers already on the CPU (counts). Reading every part with `dataSync()` on every
 * step would stall a GPU backend once per part per step.
 */
export type LossParts = Record<string, tf.Scalar | number>;

/** Records `value` as part `name`: a copy kept past the loss's tidy, read only if logged. */
export function logPart(parts: LossParts, name: string, value: tf.Scalar): void {
  const previous = parts[name];
  if (previous instanceof tf.Tensor) previous.dispose();
  parts[name] = tf.keep(tf.clone(value));
}

/** Reads `parts` into numbers, asynchronously, and frees their tensors. */
export async function readParts(parts: LossParts): Promise<Record<string, number>> {
  const entries = Object.entries(parts);
  try {
    const values = await Promise.all(entries.map(async ([, v]) => (typeof v === 'number' ? v : ((await v.data())[0] as number))));
    return Object.fromEntries(entries.map(([k], i) => [k, values[i] as number]));
  } finally {
    disposeParts(parts);
  }
}

/** Frees the tensors of parts that will not be read. */
export function disposeParts(parts: LossParts): void {
  for (const [k, v] of Object.entries(parts)) {
    if (v instanceof tf.Tensor) v.dispose();
    delete parts[k];
  }
}
