import type { AttentionCropOptions } from './attention-crop.js';

/**
 * Per-view augmentation as data (solo-learn's habit): one block per view, presets from the
 * papers, every field checked before any work starts.
 */

export interface ColorJitter {
  /** Probability of applying the jitter at all (MoCo v2: 0.8). */
  prob: number;
  /** Factors drawn uniformly in `[max(0, 1−x), 1+x]` (hue: shift in `[−x, x]` turns, x ≤ 0.5). */
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
}

export interface ViewConfig {
  /** Output side in pixels. */
  size: number;
  /**
   * `random` (default): random resized crop. `attention`: a crop around the attention map's
   * main object (needs `attentionMap()` upstream; falls back to the whole image, reported).
   * `whole`: the whole image, resized to `size × size` (squashed when it is not square).
   * `centre`: the image's central square, resized to `size × size`: a resize of the short side
   * then a centre crop, which keeps the aspect (feature export, evaluation, the report).
   */
  crop?: 'random' | 'attention' | 'whole' | 'centre';
  /** Options of the attention crop. */
  attentionCrop?: AttentionCropOptions;
  /** Crop area as a fraction of the image, `[lo, hi]`. */
  scale: [number, number];
  /**
   * A random crop keeps at least this fraction of its area on the sample's foreground mask
   * (HARL's mask-aware crop; `foregroundCropBox`). Needs masks upstream; unset or 0: off.
   */
  minForeground?: number;
  /** Crop aspect ratio (width / height), `[lo, hi]`. */
  ratio: [number, number];
  /** Probability of a horizontal flip. */
  flip: number;
  jitter?: ColorJitter;
  /** Probability of converting to grey (kept as three equal channels). */
  grayscale?: number;
  /** Gaussian blur with this probability, sigma in `[lo, hi]` pixels of the output view. */
  blur?: { prob: number; sigma: [number, number] };
  /** Probability of solarizing (inverting values ≥ 128). */
  solarize?: number;
}

export const PRESETS = ['mocov2', 'byol', 'multicrop'] as const;
export type PresetName = (typeof PRESETS)[number];

const RATIO: [number, number] = [3 / 4, 4 / 3];
/** Blur sigmas in the papers are for 224-px views; scale them to `size`. */
const sigma = (size: number, lo: number, hi: number): [number, number] => [(lo * size) / 224, (hi * size) / 224];

/**
 * The views of a preset at a given view size.
 * - `mocov2`: two identical views (crop 0.2–1, jitter 0.4/0.4/0.4/0.1 p 0.8, grey 0.2, blur p 0.5).
 * - `byol`: asymmetric pair (crop 0.08–1; blur p 1.0 / 0.1; solarize p 0 / 0.2).
 * - `multicrop`: two global views (crop 0.14–1) and six local ones (96/224 of the size, crop 0.05–0.14).
 */
export function presetViews(name: PresetName, size: number): ViewConfig[] {
  const jitter = (s: number, h: number): ColorJitter => ({ prob: 0.8, brightness: 0.4, contrast: 0.4, saturation: s, hue: h });
  switch (name) {
    case 'mocov2': {
      const view: ViewConfig = {
        size,
        scale: [0.2, 1],
        ratio: RATIO,
        flip: 0.5,
        jitter: jitter(0.4, 0.1),
        grayscale: 0.2,
        blur: { prob: 0.5, sigma: sigma(size, 0.1, 2) },
      };
      return [view, { ...view }];
    }
    case 'byol': {
      const base = { size, scale: [0.08, 1] as [number, number], ratio: RATIO, flip: 0.5, jitter: jitter(0.2, 0.1), grayscale: 0.2 };
      return [
        { ...base, blur: { prob: 1, sigma: sigma(size, 0.1, 2) }, solarize: 0 },
        { ...base, blur: { prob: 0.1, sigma: sigma(size, 0.1, 2) }, solarize: 0.2 },
      ];
    }
    case 'multicrop': {
      const global: ViewConfig = {
        size,
        scale: [0.14, 1],
        ratio: RATIO,
        flip: 0.5,
        jitter: jitter(0.4, 0.1),
        grayscale: 0.2,
        blur: { prob: 0.5, sigma: sigma(size, 0.1, 2) },
      };
      const localSize = Math.max(8, Math.round((size * 96) / 224));
      const local: ViewConfig = { ...global, size: localSize, scale: [0.05, 0.14], blur: { prob: 0.5, sigma: sigma(localSize, 0.1, 2) } };
      return [global, { ...global }, ...Array.from({ length: 6 }, () => ({ ...local }))];
    }
  }
}

/**
 * The same views with the first one made an attention view (`--attention-view`): it keeps
 * the main object; the other views stay random crops.
 */
export function withAttentionView(views: ViewConfig[], options: AttentionCropOptions = {}): ViewConfig[] {
  const [first, ...rest] = views;
  if (!first) throw new Error('views: expected at least one view');
  return [{ ...first, crop: 'attention', attentionCrop: options }, ...rest];
}

/** The whole image resized to `size × size`, unaugmented (a non-square image is squashed). */
export function wholeImageView(size: number): ViewConfig {
  return { size, crop: 'whole', scale: [1, 1], ratio: [1, 1], flip: 0 };
}

/**
 * The image's central square resized to `size × size`, unaugmented: what feature export,
 * evaluation, the kNN monitor and the report see. Shapes keep their aspect; the long side's
 * ends are cut off (torchvision's Resize(short side) + CenterCrop).
 */
export function centreSquareView(size: number): ViewConfig {
  return { size, crop: 'centre', scale: [1, 1], ratio: [1, 1], flip: 0 };
}

/** HARL's mask-aware crop: a crop keeps at least 20 % foreground (METHODS.md §2). */
export const HARL_MIN_FOREGROUND = 0.2;

/** The random-crop views made mask-aware: each keeps at least `fraction` of its area on the foreground (HARL). */
export function withMinForeground(views: ViewConfig[], fraction: number): ViewConfig[] {
  return fraction > 0 ? views.map((v) => (v.crop === undefined || v.crop === 'random' ? { ...v, minForeground: fraction } : v)) : views;
}

/** The hue range of a preset's colour jitter, in turns (undefined for a preset without one). */
export function presetHue(preset: PresetName, size: number): number | undefined {
  return presetViews(preset, size)[0]?.jitter?.hue;
}

/**
 * The views with their colour jitter's hue range set to `hue` turns (`[−hue, hue]`, at most 0.5,
 * which draws any hue); views without jitter are left as they are; undefined keeps the preset's.
 */
export function withHue(views: ViewConfig[], hue: number | undefined): ViewConfig[] {
  if (hue === undefined) return views;
  if (!(hue >= 0 && hue <= 0.5)) throw new Error(`hue: expected a range in turns in [0, 0.5], got ${hue}`);
  return views.map((v) => (v.jitter ? { ...v, jitter: { ...v.jitter, hue } } : v));
}

/** Parses a preset name, naming the flag when it is wrong. */
export function parsePreset(value: string, field = '--preset'): PresetName {
  if ((PRESETS as readonly string[]).includes(value)) return value as PresetName;
  throw new Error(`${field}: expected one of ${PRESETS.join('|')}, got "${value}"`);
}

function checkProbability(p: number | undefined, field: string): void {
  if (p !== undefined && !(p >= 0 && p <= 1)) throw new Error(`${field}: expected a probability in [0, 1], got ${p}`);
}

function checkRange(r: readonly [number, number], field: string, lo: number, hi: number): void {
  if (!(r.length === 2 && r[0] > lo && r[0] <= r[1] && r[1] <= hi)) {
    throw new Error(`${field}: expected ${lo} < lo ≤ hi ≤ ${hi}, got [${r.join(', ')}]`);
  }
}

/** Refuses a view configuration that cannot work, naming the field. */
export function checkViewConfigs(views: readonly ViewConfig[]): void {
  if (views.length === 0) throw new Error('views: expected at least one view');
  views.forEach((v, k) => {
    const at = `views[${k}]`;
    if (!Number.isInteger(v.size) || v.size < 1) throw new Error(`${at}.size: expected a positive integer, got ${v.size}`);
    checkRange(v.scale, `${at}.scale`, 0, 1);
    checkRange(v.ratio, `${at}.ratio`, 0, Infinity);
    if (v.crop !== undefined && v.crop !== 'random' && v.crop !== 'attention' && v.crop !== 'whole' && v.crop !== 'centre') {
      throw new Error(`${at}.crop: expected random|attention|whole|centre, got "${String(v.crop)}"`);
    }
    if (v.attentionCrop?.mass !== undefined && !(v.attentionCrop.mass > 0 && v.attentionCrop.mass <= 1)) {
      throw new Error(`${at}.attentionCrop.mass: expected a fraction in (0, 1], got ${v.attentionCrop.mass}`);
    }
    checkProbability(v.flip, `${at}.flip`);
    if (v.minForeground !== undefined && !(v.minForeground >= 0 && v.minForeground < 1))
      throw new Error(`${at}.minForeground: expected a fraction in [0, 1), got ${v.minForeground}`);
    checkProbability(v.grayscale, `${at}.grayscale`);
    checkProbability(v.solarize, `${at}.solarize`);
    if (v.jitter) {
      checkProbability(v.jitter.prob, `${at}.jitter.prob`);
      for (const f of ['brightness', 'contrast', 'saturation'] as const) {
        if (!(v.jitter[f] >= 0)) throw new Error(`${at}.jitter.${f}: expected ≥ 0, got ${v.jitter[f]}`);
      }
      if (!(v.jitter.hue >= 0 && v.jitter.hue <= 0.5)) throw new Error(`${at}.jitter.hue: expected 0–0.5, got ${v.jitter.hue}`);
    }
    if (v.blur) {
      checkProbability(v.blur.prob, `${at}.blur.prob`);
      checkRange(v.blur.sigma, `${at}.blur.sigma`, 0, Infinity);
    }
  });
}
