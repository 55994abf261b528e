/**
 * `--attention encoder:RUN`: where a trained encoder looks, as an attention map. A ViT gives
 * its last block's CLS attention, averaged over heads (DINO's map); a CNN gives the activation
 * energy of its last feature map, the channel-wise L2 norm of each cell. The map has the
 * encoder's grid resolution (8×8 for the slim ResNet or ViT-Tiny at 64 px); `attentionCrop`,
 * `foregroundMask` and `multiView` take any resolution.
 */
import * as tf from '@tensorflow/tfjs';
import { createEncoder } from '../models/encoders.js';
import type { Encoder, EncoderConfig } from '../models/encoder-spec.js';
import { copyWeights } from '../methods/momentum.js';
import type { ViTEncoder } from '../models/vit.js';
import { normalizeRgb } from '../operators/batch.js';
import type { AttentionSource, FeatureMaskSource } from '../operators/attention-map.js';
import { featureKmeansMask } from '../operators/foreground-mask.js';
import type { Pixels } from '../core/index.js';
import { loadCheckpointEncoder } from './checkpoint-encoder.js';
import type { TrainerHook } from '../core/trainer-hook.js';
import { checkpointDir } from './run-folder.js';

const hasAttention = (e: Encoder): e is ViTEncoder => typeof (e as Partial<ViTEncoder>).attention === 'function';

/**
 * The whole image normalised as batches are, then resized to `size²`, `[1, size, size, 3]`
 * (normalising first is exact: it is affine per channel, and bilinear weights sum to 1).
 */
function imageTensor(p: Pixels, size: number): tf.Tensor4D {
  const rgb = p.channels === 3 ? p.data : Uint8Array.from({ length: p.data.length * 3 }, (_, i) => p.data[Math.floor(i / 3)] as number);
  const x = new Float32Array(rgb.length);
  normalizeRgb(rgb, x);
  return tf.tidy(() => tf.image.resizeBilinear(tf.tensor4d(x, [1, p.height, p.width, 3]), [size, size]));
}

/** The attention of `encoder` on images resized to `size` (inference mode), read back asynchronously (a GPU backend has no synchronous read under Node). */
export function encoderAttention(encoder: Encoder, size: number): AttentionSource {
  return async (pixels) => {
    const map = tf.tidy(() => {
      const x = imageTensor(pixels, size);
      return hasAttention(encoder)
        ? tf.mean(encoder.attention(x), 1) // [1, G, G]: heads averaged
        : tf.sqrt(tf.sum(tf.square(encoder.apply(x, { training: false }).dense), 3)); // [1, S, S]
    });
    const [, height, width] = map.shape as [number, number, number];
    try {
      return { data: Float32Array.from(await map.data()), width, height };
    } finally {
      map.dispose();
    }
  };
}

/** Foreground masks by 2-means on `encoder`'s feature cells (`--masks encoder`), at its grid resolution. */
export function encoderKmeansMask(encoder: Encoder, size: number, seed = 0): FeatureMaskSource {
  return async (pixels, sample) => {
    const dense = tf.tidy(() => encoder.apply(imageTensor(pixels, size), { training: false }).dense);
    const [, grid, , dims] = dense.shape as [number, number, number, number];
    let data: Float32Array;
    try {
      data = Float32Array.from(await dense.data());
    } finally {
      dense.dispose();
    }
    return featureKmeansMask(data, dims, grid, grid, sample.id, seed);
  };
}

/** What `--attention encoder[:RUN]` gives a job: the attention, masks from the same encoder, and its release. */
export interface EncoderMaps {
  source: AttentionSource;
  mask: FeatureMaskSource;
  dispose(): void;
}

/**
 * `--attention encoder` during `train`: the attention of the encoder being trained, read from a
 * copy of its online weights that `refresh()` brings up to date (every `--attention-refresh`
 * steps), so views are cut by what the encoder currently attends to. Samples already in flight
 * when a refresh lands may see either copy, so such a run is not bit-reproducible.
 */
export function liveEncoderAttention(
  state: Readonly<Record<string, tf.Variable>>,
  config: EncoderConfig,
  size: number,
  seed = 0,
): EncoderMaps & { refresh(): void } {
  const prefix = 'online/encoder/';
  const online: Record<string, tf.Variable> = {};
  for (const [name, v] of Object.entries(state)) if (name.startsWith(prefix)) online[name.slice(prefix.length)] = v;
  const copy = createEncoder(config, 0, `attention/encoder${liveCopies++}`);
  const refresh = () => copyWeights(online, copy.weights);
  refresh();
  return { source: encoderAttention(copy, size), mask: encoderKmeansMask(copy, size, seed), refresh, dispose: () => copy.dispose() };
}
let liveCopies = 0;

/** `encoder:RUN`: the online encoder of a `train` run's checkpoint, at its training size. */
export function openEncoderAttention(run: string, field = '--attention', seed = 0): EncoderMaps {
  const loaded = loadCheckpointEncoder(checkpointDir(run, field));
  return {
    source: encoderAttention(loaded.encoder, loaded.trainedSize),
    mask: encoderKmeansMask(loaded.encoder, loaded.trainedSize, seed),
    dispose: () => loaded.encoder.dispose(),
  };
}

/** `live`'s trainer hook: refreshes its copy every `every` steps, and frees it when the run is over. */
export function attentionRefreshHook(live: ReturnType<typeof liveEncoderAttention>, every: number): TrainerHook {
  return {
    onStep: ({ step }) => {
      if (step % every === 0) live.refresh();
    },
    close: () => live.dispose(),
  };
}
