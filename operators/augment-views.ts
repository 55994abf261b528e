/**
 * Cuts planned views per batch on the compute backend (the DALI / Kornia way): the geometry
 * and colour were drawn on the CPU (`multiView({ augment: 'backend' })`), the pixels are cut
 * here by tensor ops — two batched matrix products for crop, resize, flip and blur
 * (`viewWeights`), one 3×3 product and offset per view for the colour jitter and grey, a clamp,
 * a round, and solarize — so a batch of 128 small views costs a handful of kernel launches
 * instead of 256 sharp calls.
 *
 * Pixel conventions are the CPU path's (half-pixel centres, libvips' anti-aliased linear
 * reduce, edges repeated; see `resample-weights.ts`), so both paths agree within rounding.
 */
import * as tf from '@tensorflow/tfjs';
import type { Pixels, PlannedView, Sample } from './types/index.js';
import { viewWeights } from './resample-weights.js';
import { colourTransform } from './view-plan.js';

/** Normalisation folded into the last op: `(x / 255 − mean) / std` per channel. */
export interface Normalisation {
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
}

/** The samples' source images as one `[B, H, W, 3]` float32 tensor (0–255); they must share one size. */
export function stackSources(samples: readonly Sample[]): tf.Tensor4D {
  const first = samples[0]?.pixels;
  if (!first) throw new Error(`augmentViews: sample ${samples[0]?.id ?? '(none)'} has no pixels (put decode() first)`);
  const { width, height } = first;
  const plane = width * height * 3;
  const data = new Float32Array(samples.length * plane);
  samples.forEach((s, b) => {
    const p = s.pixels as Pixels | undefined;
    if (!p) throw new Error(`augmentViews: sample ${s.id} has no pixels (put decode() first)`);
    if (p.width !== width || p.height !== height) {
      throw new Error(`augmentViews: the backend cuts a batch from images of one size; sample ${s.id} is ${p.width}×${p.height}, sample ${samples[0]?.id} ${width}×${height} (use --augment cpu for images of mixed sizes)`);
    }
    if (p.channels !== 3) throw new Error(`augmentViews: sample ${s.id} has ${p.channels} channel(s), expected RGB (put decode() first)`);
    data.set(p.data, b * plane);
  });
  return tf.tensor4d(data, [samples.length, height, width, 3]);
}

function checkBox(view: PlannedView, id: string, width: number, height: number): void {
  const [x0, y0, x1, y1] = view.box;
  if (!([x0, y0, x1, y1].every(Number.isInteger) && x0 >= 0 && y0 >= 0 && x1 <= width && y1 <= height && x1 > x0 && y1 > y0)) {
    throw new Error(`augmentViews: sample ${id}: box [${view.box.join(', ')}] is not a crop of its ${width}×${height} image`);
  }
}

/**
 * View `k` of every sample, cut from `sources` (`stackSources`): `[B, S, S, 3]` float32,
 * normalised when `normalise` is given, else 0–255 integers as the CPU path's bytes.
 * Checks every box against its image and refuses one outside it (no silent clamping).
 */
export function augmentViews(sources: tf.Tensor4D, samples: readonly Sample[], k: number, normalise?: Normalisation): tf.Tensor4D {
  const [batch, height, width] = sources.shape;
  if (samples.length !== batch) throw new Error(`augmentViews: ${samples.length} samples for ${batch} images`);
  const planned = samples.map((s) => {
    const v = s.views?.[k];
    if (!v?.plan) throw new Error(`augmentViews: sample ${s.id} has no planned view ${k} (put multiView({ augment: 'backend' }) first)`);
    checkBox(v, s.id, width, height);
    return v;
  });
  const size = planned[0]!.size;
  const rows = new Float32Array(batch * size * height);
  const cols = new Float32Array(batch * size * width);
  const colour = new Float32Array(batch * 9); // each view's matrix, transposed: pixels are rows
  const offset = new Float32Array(batch);
  const solarize = new Float32Array(batch);
  planned.forEach((v, b) => {
    if (v.size !== size) throw new Error(`augmentViews: view ${k} of sample ${samples[b]!.id} is ${v.size} px, of sample ${samples[0]!.id} ${size} px`);
    const w = viewWeights(v.box, v.flipped, v.plan.blurSigma, width, height, size);
    rows.set(w.rows, b * size * height);
    cols.set(w.cols, b * size * width);
    const t = colourTransform(v.plan, v.meanGrey);
    const m = t?.matrix ?? [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
    for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) colour[b * 9 + c * 3 + r] = m[r]![c]!;
    offset[b] = t?.offset ?? 0;
    solarize[b] = v.plan.solarize ? 1 : 0;
  });
  return tf.tidy(() => {
    // rows · image: [B, S, H] × [B, H, W·3] → [B, S, W·3]
    const tall = tf.matMul(tf.tensor3d(rows, [batch, size, height]), tf.reshape(sources, [batch, height, width * 3]));
    // · colsᵀ along W: bring W last, [B, S·3, W] × [B, W, S] → [B, S·3, S], then back to [B, S·S, 3]
    const wide = tf.transpose(tf.reshape(tall, [batch, size, width, 3]), [0, 1, 3, 2]);
    const cut = tf.matMul(tf.reshape(wide, [batch, size * 3, width]), tf.tensor3d(cols, [batch, size, width]), false, true);
    const rgb = tf.reshape(tf.transpose(tf.reshape(cut, [batch, size, 3, size]), [0, 1, 3, 2]), [batch, size * size, 3]);
    const coloured = tf.add(tf.matMul(rgb, tf.tensor3d(colour, [batch, 3, 3])), tf.tensor3d(offset, [batch, 1, 1]));
    const bytes = tf.round(tf.clipByValue(coloured, 0, 255)); // the CPU path's Uint8ClampedArray
    // solarize: v ≥ 128 → 255 − v, in the views that draw it
    const inverted = tf.where(tf.greaterEqual(bytes, 128), tf.sub(255, bytes), bytes);
    const s = tf.tensor3d(solarize, [batch, 1, 1]);
    let out = tf.add(bytes, tf.mul(s, tf.sub(inverted, bytes)));
    if (normalise) {
      const scale = tf.tensor1d(normalise.std.map((d) => 1 / (255 * d)));
      const shift = tf.tensor1d(normalise.mean.map((m, c) => m / (normalise.std[c] as number)));
      out = tf.sub(tf.mul(out, scale), shift);
    }
    return tf.reshape(out, [batch, size, size, 3]);
  });
}
