import sharp from 'sharp';
import { map, type OperatorFunction } from 'rxjs';
import { keyedRng, type Pixels, type PlannedView, type Sample, type View, type ViewMaps, type ViewPlan } from '../core/index.js';
import { checkViewConfigs, type ViewConfig } from './augment-presets.js';
import { cutPlane } from './cut-plane.js';
import { orderedMergeMap } from './ordered-merge-map.js';
import { cutWithBands, MIN_BLUR_SIGMA, viewBands } from './resample-weights.js';
import { colourTransform, meanGrey, planView, type ViewFallbackStage } from './view-plan.js';

import { AUGMENT_PATHS, type AugmentPath } from './augment-path.js';

export interface MultiViewOptions {
  /** One block per view, global views first (see `presetViews`). */
  views: ViewConfig[];
  seed?: number;
  epoch?: number;
  /** Samples augmented at once (default 4); each sample's views run in parallel on sharp's pool. */
  concurrency?: number;
  /**
   * Called when an attention view had no usable attention map and took the whole image
   * (`stage` 'attention-view'), or a mask-aware crop had no foreground to keep ('mask').
   */
  onFallback?: (id: string, reason: string, stage: ViewFallbackStage) => void;
  /**
   * `cpu` (default): cut every view's pixels now, with sharp. `backend`: draw the same plans,
   * cut the maps, and leave the pixels to the compute backend, per batch (`batch`, or
   * `cutPlannedViews` where pixels are needed on the CPU).
   */
  augment?: AugmentPath;
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
 * Renders one view: crop → resize (bilinear) → flip → blur, then colour and solarize in JS.
 * A crop no smaller than the view on either axis goes through sharp, whose `reduce` samples at
 * half-pixel centres as the bands do; an enlarged one is cut from the bands in JS
 * (`cutWithBands`), where sharp's `affine` stage would sample half an output pixel early (and it
 * is small: a few thousand multiply-adds at 28 px, against sharp's fixed ~0.3 ms a call). Blur
 * therefore comes before the colour change (torchvision: after); blur is linear and commutes
 * with the colour map, up to clamping.
 */
async function renderView(p: Pixels, plan: ViewPlan, size: number): Promise<Pixels> {
  const [x0, y0, x1, y1] = plan.box;
  let out: Uint8Array;
  if (x1 - x0 < size || y1 - y0 < size) {
    out = cutWithBands(p, viewBands(plan.box, plan.flipped, plan.blurSigma, p.width, p.height, size));
  } else {
    let image = sharp(p.data, { raw: { width: p.width, height: p.height, channels: 3 } })
      .extract({ left: x0, top: y0, width: x1 - x0, height: y1 - y0 })
      .resize(size, size, { fit: 'fill', kernel: 'linear' });
    if (plan.flipped) image = image.flop();
    if (plan.blurSigma !== undefined && plan.blurSigma >= MIN_BLUR_SIGMA) image = image.blur(plan.blurSigma); // sharp's minimum sigma
    const { data, info } = await image.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`multiView: expected 3 channels from sharp, got ${info.channels}`);
    out = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  recolour(out, colourTransform(plan, plan.jitter ? meanGrey(p, plan.box) : 0), plan.solarize);
  return { data: out, width: size, height: size, channels: 3 };
}

/** Cuts the sample's maps with the view's geometry. */
function cutMaps(sample: Sample, plan: ViewPlan, size: number): ViewMaps {
  const { width, height } = sample.pixels as Pixels;
  const cut = <T extends Uint8Array | Float32Array>(plane: { data: T; width: number; height: number } | undefined) =>
    plane ? cutPlane(plane, plan.box, width, height, size, size, plan.flipped) : undefined;
  const maps: ViewMaps = {};
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
 * same views in any process, order or resume, and on either `augment` path.
 *
 * With `augment: 'backend'` the views are {@link PlannedView}s: box, flip, colour and blur
 * drawn, maps cut, pixels left for the compute backend to cut per batch — no sharp call per
 * view, which costs a fixed ~0.3 ms and dominates at 28–64 px.
 *
 * @example
 * source$.pipe(decode(), multiView({ views: presetViews('mocov2', 64), seed: 1 }))
 * @see viewCorrespondence for matching cells of two views
 */
export function multiView(options: MultiViewOptions): OperatorFunction<Sample, Sample> {
  checkViewConfigs(options.views);
  const { views, seed = 0, epoch = 0, augment = 'cpu' } = options;
  if (!(AUGMENT_PATHS as readonly string[]).includes(augment))
    throw new Error(`multiView augment: expected cpu|backend, got "${String(augment)}"`);
  const plans = (sample: Sample) =>
    views.map((config, k) => planView(keyedRng(seed, 'view', epoch, sample.id, k), config, sample, options.onFallback));
  const decoded = (sample: Sample): Pixels => {
    if (!sample.pixels) throw new Error(`multiView: sample ${sample.id} is not decoded (put decode() first)`);
    return sample.pixels;
  };
  if (augment === 'backend') {
    // Planning is a few draws and a map cut per view: synchronous, nothing to overlap.
    return map((sample: Sample) => {
      const pixels = decoded(sample);
      const planned = plans(sample).map((plan, k): PlannedView => ({
        plan,
        size: (views[k] as ViewConfig).size,
        box: plan.box,
        flipped: plan.flipped,
        meanGrey: plan.jitter ? meanGrey(pixels, plan.box) : 0,
        ...cutMaps(sample, plan, (views[k] as ViewConfig).size),
      }));
      return { ...sample, views: planned };
    });
  }
  return orderedMergeMap(async (sample: Sample) => {
    const pixels = decoded(sample);
    const rendered = await Promise.all(
      plans(sample).map(async (plan, k): Promise<View> => {
        const size = (views[k] as ViewConfig).size;
        return { pixels: await renderView(pixels, plan, size), box: plan.box, flipped: plan.flipped, ...cutMaps(sample, plan, size) };
      }),
    );
    return { ...sample, views: rendered };
  }, options.concurrency ?? 4);
}
