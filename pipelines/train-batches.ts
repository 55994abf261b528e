/**
 * The batches `densestream train` trains on: each epoch's samples in seeded order, cut into
 * views live (decode → masks → multiView) or read from `precompute` shards, and for softrank
 * paired with positives before the views are cut; collated into batches under the sample budget.
 */
import { join } from 'node:path';
import { concat, defer, EMPTY, map, tap, throwError, type Observable, type OperatorFunction } from 'rxjs';
import { isRandomAccess, readSamples, recordingOnce, skippingKnownBad, type Source } from '../datasets/source.js';
import type { PrecomputedViews } from '../datasets/parquet-views.js';
import { encoderGridSide, encoderPreset } from '../models/encoder-spec.js';
import type { AttentionSource } from '../operators/attention-map.js';
import type { AugmentPath } from '../operators/augment-path.js';
import type { PixelWorkers } from '../operators/pixel-workers.js';
import { presetHue } from '../operators/augment-presets.js';
import { batch } from '../operators/batch.js';
import { decodeViews } from '../operators/decode-views.js';
import { fromSource } from '../operators/from-source.js';
import type { SampleBudget } from '../operators/sample-budget.js';
import type { Batch } from '../core/batch.js';
import { ConfigError } from '../core/config-error.js';
import type { Sample, SkipRecord } from '../core/index.js';
import type { EncoderMaps } from './encoder-attention.js';
import { pairPositives } from '../positives/pair-positives.js';
import { decodeWithMasks, sampleViews, type SampleViewOptions } from './sample-views.js';
import type { PositiveSampling } from '../positives/run-positives.js';
import { viewMasks } from './train-options.js';
import type { TrainConfig } from './train-schema.js';

/** Training from `precompute` shards: the views must be the ones this configuration asks for. */
function checkPrecomputed(c: TrainConfig, p: PrecomputedViews): void {
  const differ: string[] = [];
  if (p.size !== c.size) differ.push(`--size ${c.size} (the views are ${p.size} px)`);
  if (p.preset !== c.preset) differ.push(`--preset ${c.preset} (the views are ${p.preset})`);
  if (p.attentionView !== c['attention-view'])
    differ.push(`--attention-view ${c['attention-view']} (the views were cut with ${p.attentionView})`);
  if (c.method === 'hapicl' && p.masks === 'none') differ.push('--method hapicl needs masks (precompute with --masks saliency|kmeans|gt)');
  const minForeground = c.method === 'hapicl' ? (c['min-foreground'] ?? 0) : 0;
  if (p.minForeground !== minForeground) {
    differ.push(
      c.method === 'hapicl'
        ? `--min-foreground ${minForeground} (the views were cut with ${p.minForeground})`
        : `--method ${c.method} cuts plain crops (the views were cut keeping ${p.minForeground} of each crop on the mask; precompute with --min-foreground 0)`,
    );
  }
  // The hue ranges the views were and would be cut with: given, or the preset's.
  const hue = presetHue(c.preset, c.size);
  if ((p.hue ?? hue) !== (c.hue ?? hue))
    differ.push(`--hue ${c.hue ?? `${hue} (the preset's)`} (the views were cut with ${p.hue ?? `the preset's ${hue}`})`);
  if (differ.length > 0) throw new ConfigError(`--data ${c.data}: precomputed views do not fit: ${differ.join('; ')}`);
}

/** The data plane's view options of a run (the pixels' path aside). */
export function trainViewOptions(c: TrainConfig, attention?: AttentionSource, featureMask?: EncoderMaps['mask']): SampleViewOptions {
  return {
    size: c.size,
    preset: c.preset,
    attentionView: c['attention-view'],
    masks: viewMasks(c),
    minForeground: c.method === 'hapicl' ? (c['min-foreground'] ?? 0) : 0,
    ...(c.hue === undefined ? {} : { hue: c.hue }),
    ...(c['saliency-size'] === undefined ? {} : { saliencySize: c['saliency-size'] }),
    seed: c.seed,
    ...(attention ? { attention } : {}),
    ...(featureMask ? { featureMask } : {}),
  };
}

/** Samples the source reads per batch: all of them, or for softrank's pairs the anchors only (positives are read again by id, or come from a stream's reservoir). */
export const sourceSamplesPerBatch = (c: TrainConfig): number => (c.method === 'softrank' ? c.batch / 2 : c.batch);

/** What a run brings to its batches beyond its configuration. */
export interface TrainBatchOptions {
  /** The step to start from (a resumed run's). */
  startStep?: number;
  /** softrank's clusterings, which positives come from. */
  positives?: PositiveSampling;
  /** The attention source, when not the default saliency. */
  attention?: AttentionSource;
  /** `--masks encoder`: masks from an encoder's features. */
  featureMask?: EncoderMaps['mask'];
  /** Where view pixels are cut (default cpu). */
  augment?: AugmentPath;
  /** The pixel workers saliency maps and masks are computed on (default: the main thread). */
  workers?: PixelWorkers;
}

/**
 * The batches a run trains on from step `startStep`: each epoch's samples in seeded order,
 * cut into views live (decode → masks → multiView) or, for `parquet:DIR`, the precomputed
 * views of that epoch. Samples hold a permit of `budget` until the trainer releases them.
 *
 * softrank: each decoded anchor is followed by its positive (`pairPositives`) before the views
 * are cut, so a batch of `c.batch` samples holds `c.batch / 2` pairs and `c.batch / 2` permits
 * (the positives take none). Positives come from `positives`' clusterings; without it, every
 * anchor is its own positive.
 */
export function trainBatches(
  c: TrainConfig,
  source: Source,
  budget: SampleBudget,
  record: (r: SkipRecord) => void,
  options: TrainBatchOptions = {},
): Observable<Batch> {
  const { startStep = 0, positives, attention, featureMask, augment = 'cpu', workers } = options;
  const viewOptions: SampleViewOptions = { ...trainViewOptions(c, attention, featureMask), augment, ...(workers ? { workers } : {}) };
  const perEpoch = isRandomAccess(source) && Number.isFinite(source.size) ? source.size : Infinity;
  const perBatch = sourceSamplesPerBatch(c);
  const position = startStep * perBatch;
  const firstEpoch = Number.isFinite(perEpoch) ? Math.floor(position / perEpoch) : 0;
  const firstSkip = Number.isFinite(perEpoch) ? position % perEpoch : position;
  const precomputed = 'precomputed' in source ? (source.precomputed as PrecomputedViews) : undefined;
  if (precomputed) checkPrecomputed(c, precomputed);
  // An input that cannot be read or decoded is recorded once and not read again in later epochs.
  const bad = new Set<string>();
  record = recordingOnce(record, bad);
  const dropped = (r: SkipRecord) => {
    record(r);
    budget.release();
  };
  let read = skippingKnownBad(source, bad);
  let beforeViews: ((epoch: number) => OperatorFunction<Sample, Sample>) | undefined;
  if (c.method === 'softrank' && precomputed)
    throw new ConfigError(`--data ${c.data}: softrank pairs anchors before the views are cut; it needs images, not precomputed views`);
  if (c.method === 'softrank') {
    const paired = pairPositives(read, {
      positives,
      anchorsPerBatch: perBatch,
      seed: c.seed,
      prepare: decodeWithMasks(viewOptions, record),
      record,
    });
    read = paired.read;
    beforeViews = paired.pairs;
  }
  const views = (epoch: number) =>
    precomputed
      ? decodeViews({ perEpoch: precomputed.viewsPerEpoch, epoch, onSkip: dropped })
      : sampleViews(viewOptions, [epoch], dropped, record, withoutGroundTruth(beforeViews?.(epoch)));
  const pass = (epoch: number): Observable<Sample> => {
    let cut = 0;
    return concat(
      fromSource(readSamples(read, { seed: c.seed, epoch, skip: epoch === firstEpoch ? firstSkip : 0 }, record), budget).pipe(
        views(epoch),
        tap(() => {
          cut++;
        }),
      ),
      // A pass that yields nothing would repeat forever (and, before this check, trained 0 steps and wrote a random-init checkpoint).
      defer(() =>
        cut > 0
          ? EMPTY
          : throwError(
              () =>
                new Error(
                  `--data ${c.data}: no sample of ${epoch === firstEpoch ? 'the first pass' : `epoch ${epoch}`} could be read and decoded (${bad.size} unreadable); see ${join(c.out, 'skipped.jsonl')} for why`,
                ),
            ),
      ),
    );
  };
  // A finite source is read pass after pass until the trainer has its steps (not a count of
  // passes fixed in advance: unreadable inputs make passes shorter); a stream is read once.
  const passes = (epoch: number): Observable<Sample> =>
    concat(pass(epoch), Number.isFinite(perEpoch) ? defer(() => passes(epoch + 1)) : EMPTY);
  return passes(firstEpoch).pipe(
    batch(c.batch, {
      keepLast: false,
      ...(c.method === 'densecl' && c.match === 'geometric'
        ? { geometricGrid: encoderGridSide(encoderPreset(c.encoder, c.size), c.size) }
        : {}),
    }),
  );
}

/**
 * `then` (if any), then the ground-truth maps dropped from each sample: training reads a view's
 * foreground `mask` (which `--masks gt` has already copied from the ground truth) and never its
 * ground truth, and `multiView` cuts every map a sample carries, two 64-px planes a view on the
 * scenes, on the main thread between steps.
 */
function withoutGroundTruth(then?: OperatorFunction<Sample, Sample>): OperatorFunction<Sample, Sample> {
  const strip = map(({ gtMask: _mask, gtClasses: _classes, gtInstances: _instances, ...rest }: Sample): Sample => rest);
  return then ? (samples) => samples.pipe(then, strip) : strip; // after `then`: softrank's pairing adds positives
}
