import sharp from 'sharp';
import type { OperatorFunction } from 'rxjs';
import { keyedRng, type Box, type Pixels, type Rng, type Sample, type View } from './types/index.js';
import { checkViewConfigs, type ViewConfig } from './augment-presets.js';
import { cutPlane } from './cut-plane.js';
import { orderedMergeMap } from './ordered-merge-map.js';
import { randomResizedCropBox } from './view-geometry.js';

export interface MultiViewOptions {
  /** One block per view, global views first (see `presetViews`). */
  views: ViewConfig[];
  seed?: number;
  epoch?: number;
  /** Samples augmented at once (default 4); each sample's views run in parallel on sharp's pool. */
  concurrency?: number;
}

/** Every random choice of one view, drawn up front in a fixed order (determinism). */
interface ViewPlan {
  box: Box;
  flipped: boolean;
  jitter?: { brightness: number; contrast: number; saturation: number; hue: number };
  grayscale: boolean;
  blurSigma?: number;
  solarize: boolean;
}

function planView(rng: Rng, config: ViewConfig, width: number, height: number): ViewPlan {
  const box = randomResizedCropBox(rng, width, height, config.scale, config.ratio);
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

/**
 * Renders one view with sharp: crop → resize (bilinear) → flip → colour jitter → grey → blur,
 * then solarize in JS. sharp applies its operations in its own fixed order, so blur comes
 * before the colour operations; blur and brightness commute, and the rest differ little.
 */
async function renderView(p: Pixels, plan: ViewPlan, size: number): Promise<Pixels> {
  const [x0, y0, x1, y1] = plan.box;
  let image = sharp(p.data, { raw: { width: p.width, height: p.height, channels: 3 } })
    .extract({ left: x0, top: y0, width: x1 - x0, height: y1 - y0 })
    .resize(size, size, { fit: 'fill', kernel: 'linear' });
  if (plan.flipped) image = image.flop();
  if (plan.jitter) {
    const { brightness, contrast, saturation, hue } = plan.jitter;
    image = image
      .modulate({ brightness, saturation, hue: Math.round(hue * 360) })
      .linear(contrast, (1 - contrast) * meanGrey(p, plan.box));
  }
  if (plan.grayscale) image = image.greyscale();
  if (plan.blurSigma !== undefined && plan.blurSigma >= 0.3) image = image.blur(plan.blurSigma); // sharp's minimum sigma
  const { data, info } = await image.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  const out = new Uint8Array(size * size * 3);
  if (info.channels === 1) {
    for (let i = 0; i < size * size; i++) out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = data[i] as number;
  } else {
    for (let i = 0, j = 0; j < out.length; i += info.channels) {
      out[j++] = data[i] as number;
      out[j++] = data[i + 1] as number;
      out[j++] = data[i + 2] as number;
    }
  }
  if (plan.solarize) for (let i = 0; i < out.length; i++) if ((out[i] as number) >= 128) out[i] = 255 - (out[i] as number);
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
        const plan = planView(keyedRng(seed, 'view', epoch, sample.id, k), config, pixels.width, pixels.height);
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
