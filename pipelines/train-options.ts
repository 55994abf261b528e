/**
 * `densestream train`'s options: each one's type, range and default, the `--config` JSON file,
 * and the checks across options, all decided before any work. It loads no tfjs, sharp or data
 * code, so a wrong option is refused at once; `train.ts` runs what this accepts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BACKEND_CHOICES, type BackendChoice } from '../models/backend-choice.js';
import { encoderPreset, encoderStride, ENCODER_NAMES } from '../models/encoder-spec.js';
import { readWeightsMeta } from '../models/weights-manifest.js';
import { HARL_MIN_FOREGROUND, PRESETS, type PresetName } from '../operators/augment-presets.js';
import { AUGMENT_CHOICES, type AugmentChoice } from '../operators/augment-path.js';
import type { CheckpointMeta } from '../train/trainer.js';
import { coerce, ConfigError, flagTypes, toConfigError, type Spec } from './options.js';

export { ConfigError } from './options.js';

/** The largest `--reservoir`: 65 536 decoded images are ≈ 4 GB at `--size 64`. */
export const MAX_RESERVOIR = 65_536;

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
export function defaultKnnData(data: string): string | undefined {
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

