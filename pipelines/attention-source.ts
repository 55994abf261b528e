/**
 * `--attention boundary|frequency-tuned|model:PATH|encoder:RUN`: which attention source a job uses
 * (`encoder:RUN`: see `encoder-attention.ts`).
 * `model:PATH` is a user's tfjs model on local disk that maps an RGB image in [0, 1]
 * (`[1, H, W, 3]`, resized to the model's input size) to a map (`[1, h, w]` or `[1, h, w, 1]`).
 */
import * as tf from '@tensorflow/tfjs';
import { loadModel, type LoadedModel } from '../models/load-model.js';
import { saliencyAttention, type AttentionSource } from '../operators/attention-map.js';
import { SALIENCY_METHODS, type SaliencyMethod } from '../operators/saliency.js';
import { openEncoderAttention } from './encoder-attention.js';
import { encoderRunOf } from './run-folder.js';

/** An attention source that runs `model` on each image. */
export function modelAttention(model: LoadedModel): AttentionSource {
  const [, h, w] = model.inputShape;
  if (!h || !w || h < 1 || w < 1)
    throw new Error(`--attention model: the model needs a fixed input size, got [${model.inputShape.join(', ')}]`);
  return async (pixels) => {
    const map = tf.tidy(() => {
      const image = tf.tensor3d(pixels.data, [pixels.height, pixels.width, pixels.channels], 'int32');
      const rgb = pixels.channels === 1 ? tf.tile(image, [1, 1, 3]) : image;
      const input = tf.image.resizeBilinear(tf.div(tf.cast(rgb, 'float32'), 255) as tf.Tensor3D, [h, w]).expandDims(0);
      const out = model.predict(input);
      const channels = out.rank === 4 ? tf.mean(out, 3) : out; // several channels: their mean
      if (channels.rank !== 3)
        throw new Error(`--attention model: expected an output [1, h, w] or [1, h, w, c], got [${out.shape.join(', ')}]`);
      return tf.relu(channels);
    });
    const [, mh, mw] = map.shape as [number, number, number];
    try {
      return { data: Float32Array.from(await map.data()), width: mw, height: mh }; // asynchronous: a GPU backend has no synchronous read under Node
    } finally {
      map.dispose();
    }
  };
}

/**
 * Parses `--attention`, loading the model for `model:PATH` or the checkpoint for `encoder:RUN`.
 * @param saliencySize A saliency method's map side (`--saliency-size`; default its own, 64).
 */
export async function openAttentionSource(value: string, field = '--attention', saliencySize?: number): Promise<AttentionSource> {
  const run = encoderRunOf(value, field);
  if (run !== undefined) return openEncoderAttention(run, field).source; // lives as long as the job
  if (value.startsWith('model:')) {
    const path = value.slice('model:'.length);
    if (!path) throw new Error(`${field}: model needs a path, e.g. model:./saliency-net/model.json`);
    return modelAttention(await loadModel(path));
  }
  if ((SALIENCY_METHODS as readonly string[]).includes(value))
    return saliencyAttention({ method: value as SaliencyMethod, ...(saliencySize === undefined ? {} : { size: saliencySize }) });
  throw new Error(`${field}: expected one of ${SALIENCY_METHODS.join('|')}|model:PATH|encoder:RUN, got "${value}"`);
}
