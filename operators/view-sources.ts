/**
 * A batch's source images laid out for the backend's view cut (`augment-views.ts`): as one
 * float32 tensor of one size (the op graph's), or as bytes of any sizes with a layout (the wasm
 * cut kernel's, core/cut-views-kernel.ts). No frame: the resampling weights clamp to each crop
 * (`axisBands`), so nothing reads past an image's edge.
 */
import * as tf from '@tensorflow/tfjs';
import type { Pixels, Sample } from '../core/index.js';

/** The samples' source images as one `[B, H, W, 3]` float32 tensor (0–255). They must share one size. */
export function stackSources(samples: readonly Sample[]): tf.Tensor4D {
  const { width, height } = sourceSize(samples);
  const plane = height * width * 3;
  const data = new Float32Array(samples.length * plane);
  samples.forEach((s, b) => data.set(imageBytes(s.pixels as Pixels), b * plane));
  return tf.tensor4d(data, [samples.length, height, width, 3]);
}

/**
 * Sources as the cut kernel reads them: every image's bytes one after another, each padded to
 * whole words and packed four to an int32, and per image its first word, height and width. The
 * images may differ in size.
 */
export interface PackedSources {
  words: tf.Tensor1D;
  layout: Int32Array;
}

/**
 * The sources as bytes (`stackSources`' values, a quarter of the memory), of any sizes: what the
 * wasm cut kernel reads. For 224-px views of photos, converting 32 images to float32 and copying
 * them in took about a fifth of the cut's time.
 */
export function packSources(samples: readonly Sample[]): PackedSources {
  const images = samples.map(checkedPixels);
  const layout = new Int32Array(images.length * 3);
  let words = 0;
  images.forEach((p, b) => {
    layout.set([words, p.height, p.width], b * 3);
    words += Math.ceil((p.height * p.width * 3) / 4);
  });
  const bytes = new Uint8Array(words * 4);
  images.forEach((p, b) => bytes.set(imageBytes(p), (layout[b * 3] as number) * 4));
  return { words: tf.tensor1d(new Int32Array(bytes.buffer), 'int32'), layout };
}

/** The one size of the samples' images, or an error naming the first that differs. */
function sourceSize(samples: readonly Sample[]): { width: number; height: number } {
  if (samples.length === 0) throw new Error('augmentViews: no samples');
  const { width, height } = checkedPixels(samples[0] as Sample);
  for (const s of samples) {
    const p = checkedPixels(s);
    if (p.width !== width || p.height !== height) {
      throw new Error(
        `augmentViews: one stack holds images of one size; sample ${s.id} is ${p.width}×${p.height}, sample ${samples[0]?.id} ${width}×${height} (augmentBatch cuts a batch of several sizes)`,
      );
    }
  }
  return { width, height };
}

/** A sample's decoded RGB pixels, or an error naming it. */
function checkedPixels(s: Sample): Pixels {
  const p = s.pixels;
  if (!p) throw new Error(`augmentViews: sample ${s.id} has no pixels (put decode() first)`);
  if (p.channels !== 3) throw new Error(`augmentViews: sample ${s.id} has ${p.channels} channel(s), expected RGB (put decode() first)`);
  return p;
}

/** An image's `height · width · 3` bytes (a decoder's buffer may hold more). */
function imageBytes({ data, width, height }: Pixels): Pixels['data'] {
  return data.subarray(0, height * width * 3);
}

/** Each image's height and width in `sources`. */
export function sourceSizes(sources: tf.Tensor4D | PackedSources): { height: (b: number) => number; width: (b: number) => number } {
  if (sources instanceof tf.Tensor) return { height: () => sources.shape[1], width: () => sources.shape[2] };
  const { layout } = sources;
  return { height: (b) => layout[b * 3 + 1] as number, width: (b) => layout[b * 3 + 2] as number };
}
