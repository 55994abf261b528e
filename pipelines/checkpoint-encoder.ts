/**
 * The trained encoder of a `train` run, for jobs that use features (export, evaluation): the
 * online encoder's weights from the run's checkpoint, rebuilt from the configuration the
 * checkpoint records. Without a checkpoint, a seeded random-init encoder: the baseline every
 * trained one is compared with.
 */
import * as tf from '@tensorflow/tfjs';
import { createEncoder } from '../models/encoders.js';
import { encoderPreset, ENCODER_NAMES, type Encoder, type EncoderName } from '../models/encoder-spec.js';
import { assignSaved, readSaved, takeTensors } from '../models/weights-io.js';
import type { CheckpointMeta } from '../train/trainer.js';
import type { TrainConfig } from './train-schema.js';
import type { WeightInit } from '../models/weight-init.js';

/** tfjs names variables globally: each loaded encoder gets its own scope. */
let loaded = 0;
const scope = () => `features/encoder${loaded++}`;

export { ENCODER_NAMES, type EncoderName };

export interface CheckpointEncoder {
  encoder: Encoder;
  encoderName: EncoderName;
  /** The checkpoint folder, or `random-init:SEED` (`random-init:SEED:reference` for the reference draw). */
  origin: string;
  /** Training steps behind the weights (0 for random init). */
  step: number;
  /** The view size the encoder was trained at (the export default). */
  trainedSize: number;
}

/** Loads the online encoder of the checkpoint at `dir` (a folder `checkpointDir` in run-folder.ts accepted). */
export function loadCheckpointEncoder(dir: string): CheckpointEncoder {
  const saved = readSaved(dir);
  const meta = saved.meta as CheckpointMeta;
  const config = meta.config as Partial<TrainConfig>;
  const encoderName = config.encoder ?? 'slim';
  const encoder = createEncoder(encoderPreset(encoderName, config.size ?? 64), 0, scope());
  const tensors = takeTensors(saved, 'online/encoder/'); // frees the rest
  try {
    assignSaved(encoder.weights, { ...saved, tensors });
  } catch (err) {
    encoder.dispose();
    throw err;
  } finally {
    tf.dispose(tensors.map((t) => t.tensor));
  }
  return { encoder, encoderName, origin: dir, step: meta.step, trainedSize: config.size ?? 64 };
}

/** A seeded random-init encoder, drawn as `train --seed S --init DRAW` draws its online encoder. */
export function randomInitEncoder(
  encoderName: EncoderName,
  seed: number,
  size: number,
  init: WeightInit = 'densestream',
): CheckpointEncoder {
  return {
    encoder: createEncoder(encoderPreset(encoderName, size), seed, scope(), init),
    encoderName,
    origin: `random-init:${seed}${init === 'densestream' ? '' : `:${init}`}`,
    step: 0,
    trainedSize: size,
  };
}
