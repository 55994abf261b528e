import type { OperatorFunction } from 'rxjs';
import { mapInOrder, thenOrNow } from './map-in-order.js';
import type { Pixels, Plane, Sample } from '../core/index.js';
import { saliencyMap, type SaliencyOptions } from './saliency.js';

/**
 * Where an attention map comes from: one interface for every kind. `saliency` needs no
 * weights and answers at once; an encoder's own map (activation energy, ViT CLS attention) and
 * a user's tfjs model answer with a promise, since a GPU backend reads its results back
 * asynchronously (WebGPU under Node has no synchronous read at all).
 */
export type AttentionSource = (pixels: Pixels, sample: Sample) => Plane<Float32Array> | Promise<Plane<Float32Array>>;

/** A foreground mask from an encoder's features (`--masks encoder`), answering later for the same reason. */
export type FeatureMaskSource = (pixels: Pixels, sample: Sample) => Plane | Promise<Plane>;

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
  return mapInOrder((sample) => {
    if (!sample.pixels) throw new Error(`attentionMap: sample ${sample.id} is not decoded (put decode() first)`);
    return thenOrNow(source(sample.pixels, sample), (attention) => ({ ...sample, attention }));
  });
}
