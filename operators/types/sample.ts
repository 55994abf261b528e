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

/** One augmented view of a sample, with the geometry that ties it back to the source. */
export interface View {
  pixels: Pixels;
  /** The crop this view shows, in source coordinates. */
  box: Box;
  /** Mirrored left–right after cropping. */
  flipped: boolean;
  /** The sample's maps, cut, resized (nearest) and flipped exactly like the pixels. */
  mask?: Plane;
  gtMask?: Plane;
  gtClasses?: Plane;
  attention?: Plane<Float32Array>;
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
  /** Ground truth from synthetic scenes, in source coordinates. */
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
  views?: View[];
  /** Views read from precomputed shards, every epoch's, before `decodeViews` picks and decodes this epoch's. */
  encodedViews?: EncodedView[];
}

/** Why a sample left the stream early; one line of the job's `skipped.jsonl`. */
export interface SkipRecord {
  id: string;
  stage: string;
  reason: string;
}
