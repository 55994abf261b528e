/**
 * The contracts between datasets, operators and the trainer (DESIGN.md, "Contracts").
 * Plain data with typed arrays: no tensors, no callbacks, nothing that needs disposing.
 */

/** A decoded image: interleaved 8-bit channels, row-major. */
export interface Pixels {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3;
}

/** A single-channel map (mask, class map, attention) over an image or a view. */
export interface Plane<T extends Uint8Array | Float32Array = Uint8Array> {
  data: T;
  width: number;
  height: number;
}

/** `[x0, y0, x1, y1]` in source-image pixels (x1, y1 exclusive; fractional allowed). */
export type Box = readonly [number, number, number, number];

/** The sample's maps as one view sees them: cut, resized (nearest) and flipped exactly like its pixels. */
export interface ViewMaps {
  mask?: Plane;
  gtMask?: Plane;
  gtClasses?: Plane;
  attention?: Plane<Float32Array>;
}

/** Every random choice of one view, drawn up front on the CPU in a fixed order (determinism). */
export interface ViewPlan {
  /** The crop, in source coordinates (integer pixels, x1 and y1 exclusive). */
  box: Box;
  flipped: boolean;
  /** Colour jitter factors (hue: a shift in turns), when the view is jittered. */
  jitter?: { brightness: number; contrast: number; saturation: number; hue: number };
  grayscale: boolean;
  /** Gaussian blur sigma in view pixels, when the view is blurred. */
  blurSigma?: number;
  solarize: boolean;
}

/** One augmented view of a sample, with the geometry that ties it back to the source. */
export interface View extends ViewMaps {
  pixels: Pixels;
  /** The crop this view shows, in source coordinates. */
  box: Box;
  /** Mirrored left–right after cropping. */
  flipped: boolean;
  plan?: undefined;
}

/**
 * A view whose geometry and colour are drawn but whose pixels are not cut yet: the compute
 * backend cuts them per batch from the sample's `pixels` (`multiView({ augment: 'backend' })`,
 * then `batch` or `cutPlannedViews`). Its maps are already cut, on the CPU.
 */
export interface PlannedView extends ViewMaps {
  plan: ViewPlan;
  /** Side of the square view, in pixels. */
  size: number;
  box: Box;
  flipped: boolean;
  /** Mean grey level of the crop (the contrast jitter blends toward it), measured on the CPU. */
  meanGrey: number;
  pixels?: undefined;
}

/**
 * The pixels of view `k` of `sample`, which must be cut already (not planned for the backend);
 * throws naming the sample otherwise.
 */
export function cutPixels(sample: Sample, k: number): Pixels {
  const v = sample.views?.[k];
  if (!v) throw new Error(`sample ${sample.id} has no view ${k} (put multiView() first)`);
  if (!v.pixels)
    throw new Error(
      `sample ${sample.id}: view ${k} is planned for the backend, not cut (put cutPlannedViews() after multiView({ augment: 'backend' }))`,
    );
  return v.pixels;
}

/** A view precomputed by `densestream precompute`, still encoded (PNG/JPEG/WebP). */
export interface EncodedView {
  image: Uint8Array;
  /** The view's foreground mask as a grey PNG (0 / 255), when masks were precomputed. */
  mask?: Uint8Array;
  box: Box;
  flipped: boolean;
}

/** One image on its way from a source to the trainer. */
export interface Sample {
  /** Stable across runs: a relative path, `shard:index`, `scenes:42`. */
  id: string;
  /** Encoded bytes, before `decode`. */
  bytes?: Uint8Array;
  /** Decoded RGB (or grey before `decode` normalises it). */
  pixels?: Pixels;
  label?: number;
  /** Ground truth, in source coordinates: the synthetic scenes', or Fashion-MNIST's silhouettes (mask and classes only). */
  gtMask?: Plane;
  gtClasses?: Plane;
  /** Which object (1-based, 0 = background) is visible at each pixel; `gtBoxes[k−1]` is its box. */
  gtInstances?: Plane;
  gtBoxes?: Box[];
  /** Where the image draws the eye, ≥ 0, over the whole source at its own resolution. */
  attention?: Plane<Float32Array>;
  /** Foreground mask (0/1) over the whole source, at its own resolution. */
  mask?: Plane;
  /** Id of the sample chosen as this one's positive. */
  positive?: string;
  /** Cut views, or, with the backend cutting pixels, planned ones (never both in one sample). */
  views?: Array<View | PlannedView>;
  /** Views read from precomputed shards, every epoch's, before `decodeViews` picks and decodes this epoch's. */
  encodedViews?: EncodedView[];
}

/** Why a sample left the stream early; one line of the job's `skipped.jsonl`. */
export interface SkipRecord {
  id: string;
  stage: string;
  reason: string;
}
