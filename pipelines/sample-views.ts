/**
 * The part of the data plane that turns decoded-to-be samples into training views:
 * decode → attention → foreground mask → (clusterPositives) → multiView. `train` and
 * `precompute` both build it here, so views written by `precompute` are exactly the views
 * `train` would cut live (their pixels and masks; live training drops the ground-truth maps
 * first, as it never reads them).
 */
import { from, lastValueFrom, map, of, toArray, type OperatorFunction } from 'rxjs';
import { readSamples, type Source } from '../datasets/source.js';
import { attentionMap, saliencyAttention, type AttentionSource, type FeatureMaskSource } from '../operators/attention-map.js';
import { mapInOrder, thenOrNow } from '../operators/map-in-order.js';
import {
  presetViews,
  withAttentionView,
  withHue,
  withMinForeground,
  type PresetName,
  type ViewConfig,
} from '../operators/augment-presets.js';
import { decode } from '../operators/decode.js';
import { foregroundMask } from '../operators/foreground-mask.js';
import { multiView } from '../operators/multi-view.js';
import { saliencyMasks, type PixelWorkers } from '../operators/pixel-workers.js';
import { saliencySizeFor } from '../operators/saliency.js';
import type { AugmentChoice, AugmentPath } from '../operators/augment-path.js';
import { chooseAugmentPath, type AugmentDecision } from '../operators/augment-choice.js';
import { withKernelsAsleep } from '../models/kernels/kernel-registry.js';
import type { Pixels, Sample, SkipRecord } from '../core/index.js';
import type { ViewMasks } from './shared-options.js';

export type { ViewMasks } from './shared-options.js';

export interface SampleViewOptions {
  size: number;
  /** Where attention maps come from, for the attention view and saliency masks (default: saliency). */
  attention?: AttentionSource;
  /** `masks: 'encoder'`: 2-means on an encoder's features (`encoderKmeansMask`). */
  featureMask?: FeatureMaskSource;
  preset: PresetName;
  /** The first view keeps the main object (METHODS.md §3). */
  attentionView: boolean;
  /** Foreground masks carried into the views: none, from saliency, colour k-means, or the ground truth (scenes, Fashion-MNIST). */
  masks: ViewMasks;
  /** Random crops keep at least this fraction of their area on the mask (HARL; 0 or unset: plain crops). Needs masks. */
  minForeground?: number;
  /** The colour jitter's hue range in turns (unset: the preset's). */
  hue?: number;
  seed: number;
  /** Where view pixels are cut (default cpu): `backend` leaves planned views for `batch` or `cutPlannedViews`. */
  augment?: AugmentPath;
  /** Computes the default saliency maps and their masks off the main thread (the same values); without it, here. */
  workers?: PixelWorkers;
  /** The default saliency maps' long side (default `saliencySizeFor(size)`: as fine as the views, at most 64). */
  saliencySize?: number;
}

/** The view blocks of one epoch (the preset, its first view made an attention view if asked). */
export function viewConfigs(o: SampleViewOptions): ViewConfig[] {
  if (o.minForeground && o.masks === 'none') throw new Error('views: a mask-aware crop (minForeground) needs masks');
  const preset = withHue(withMinForeground(presetViews(o.preset, o.size), o.minForeground ?? 0), o.hue);
  return o.attentionView ? withAttentionView(preset) : preset;
}

/** Shrink on decode, but keep enough pixels for the smallest crop at full view resolution. */
export function decodeMinSide(size: number): number {
  return Math.ceil(size / Math.sqrt(0.2));
}

/** Whether the chain of `o` computes attention maps: for the attention view, or for saliency masks. */
function attends(o: Omit<SampleViewOptions, 'workers'>): boolean {
  return o.attentionView || o.masks === 'saliency';
}

/** Whether the chain of `o` computes maps on pixel workers when given some: the default saliency, with its masks or for the attention view. */
export function mapsOnWorkers(o: Omit<SampleViewOptions, 'workers'>): boolean {
  return o.attention === undefined && attends(o) && (o.masks === 'saliency' || o.masks === 'none');
}

function withMasks(o: SampleViewOptions, onSkip: (r: SkipRecord) => void): OperatorFunction<Sample, Sample> {
  const onFallback = (id: string, reason: string) => onSkip({ id, stage: 'mask', reason });
  const saliency = { size: o.saliencySize ?? saliencySizeFor(o.size) };
  // The default saliency, with its masks, on the pixel workers: the same maps and masks, in the same order.
  if (o.workers && mapsOnWorkers(o)) return saliencyMasks(o.workers, o.masks === 'saliency' ? { onFallback } : undefined, saliency);
  const attend: OperatorFunction<Sample, Sample> = attends(o) ? attentionMap(o.attention ?? saliencyAttention(saliency)) : (s) => s;
  switch (o.masks) {
    case 'none':
      return attend;
    case 'encoder': {
      const featureMask = o.featureMask;
      if (!featureMask) throw new Error('--masks encoder: needs an encoder (--attention encoder or encoder:RUN)');
      return (samples) =>
        samples.pipe(
          attend,
          mapInOrder((s) => thenOrNow(featureMask(s.pixels as Pixels, s), (mask) => ({ ...s, mask }))),
        );
    }
    case 'gt':
      return (samples) =>
        samples.pipe(
          attend,
          map((s) => {
            if (!s.gtMask) throw new Error(`--masks gt: sample ${s.id} has no ground truth (only scenes and Fashion-MNIST carry it)`);
            return { ...s, mask: s.gtMask };
          }),
        );
    case 'saliency':
    case 'kmeans':
      return (s) => s.pipe(attend, foregroundMask({ method: o.masks === 'kmeans' ? 'kmeans' : 'saliency', seed: o.seed, onFallback }));
  }
}

/** Images `--augment auto` measures both pixel paths on. */
export const AUGMENT_PROBE_IMAGES = 32;

/**
 * `--augment` resolved for the view chain of `o` over `source`: as asked, or for `auto` measured
 * on the source's first images, decoded as the chain decodes them (`chooseAugmentPath`). When
 * those cannot be read (remote shards out of reach), `auto` takes the CPU unmeasured and the run
 * itself meets the error, where it is reported and recorded as any read of the run is.
 */
export async function chooseViewAugment(choice: AugmentChoice, source: Source, o: SampleViewOptions): Promise<AugmentDecision> {
  if (choice !== 'auto') return chooseAugmentPath(choice, { samples: [], views: [] });
  let samples: Sample[];
  try {
    samples = await lastValueFrom(
      from(readSamples(source, { shuffle: false, limit: AUGMENT_PROBE_IMAGES })).pipe(
        decode({ minSide: decodeMinSide(o.size) }),
        toArray(),
      ),
    );
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return { path: 'cpu', reason: `augment: cpu (auto: the first images could not be read to measure on: ${reason})` };
  }
  // The probe times cutting pixels, on unmasked samples: mask-aware crops are placed otherwise, at the sizes plain ones draw.
  // Its CPU time counts every thread, so the kernels' threads sleep at once meanwhile: their 0.2-ms
  // watch after each call would otherwise be charged to the backend path (Fashion-MNIST: 0.058–0.084
  // ms of CPU an image watching, 0.044–0.064 asleep, four alternating probes), where a run's steps
  // pay that watch wherever its views are cut.
  return withKernelsAsleep(() => chooseAugmentPath(choice, { samples, views: viewConfigs({ ...o, minForeground: 0 }), seed: o.seed }));
}

/**
 * One sample decoded and masked as `sampleViews` does before cutting views (for samples read
 * out of stream order: clustering positives). Rejects with the decoder's reason when the
 * sample cannot be decoded.
 */
export function decodeWithMasks(o: SampleViewOptions, onNote: (r: SkipRecord) => void): (sample: Sample) => Promise<Sample> {
  const masks = withMasks(o, onNote);
  return async (sample) => {
    let reason = 'not decoded';
    const onSkip = (r: SkipRecord) => {
      reason = r.reason;
    };
    const [out] = await lastValueFrom(of(sample).pipe(decode({ minSide: decodeMinSide(o.size), onSkip }), masks, toArray()));
    if (!out) throw new Error(reason);
    return out;
  };
}

/**
 * Encoded samples → samples with the views of `epochs` (concatenated: epoch e's views are
 * `views[e·P … e·P + P)` for a preset of P views). `onDecodeSkip` hears of undecodable inputs
 * (the caller returns their budget); `onNote` of fallbacks (no attention map, empty mask).
 * `beforeViews` runs on decoded, masked samples just before the views are cut (clustering
 * positives: each sample it adds gets views of its own, keyed by its id).
 */
export function sampleViews(
  o: SampleViewOptions,
  epochs: readonly number[],
  onDecodeSkip: (r: SkipRecord) => void,
  onNote: (r: SkipRecord) => void,
  beforeViews?: OperatorFunction<Sample, Sample>,
): OperatorFunction<Sample, Sample> {
  // Several epochs' views are gathered by id, which a positive may share with its anchor.
  if (beforeViews && epochs.length !== 1) throw new Error(`sampleViews: beforeViews takes one epoch, got ${epochs.length}`);
  const views = viewConfigs(o);
  const onFallback = (id: string, reason: string, stage: string) => onNote({ id, stage, reason });
  const perEpoch = epochs.map((epoch) => multiView({ views, seed: o.seed, epoch, onFallback, augment: o.augment ?? 'cpu' }));
  return (samples) => {
    let out = samples.pipe(decode({ minSide: decodeMinSide(o.size), onSkip: onDecodeSkip }), withMasks(o, onNote));
    if (beforeViews) out = out.pipe(beforeViews);
    if (perEpoch.length === 1) return out.pipe(perEpoch[0] as OperatorFunction<Sample, Sample>);
    // Several epochs: cut each epoch's views in turn and keep them all.
    const held = new Map<string, NonNullable<Sample['views']>>();
    perEpoch.forEach((cut) => {
      out = out.pipe(
        cut,
        map((s) => {
          const all = [...(held.get(s.id) ?? []), ...(s.views ?? [])];
          held.set(s.id, all);
          return { ...s, views: all };
        }),
      );
    });
    return out.pipe(
      map((s) => {
        held.delete(s.id);
        return s;
      }),
    );
  };
}
