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

function multiply(a: Matrix3, b: Matrix3): Matrix3 {
  return [0, 1, 2].map((r) => [0, 1, 2].map((c) => a[r]![0] * b[0]![c]! + a[r]![1] * b[1]![c]! + a[r]![2] * b[2]![c]!)) as Matrix3;
}

/** `s·I + (1−s)·L`: blends every pixel toward its grey (s = 0 is greyscale). */
function saturationMatrix(s: number): Matrix3 {
  return [0, 1, 2].map((r) => [0, 1, 2].map((c) => (r === c ? s : 0) + (1 - s) * (LUMA[c] as number))) as Matrix3;
}

/** Rotation of chroma in YIQ by `turns`: the linear hue shift (keeps luma and greys). */
function hueMatrix(turns: number): Matrix3 {
  const t = 2 * Math.PI * turns;
  const [cos, sin] = [Math.cos(t), Math.sin(t)];
  const toYiq: Matrix3 = [
    [0.299, 0.587, 0.114],
    [0.596, -0.274, -0.322],
    [0.211, -0.523, 0.312],
  ];
  const fromYiq: Matrix3 = [
    [1, 0.956, 0.621],
    [1, -0.272, -0.647],
    [1, -1.106, 1.703],
  ];
  const rotate: Matrix3 = [
    [1, 0, 0],
    [0, cos, -sin],
    [0, sin, cos],
  ];
  return multiply(fromYiq, multiply(rotate, toYiq));
}

/**
 * Brightness, contrast, saturation, hue and greyscale are all affine in RGB, so a view's whole
 * colour change is one 3×3 matrix and one offset, applied in a single pass (sharp's
 * `modulate` round-trips every pixel through LCh: 6 ms of core time per pair of views). Applied in the
 * order brightness → contrast (toward the crop's mean grey) → saturation → hue → grey; values
 * are clamped once at the end rather than after each step as torchvision does.
 */
export function colourTransform(plan: ViewPlan, meanGreyLevel: number): { matrix: Matrix3; offset: number } | undefined {
  if (!plan.jitter && !plan.grayscale) return undefined;
  let matrix: Matrix3 = [
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 1],
  ];
  let offset = 0; // the same for all channels: every step below maps greys to greys
  if (plan.jitter) {
    const { brightness: b, contrast: c, saturation, hue } = plan.jitter;
    matrix = multiply(hueMatrix(hue), saturationMatrix(saturation)).map((row) => row.map((v) => v * b * c)) as Matrix3;
    offset = (1 - c) * b * meanGreyLevel;
  }
  if (plan.grayscale) matrix = multiply(saturationMatrix(0), matrix);
  return { matrix, offset };
}
