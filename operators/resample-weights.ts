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
 * One axis's weights as bands: output pixel `i` takes `w[i·width + m]` of source pixel `lo[i] + m`
 * (`m < width`, the axis `length` pixels long), and nothing of any other. A row narrower than
 * `width` ends in zeros. A 224-px view of a 500-px photo has a band of a few pixels a row, where
 * the dense `[size, length]` matrix holds 500, nearly all zero.
 */
export interface AxisBands {
  length: number;
  width: number;
  lo: Int32Array;
  w: Float32Array;
}

/**
 * The weights of one axis as bands (`axisWeights` gives them dense), row `i` the source weights
 * of output pixel `i` for the crop `[start, end)` of an axis `length` pixels long, as libvips'
 * `resize` gives them (measured against sharp 0.35 / libvips 8.18 with ramps; see the tests):
 * - shrinking or keeping (`f = (end − start) / size ≥ 1`): a triangle of half-width `max(1, f)`
 *   centred at `start + (i + ½)·f − ½` (half-pixel centres; libvips' `reduce`);
 * - enlarging (`f < 1`): bilinear at `start + i·f − ½` (libvips' `affine` stage, which samples
 *   half an output pixel before the centre);
 * - `shifted` (the *other* axis is enlarged, so the affine stage runs on this one too at scale
 *   1): the reduced pixels are then sampled half a pixel early, `½·r[i−1] + ½·r[i]`.
 * Outside the crop its edge pixels repeat (sharp resizes the extracted crop).
 */
export function axisBands(start: number, end: number, length: number, size: number, shifted = false): AxisBands {
  if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && end <= length && end > start)) {
    throw new Error(`axisWeights: expected a crop 0 ≤ start < end ≤ ${length} in whole pixels, got [${start}, ${end})`);
  }
  const f = (end - start) / size;
  const last = end - 1;
  const clamp = (j: number) => Math.min(last, Math.max(start, j));
  const lo = new Int32Array(size);
  if (f < 1) {
    const w = new Float32Array(size * 2);
    for (let i = 0; i < size; i++) {
      const at = start + i * f - 0.5;
      const j = Math.floor(at);
      lo[i] = clamp(j);
      w[i * 2 + clamp(j) - clamp(j)]! += 1 - (at - j);
      w[i * 2 + clamp(j + 1) - clamp(j)]! += at - j;
    }
    return { length, width: 2, lo, w }; // enlarged on this axis: the affine stage samples it, never shifted
  }
  const half = f; // the triangle's half-width (f = 1: the identity)
  const centre = (i: number) => start + (i + 0.5) * f - 0.5;
  let width = 1;
  for (let i = 0; i < size; i++) width = Math.max(width, clamp(Math.floor(centre(i) + half)) - clamp(Math.ceil(centre(i) - half)) + 1);
  const w = new Float32Array(size * width);
  for (let i = 0; i < size; i++) {
    const c = centre(i);
    const [first, final] = [Math.ceil(c - half), Math.floor(c + half)];
    const row = i * width;
    lo[i] = clamp(first);
    let sum = 0;
    for (let j = first; j <= final; j++) {
      const t = 1 - Math.abs(j - c) / half;
      if (t <= 0) continue;
      w[row + clamp(j) - clamp(first)]! += t;
      sum += t;
    }
    for (let m = 0; m <= clamp(final) - clamp(first); m++) w[row + m]! /= sum;
  }
  return shifted ? shiftedEarly({ length, width, lo, w }) : { length, width, lo, w };
}

/** `½·r[i−1] + ½·r[i]` (row −1 is row 0): each row's band widened to cover both. */
function shiftedEarly(b: AxisBands): AxisBands {
  const size = b.lo.length;
  const at = (i: number, j: number) =>
    j >= (b.lo[i] as number) && j < (b.lo[i] as number) + b.width ? (b.w[i * b.width + j - (b.lo[i] as number)] as number) : 0;
  const lo = new Int32Array(size);
  let width = 1;
  for (let i = 0; i < size; i++) {
    const previous = Math.max(0, i - 1);
    lo[i] = Math.min(b.lo[previous] as number, b.lo[i] as number);
    width = Math.max(width, Math.max(b.lo[previous] as number, b.lo[i] as number) + b.width - (lo[i] as number));
  }
  const w = new Float32Array(size * width);
  for (let i = 0; i < size; i++) {
    const previous = Math.max(0, i - 1);
    for (let m = 0; m < width && (lo[i] as number) + m < b.length; m++) {
      const j = (lo[i] as number) + m;
      w[i * width + m] = 0.5 * (at(previous, j) + at(i, j));
    }
  }
  return { length: b.length, width, lo, w };
}

/** The dense `[size, length]` matrix of `bands`. */
export function denseWeights(bands: AxisBands): Float32Array {
  const size = bands.lo.length;
  const out = new Float32Array(size * bands.length);
  for (let i = 0; i < size; i++) {
    const lo = bands.lo[i] as number;
    const n = Math.min(bands.width, bands.length - lo);
    out.set(bands.w.subarray(i * bands.width, i * bands.width + n), i * bands.length + lo);
  }
  return out;
}

/** The weights of one axis, dense: `[size, length]` (see {@link axisBands}). */
export function axisWeights(start: number, end: number, length: number, size: number, shifted = false): Float32Array {
  return denseWeights(axisBands(start, end, length, size, shifted));
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

/**
 * `blur · bands` for one axis, the view's edges repeated: row `i` is `Σ_k taps[k]·r[i + k − radius]`,
 * summed in tap order over each source row's own band (the zeros around it add nothing).
 */
function blurred(b: AxisBands, taps: Float32Array): AxisBands {
  if (taps.length === 1) return b;
  const size = b.lo.length;
  const radius = (taps.length - 1) / 2;
  const source = (i: number, k: number) => Math.min(size - 1, Math.max(0, i + k - radius));
  const lo = new Int32Array(size);
  let width = 1;
  for (let i = 0; i < size; i++) {
    let [first, end] = [Infinity, -Infinity];
    for (let k = 0; k < taps.length; k++) {
      first = Math.min(first, b.lo[source(i, k)] as number);
      end = Math.max(end, (b.lo[source(i, k)] as number) + b.width);
    }
    lo[i] = first;
    width = Math.max(width, Math.min(end, b.length) - first);
  }
  const w = new Float32Array(size * width);
  for (let i = 0; i < size; i++) {
    for (let k = 0; k < taps.length; k++) {
      const from = source(i, k);
      const t = taps[k] as number;
      const shift = (b.lo[from] as number) - (lo[i] as number);
      for (let m = 0; m < b.width && (b.lo[from] as number) + m < b.length; m++) {
        const v = b.w[from * b.width + m] as number;
        if (v !== 0) w[i * width + shift + m]! += t * v;
      }
    }
  }
  return { length: b.length, width, lo, w };
}

/** The output pixels in reverse order: a mirrored view. */
function mirrored(b: AxisBands): AxisBands {
  const size = b.lo.length;
  const lo = new Int32Array(size);
  const w = new Float32Array(b.w.length);
  for (let i = 0; i < size; i++) {
    lo[i] = b.lo[size - 1 - i] as number;
    w.set(b.w.subarray((size - 1 - i) * b.width, (size - i) * b.width), i * b.width);
  }
  return { length: b.length, width: b.width, lo, w };
}

/**
 * The `rows` (over `imageHeight`) and `cols` (over `imageWidth`) bands of one view: crop `box`
 * of an `imageWidth × imageHeight` image, resized to `width × height`, mirrored left–right when
 * `flipped`, blurred with `blurSigma`.
 */
export function viewBands(
  box: Box,
  flipped: boolean,
  blurSigma: number | undefined,
  imageWidth: number,
  imageHeight: number,
  width: number,
  height = width,
): { rows: AxisBands; cols: AxisBands } {
  const [x0, y0, x1, y1] = box;
  const taps = blurTaps(blurSigma ?? 0);
  const enlarged = x1 - x0 < width || y1 - y0 < height; // libvips then runs its affine stage on both axes
  let cols = axisBands(x0, x1, imageWidth, width, enlarged);
  if (flipped) cols = mirrored(cols);
  return { rows: blurred(axisBands(y0, y1, imageHeight, height, enlarged), taps), cols: blurred(cols, taps) };
}

/** {@link viewBands} as dense matrices: `rows` `[height, imageHeight]` and `cols` `[width, imageWidth]`. */
export function viewWeights(...view: Parameters<typeof viewBands>): { rows: Float32Array; cols: Float32Array } {
  const { rows, cols } = viewBands(...view);
  return { rows: denseWeights(rows), cols: denseWeights(cols) };
}
