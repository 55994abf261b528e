import sharp from 'sharp';
import type { OperatorFunction } from 'rxjs';
import { keyedRng, type Box, type Pixels, type Rng, type Sample, type View } from './types/index.js';
import { checkViewConfigs, type ViewConfig } from './augment-presets.js';
import { cutPlane } from './cut-plane.js';
import { orderedMergeMap } from './ordered-merge-map.js';
import { randomResizedCropBox } from './view-geometry.js';
import { attentionCropBox } from './attention-crop.js';

export interface MultiViewOptions {
  /** One block per view, global views first (see `presetViews`). */
  views: ViewConfig[];
  seed?: number;
  epoch?: number;
  /** Samples augmented at once (default 4); each sample's views run in parallel on sharp's pool. */
  concurrency?: number;
  /** Called when an attention view had no usable attention map and took the whole image. */
  onFallback?: (id: string, reason: string) => void;
}

/** Every random choice of one view, drawn up front in a fixed order (determinism). */
export interface ViewPlan {
  box: Box;
  flipped: boolean;
  jitter?: { brightness: number; contrast: number; saturation: number; hue: number };
  grayscale: boolean;
  blurSigma?: number;
  solarize: boolean;
}

function planView(rng: Rng, config: ViewConfig, sample: Sample, onFallback?: MultiViewOptions['onFallback']): ViewPlan {
  const { width, height } = sample.pixels as Pixels;
  let box: Box;
  if (config.crop === 'whole') {
    box = [0, 0, width, height];
  } else if (config.crop === 'attention') {
    const crop = attentionCropBox(rng, sample.attention, width, height, config.attentionCrop);
    if (crop.fallback) onFallback?.(sample.id, sample.attention ? 'attention map is empty, constant or not finite: view is the whole image' : 'no attention map (put attentionMap() before multiView): view is the whole image');
    box = crop.box;
  } else {
    box = randomResizedCropBox(rng, width, height, config.scale, config.ratio);
  }
  const flipped = rng.chance(config.flip);
  let jitter: ViewPlan['jitter'];
  const j = config.jitter;
  if (j && rng.chance(j.prob)) {
    const factor = (x: number) => rng.uniform(Math.max(0, 1 - x), 1 + x);
    jitter = { brightness: factor(j.brightness), contrast: factor(j.contrast), saturation: factor(j.saturation), hue: rng.uniform(-j.hue, j.hue) };
  }
  const grayscale = rng.chance(config.grayscale ?? 0);
  const blurSigma = config.blur && rng.chance(config.blur.prob) ? rng.uniform(config.blur.sigma[0], config.blur.sigma[1]) : undefined;
  const solarize = rng.chance(config.solarize ?? 0);
  return { box, flipped, jitter, grayscale, blurSigma, solarize };
}

/** Mean grey level of the crop, sampled on a sparse grid (contrast blends toward it). */
function meanGrey(p: Pixels, box: Box): number {
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

type Matrix3 = [[number, number, number], [number, number, number], [number, number, number]];

const LUMA = [0.299, 0.587, 0.114] as const;

function multiply(a: Matrix3, b: Matrix3): Matrix3 {
  return [0, 1, 2].map((r) => [0, 1, 2].map((c) =>
    (a[r]![0] * b[0]![c]!) + (a[r]![1] * b[1]![c]!) + (a[r]![2] * b[2]![c]!))) as Matrix3;
}

/** `s·I + (1−s)·L`: blends every pixel toward its grey (s = 0 is greyscale). */
function saturationMatrix(s: number): Matrix3 {
  return [0, 1, 2].map((r) => [0, 1, 2].map((c) => (r === c ? s : 0) + (1 - s) * (LUMA[c] as number))) as Matrix3;
}

/** Rotation of chroma in YIQ by `turns`: the linear hue shift (keeps luma and greys). */
function hueMatrix(turns: number): Matrix3 {
  const t = 2 * Math.PI * turns;
  const [cos, sin] = [Math.cos(t), Math.sin(t)];
  const toYiq: Matrix3 = [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]];
  const fromYiq: Matrix3 = [[1, 0.956, 0.621], [1, -0.272, -0.647], [1, -1.106, 1.703]];
  const rotate: Matrix3 = [[1, 0, 0], [0, cos, -sin], [0, sin, cos]];
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
  let matrix: Matrix3 = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
  let offset = 0; // the same for all channels: every step below maps greys to greys
  if (plan.jitter) {
    const { brightness: b, contrast: c, saturation, hue } = plan.jitter;
    matrix = multiply(hueMatrix(hue), saturationMatrix(saturation)).map((row) => row.map((v) => v * b * c)) as Matrix3;
    offset = (1 - c) * b * meanGreyLevel;
  }
  if (plan.grayscale) matrix = multiply(saturationMatrix(0), matrix);
  return { matrix, offset };
}

/**
 * Applies the colour map and solarization in one pass, in place. A JS loop: libvips' `recomb`
 * casts every pixel to float and back and measured 1.5 ms of core time per 224² view, this
 * loop 0.3 ms.
 */
function recolour(pixels: Uint8Array, colour: ReturnType<typeof colourTransform>, solarize: boolean): void {
  const out = new Uint8ClampedArray(pixels.buffer, pixels.byteOffset, pixels.byteLength); // rounds and clamps
  if (colour) {
    const [[a, b, c], [d, e, f], [g, h, k]] = colour.matrix;
    const o = colour.offset;
    for (let i = 0; i < out.length; i += 3) {
      const r = out[i] as number;
      const gr = out[i + 1] as number;
      const bl = out[i + 2] as number;
      out[i] = a * r + b * gr + c * bl + o;
      out[i + 1] = d * r + e * gr + f * bl + o;
      out[i + 2] = g * r + h * gr + k * bl + o;
    }
  }
  if (solarize) for (let i = 0; i < out.length; i++) if ((out[i] as number) >= 128) out[i] = 255 - (out[i] as number);
}

/**
 * Renders one view: crop → resize (bilinear) → flip → blur in sharp, then colour and
 * solarize in JS. Blur therefore comes before the colour change (torchvision: after); blur is
 * linear and commutes with the colour map, up to clamping.
 */
async function renderView(p: Pixels, plan: ViewPlan, size: number): Promise<Pixels> {
  const [x0, y0, x1, y1] = plan.box;
  let image = sharp(p.data, { raw: { width: p.width, height: p.height, channels: 3 } })
    .extract({ left: x0, top: y0, width: x1 - x0, height: y1 - y0 })
    .resize(size, size, { fit: 'fill', kernel: 'linear' });
  if (plan.flipped) image = image.flop();
  if (plan.blurSigma !== undefined && plan.blurSigma >= 0.3) image = image.blur(plan.blurSigma); // sharp's minimum sigma
  const { data, info } = await image.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`multiView: expected 3 channels from sharp, got ${info.channels}`);
  const out = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  recolour(out, colourTransform(plan, plan.jitter ? meanGrey(p, plan.box) : 0), plan.solarize);
  return { data: out, width: size, height: size, channels: 3 };
}

/** Cuts the sample's maps with the view's geometry. */
function cutMaps(sample: Sample, plan: ViewPlan, size: number): Omit<View, 'pixels' | 'box' | 'flipped'> {
  const { width, height } = sample.pixels as Pixels;
  const cut = <T extends Uint8Array | Float32Array>(plane: { data: T; width: number; height: number } | undefined) =>
    plane ? cutPlane(plane, plan.box, width, height, size, size, plan.flipped) : undefined;
  const maps: Omit<View, 'pixels' | 'box' | 'flipped'> = {};
  const mask = cut(sample.mask);
  const gtMask = cut(sample.gtMask);
  const gtClasses = cut(sample.gtClasses);
  const attention = cut(sample.attention);
  if (mask) maps.mask = mask;
  if (gtMask) maps.gtMask = gtMask;
  if (gtClasses) maps.gtClasses = gtClasses;
  if (attention) maps.attention = attention;
  return maps;
}

/**
 * Cuts N augmented views from each decoded sample: random resized crop, flip, colour jitter,
 * grey, blur and solarize, each per its view's config. Decoding happened once; every view is
 * cut from that buffer. Each view records its crop box in source coordinates and its flip
 * flag, and carries the sample's mask, ground truth and attention cut identically.
 *
 * ```
 * input:   a(pixels, mask)
 * output:  a(pixels, mask, views: [v0{box, flipped, mask}, v1{…}])
 * ```
 *
 * Every choice comes from `keyedRng(seed, 'view', epoch, id, k)`: the same sample gets the
 * same views in any process, order or resume.
 *
 * @example
 * source$.pipe(decode(), multiView({ views: presetViews('mocov2', 64), seed: 1 }))
 * @see viewCorrespondence for matching cells of two views
 */
export function multiView(options: MultiViewOptions): OperatorFunction<Sample, Sample> {
  checkViewConfigs(options.views);
  const { views, seed = 0, epoch = 0 } = options;
  return orderedMergeMap(async (sample: Sample) => {
    const pixels = sample.pixels;
    if (!pixels) throw new Error(`multiView: sample ${sample.id} is not decoded (put decode() first)`);
    const rendered = await Promise.all(
      views.map(async (config, k): Promise<View> => {
        const plan = planView(keyedRng(seed, 'view', epoch, sample.id, k), config, sample, options.onFallback);
        return {
          pixels: await renderView(pixels, plan, config.size),
          box: plan.box,
          flipped: plan.flipped,
          ...cutMaps(sample, plan, config.size),
        };
      }),
    );
    return { ...sample, views: rendered };
  }, options.concurrency ?? 4);
}
