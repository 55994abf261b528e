/**
 * A view's geometry as two small matrices: `rows` `[S, H]` and `cols` `[S, W]` such that the
 * view's pixels are `rows · image · colsᵀ` per channel. They hold the crop, the resize, the flip
 * and the blur, so the compute backend cuts a batch of views with two batched matrix products
 * (`augmentViews`), whatever the size of the images or of the views, on any backend.
 *
 * The weights follow what the CPU path asks of libvips (sharp's `extract → resize(kernel:
 * 'linear') → flop → blur`), so both paths give the same view within rounding:
 * - shrinking: half-pixel centres, output pixel `i` at `x0 + (i + ½)·f − ½` (`f = w / S`), a
 *   triangle of half-width `f`, so every source pixel counts (libvips' anti-aliased `reduce`;
 *   tf.image.cropAndResize samples only the two nearest pixels and aliases on downscales);
 * - enlarging: bilinear, at libvips' own offset (`axisWeights` says which);
 * - outside the crop, its edge pixels repeat (sharp resizes the extracted crop);
 * - the blur is libvips' `gaussblur` at sharp's defaults: taps `round(20·exp(−d²/2σ²))` for
 *   every offset whose amplitude is ≥ 0.2, normalised, edges repeated, none below σ = 0.3.
 */
import type { Box } from '../core/index.js';

/** sharp's smallest blur sigma: the CPU path skips smaller ones. */
export const MIN_BLUR_SIGMA = 0.3;

/**
 * The weights of one axis: `[size, length]`, row `i` the source weights of output pixel `i`
 * for the crop `[start, end)` of an axis `length` pixels long, as libvips' `resize` gives them
 * (measured against sharp 0.35 / libvips 8.18 with ramps; see the tests):
 * - shrinking or keeping (`f = (end − start) / size ≥ 1`): a triangle of half-width `max(1, f)`
 *   centred at `start + (i + ½)·f − ½` (half-pixel centres; libvips' `reduce`);
 * - enlarging (`f < 1`): bilinear at `start + i·f − ½` (libvips' `affine` stage, which samples
 *   half an output pixel before the centre);
 * - `shifted` (the *other* axis is enlarged, so the affine stage runs on this one too at scale
 *   1): the reduced pixels are then sampled half a pixel early, `½·r[i−1] + ½·r[i]`.
 * Outside the crop its edge pixels repeat (sharp resizes the extracted crop).
 */
export function axisWeights(start: number, end: number, length: number, size: number, shifted = false): Float32Array {
  if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && end <= length && end > start)) {
    throw new Error(`axisWeights: expected a crop 0 ≤ start < end ≤ ${length} in whole pixels, got [${start}, ${end})`);
  }
  const out = new Float32Array(size * length);
  const f = (end - start) / size;
  const last = end - 1;
  const clamp = (j: number) => Math.min(last, Math.max(start, j));
  if (f < 1) {
    for (let i = 0; i < size; i++) {
      const at = start + i * f - 0.5;
      const j = Math.floor(at);
      out[i * length + clamp(j)]! += 1 - (at - j);
      out[i * length + clamp(j + 1)]! += at - j;
    }
    return out;
  }
  const half = f; // the triangle's half-width (f = 1: the identity)
  for (let i = 0; i < size; i++) {
    const centre = start + (i + 0.5) * f - 0.5;
    const row = i * length;
    const [first, final] = [Math.ceil(centre - half), Math.floor(centre + half)];
    let sum = 0;
    for (let j = first; j <= final; j++) {
      const w = 1 - Math.abs(j - centre) / half;
      if (w <= 0) continue;
      out[row + clamp(j)]! += w;
      sum += w;
    }
    for (let j = clamp(first); j <= clamp(final); j++) out[row + j]! /= sum; // the rest of the row is 0
  }
  if (!shifted) return out;
  const early = new Float32Array(out.length);
  for (let i = 0; i < size; i++) {
    const previous = Math.max(0, i - 1) * length;
    for (let j = start; j <= last; j++) early[i * length + j] = 0.5 * ((out[previous + j] as number) + (out[i * length + j] as number));
  }
  return early;
}

/** libvips' integer Gaussian taps at sharp's defaults (min amplitude 0.2), normalised; `[1]` below σ = 0.3. */
export function blurTaps(sigma: number): Float32Array {
  if (!(sigma >= MIN_BLUR_SIGMA)) return Float32Array.of(1);
  const twoSigma2 = 2 * sigma * sigma;
  let radius = 0;
  while (Math.exp(-((radius + 1) ** 2) / twoSigma2) >= 0.2) radius++;
  const taps = Float32Array.from({ length: 2 * radius + 1 }, (_, k) => Math.round(20 * Math.exp(-((k - radius) ** 2) / twoSigma2)));
  const sum = taps.reduce((a, b) => a + b, 0);
  return taps.map((t) => t / sum);
}

/** `[lo, hi)` of each row of `weights` `[size, length]`: where its non-zero weights lie (`[0, 0)` for none). */
function rowBands(weights: Float32Array, size: number, length: number): Int32Array {
  const bands = new Int32Array(2 * size);
  for (let i = 0; i < size; i++) {
    const row = i * length;
    let [lo, hi] = [0, length];
    while (lo < hi && weights[row + lo] === 0) lo++;
    while (hi > lo && weights[row + hi - 1] === 0) hi--;
    bands[2 * i] = lo;
    bands[2 * i + 1] = hi;
  }
  return bands;
}

/**
 * `blur · weights` for one axis (`weights` `[size, length]`), the view's edges repeated. Each
 * tap adds only its row's band: the zeros around it add nothing (0 is exact), and a 224-px view
 * of a 500-px photo has a band of a few pixels in a row of 500.
 */
function blurred(weights: Float32Array, size: number, length: number, taps: Float32Array): Float32Array {
  if (taps.length === 1) return weights;
  const radius = (taps.length - 1) / 2;
  const bands = rowBands(weights, size, length);
  const out = new Float32Array(weights.length);
  for (let i = 0; i < size; i++) {
    for (let k = 0; k < taps.length; k++) {
      const source = Math.min(size - 1, Math.max(0, i + k - radius));
      const from = source * length;
      const t = taps[k] as number;
      for (let j = bands[2 * source] as number; j < (bands[2 * source + 1] as number); j++) out[i * length + j]! += t * (weights[from + j] as number);
    }
  }
  return out;
}

/** Reverses the order of the rows (output pixels) of a `[size, length]` matrix: a mirrored view. */
function mirrored(weights: Float32Array, size: number, length: number): Float32Array {
  const out = new Float32Array(weights.length);
  for (let i = 0; i < size; i++) out.set(weights.subarray((size - 1 - i) * length, (size - i) * length), i * length);
  return out;
}

/**
 * The `rows` `[height, imageHeight]` and `cols` `[width, imageWidth]` matrices of one view:
 * crop `box` of an `imageWidth × imageHeight` image, resized to `width × height`, mirrored
 * left–right when `flipped`, blurred with `blurSigma`.
 */
export function viewWeights(
  box: Box,
  flipped: boolean,
  blurSigma: number | undefined,
  imageWidth: number,
  imageHeight: number,
  width: number,
  height = width,
): { rows: Float32Array; cols: Float32Array } {
  const [x0, y0, x1, y1] = box;
  const taps = blurTaps(blurSigma ?? 0);
  const enlarged = x1 - x0 < width || y1 - y0 < height; // libvips then runs its affine stage on both axes
  let cols = axisWeights(x0, x1, imageWidth, width, enlarged);
  if (flipped) cols = mirrored(cols, width, imageWidth);
  return {
    rows: blurred(axisWeights(y0, y1, imageHeight, height, enlarged), height, imageHeight, taps),
    cols: blurred(cols, width, imageWidth, taps),
  };
}
