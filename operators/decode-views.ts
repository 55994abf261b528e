import sharp from 'sharp';
import type { OperatorFunction } from 'rxjs';
import { orderedMergeMap } from './ordered-merge-map.js';
import type { EncodedView, Pixels, Plane, Sample, SkipRecord, View } from '../core/index.js';

export interface DecodeViewsOptions {
  /** Views per epoch (the preset's count, P). A sample holding G·P views shows group `epoch mod G`. */
  perEpoch: number;
  epoch?: number;
  /** Samples decoded at once (default 4, on sharp's pool). */
  concurrency?: number;
  onSkip?: (record: SkipRecord) => void;
}

async function decodeView(v: EncodedView): Promise<View> {
  const { data, info } = await sharp(v.image)
    .removeAlpha()
    .toColourspace('srgb')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`view decoded to ${info.channels} channels, expected 3`);
  const pixels: Pixels = {
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    width: info.width,
    height: info.height,
    channels: 3,
  };
  const view: View = { pixels, box: v.box, flipped: v.flipped };
  if (v.mask) {
    const m = await sharp(v.mask).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    const mask: Plane = { data: new Uint8Array(m.info.width * m.info.height), width: m.info.width, height: m.info.height };
    for (let i = 0; i < mask.data.length; i++) mask.data[i] = (m.data[i] as number) >= 128 ? 1 : 0;
    view.mask = mask;
  }
  return view;
}

/**
 * Decodes the precomputed views of this epoch (the counterpart of `multiView` for samples
 * read from `precompute` shards): no source decode, no masks, no augmentation — those were
 * done once, offline. A sample whose views cannot be decoded is dropped and reported.
 *
 * ```
 * input:   a(encodedViews: [e0 v0, e0 v1, e1 v0, e1 v1])      (perEpoch 2, epoch 1)
 * output:  a(views: [decoded e1 v0, decoded e1 v1])
 * ```
 */
export function decodeViews(options: DecodeViewsOptions): OperatorFunction<Sample, Sample> {
  const { perEpoch, epoch = 0 } = options;
  if (!Number.isInteger(perEpoch) || perEpoch < 1) throw new Error(`decodeViews: perEpoch must be a positive integer, got ${perEpoch}`);
  return orderedMergeMap(async (sample: Sample) => {
    const all = sample.encodedViews;
    try {
      if (!all || all.length < perEpoch || all.length % perEpoch !== 0) {
        throw new Error(`expected a multiple of ${perEpoch} precomputed views, found ${all?.length ?? 0}`);
      }
      const group = epoch % (all.length / perEpoch);
      const views = await Promise.all(all.slice(group * perEpoch, (group + 1) * perEpoch).map(decodeView));
      const { encodedViews: _dropped, ...rest } = sample;
      return { ...rest, views };
    } catch (err) {
      options.onSkip?.({ id: sample.id, stage: 'decode-views', reason: err instanceof Error ? err.message : String(err) });
      return undefined;
    }
  }, options.concurrency ?? 4);
}
