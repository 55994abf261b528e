/**
 * Cuts planned views per batch on the compute backend (the DALI / Kornia way): the geometry
 * and colour were drawn on the CPU (`multiView({ augment: 'backend' })`), the pixels are cut
 * here by tensor ops — two batched matrix products for crop, resize, flip and blur
 * (`viewWeights`), one 3×3 product and offset per view for the colour jitter and grey, a clamp,
 * a round, and solarize — so a batch of 128 small views costs a handful of kernel launches
 * instead of 256 sharp calls. Where the backend has a kernel for the whole cut (wasm), one call
 * per view index does it all, from the images as bytes (`view-sources.ts`).
 *
 * Pixel conventions are the CPU path's (half-pixel centres, libvips' anti-aliased linear
 * reduce, edges repeated; see `resample-weights.ts`), so both paths agree within rounding.
 */
import * as tf from '@tensorflow/tfjs';
import { CUT_VIEWS_KERNEL, CUT_VIEW_PARAMS, type PlannedView, type Sample } from '../core/index.js';
import { viewBands, viewWeights, type AxisBands } from './resample-weights.js';
import { colourTransposedInto } from './view-plan.js';
import { packSources, sourceSizes, stackSources, type PackedSources } from './view-sources.js';

/** Normalisation folded into the last op: `(x / 255 − mean) / std` per channel. */
export interface Normalisation {
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
}

/**
 * Every view index of a batch of planned samples, cut on the backend: one `[B, S, S, 3]` tensor
 * per view index, in the samples' order. With the backend's cut kernel the images go in as bytes,
 * of any sizes (a folder of photos, landscape and portrait), in one call per view index; with the
 * op graph, images of one size are stacked and cut together (`augmentViews`), a batch of several
 * sizes size by size, its views put back in order. The caller owns the tensors; on an error none
 * is left behind.
 */
export function augmentBatch(samples: readonly Sample[], normalise?: Normalisation): tf.Tensor4D[] {
  if (hasCutKernel()) return cutAll(packSources(samples), samples, normalise);
  const groups = bySize(samples);
  if (groups.length === 1) return cutAll(stackSources(samples), samples, normalise);
  const viewCount = samples[0]?.views?.length ?? 0;
  const parts: tf.Tensor4D[][] = [];
  try {
    for (const group of groups) {
      const members = group.map((i) => samples[i] as Sample);
      parts.push(cutAll(stackSources(members), members, normalise));
    }
    // the groups' views concatenated, then each sample's row gathered back to its place
    const order = new Int32Array(samples.length);
    groups.flat().forEach((i, row) => (order[i] = row));
    return Array.from({ length: viewCount }, (_, k) =>
      tf.tidy(() => tf.gather(tf.concat(parts.map((views) => views[k] as tf.Tensor4D)), tf.tensor1d(order, 'int32'))),
    );
  } finally {
    tf.dispose(parts.flat());
  }
}

/** The samples' indices grouped by image size, in order of first appearance (one group when all share a size). */
function bySize(samples: readonly Sample[]): number[][] {
  const groups = new Map<string, number[]>();
  samples.forEach((s, i) => {
    const key = s.pixels ? `${s.pixels.width}x${s.pixels.height}` : '';
    const group = groups.get(key);
    if (group) group.push(i);
    else groups.set(key, [i]);
  });
  return [...groups.values()];
}

/** Every view index of the samples from their sources (freed here, as the views are). */
function cutAll(sources: tf.Tensor4D | PackedSources, samples: readonly Sample[], normalise?: Normalisation): tf.Tensor4D[] {
  const viewCount = samples[0]?.views?.length ?? 0;
  const out: tf.Tensor4D[] = [];
  try {
    for (let k = 0; k < viewCount; k++) out.push(cutViews(sources, samples, k, normalise));
  } catch (err) {
    tf.dispose(out);
    throw err;
  } finally {
    tf.dispose(sources instanceof tf.Tensor ? sources : sources.words);
  }
  return out;
}

/** Whether the backend cuts views with one kernel (core/cut-views-kernel.ts) rather than the op graph. */
function hasCutKernel(): boolean {
  return tf.getKernel(CUT_VIEWS_KERNEL, tf.getBackend()) !== undefined;
}

/** `(x / 255 − mean) / std` as a per-channel scale and shift: `[scale[3], shift[3]]`. */
function scaleAndShift(normalise: Normalisation): [number[], number[]] {
  return [normalise.std.map((d) => 1 / (255 * d)), normalise.mean.map((m, c) => -m / (normalise.std[c] as number))];
}

/** A view's resampling bands on its source image (`viewBands`: the CPU path's too). */
function plannedBands(v: PlannedView, width: number, height: number, size: number): { rows: AxisBands; cols: AxisBands } {
  return viewBands(v.box, v.flipped, v.plan.blurSigma, width, height, size);
}

/** Writes `bands` as the kernel reads them at `at`: per output pixel its first source pixel, the count of weights, then `band` slots. */
function packBands(bands: AxisBands, band: number, into: Float32Array, at: number): void {
  const size = bands.lo.length;
  for (let i = 0; i < size; i++) {
    const lo = bands.lo[i] as number;
    const n = Math.min(bands.width, bands.length - lo);
    const entry = at + i * (band + 2);
    into[entry] = lo;
    into[entry + 1] = n;
    // an index loop: `set(subarray(…))` made a view object per output pixel, a tenth of the cut's time
    for (let m = 0, from = i * bands.width; m < n; m++) into[entry + 2 + m] = bands.w[from + m] as number;
  }
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
  return cutViews(sources, samples, k, normalise);
}

/** `augmentViews` from float sources, or from packed ones (`packSources`, the kernel's). */
function cutViews(sources: tf.Tensor4D | PackedSources, samples: readonly Sample[], k: number, normalise?: Normalisation): tf.Tensor4D {
  const batch = sources instanceof tf.Tensor ? sources.shape[0] : sources.layout.length / 3;
  if (samples.length !== batch) throw new Error(`augmentViews: ${samples.length} samples for ${batch} images`);
  const sizes = sourceSizes(sources);
  const planned = samples.map((s, b) => {
    const v = s.views?.[k];
    if (!v?.plan) throw new Error(`augmentViews: sample ${s.id} has no planned view ${k} (put multiView({ augment: 'backend' }) first)`);
    checkBox(v, s.id, sizes.width(b), sizes.height(b));
    return v;
  });
  const size = planned[0]!.size;
  planned.forEach((v, b) => {
    if (v.size !== size)
      throw new Error(`augmentViews: view ${k} of sample ${samples[b]!.id} is ${v.size} px, of sample ${samples[0]!.id} ${size} px`);
  });
  const colour = new Float32Array(batch * 9); // each view's matrix, transposed: pixels are rows
  const offset = new Float32Array(batch);
  const solarize = new Float32Array(batch);
  planned.forEach((v, b) => {
    offset[b] = colourTransposedInto(v.plan, v.meanGrey, colour, b * 9);
    solarize[b] = v.plan.solarize ? 1 : 0;
  });
  if (hasCutKernel() || !(sources instanceof tf.Tensor)) {
    return cutInOnePass(sources, planned, size, colour, offset, solarize, normalise);
  }
  const solarizing = solarize.some((x) => x > 0);
  return tf.tidy(() => {
    const rgb = tf.reshape(resampledViews(sources, planned, size), [batch, size * size, 3]);
    const coloured = tf.add(tf.matMul(rgb, tf.tensor3d(colour, [batch, 3, 3])), tf.tensor3d(offset, [batch, 1, 1]));
    let out: tf.Tensor = tf.round(tf.clipByValue(coloured, 0, 255)); // the CPU path's Uint8ClampedArray
    if (solarizing) {
      // solarize: v ≥ 128 → 255 − v, in the views that draw it
      const inverted = tf.where(tf.greaterEqual(out, 128), tf.sub(255, out), out);
      out = tf.add(out, tf.mul(tf.tensor3d(solarize, [batch, 1, 1]), tf.sub(inverted, out)));
    }
    const bytes = tf.reshape(out, [batch, size, size, 3]) as tf.Tensor4D;
    if (!normalise) return bytes;
    // Per-channel scale and shift as a 1×1 convolution with a bias, one fused pass: per-channel
    // broadcasts are the wasm backend's slowest elementwise ops.
    const [scale, shift] = scaleAndShift(normalise);
    const diagonal = tf.tensor4d(
      [0, 1, 2].flatMap((r) => [0, 1, 2].map((c) => (r === c ? scale[c]! : 0))),
      [1, 1, 3, 3],
    );
    return tf.fused.conv2d({ x: bytes, filter: diagonal, strides: 1, pad: 'valid', bias: tf.tensor1d(shift) });
  });
}

/**
 * The cut (every crop by its resampling weights, blur folded in), colour, solarize and
 * normalisation as one backend kernel (core/cut-views-kernel.ts), where the backend has one: the
 * same pixels as the op graph below and the CPU path's `cutWithBands`, up to float rounding.
 */
function cutInOnePass(
  sources: tf.Tensor4D | PackedSources,
  planned: readonly PlannedView[],
  size: number,
  colour: Float32Array,
  offset: Float32Array,
  solarize: Float32Array,
  normalise: Normalisation | undefined,
): tf.Tensor4D {
  const batch = planned.length;
  const sizes = sourceSizes(sources);
  // Every crop by its weights' bands, blur folded in: the weights the op graph's products and the
  // CPU path (`cutWithBands`) apply.
  const bands = planned.map((v, b) => plannedBands(v, sizes.width(b), sizes.height(b), size));
  const band = Math.max(1, ...bands.flatMap(({ rows, cols }) => [rows.width, cols.width]));
  const weights = new Float32Array(batch * 2 * size * (band + 2));
  bands.forEach(({ rows, cols }, b) => {
    packBands(rows, band, weights, b * 2 * size * (band + 2));
    packBands(cols, band, weights, (b * 2 + 1) * size * (band + 2));
  });
  const params = new Float32Array(6 + batch * CUT_VIEW_PARAMS);
  params.set(normalise ? scaleAndShift(normalise).flat() : [1, 1, 1, 0, 0, 0]);
  planned.forEach((_, b) => {
    const at = 6 + b * CUT_VIEW_PARAMS;
    for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) params[at + r * 3 + c] = colour[b * 9 + c * 3 + r]!;
    params[at + 9] = offset[b]!;
    params[at + 10] = solarize[b]!;
  });
  return tf.tidy(
    () =>
      tf.engine().runKernel(
        CUT_VIEWS_KERNEL,
        {
          sources: sources instanceof tf.Tensor ? sources : sources.words,
          params: tf.tensor1d(params),
          weights: tf.tensor1d(weights),
          ...(sources instanceof tf.Tensor ? {} : { layout: tf.tensor2d(sources.layout, [batch, 3], 'int32') }),
        },
        { size, band } as unknown as tf.NamedAttrMap,
      ) as tf.Tensor4D,
  );
}

/**
 * Any views, shrinking or enlarging: rows · image · colsᵀ with the views' resampling weights,
 * blur included — two batched products, the same weights as the kernel's bands and the CPU path's.
 */
function resampledViews(sources: tf.Tensor4D, planned: readonly PlannedView[], size: number): tf.Tensor4D {
  const [batch, height, width] = sources.shape;
  const rows = new Float32Array(batch * size * height);
  const cols = new Float32Array(batch * size * width);
  planned.forEach((v, b) => {
    const w = viewWeights(v.box, v.flipped, v.plan.blurSigma, width, height, size);
    rows.set(w.rows, b * size * height);
    cols.set(w.cols, b * size * width);
  });
  // rows · image: [B, S, H] × [B, H, W·3] → [B, S, W·3]
  const tall = tf.matMul(tf.tensor3d(rows, [batch, size, height]), tf.reshape(sources, [batch, height, width * 3]));
  // · colsᵀ along W: bring W last, [B, S·3, W] × [B, W, S] → [B, S·3, S], then back to [B, S, S, 3]
  const wide = tf.transpose(tf.reshape(tall, [batch, size, width, 3]), [0, 1, 3, 2]);
  const cut = tf.matMul(tf.reshape(wide, [batch, size * 3, width]), tf.tensor3d(cols, [batch, size, width]), false, true);
  return tf.transpose(tf.reshape(cut, [batch, size, 3, size]), [0, 1, 3, 2]);
}
