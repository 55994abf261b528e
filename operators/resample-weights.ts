/**
 * A view's geometry as two small matrices: `rows` `[S, H]` and `cols` `[S, W]` such that the
 * view's pixels are `rows · image · colsᵀ` per channel. They hold the crop, the resize, the flip
 * and the blur, so the compute backend cuts a batch of views with two batched matrix products
 * (`augmentViews`), whatever the size of the images or of the views, on any backend; the CPU
 * path applies the same bands wherever libvips would sample otherwise (`cutWithBands`).
 *
 * Every axis samples at half-pixel centres, output pixel `i` at `x0 + (i + ½)·f − ½`
 * (`f = w / S`), as torchvision's resize does:
 * - shrinking: a triangle of half-width `f`, so every source pixel counts (libvips' anti-aliased
 *   `reduce`, which sharp runs for a crop no smaller than the view on either axis;
 *   tf.image.cropAndResize samples only the two nearest pixels and aliases on downscales);
 * - enlarging: bilinear. libvips' `affine` stage, which sharp's `resize` runs for an enlarged
 *   crop, samples half an output pixel early instead (`x0 + i·f − ½`, on both axes), a shift and
 *   a two-tap blur that cost MoCo v2 on Fashion-MNIST 0.004 of kNN accuracy (docs/performance.md);
 * - outside the crop, its edge pixels repeat (as resizing the extracted crop does);
 * - the blur is libvips' `gaussblur` at sharp's defaults: taps `round(20·exp(−d²/2σ²))` for
 *   every offset whose amplitude is ≥ 0.2, normalised, edges repeated, none below σ = 0.3.
 */
import type { Box, Pixels } from '../core/index.js';

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
 * of output pixel `i` for the crop `[start, end)` of an axis `length` pixels long, centred at
 * `start + (i + ½)·f − ½` with `f = (end − start) / size`:
 * - shrinking or keeping (`f ≥ 1`): a triangle of half-width `f` (libvips' `reduce`, measured
 *   against sharp 0.35 / libvips 8.18 with ramps; see the tests; `f = 1` is the identity);
 * - enlarging (`f < 1`): bilinear (torchvision's `resize`, `align_corners=False`).
 * Outside the crop its edge pixels repeat.
 */
export function axisBands(start: number, end: number, length: number, size: number): AxisBands {
  if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && end <= length && end > start)) {
    throw new Error(`axisWeights: expected a crop 0 ≤ start < end ≤ ${length} in whole pixels, got [${start}, ${end})`);
  }
  const f = (end - start) / size;
  const last = end - 1;
  const clamp = (j: number) => Math.min(last, Math.max(start, j));
  const centre = (i: number) => start + (i + 0.5) * f - 0.5;
  const lo = new Int32Array(size);
  if (f < 1) {
    const w = new Float32Array(size * 2);
    for (let i = 0; i < size; i++) {
      const at = centre(i);
      const j = Math.floor(at);
      lo[i] = clamp(j);
      w[i * 2]! += 1 - (at - j);
      w[i * 2 + clamp(j + 1) - clamp(j)]! += at - j; // slot 0 again where j + 1 is clamped back onto j
    }
    return { length, width: 2, lo, w };
  }
  const half = f; // the triangle's half-width (f = 1: the identity)
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
  return { length, width, lo, w };
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
export function axisWeights(start: number, end: number, length: number, size: number): Float32Array {
  return denseWeights(axisBands(start, end, length, size));
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
  let cols = axisBands(x0, x1, imageWidth, width);
  if (flipped) cols = mirrored(cols);
  return { rows: blurred(axisBands(y0, y1, imageHeight, height), taps), cols: blurred(cols, taps) };
}

/** {@link viewBands} as dense matrices: `rows` `[height, imageHeight]` and `cols` `[width, imageWidth]`. */
export function viewWeights(...view: Parameters<typeof viewBands>): { rows: Float32Array; cols: Float32Array } {
  const { rows, cols } = viewBands(...view);
  return { rows: denseWeights(rows), cols: denseWeights(cols) };
}

/**
 * `rows · image · colsᵀ` per channel on the CPU, as bytes (rounded, clamped): the view of
 * {@link viewBands} where the backend is not cutting it. Rows first, over the source columns the
 * `cols` bands reach only, so a small view of a large photo touches only its crop.
 */
export function cutWithBands(p: Pixels, { rows, cols }: { rows: AxisBands; cols: AxisBands }): Uint8Array {
  if (p.channels !== 3) throw new Error(`cutWithBands: expected RGB pixels, got ${p.channels} channel(s)`);
  const [height, width] = [rows.lo.length, cols.lo.length];
  let [c0, c1] = [Infinity, 0];
  for (let j = 0; j < width; j++) {
    c0 = Math.min(c0, cols.lo[j] as number);
    c1 = Math.max(c1, Math.min(cols.length, (cols.lo[j] as number) + cols.width));
  }
  const span = c1 - c0;
  const across = new Float32Array(height * span * 3); // the rows pass: [height, span, 3]
  for (let i = 0; i < height; i++) {
    const lo = rows.lo[i] as number;
    const n = Math.min(rows.width, rows.length - lo);
    const out = i * span * 3;
    for (let m = 0; m < n; m++) {
      const t = rows.w[i * rows.width + m] as number;
      if (t === 0) continue;
      const src = ((lo + m) * p.width + c0) * 3;
      for (let x = 0; x < span * 3; x++) across[out + x]! += t * (p.data[src + x] as number);
    }
  }
  const view = new Uint8ClampedArray(height * width * 3);
  for (let i = 0; i < height; i++) {
    for (let j = 0; j < width; j++) {
      const lo = cols.lo[j] as number;
      const n = Math.min(cols.width, cols.length - lo);
      let [r, g, b] = [0, 0, 0];
      for (let m = 0; m < n; m++) {
        const t = cols.w[j * cols.width + m] as number;
        const at = (i * span + lo + m - c0) * 3;
        r += t * (across[at] as number);
        g += t * (across[at + 1] as number);
        b += t * (across[at + 2] as number);
      }
      const o = (i * width + j) * 3;
      view[o] = r;
      view[o + 1] = g;
      view[o + 2] = b;
    }
  }
  return new Uint8Array(view.buffer);
}
