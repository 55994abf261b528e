import { map, type OperatorFunction } from 'rxjs';
import type { Pixels, Plane, Sample } from '../core/index.js';
import { saliencyMap, type SaliencyOptions } from './saliency.js';

/**
 * Where an attention map comes from: one interface for every kind. `saliency` needs no
 * weights; an encoder's own map (activation energy, ViT CLS attention) and a user's tfjs
 * model plug in as further functions of this type (they arrive with the trainer).
 */
export type AttentionSource = (pixels: Pixels, sample: Sample) => Plane<Float32Array>;

/** The default source: frequency-tuned saliency with a centre prior. */
export function saliencyAttention(options: SaliencyOptions = {}): AttentionSource {
  return (pixels) => saliencyMap(pixels, options);
}

/**
 * Attaches an attention map to each decoded sample (over the whole source, at the map's own
 * resolution); `multiView` cuts it with every view and attention-cropped views use it.
 *
 * ```
 * input:   a(pixels)
 * output:  a(pixels, attention)
 * ```
 *
 * @example
 * source$.pipe(decode(), attentionMap(), foregroundMask(), multiView({ views }))
 * @param source Default: {@link saliencyAttention}.
 * @see foregroundMask
 */
export function attentionMap(source: AttentionSource = saliencyAttention()): OperatorFunction<Sample, Sample> {
  return map((sample) => {
    if (!sample.pixels) throw new Error(`attentionMap: sample ${sample.id} is not decoded (put decode() first)`);
    return { ...sample, attention: source(sample.pixels, sample) };
  });
}
