/**
 * `densestream train`: assembles the data plane (source → decode → multiView → batch, bounded
 * by a sample budget), a method and the trainer. Every option is a flag and a key of the JSON
 * `--config` file; both are checked against one table before any work.
 *
 * `--method softrank` adds clustering positives: the data plane pairs each anchor with a
 * positive drawn from its k-means cluster (`positivePairs`, before `multiView`), and after each
 * step the trainer feeds the target embeddings to an embedding bank that is re-clustered in a
 * worker every `--recluster-every` steps (`Reclustering`, set up in `softrank-positives.ts`,
 * which also puts the bank and clusterings in every checkpoint so that `--resume` is exact).
 * On a stream (`tar:`), which cannot read a positive again by id, the positive comes from a
 * bounded reservoir of recent decoded anchors (`reservoirPairs`, `--reservoir`); the reservoir is
 * not checkpointed, so there a resume restarts it empty, says so, and is not exact.
 *
 * The kNN monitor (`train/knn-monitor.ts`) embeds a small labelled set (`--knn-data`, by default
 * the scenes trained on or Fashion-MNIST's test split) at random init and every `--knn-every`
 * steps; its accuracy is logged as `knn` and summarised as `knnInit` / `knnFinal`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { concat, defer, EMPTY, tap, throwError, type Observable, type OperatorFunction } from 'rxjs';
import { isRandomAccess, readSamples, recordingOnce, skippingKnownBad, type Source } from '../datasets/source.js';
import { createDenseCL } from '../methods/densecl.js';
import { createHapicl } from '../methods/hapicl.js';
import type { Method } from '../methods/method.js';
import { createMocoV2 } from '../methods/mocov2.js';
import { createSoftRank, type SoftRank, type SoftRankOptions } from '../methods/softrank.js';
import { BACKEND_CHOICES, selectBackend, type BackendChoice } from '../models/backend.js';
import { encoderPreset, encoderStride, ENCODER_NAMES } from '../models/encoders.js';
import { assignSaved, readSaved, readWeightsMeta, takeTensors } from '../models/weights-io.js';
import { HARL_MIN_FOREGROUND, PRESETS, type PresetName } from '../operators/augment-presets.js';
import { AUGMENT_CHOICES, type AugmentChoice } from '../operators/augment-choice.js';
import type { AugmentPath } from '../operators/multi-view.js';
import { batch, type Batch } from '../operators/batch.js';
import type { Sample, SkipRecord } from '../operators/types/index.js';
import { fromSource } from '../operators/from-source.js';
import { SampleBudget } from '../operators/sample-budget.js';
import { openSkipLog, skipSummary } from '../sinks/skip-log.js';
import type { PositiveStats } from '../train/recluster.js';
import { createKnnMonitor, KNN_K, KNN_TAU, knnGainStdErr, loadKnnSet, type KnnMonitor } from '../train/knn-monitor.js';
import { trainLoop, type CheckpointMeta, type MetricsRecord, type TrainResult } from '../train/trainer.js';
import { openSource } from './data-source.js';
import { prepareOutFolder } from './out-folder.js';
import { claimRunFolder } from './run-folder.js';
import { openAttentionSource } from './attention-source.js';
import { liveEncoderAttention, openEncoderAttention, type EncoderMaps } from './encoder-attention.js';
import type { AttentionSource } from '../operators/attention-map.js';
import type { PrecomputedViews } from '../datasets/parquet-views.js';
import { decodeViews } from '../operators/decode-views.js';
import { positivePairs, readableById } from './positive-pairs.js';
import { checkSavedPositives, MAX_RESERVOIR, openPositives, positiveSettings, type PositiveSampling } from './softrank-positives.js';
import { reservoirPairs } from './reservoir-pairs.js';
import { PositiveReservoir } from '../operators/clustering/index.js';
import type { ClusterIndex } from '../operators/cluster-positives.js';
import { chooseViewAugment, decodeWithMasks, sampleViews, type SampleViewOptions } from './sample-views.js';
import { coerce, ConfigError, flagTypes, toConfigError, type Spec } from './options.js';

export { ConfigError } from './options.js';

export const TRAIN_METHODS = ['densecl', 'mocov2', 'hapicl', 'softrank'] as const;
const MASK_SOURCES = ['saliency', 'kmeans', 'gt', 'encoder'] as const; // hapicl's masks (encoder: 2-means on --attention encoder[:RUN]'s features)
const ENCODERS = ENCODER_NAMES;
/** Options that only `--method softrank` reads (its clustering positives); refused with another method. */
const SOFTRANK_OPTIONS = ['recluster-every', 'clusters', 'bank-size', 'bank-precision', 'negatives', 'reservoir'] as const;
const SPEC = {
  data: { type: 'string' },
  method: { type: 'string', choices: TRAIN_METHODS },
  steps: { type: 'int', min: 1 },
  batch: { type: 'int', min: 2 },
  size: { type: 'int', min: 16 },
  encoder: { type: 'string', choices: ENCODERS },
  preset: { type: 'string', choices: PRESETS },
  masks: { type: 'string', choices: MASK_SOURCES },
  'min-foreground': { type: 'number', min: 0 },
  'attention-view': { type: 'boolean' },
  'align-weight': { type: 'number', min: 0 },
  optimizer: { type: 'string', choices: ['sgd', 'adamw', 'lars'] },
  backend: { type: 'string', choices: BACKEND_CHOICES },
  threads: { type: 'int', min: 1 },
  out: { type: 'string' },
  seed: { type: 'int', min: 0 },
  lr: { type: 'number', min: 0 },
  warmup: { type: 'int', min: 0 },
  'weight-decay': { type: 'number', min: 0 },
  queue: { type: 'int', min: 1 },
  'log-every': { type: 'int', min: 1 },
  'checkpoint-every': { type: 'int', min: 1 },
  epochs: { type: 'int', min: 1 },
  match: { type: 'string', choices: ['feature', 'geometric'] },
  attention: { type: 'string' },
  'attention-refresh': { type: 'int', min: 1 },
  'recluster-every': { type: 'int', min: 1 },
  clusters: { type: 'int', min: 2 },
  'bank-size': { type: 'int', min: 8 },
  'bank-precision': { type: 'string', choices: ['float32', 'float16'] },
  negatives: { type: 'int', min: 0 },
  reservoir: { type: 'int', min: 1 },
  'knn-every': { type: 'int', min: 0 },
  'knn-size': { type: 'int', min: 10 },
  'knn-data': { type: 'string' },
  augment: { type: 'string', choices: AUGMENT_CHOICES },
} as const satisfies Record<string, Spec>;

export interface TrainConfig {
  data: string; method: (typeof TRAIN_METHODS)[number]; steps: number; batch: number; size: number;
  encoder: (typeof ENCODERS)[number]; preset: PresetName; masks: (typeof MASK_SOURCES)[number]; 'attention-view': boolean; 'align-weight': number; optimizer: 'sgd' | 'adamw' | 'lars'; backend: BackendChoice; threads?: number; out: string;
  seed: number; lr: number; warmup: number; 'weight-decay': number; queue: number; 'log-every': number; 'checkpoint-every': number;
  /** Passes over the data instead of `steps` (finite sources; converted to steps once the source is open). */
  epochs?: number;
  /**
   * Attention for the attention view and saliency masks: boundary|frequency-tuned|model:PATH|
   * encoder:RUN, or `encoder`: the encoder being trained, refreshed every `attention-refresh` steps (default: saliency).
   */
  attention?: string;
  'attention-refresh'?: number;
  /**
   * hapicl: each random crop keeps at least this fraction of its area on the foreground mask
   * (HARL's mask-aware crop; default {@link HARL_MIN_FOREGROUND}, 0 = plain crops). Runs from
   * before the option have none: plain crops, as they were trained.
   */
  'min-foreground'?: number;
  /** densecl: positive key cell by backbone-feature argmax (default) or by the crop geometry. */
  match: 'feature' | 'geometric';
  /** softrank: steps between clusterings of the embedding bank. */
  'recluster-every': number;
  /** softrank: k (default min(100, bank/4)). */
  clusters?: number;
  /** softrank: embeddings the bank holds (default min(source size, 65 536)). */
  'bank-size'?: number;
  'bank-precision': 'float32' | 'float16';
  /** softrank: negatives K per pair from other clusters, taken from the bank (0: only the batch's candidates). */
  negatives?: number;
  /** softrank on a stream (tar:PATTERN): the recent decoded samples positives are drawn from (default 1 024). */
  reservoir?: number;
  /** kNN monitor: steps between evaluations, 0 = off (default 100 when the monitor set has labels, else off). */
  'knn-every': number;
  /** kNN monitor: samples of the monitor set (4/5 references, 1/5 queries). */
  'knn-size': number;
  /** kNN monitor: its labelled set (default: --data for scenes, fashion-mnist-test for fashion-mnist). */
  'knn-data'?: string;
  /** Where view pixels are cut: per image on the CPU, per batch on the compute backend, or the one measured cheaper (auto). */
  augment: AugmentChoice;
}

const DEFAULTS: Omit<TrainConfig, 'out'> = {
  data: 'scenes', method: 'densecl', steps: 200, batch: 32, size: 64, encoder: 'slim', preset: 'mocov2', masks: 'saliency', 'attention-view': false, 'align-weight': 0, optimizer: 'sgd', backend: 'auto',
  seed: 0, lr: 0.05, warmup: 20, 'weight-decay': 1e-4, queue: 4096, 'log-every': 10, 'checkpoint-every': 100, match: 'feature',
  'recluster-every': 50, 'bank-precision': 'float32', 'knn-every': 100, 'knn-size': 1000, augment: 'auto',
};

/**
 * Flags over the config file over the defaults; every value checked, nothing run yet. With
 * `--resume`, the configuration is the checkpoint's and only `--out` may be given.
 */
export function parseTrainConfig(argv: string[]): TrainConfig & { resume: boolean; overwrite: boolean; stepsDone?: number } {
  let flags: Record<string, string | boolean | undefined>;
  try {
    flags = parseArgs({
      args: argv,
      options: {
        ...flagTypes(SPEC),
        config: { type: 'string' },
        resume: { type: 'boolean' },
        overwrite: { type: 'boolean' },
      },
      strict: true,
    }).values;
  } catch (err) {
    toConfigError(err);
  }
  const overwrite = flags['overwrite'] === true;
  delete flags['overwrite']; // an action on the folder, not part of the run's configuration
  if (flags['resume']) {
    if (overwrite) throw new ConfigError('--resume continues the run in --out and --overwrite replaces it; give one');
    const others = Object.keys(flags).filter((k) => k !== 'resume' && k !== 'out' && k !== 'steps' && flags[k] !== undefined);
    if (others.length > 0) throw new ConfigError(`--resume takes the configuration from the checkpoint (only --steps may extend it); drop --${others.join(', --')}`);
    const out = typeof flags['out'] === 'string' ? flags['out'] : join('runs', DEFAULTS.method);
    const dir = join(out, 'checkpoint');
    if (!existsSync(join(dir, 'weights.json'))) throw new ConfigError(`--resume: no checkpoint in ${dir}`);
    const meta = readWeightsMeta(dir) as CheckpointMeta;
    const config = { ...(meta.config as TrainConfig), out };
    if (flags['steps'] !== undefined) {
      // Extends the run: the cosine schedule is re-planned to end at the new step count, from the step the checkpoint holds.
      const steps = coerce(SPEC, 'steps', flags['steps'], '--', true) as number;
      if (steps <= meta.step) throw new ConfigError(`--steps ${steps}: the run in ${out} has done ${meta.step} steps; --resume --steps extends it to more`);
      config.steps = steps;
      config.epochs = undefined; // the new length is in steps
    }
    return { ...config, resume: true, overwrite: false, stepsDone: meta.step };
  }
  const merged: Record<string, string | number | boolean> = { ...DEFAULTS };
  const given = new Set<string>();
  if (typeof flags['config'] === 'string') {
    const file = flags['config'];
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new ConfigError(`--config ${file}: cannot read it as JSON (${err instanceof Error ? err.message : String(err)})`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ConfigError(`--config ${file}: expected a JSON object`);
    for (const [k, v] of Object.entries(json)) {
      merged[k] = coerce(SPEC, k, v, `--config ${file}:`, false);
      given.add(k);
    }
  }
  for (const [k, v] of Object.entries(flags)) {
    if (k === 'config' || v === undefined) continue;
    merged[k] = coerce(SPEC, k, v, '--', true);
    given.add(k);
  }
  merged['out'] ??= join('runs', String(merged['method']));
  // Adam's steps are normalised: SGD's default rate would blow it up. Keep an explicit --lr.
  if (merged['optimizer'] === 'adamw' && !given.has('lr')) merged['lr'] = 1e-3;
  // LARS: the linear scaling rule lr = 0.3 × batch / 256 (SimCLR, solo-learn); its trust ratio sets each layer's step.
  if (merged['optimizer'] === 'lars' && !given.has('lr')) merged['lr'] = (0.3 * Number(merged['batch'])) / 256;
  const c = merged as unknown as TrainConfig;
  checkSoftRankOptions(c, given);
  if (given.has('epochs') && given.has('steps')) throw new ConfigError('--epochs and --steps both set the run\'s length; give one');
  if (c.encoder === 'vit') {
    if (c.preset === 'multicrop') throw new ConfigError('--encoder vit: its position embeddings fix the view size, and multicrop mixes sizes; use --preset mocov2 or byol');
    if (c.size % 8 !== 0) throw new ConfigError(`--encoder vit: --size ${c.size} must be a multiple of its patch, 8`);
  }
  if (c.method === 'hapicl' && c.masks === 'encoder' && !(c.attention === 'encoder' || c.attention?.startsWith('encoder:'))) {
    throw new ConfigError('--masks encoder: clusters the features of --attention encoder (the live encoder) or encoder:RUN; give one');
  }
  if (given.has('attention-refresh') && c.attention !== 'encoder') throw new ConfigError('--attention-refresh: only --attention encoder (the live encoder) is refreshed');
  if (given.has('match') && c.method !== 'densecl') throw new ConfigError(`--match: only densecl matches cells between views; drop it with --method ${c.method}`);
  if (c.match === 'geometric' && c.size % encoderStride(encoderPreset(c.encoder, c.size)) !== 0) {
    throw new ConfigError(`--match geometric: --size ${c.size} must be a multiple of the ${c.encoder} encoder's stride ${encoderStride(encoderPreset(c.encoder, c.size))}`);
  }
  if (given.has('min-foreground') && c.method !== 'hapicl') throw new ConfigError(`--min-foreground: only hapicl has masks to keep crops on; drop it with --method ${c.method}`);
  if (c['min-foreground'] !== undefined && !(c['min-foreground'] < 1)) throw new ConfigError(`--min-foreground: expected a fraction in [0, 1), got ${c['min-foreground']}`);
  if (c.method === 'hapicl' && !given.has('min-foreground')) c['min-foreground'] = HARL_MIN_FOREGROUND;
  checkKnnOptions(c, given);
  if (given.has('augment') && c.data.startsWith('parquet:')) throw new ConfigError(`--augment: --data ${c.data} holds views cut by precompute; there is nothing to cut, drop --augment`);
  return { ...c, resume: false, overwrite };
}

/** The kNN monitor's labelled set by default: the training scenes, or Fashion-MNIST's test split; other sources have no labels. */
function defaultKnnData(data: string): string | undefined {
  if (data === 'scenes' || data.startsWith('scenes:') || data === 'fashion-mnist-test' || data.startsWith('fashion-mnist-test:')) return data;
  if (data === 'fashion-mnist' || data.startsWith('fashion-mnist:')) return `fashion-mnist-test${data.slice('fashion-mnist'.length)}`;
  return undefined;
}

/**
 * The kNN monitor is on by default where a labelled set is at hand and the run lasts at least
 * one interval; asked for without a labelled set, it is refused.
 */
function checkKnnOptions(c: TrainConfig, given: ReadonlySet<string>): void {
  const data = c['knn-data'] ?? defaultKnnData(c.data);
  if (data?.startsWith('parquet:')) throw new ConfigError(`--knn-data ${data}: the kNN monitor needs whole labelled images (scenes, fashion-mnist-test, dir:PATH or tar:PATTERN with labels), not precomputed views`);
  if (c['knn-every'] > 0 && data === undefined) {
    if (given.has('knn-every')) throw new ConfigError(`--knn-every: --data ${c.data} has no labels for the kNN monitor; name a labelled set with --knn-data (e.g. scenes, fashion-mnist-test), or drop --knn-every`);
    c['knn-every'] = 0; // no labelled set: the monitor is off
  }
  // By default a run shorter than one interval has no monitor: an evaluation would cost more than it tells.
  if (!given.has('knn-every') && c.steps < c['knn-every']) c['knn-every'] = 0;
}

/** softrank's constraints, and its options refused with other methods. */
function checkSoftRankOptions(c: TrainConfig, given: ReadonlySet<string>): void {
  if (c.method !== 'softrank') {
    const misplaced = SOFTRANK_OPTIONS.filter((k) => given.has(k));
    if (misplaced.length > 0) throw new ConfigError(`--${misplaced.join(', --')}: clustering positives are --method softrank's; drop ${misplaced.length === 1 ? 'it' : 'them'} with --method ${c.method}`);
    return;
  }
  if (c.batch % 2 !== 0 || c.batch < 4) {
    throw new ConfigError(`--batch: softrank trains on (anchor, positive) pairs, --batch counting both: expected an even number ≥ 4, got ${c.batch}`);
  }
  if (c.data.startsWith('parquet:')) {
    throw new ConfigError(`--data ${c.data}: softrank cuts the views of an anchor and its positive after pairing them, so it needs images (scenes, dir:PATH, fashion-mnist, tar:PATTERN), not precomputed views`);
  }
  // Only a stream draws positives from a reservoir; a random-access source reads them again by id.
  if (c.reservoir !== undefined) {
    if (!c.data.startsWith('tar:')) throw new ConfigError(`--reservoir: only a stream source (tar:PATTERN) draws positives from a reservoir of recent samples; --data ${c.data} reads them again by id, drop --reservoir`);
    if (c.reservoir > MAX_RESERVOIR) throw new ConfigError(`--reservoir ${c.reservoir}: holds that many decoded images (≈ 62 KB each at --size 64); expected at most ${MAX_RESERVOIR}`);
  }
  const bank = c['bank-size'];
  if (bank !== undefined && c.clusters !== undefined && 4 * c.clusters > bank) {
    throw new ConfigError(`--clusters ${c.clusters}: needs at least ${4 * c.clusters} embeddings to cluster (4 per cluster), but --bank-size is ${bank}`);
  }
  // Without --bank-size the bank's size is known once the source is open (positiveSettings checks it then).
  if (bank !== undefined && c.negatives !== undefined && c.negatives >= bank) {
    throw new ConfigError(`--negatives ${c.negatives}: expected fewer negatives per pair than the bank holds, --bank-size ${bank}`);
  }
}

/** `--epochs E` as steps: E passes over a finite source (softrank reads B/2 source samples a step). */
function stepsForEpochs(c: TrainConfig, source: Source, epochs: number): number {
  if (!isRandomAccess(source) || !Number.isFinite(source.size)) throw new ConfigError(`--epochs: ${source.name} has no known length; give --steps`);
  const perStep = c.method === 'softrank' ? c.batch / 2 : c.batch;
  return Math.max(1, Math.floor((epochs * source.size) / perStep)); // whole batches only: the last partial one is dropped
}

/** The method of `c`; softrank's draws its negatives from `negatives` (the run's `Reclustering`). */
function createMethod(c: TrainConfig, negatives?: SoftRankOptions['negatives']): Method {
  const common = { encoder: encoderPreset(c.encoder, c.size), seed: c.seed, queueSize: c.queue, alignWeight: c['align-weight'] };
  switch (c.method) {
    case 'mocov2': return createMocoV2(common);
    case 'densecl': return createDenseCL({ ...common, match: c.match });
    case 'hapicl': return createHapicl(common);
    case 'softrank': return createSoftRank({ ...common, frozenTargets: true, ...(negatives ? { negatives } : {}) });
  }
}

/**
 * The kNN monitor of `method`: the first `--knn-size` samples of its labelled set (index order),
 * whole images at `--size`. A set that cannot be read or has no labels stops the job before training.
 */
async function openKnnMonitor(c: TrainConfig, method: Method): Promise<KnnMonitor> {
  const data = c['knn-data'] ?? defaultKnnData(c.data) ?? c.data;
  try {
    const source = await openSource(data, {}, '--knn-data');
    const set = await loadKnnSet(readSamples(source, { shuffle: false, limit: c['knn-size'] }), { size: c.size, seed: c.seed });
    process.stderr.write(`knn monitor: ${set.references} references and ${set.queries} queries of ${source.name}${set.skipped ? ` (${set.skipped} unreadable, left out)` : ''}, k = ${KNN_K}, τ = ${KNN_TAU}, every ${c['knn-every']} steps\n`);
    return createKnnMonitor({ method, set });
  } catch (err) {
    const flag = c['knn-data'] === undefined ? `--knn-every (monitor set: --data ${data})` : `--knn-data ${data}`;
    throw new ConfigError(`${flag}: ${err instanceof Error ? err.message : String(err)} (--knn-every 0 turns the monitor off)`);
  }
}

const isSoftRank = (m: Method): m is SoftRank => m.name === 'softrank' && 'targetEmbeddings' in m;

/** Training from `precompute` shards: the views must be the ones this configuration asks for. */
function checkPrecomputed(c: TrainConfig, p: PrecomputedViews): void {
  const differ: string[] = [];
  if (p.size !== c.size) differ.push(`--size ${c.size} (the views are ${p.size} px)`);
  if (p.preset !== c.preset) differ.push(`--preset ${c.preset} (the views are ${p.preset})`);
  if (p.attentionView !== c['attention-view']) differ.push(`--attention-view ${c['attention-view']} (the views were cut with ${p.attentionView})`);
  if (c.method === 'hapicl' && p.masks === 'none') differ.push('--method hapicl needs masks (precompute with --masks saliency|kmeans|gt)');
  const minForeground = c.method === 'hapicl' ? c['min-foreground'] ?? 0 : 0;
  if (p.minForeground !== minForeground) {
    differ.push(c.method === 'hapicl' ? `--min-foreground ${minForeground} (the views were cut with ${p.minForeground})`
      : `--method ${c.method} cuts plain crops (the views were cut keeping ${p.minForeground} of each crop on the mask; precompute with --min-foreground 0)`);
  }
  if (differ.length > 0) throw new ConfigError(`--data ${c.data}: precomputed views do not fit: ${differ.join('; ')}`);
}

/** The data plane's view options of a run (the pixels' path aside). */
function trainViewOptions(c: TrainConfig, attention?: AttentionSource, featureMask?: EncoderMaps['mask']): SampleViewOptions {
  return { size: c.size, preset: c.preset, attentionView: c['attention-view'], masks: c.method === 'hapicl' ? c.masks : 'none', minForeground: c.method === 'hapicl' ? c['min-foreground'] ?? 0 : 0, seed: c.seed, ...(attention ? { attention } : {}), ...(featureMask ? { featureMask } : {}) };
}

/** Samples the source reads per batch: all of them, or for softrank's pairs the anchors only (positives are read again by id, or come from a stream's reservoir). */
const sourceSamplesPerBatch = (c: TrainConfig): number => (c.method === 'softrank' ? c.batch / 2 : c.batch);

/**
 * The batches a run trains on from step `startStep`: each epoch's samples in seeded order,
 * cut into views live (decode → masks → multiView) or, for `parquet:DIR`, the precomputed
 * views of that epoch. Samples hold a permit of `budget` until the trainer releases them.
 *
 * softrank: each decoded anchor is followed by its positive (`positivePairs`) before the views
 * are cut, so a batch of `c.batch` samples holds `c.batch / 2` pairs and `c.batch / 2` permits
 * (the positives take none). Positives come from `positives`' clusterings (and its source
 * reads, remembered to read positives again by id; for a stream, from its reservoir of recent
 * samples, `reservoirPairs`); without it, every anchor is its own positive.
 */
export function trainBatches(c: TrainConfig, source: Source, budget: SampleBudget, record: (r: SkipRecord) => void, startStep = 0, positives?: PositiveSampling, attention?: AttentionSource, featureMask?: EncoderMaps['mask'], augment: AugmentPath = 'cpu'): Observable<Batch> {
  const viewOptions: SampleViewOptions = { ...trainViewOptions(c, attention, featureMask), augment };
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
  const dropped = (r: SkipRecord) => { record(r); budget.release(); };
  let read = skippingKnownBad(source, bad);
  let beforeViews: ((epoch: number) => OperatorFunction<Sample, Sample>) | undefined;
  if (c.method === 'softrank' && precomputed) throw new ConfigError(`--data ${c.data}: softrank pairs anchors before the views are cut; it needs images, not precomputed views`);
  if (c.method === 'softrank' && !isRandomAccess(source)) {
    const reclustering = positives?.reclustering;
    const reservoir = positives?.reservoir ?? new PositiveReservoir(c.reservoir ?? 1); // no clustering: every anchor is its own positive
    const nextAnchor = reclustering ? () => reclustering.nextAnchor() : () => ({ batch: 0, clustering: Promise.resolve(undefined) });
    const embed = reclustering ? (samples: readonly Sample[], index: ClusterIndex) => reclustering.embedNew(samples, index) : undefined;
    const onNote = (_id: string, reason: string) => reclustering?.noteSelf(reason);
    const onCluster = (batch: number, id: string, cluster: number) => reclustering?.notePairCluster(batch, id, cluster);
    beforeViews = (epoch) => reservoirPairs({ nextAnchor, groupSize: perBatch, reservoir, seed: c.seed, epoch, onNote, onCluster, ...(embed ? { embed } : {}) });
  } else if (c.method === 'softrank' && isRandomAccess(read)) {
    const reclustering = positives?.reclustering;
    const byId = positives?.byId ?? readableById(read, 0); // no clustering: every anchor is its own positive, nothing is read again
    read = byId.source;
    const prepare = decodeWithMasks(viewOptions, record);
    const fetch = async (id: string) => prepare(await byId.readById(id));
    const onNote = (id: string, reason: string) => {
      reclustering?.noteSelf(reason);
      if (reason.startsWith('fetch failed')) record({ id, stage: 'positive', reason });
    };
    const nextAnchor = reclustering ? () => reclustering.nextAnchor() : () => ({ batch: 0, clustering: Promise.resolve(undefined) });
    const embed = reclustering ? (anchors: readonly Sample[], index: ClusterIndex) => reclustering.embedNew(anchors, index) : undefined;
    const onCluster = (batch: number, id: string, cluster: number) => reclustering?.notePairCluster(batch, id, cluster);
    beforeViews = (epoch) => positivePairs({ nextAnchor, groupSize: perBatch, fetch, seed: c.seed, epoch, onNote, onCluster, ...(embed ? { embed } : {}) });
  }
  const views = (epoch: number) => precomputed
    ? decodeViews({ perEpoch: precomputed.viewsPerEpoch, epoch, onSkip: dropped })
    : sampleViews(viewOptions, [epoch], dropped, record, beforeViews?.(epoch));
  const pass = (epoch: number): Observable<Sample> => {
    let cut = 0;
    return concat(
      fromSource(readSamples(read, { seed: c.seed, epoch, skip: epoch === firstEpoch ? firstSkip : 0 }, record), budget).pipe(views(epoch), tap(() => { cut++; })),
      // A pass that yields nothing would repeat forever (and, before this check, trained 0 steps and wrote a random-init checkpoint).
      defer(() => (cut > 0 ? EMPTY : throwError(() => new Error(
        `--data ${c.data}: no sample of ${epoch === firstEpoch ? 'the first pass' : `epoch ${epoch}`} could be read and decoded (${bad.size} unreadable); see ${join(c.out, 'skipped.jsonl')} for why`,
      )))),
    );
  };
  // A finite source is read pass after pass until the trainer has its steps (not a count of
  // passes fixed in advance: unreadable inputs make passes shorter); a stream is read once.
  const passes = (epoch: number): Observable<Sample> => concat(pass(epoch), Number.isFinite(perEpoch) ? defer(() => passes(epoch + 1)) : EMPTY);
  return passes(firstEpoch).pipe(
    batch(c.batch, { keepLast: false, ...(c.method === 'densecl' && c.match === 'geometric' ? { geometricGrid: c.size / encoderStride(encoderPreset(c.encoder, c.size)) } : {}) }),
  );
}

export interface RunOptions {
  /** Continue from `config.out`/checkpoint: its weights, queues, optimiser slots and step. */
  resume?: boolean;
  /** A new run into a folder that holds one replaces it (its run files only, {@link claimRunFolder}); without it, such a folder is refused. */
  overwrite?: boolean;
  onLog?: (record: MetricsRecord) => void;
  shouldStop?: (stepsDone: number) => boolean;
  /** The run's length in steps, once known (`--epochs` is converted when the source is open). */
  onSteps?: (steps: number) => void;
}

/**
 * Trains per `config`. Every random choice is keyed by (seed, epoch, id, view), so the data
 * after step n is fully determined by the position n × batch: a resumed run sees exactly the
 * batches the uninterrupted one would (as long as no input was skipped as unreadable).
 */
export async function runTraining(c: TrainConfig, options: RunOptions = {}): Promise<TrainResult & { backend: string; augment: AugmentPath; positives?: PositiveStats; knnInit?: number; knnFinal?: number; knnQueries?: number }> {
  prepareOutFolder(c.out);
  if (!options.resume) {
    const removed = claimRunFolder(c.out, options.overwrite === true);
    if (removed.length > 0) process.stderr.write(`--overwrite: removed the previous run's ${removed.join(', ')} from ${c.out}\n`);
  }
  const selection = await selectBackend(c.backend, c.threads === undefined ? {} : { threads: c.threads });
  for (const line of selection.reasons) process.stderr.write(`${line}\n`);
  const source = await openSource(c.data);
  if (c.epochs !== undefined) c = { ...c, steps: stepsForEpochs(c, source, c.epochs) };
  options.onSteps?.(c.steps);
  const settings = c.method === 'softrank' ? positiveSettings(c, source) : undefined;
  // Checked before any weight is read: a checkpoint whose bank does not fit is refused as a wrong option.
  const savedPositives = options.resume && settings ? checkSavedPositives(c, settings, join(c.out, 'checkpoint')) : undefined;
  let positives: PositiveSampling | undefined;
  const method = createMethod(c, (ids, z, dims) => positives?.reclustering.negatives(ids, z, dims));
  let live: { dispose(): void } | undefined;
  try {
    let startStep = 0;
    let optimizerState: ReturnType<typeof takeTensors> | undefined;
    if (options.resume) {
      const saved = readSaved(join(c.out, 'checkpoint')); // read and decoded once
      assignSaved(method.checkpointState(), saved);
      startStep = (saved.meta as CheckpointMeta).step;
      optimizerState = takeTensors(saved, 'optimizer/'); // frees the rest; the trainer frees these
    }
    const skipped = openSkipLog(join(c.out, 'skipped.jsonl'));
    const perBatch = sourceSamplesPerBatch(c);
    // Room for the batch being trained on, the next one being collated, and decodes in flight.
    const budget = new SampleBudget(3 * perBatch + 16);
    let onStep: ((done: number, batch: Batch, parts: Record<string, number>) => Promise<void>) | undefined;
    if (settings && isSoftRank(method)) {
      const softrank = method;
      const p = openPositives(c, source, softrank, {
        settings, startStep, budget, perBatch, onWarning: (line) => process.stderr.write(`${line}\n`), ...(savedPositives ? { saved: savedPositives } : {}),
      });
      positives = p;
      onStep = (done, batch, parts) => p.reclustering.afterStep(done, softrank.targetEmbeddings(), batch.ids, parts);
    }
    // kNN monitor: on the first logged step at least --knn-every steps after the last evaluation, and at the last step.
    const knnEvery = c['knn-every'] ?? 0; // checkpoints from before the monitor have no knn-every
    let knn: { monitor: KnnMonitor; last: number; init?: number; final?: number } | undefined;
    if (knnEvery > 0) {
      const k: NonNullable<typeof knn> = { monitor: await openKnnMonitor(c, method), last: startStep };
      knn = k;
      if (startStep === 0) {
        const t0 = performance.now();
        k.init = await k.monitor.evaluate();
        process.stderr.write(`knn at init ${k.init.toFixed(3)} (${((performance.now() - t0) / 1000).toFixed(1)} s per evaluation)\n`);
      }
      const before = onStep;
      onStep = async (done, batch, parts) => {
        await before?.(done, batch, parts);
        if ((done % c['log-every'] === 0 && done - k.last >= knnEvery) || done === c.steps) {
          parts['knn'] = k.final = await k.monitor.evaluate();
          k.last = done;
        }
      };
    }
    let attention: AttentionSource | undefined;
    let featureMask: EncoderMaps['mask'] | undefined;
    if (c.attention === 'encoder') {
      const l = liveEncoderAttention(method.checkpointState(), encoderPreset(c.encoder, c.size), c.size, c.seed);
      live = l;
      attention = l.source;
      featureMask = l.mask;
      const every = c['attention-refresh'] ?? 50;
      const before = onStep;
      onStep = async (done, batch, parts) => {
        await before?.(done, batch, parts);
        if (done % every === 0) l.refresh();
      };
    } else if (c.attention?.startsWith('encoder:')) {
      const maps = openEncoderAttention(c.attention.slice('encoder:'.length), '--attention', c.seed);
      live = maps;
      attention = maps.source;
      featureMask = maps.mask;
    } else if (c.attention !== undefined) {
      attention = await openAttentionSource(c.attention).catch(toConfigError);
    }
    // A resumed run keeps the path its checkpoint recorded: `auto` is resolved once, at the start,
    // and stored in the config, so the resumed batches are cut exactly as the uninterrupted run's.
    // A checkpoint from before --augment existed cut its views on the CPU.
    const saved: AugmentPath = c.augment === 'backend' ? 'backend' : 'cpu';
    const augment = options.resume
      ? { path: saved, reason: `augment: ${saved} (the run's, from its checkpoint)` }
      : 'precomputed' in source ? { path: 'cpu' as const, reason: '' } : await chooseViewAugment(c.augment, source, trainViewOptions(c));
    if (augment.reason) process.stderr.write(`${augment.reason}\n`); // precomputed views: nothing to cut, nothing to say
    c = { ...c, augment: augment.path };
    const batches = trainBatches(c, source, budget, (r) => skipped.record(r), startStep, positives, attention, featureMask, augment.path);
    const result = await trainLoop(method, batches, budget, {
      steps: c.steps, learningRate: c.lr, warmupSteps: Math.min(c.warmup, c.steps), weightDecay: c['weight-decay'], optimizer: c.optimizer,
      logEvery: c['log-every'], checkpointEvery: c['checkpoint-every'], outDir: c.out, config: c,
      startStep, optimizerState, onLog: options.onLog, shouldStop: options.shouldStop,
      ...(onStep ? { onStep } : {}), ...(positives ? { budgetPermits: (b: Batch) => b.ids.length / 2, onCheckpoint: positives.onCheckpoint } : {}),
    });
    positives?.reclustering.close();
    const n = await skipped.close();
    if (n + skipped.notes > 0) process.stderr.write(`${skipSummary(source.name, n, skipped)}\n`);
    return { ...result, backend: selection.backend, augment: augment.path, ...(positives ? { positives: positiveStats(positives) } : {}), ...(knn ? { knnInit: knn.init, knnFinal: knn.final, knnQueries: knn.monitor.set.queries } : {}) };
  } finally {
    positives?.reclustering.close();
    live?.dispose();
    method.dispose();
  }
}

/** The run's positive statistics, a stream's reservoir included. */
function positiveStats(p: PositiveSampling): PositiveStats {
  const stats = p.reclustering.stats();
  return p.reservoir ? { ...stats, reservoir: { capacity: p.reservoir.capacity, held: p.reservoir.size } } : stats;
}

/** Positive statistics for the summary line, fractions and seconds to 3 decimals. */
function roundedStats(p: PositiveStats): PositiveStats {
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  return {
    ...p, selfPositiveFraction: r3(p.selfPositiveFraction), clusteringSeconds: r3(p.clusteringSeconds), waitedSeconds: r3(p.waitedSeconds),
    selfPositiveFractionAfterClustering: p.selfPositiveFractionAfterClustering === null ? null : r3(p.selfPositiveFractionAfterClustering),
  };
}

/** `densestream train`; resolves with 130 when Ctrl-C stopped the run (after its checkpoint), as a shell expects of an interrupted command. */
export async function trainCommand(argv: string[]): Promise<number> {
  const { resume, overwrite, stepsDone, ...c } = parseTrainConfig(argv);
  if (stepsDone !== undefined && stepsDone >= c.steps) {
    process.stderr.write(`train --resume: the run in ${c.out} is complete (${stepsDone} of ${c.steps} steps); nothing to do\n`);
    return 0;
  }
  const tty = process.stderr.isTTY === true;
  let total = c.steps;
  const onLog = (r: MetricsRecord) => {
    const eta = Math.round(((total - r.step) * r.seconds) / Math.max(1, r.step));
    const pairs = r.parts['selfPositives'] === undefined ? '' : `  self-pairs ${(100 * r.parts['selfPositives']).toFixed(0)}%  reclusters ${r.parts['reclusters'] ?? 0}`;
    const knn = r.parts['knn'] === undefined ? '' : `  knn ${r.parts['knn'].toFixed(2)}`;
    const line = `step ${r.step}/${total}  loss ${r.loss.toFixed(4)}  lr ${r.lr.toFixed(4)}  ${r.imagesPerSec.toFixed(1)} img/s  data wait ${(100 * r.dataWaitFraction).toFixed(0)}%${pairs}${knn}  ETA ${eta} s`;
    process.stderr.write(tty ? `\r${line}` : `${line}\n`);
  };
  // Ctrl-C: finish the step in hand, checkpoint, exit cleanly (a second Ctrl-C kills).
  let interrupted = false;
  const onInterrupt = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write('\ninterrupted: checkpointing after this step (Ctrl-C again to abort)\n');
  };
  process.on('SIGINT', onInterrupt);
  try {
    const result = await runTraining(c, { resume, overwrite, onLog, shouldStop: () => interrupted, onSteps: (n) => { total = n; } });
    if (tty) process.stderr.write('\n');
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
    const round4 = (x: number) => Math.round(x * 1e4) / 1e4;
    // The monitor's gain over the random-init encoder it started from, and whether it is more than noise.
    let knnGain: Record<string, number> = {};
    if (result.knnInit !== undefined && result.knnFinal !== undefined && result.knnQueries) {
      const gain = result.knnFinal - result.knnInit;
      const se = knnGainStdErr(result.knnInit, result.knnFinal, result.knnQueries);
      knnGain = { knnGain: round4(gain), knnGainStdErr: round4(se) };
      process.stderr.write(`knn: ${result.knnInit.toFixed(3)} at random init, ${result.knnFinal.toFixed(3)} now: ${gain >= 0 ? '+' : ''}${gain.toFixed(3)} ± ${se.toFixed(3)} (one standard error, ${result.knnQueries} queries)${Math.abs(gain) < 2 * se ? ', within noise' : ''}\n`);
    }
    process.stdout.write(`${JSON.stringify({
      method: c.method, encoder: c.encoder, backend: result.backend, augment: result.augment, steps: result.steps, batch: c.batch, size: c.size,
      imagesPerSec: Math.round(result.imagesPerSec * 10) / 10, dataWaitFraction: Math.round(result.dataWaitFraction * 1000) / 1000,
      lossFirst10: Math.round(mean(result.losses.slice(0, 10)) * 1e4) / 1e4, lossLast10: Math.round(mean(result.losses.slice(-10)) * 1e4) / 1e4,
      checkpoint: join(c.out, 'checkpoint'), metrics: join(c.out, 'metrics.jsonl'), interrupted,
      ...(result.positives ? { positives: roundedStats(result.positives) } : {}),
      ...(result.knnInit === undefined ? {} : { knnInit: round4(result.knnInit) }), ...(result.knnFinal === undefined ? {} : { knnFinal: round4(result.knnFinal) }),
      ...knnGain,
    })}\n`);
    return interrupted ? 130 : 0;
  } finally {
    process.off('SIGINT', onInterrupt);
  }
}
