/**
 * What one view of a sample will be, decided on the CPU before any pixel is cut: its crop box,
 * flip and colour draws (`planView`), and its colour change as one affine map
 * (`colourTransform`). Both ways of cutting pixels — per image with sharp (`multiView`) and per
 * batch on the compute backend (`augmentViews`) — start from the same plan, so they give the
 * same boxes and flips exactly.
 */
import type { Box, Pixels, Rng, Sample, ViewPlan } from '../core/index.js';
import type { ViewConfig } from './augment-presets.js';
import { foregroundCropBox, randomResizedCropBox } from './view-geometry.js';
import { attentionCropBox } from './attention-crop.js';

/**
 * Draws every random choice of one view from `rng`, in a fixed order: box, flip, jitter,
 * grey, blur, solarize. `onFallback` hears of an attention view that took the whole image, and
 * of a mask-aware crop whose mask was empty.
 */
/** Which part of a view's plan fell back: the attention crop, or the mask-aware crop. */
export type ViewFallbackStage = 'attention-view' | 'mask';

export function planView(
  rng: Rng,
  config: ViewConfig,
  sample: Sample,
  onFallback?: (id: string, reason: string, stage: ViewFallbackStage) => void,
): ViewPlan {
  const { width, height } = sample.pixels as Pixels;
  let box: Box;
  if (config.crop === 'whole') {
    box = [0, 0, width, height];
  } else if (config.crop === 'centre') {
    const side = Math.min(width, height);
    const x0 = Math.floor((width - side) / 2);
    const y0 = Math.floor((height - side) / 2);
    box = [x0, y0, x0 + side, y0 + side];
  } else if (config.crop === 'attention') {
    const crop = attentionCropBox(rng, sample.attention, width, height, config.attentionCrop);
    if (crop.fallback)
      onFallback?.(
        sample.id,
        sample.attention
          ? 'attention map is empty, constant or not finite: view is the whole image'
          : 'no attention map (put attentionMap() before multiView): view is the whole image',
        'attention-view',
      );
    box = crop.box;
  } else if (config.minForeground) {
    if (!sample.mask)
      throw new Error(
        `multiView: a mask-aware crop (minForeground) needs the sample's foreground mask; sample ${sample.id} has none (put foregroundMask() first)`,
      );
    const crop = foregroundCropBox(rng, sample.mask, width, height, config.scale, config.ratio, config.minForeground);
    if (crop.fallback) onFallback?.(sample.id, `mask-aware crop: ${crop.fallback}`, 'mask');
    box = crop.box;
  } else {
    box = randomResizedCropBox(rng, width, height, config.scale, config.ratio);
  }
  const flipped = rng.chance(config.flip);
  let jitter: ViewPlan['jitter'];
  const j = config.jitter;
  if (j && rng.chance(j.prob)) {
    const factor = (x: number) => rng.uniform(Math.max(0, 1 - x), 1 + x);
    jitter = {
      brightness: factor(j.brightness),
      contrast: factor(j.contrast),
      saturation: factor(j.saturation),
      hue: rng.uniform(-j.hue, j.hue),
    };
  }
  const grayscale = rng.chance(config.grayscale ?? 0);
  const blurSigma = config.blur && rng.chance(config.blur.prob) ? rng.uniform(config.blur.sigma[0], config.blur.sigma[1]) : undefined;
  const solarize = rng.chance(config.solarize ?? 0);
  return { box, flipped, jitter, grayscale, blurSigma, solarize };
}

/** Mean grey level of the crop, sampled on a sparse grid (contrast blends toward it). */
export function meanGrey(p: Pixels, box: Box): number {
  const [x0, y0, x1, y1] = box;
  const step = Math.max(1, Math.floor(Math.sqrt(((x1 - x0) * (y1 - y0)) / 1024)));
  let sum = 0;
  let n = 0;
  for (let y = y0; y < y1; y += step) {
    for (let x = x0; x < x1; x += step) {
      const i = (y * p.width + x) * 3;
      sum += 0.299 * (p.data[i] as number) + 0.587 * (p.data[i + 1] as number) + 0.114 * (p.data[i + 2] as number);
      n++;
    }
  }
  return n ? sum / n : 128;
}

export type Matrix3 = [[number, number, number], [number, number, number], [number, number, number]];

const LUMA = [0.299, 0.587, 0.114] as const;

// 3×3 matrices below are flat and row-major, in scratch arrays reused call after call: as nested
// arrays, the colour of a batch of 256 views made about 2 KB of garbage a view, a quarter of
// the data plane's allocations on Fashion-MNIST. The products run in the same order as before,
// so the values are the same to the bit.
const TO_YIQ = Float64Array.of(0.299, 0.587, 0.114, 0.596, -0.274, -0.322, 0.211, -0.523, 0.312);
const FROM_YIQ = Float64Array.of(1, 0.956, 0.621, 1, -0.272, -0.647, 1, -1.106, 1.703);
const scratch = (): Float64Array => new Float64Array(9);
const [HALF, HUE, SATURATION, PRODUCT, GREY, VIEW] = [scratch(), scratch(), scratch(), scratch(), scratch(), scratch()];
const IDENTITY = Float64Array.of(1, 0, 0, 0, 1, 0, 0, 0, 1);
const ROTATE = Float64Array.from(IDENTITY); // its four chroma entries set per call

/** `out = a · b`; `out` must be neither. */
function multiplyInto(a: Float64Array, b: Float64Array, out: Float64Array): Float64Array {
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 3; c++) {
      out[r * 3 + c] = a[r * 3]! * b[c]! + a[r * 3 + 1]! * b[3 + c]! + a[r * 3 + 2]! * b[6 + c]!;
    }
  }
  return out;
}

/** `s·I + (1−s)·L`: blends every pixel toward its grey (s = 0 is greyscale). */
function saturationInto(s: number, out: Float64Array): Float64Array {
  for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) out[r * 3 + c] = (r === c ? s : 0) + (1 - s) * (LUMA[c] as number);
  return out;
}

/** Rotation of chroma in YIQ by `turns`: the linear hue shift (keeps luma and greys). */
function hueInto(turns: number, out: Float64Array): Float64Array {
  const t = 2 * Math.PI * turns;
  const [cos, sin] = [Math.cos(t), Math.sin(t)];
  ROTATE[4] = cos;
  ROTATE[5] = -sin;
  ROTATE[7] = sin;
  ROTATE[8] = cos;
  return multiplyInto(FROM_YIQ, multiplyInto(ROTATE, TO_YIQ, HALF), out);
}

/**
 * The view's colour change, flat and row-major in `out` (see {@link colourTransform}), and its
 * offset; false (and `out` untouched) when the view keeps its colours.
 */
function colourInto(plan: ViewPlan, meanGreyLevel: number, out: Float64Array): number | false {
  if (!plan.jitter && !plan.grayscale) return false;
  let offset = 0; // the same for all channels: every step below maps greys to greys
  if (plan.jitter) {
    const { brightness: b, contrast: c, saturation, hue } = plan.jitter;
    multiplyInto(hueInto(hue, HUE), saturationInto(saturation, SATURATION), PRODUCT);
    for (let i = 0; i < 9; i++) out[i] = PRODUCT[i]! * b * c;
    offset = (1 - c) * b * meanGreyLevel;
  } else out.set(IDENTITY);
  if (plan.grayscale) {
    PRODUCT.set(out);
    multiplyInto(saturationInto(0, GREY), PRODUCT, out);
  }
  return offset;
}

/**
 * Brightness, contrast, saturation, hue and greyscale are all affine in RGB, so a view's whole
 * colour change is one 3×3 matrix and one offset, applied in a single pass (sharp's
 * `modulate` round-trips every pixel through LCh: 6 ms of core time per pair of views). Applied in the
 * order brightness → contrast (toward the crop's mean grey) → saturation → hue → grey; values
 * are clamped once at the end rather than after each step as torchvision does.
 */
export function colourTransform(plan: ViewPlan, meanGreyLevel: number): { matrix: Matrix3; offset: number } | undefined {
  const offset = colourInto(plan, meanGreyLevel, VIEW);
  if (offset === false) return undefined;
  return { matrix: [0, 1, 2].map((r) => [VIEW[r * 3]!, VIEW[r * 3 + 1]!, VIEW[r * 3 + 2]!]) as Matrix3, offset };
}

/**
 * A view's colour matrix written transposed (pixels are rows) into `out` at `at`, the identity
 * for a view that keeps its colours; returns its offset. The backend's cut reads it so.
 */
export function colourTransposedInto(plan: ViewPlan, meanGreyLevel: number, out: Float32Array, at: number): number {
  const offset = colourInto(plan, meanGreyLevel, VIEW);
  if (offset === false) VIEW.set(IDENTITY);
  for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) out[at + c * 3 + r] = VIEW[r * 3 + c]!;
  return offset === false ? 0 : offset;
}
