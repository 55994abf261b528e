/**
 * `densestream train`'s options: each one's type, range and default, the `--config` JSON file,
 * and the checks across options, all decided before any work. It loads no tfjs, sharp or data
 * code, so a wrong option is refused at once; `train.ts` runs what this accepts.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as z from 'zod';
import { ConfigError } from '../core/config-error.js';
import { encoderChannels, encoderGridSide, encoderPreset, encoderStride, ENCODER_NAMES } from '../models/encoder-spec.js';
import { readWeightsMeta } from '../models/weights-manifest.js';
import { HARL_MIN_FOREGROUND, PRESETS } from '../operators/augment-presets.js';
import { SALIENCY_SIZE } from '../operators/saliency.js';
import { SOFTRANK_RELATIONS } from '../methods/softrank-relation.js';
import type { CheckpointMeta } from '../train/trainer.js';
import { parseCommand, type CommandSchema } from './command-schema.js';
import { DEFAULT_RECIPE } from './recipe.js';
import {
  augmentOption,
  BACKEND_OPTIONS,
  checkRemoteShardOptions,
  HUE_OPTION,
  REMOTE_SHARD_OPTIONS,
  SALIENCY_SIZE_OPTION,
  settleSaliencySize,
  usesSaliency,
  WORKERS_OPTION,
  type ViewMasks,
} from './shared-options.js';

/**
 * `--dense-cells` default: a quarter of the encoder's grid, at most 8 (4 of the recipe's 16
 * cells at 32 px, 8 of 64 at 64 px), each count scored against more cells where it is the default:
 * - 64 px (8×8 cells, slim, batch 32, 188 steps = 6 016 images): 16 sampled cells scored as all
 *   64 did, within noise (kNN k=20 0.160 / 0.151, dense mIoU 0.106 / 0.105), and 8 cells too
 *   (0.160, 0.105).
 * - 32 px, 2 700 steps, three seeds each: 8 cells with the dense head at the encoder's width
 *   (`--dense-hidden`) scored as the paper's full dense term (`--dense-cells 0 --dense-queue 0
 *   --dense-hidden 0`): dense mIoU 0.124 ± 0.002 against 0.124 ± 0.003, kNN k=20 0.189 ± 0.013
 *   against 0.197 ± 0.014; and on the validation split 4 cells with a dense queue of 512 scored as
 *   8 cells with 1 024 (seeds 0–2: dense mIoU 0.126 against 0.125, kNN k=20 0.181 against 0.179,
 *   linear 0.217 against 0.224, mask IoU 0.179 against 0.179), and DenseCL's step went from 1.15× MoCo v2's to 1.10× (medians of 12 rounds each, the two settings alternating)
 *   (docs/performance.md, "Measured: DenseCL's dense term").
 */
export const MAX_DEFAULT_DENSE_CELLS = 8;

/** `--dense-cells`' default for a grid of `side × side` cells: a quarter of them, at least 1, at most {@link MAX_DEFAULT_DENSE_CELLS}. */
export const defaultDenseCells = (side: number): number => Math.min(MAX_DEFAULT_DENSE_CELLS, Math.max(1, Math.floor((side * side) / 4)));

/**
 * `--dense-queue` default: DenseCL's dense negatives, one pooled key per image. At 64 px with 16
 * cells, 1 024 instead of `--queue`'s 4 096 took a DenseCL step from 1.22–1.26× MoCo v2's to
 * 1.06–1.10× and scored within noise of every cell and 4 096 keys (188 steps: kNN k=20 0.157 /
 * 0.151, k=200 0.148 / 0.169, dense mIoU 0.105 / 0.105); at the recipe, 512 with 4 cells scored
 * as 1 024 with 8 (above; docs/performance.md, "Measured: DenseCL's dense term").
 */
export const DEFAULT_DENSE_QUEUE = 512;

/**
 * `--pixel-cells` default with hapicl: cells of view 1 per image in its pixel term. On scenes at
 * 64 px (8×8 cells, slim, batch 32, 188 steps = 6 016 images) 16 cells scored as all 64 did,
 * within noise (kNN k=20 0.173 / 0.168, k=200 0.173 / 0.180, dense mIoU 0.130 / 0.135), and a
 * HAPiCL step took 0.85–0.87× the time (docs/performance.md, "Measured: HAPiCL's pixel term").
 */
export const DEFAULT_PIXEL_CELLS = 16;

/** The largest `--reservoir`: 65 536 decoded images are ≈ 4 GB at `--size 64`. */
export const MAX_RESERVOIR = 65_536;

export const TRAIN_METHODS = ['densecl', 'mocov2', 'hapicl', 'softrank'] as const;
const MASK_SOURCES = ['saliency', 'kmeans', 'gt', 'encoder'] as const; // hapicl's masks (encoder: 2-means on --attention encoder[:RUN]'s features)
const ENCODERS = ENCODER_NAMES;
/** Options that only `--method softrank` reads (its clustering positives and its ranking); refused with another method. */
const SOFTRANK_OPTIONS = ['recluster-every', 'clusters', 'bank-size', 'bank-precision', 'negatives', 'relation', 'reservoir'] as const;
/** The default recipe's method; a resumed run's folder defaults to `runs/hapicl`. */
const DEFAULT_METHOD = DEFAULT_RECIPE.method;

/** A count of grid cells a dense term scores per image (`--dense-cells`, `--pixel-cells`), its default settled by the method. */
const cellCount = (defaultText: string, what: string) =>
  z
    .number()
    .int()
    .min(0)
    .optional()
    .meta({ arg: 'N', defaultText, description: `${what}, drawn afresh each step; 0: every cell of the grid (the paper's)` });

/** `densestream train`'s options: one declaration, from which its flags, `--config` keys and `--help` come. */
export const TRAIN_COMMAND = {
  name: 'train',
  summary: `self-supervised training; with no options: the default recipe, ${DEFAULT_RECIPE.method} on scenes at ${DEFAULT_RECIPE.size} px, ${DEFAULT_RECIPE.steps} steps (about 10 min on 2 cores, measured)`,
  configFile: true,
  options: z.object({
    data: z.string().default('scenes').meta({
      arg: 'SOURCE',
      description:
        'the images: scenes[:SIZE[:COUNT]] (built-in, with ground truth), dir:PATH, tar:PATTERN or tar:@LIST (local, https:// or s3://), fashion-mnist[-test][:DIR], or parquet:DIR (views cut by precompute)',
    }),
    method: z.enum(TRAIN_METHODS).default(DEFAULT_METHOD).meta({
      arg: 'NAME',
      description:
        'the objective: densecl, mocov2, hapicl (mask-guided pixel contrast) or softrank (soft-ranking distillation with clustering positives)',
    }),
    steps: z.number().int().min(1).default(DEFAULT_RECIPE.steps).meta({ arg: 'N', description: 'optimizer steps' }),
    epochs: z.number().int().min(1).optional().meta({ arg: 'E', description: 'passes over a finite source, instead of --steps' }),
    batch: z
      .number()
      .int()
      .min(2)
      .default(DEFAULT_RECIPE.batch)
      .meta({ arg: 'B', description: 'images per step; softrank counts anchors and positives (even, ≥ 4)' }),
    size: z.number().int().min(16).default(DEFAULT_RECIPE.size).meta({ arg: 'PX', description: 'side of every view, in pixels' }),
    encoder: z.enum(ENCODERS).default('slim').meta({ arg: 'NAME', description: 'a slim ResNet, ResNet-18, or ViT-Tiny (patch 8)' }),
    preset: z.enum(PRESETS).default('mocov2').meta({ arg: 'NAME', description: 'the views and their augmentation' }),
    masks: z.enum(MASK_SOURCES).default('saliency').meta({
      arg: 'SOURCE',
      description:
        "hapicl's foreground masks: saliency, kmeans (colour 2-means), gt (ground truth: the scenes', Fashion-MNIST's silhouettes), encoder (2-means on the features of --attention encoder or encoder:RUN)",
    }),
    'min-foreground': z
      .number()
      .min(0)
      .lt(1)
      .optional()
      .meta({
        arg: 'F',
        expected: 'a fraction in [0, 1)',
        defaultText: `${HARL_MIN_FOREGROUND} with hapicl`,
        description:
          "hapicl: each random crop keeps at least this fraction of its area on the mask (HARL's mask-aware crop); 0 gives plain crops",
      }),
    alpha: z.number().min(0).max(1).optional().meta({
      arg: 'α',
      defaultText: '0.5 with hapicl, 1 with softrank',
      description:
        "hapicl: HARL's weight of the foreground term against the background term; softrank: the weight α of the image-level ranking",
    }),
    beta: z.number().min(0).max(1).optional().meta({
      arg: 'β',
      defaultText: '0.5 with hapicl, 1 with softrank',
      description:
        "hapicl: HARL's weight of the whole-image term against the foreground and background terms (0: regions only); softrank: the weight β of the patch-level ranking (0: image level only)",
    }),
    'attention-view': z.boolean().default(false).meta({ description: 'one view keeps the main object (attention-driven crop)' }),
    attention: z.string().optional().meta({
      arg: 'SOURCE',
      defaultText: 'boundary',
      description:
        "the map behind the attention view and saliency masks: boundary, frequency-tuned, model:PATH (a tfjs model), encoder:RUN (a train run's encoder), or encoder (the one being trained, refreshed every --attention-refresh steps)",
    }),
    'attention-refresh': z
      .number()
      .int()
      .min(1)
      .optional()
      .meta({ arg: 'K', defaultText: '50', description: 'steps between refreshes of --attention encoder' }),
    'align-weight': z
      .number()
      .min(0)
      .default(0)
      .meta({ arg: 'λ', description: 'weight of the align loss between the attention view and the others; 0 is off' }),
    match: z.enum(['feature', 'geometric']).default('feature').meta({
      arg: 'HOW',
      description:
        "densecl: each query cell's positive key cell, by backbone-feature argmax or by where the two crops overlap in the image",
    }),
    'dense-cells': cellCount(
      `a quarter of the grid, at most ${MAX_DEFAULT_DENSE_CELLS}, with densecl`,
      'densecl: query cells per image in the dense term',
    ),
    'pixel-cells': cellCount(`${DEFAULT_PIXEL_CELLS} with hapicl`, 'hapicl: cells of view 1 per image in the pixel term'),
    'dense-queue': z.number().int().min(0).default(DEFAULT_DENSE_QUEUE).meta({
      arg: 'K',
      description: "densecl: entries of the dense queue, the dense term's negatives; 0: as many as --queue (the paper's)",
    }),
    'dense-warmup': z.number().int().min(0).default(0).meta({
      arg: 'N',
      description:
        "densecl: first steps with the global term alone (λ = 0), as the authors' code's first 1 000 iterations, while matching random-init features is noise; the dense keys still fill the dense queue",
    }),
    'dense-hidden': z.number().int().min(0).optional().meta({
      arg: 'N',
      defaultText: "the encoder's channels with densecl, 0 with hapicl",
      description:
        "densecl, hapicl: hidden width of the dense head (1×1 conv → ReLU → 1×1 conv); 0: as the global head's, twice the encoder's channels",
    }),
    optimizer: z
      .enum(['sgd', 'adamw', 'lars'])
      .default('sgd')
      .meta({ arg: 'NAME', description: 'SGD with momentum 0.9, AdamW, or LARS; each with a cosine schedule after warm-up' }),
    lr: z
      .number()
      .min(0)
      .default(0.05)
      .meta({ arg: 'RATE', defaultText: '0.05 sgd, 1e-3 adamw, 0.3·B/256 lars', description: 'peak learning rate' }),
    warmup: z.number().int().min(0).default(20).meta({ arg: 'N', description: 'warm-up steps' }),
    'weight-decay': z.number().min(0).default(1e-4).meta({ arg: 'λ', description: 'decoupled weight decay' }),
    queue: z.number().int().min(1).default(DEFAULT_RECIPE.queue).meta({ arg: 'K', description: 'negative keys in the momentum queue' }),
    ...BACKEND_OPTIONS,
    ...REMOTE_SHARD_OPTIONS,
    augment: augmentOption('auto'),
    ...HUE_OPTION,
    ...SALIENCY_SIZE_OPTION,
    ...WORKERS_OPTION,
    out: z.string().optional().meta({
      arg: 'DIR',
      defaultText: 'runs/METHOD',
      description:
        'the run folder; one that holds a run is refused (--resume continues it, --resume --steps N extends it, --overwrite replaces it)',
    }),
    seed: z.number().int().min(0).default(0).meta({ arg: 'S', description: 'seeds weights, order and every view' }),
    'log-every': z.number().int().min(1).default(10).meta({ arg: 'N', description: 'steps between progress lines and metrics records' }),
    'checkpoint-every': z.number().int().min(1).default(100).meta({ arg: 'N', description: 'steps between checkpoints' }),
    'recluster-every': z
      .number()
      .int()
      .min(1)
      .default(50)
      .meta({ arg: 'K', description: 'softrank: steps between clusterings of the embedding bank' }),
    clusters: z
      .number()
      .int()
      .min(2)
      .optional()
      .meta({ arg: 'k', defaultText: 'min(100, bank/4)', description: 'softrank: clusters of each clustering' }),
    'bank-size': z
      .number()
      .int()
      .min(8)
      .optional()
      .meta({ arg: 'N', defaultText: 'min(data size, 65536)', description: 'softrank: embeddings the bank holds' }),
    'bank-precision': z
      .enum(['float32', 'float16'])
      .default('float32')
      .meta({ arg: 'TYPE', description: "softrank: the bank's number format" }),
    negatives: z.number().int().min(0).optional().meta({
      arg: 'K',
      defaultText: '0',
      description: 'softrank: per pair, K bank embeddings from other clusters join the ranking candidates',
    }),
    relation: z.enum(SOFTRANK_RELATIONS).default('cross').meta({
      arg: 'FORM',
      description:
        "softrank: the image-level ranking compares an anchor's online query with the candidates' online projections of the same view (within) or with their target projections of the other view, its own included (cross: ReSSL's form)",
    }),
    reservoir: z
      .number()
      .int()
      .min(1)
      .optional()
      .meta({
        arg: 'N',
        defaultText: '1024',
        description: `softrank on tar:PATTERN (a stream): the recent decoded samples positives are drawn from, at most ${MAX_RESERVOIR}`,
      }),
    'knn-every': z
      .number()
      .int()
      .min(0)
      .default(100)
      .meta({ arg: 'K', description: 'steps between kNN evaluations of a labelled set, logged as knn; 0 is off' }),
    'knn-size': z
      .number()
      .int()
      .min(10)
      .default(1000)
      .meta({ arg: 'N', description: "the kNN monitor's images (4/5 references, 1/5 queries)" }),
    'knn-data': z.string().optional().meta({
      arg: 'SOURCE',
      defaultText: "scenes: --data's; fashion-mnist: its test split",
      description: "the kNN monitor's labelled set",
    }),
    resume: z.boolean().default(false).meta({
      flagOnly: true,
      description: 'continue the run in --out from its checkpoint, with its configuration (--steps N extends it)',
    }),
    overwrite: z
      .boolean()
      .default(false)
      .meta({ flagOnly: true, description: 'remove the run already in --out (its files only) and start anew' }),
  }),
  notes: `softrank pairs each anchor with a positive: once a clustering exists, another image of the anchor's cluster (a new anchor's by its nearest centroid; the anchor itself when none is left). On tar: shards, a stream, the positive comes from the recent samples of the anchor's cluster, and --resume is not exact.`,
} satisfies CommandSchema;

type TrainOptions = z.output<typeof TRAIN_COMMAND.options>;

/** A run's configuration, as its checkpoint stores it: every option but the actions on this invocation. */
export type TrainConfig = Omit<TrainOptions, 'resume' | 'overwrite' | 'verbose' | 'out' | 'hue'> & {
  out: string;
  /** Absent in checkpoints from before `--hue`: their views used the preset's. */
  hue?: number;
};

/**
 * Flags over the config file over the defaults; every value checked, nothing run yet. With
 * `--resume`, the configuration is the checkpoint's: besides `--out` and `--steps`, only the flags
 * that say how this machine reads (threads, workers, the remote-shard settings, `--verbose`) may be given.
 */
export function parseTrainConfig(
  argv: readonly string[],
): TrainConfig & { resume: boolean; overwrite: boolean; verbose: boolean; stepsDone?: number } {
  const { values, given } = parseCommand(TRAIN_COMMAND, argv);
  const { resume, overwrite, verbose, ...options } = values;
  if (resume) {
    if (overwrite) throw new ConfigError('--resume continues the run in --out and --overwrite replaces it; give one');
    // How this machine reads (threads, workers, the remote-shard settings) may change on a resume; what the run is may not.
    const local = ['resume', 'out', 'steps', 'verbose', 'threads', 'workers', ...Object.keys(REMOTE_SHARD_OPTIONS)];
    const others = [...given].filter((k) => !local.includes(k));
    if (others.length > 0)
      throw new ConfigError(
        `--resume takes the configuration from the checkpoint (only --steps may extend it); drop --${others.join(', --')}`,
      );
    const out = options.out ?? join('runs', DEFAULT_METHOD);
    const dir = join(out, 'checkpoint');
    if (!existsSync(join(dir, 'weights.json'))) throw new ConfigError(`--resume: no checkpoint in ${dir}`);
    const meta = readWeightsMeta(dir) as CheckpointMeta;
    const config = { ...(meta.config as TrainConfig), out };
    // How many cores to use is this machine's business, not the run's; the checkpoint's count
    // stays unless given, as another count sums in another order and a resume is exact.
    if (given.has('threads')) config.threads = options.threads;
    // Pixel workers do not change a value: this invocation's count, given or by default.
    if (options.workers === undefined) delete config.workers;
    else config.workers = options.workers;
    for (const k of Object.keys(REMOTE_SHARD_OPTIONS) as Array<keyof typeof REMOTE_SHARD_OPTIONS>) {
      if (given.has(k)) Object.assign(config, { [k]: options[k] });
    }
    checkRemoteShardOptions(config, given);
    // A checkpoint from before --saliency-size made its maps at 64 px, whatever its views' size.
    if (
      config['saliency-size'] === undefined &&
      !config.data.startsWith('parquet:') &&
      usesSaliency(viewMasks(config), config['attention-view'], config.attention)
    )
      config['saliency-size'] = SALIENCY_SIZE;
    if (given.has('steps')) {
      // Extends the run: the cosine schedule is re-planned to end at the new step count, from the step the checkpoint holds.
      if (options.steps <= meta.step)
        throw new ConfigError(
          `--steps ${options.steps}: the run in ${out} has done ${meta.step} steps; --resume --steps extends it to more`,
        );
      config.steps = options.steps;
      config.epochs = undefined; // the new length is in steps
    }
    return { ...config, resume: true, overwrite: false, verbose, stepsDone: meta.step };
  }
  const c: TrainConfig = { ...options, out: options.out ?? join('runs', options.method) };
  // Adam's steps are normalised: SGD's default rate would blow it up. Keep an explicit --lr.
  if (c.optimizer === 'adamw' && !given.has('lr')) c.lr = 1e-3;
  // LARS: the linear scaling rule lr = 0.3 × batch / 256 (SimCLR, solo-learn); its trust ratio sets each layer's step.
  if (c.optimizer === 'lars' && !given.has('lr')) c.lr = (0.3 * c.batch) / 256;
  checkSoftRankOptions(c, given);
  checkRemoteShardOptions(c, given);
  if (given.has('epochs') && given.has('steps')) throw new ConfigError("--epochs and --steps both set the run's length; give one");
  if (c.encoder === 'vit') {
    if (c.preset === 'multicrop')
      throw new ConfigError(
        '--encoder vit: its position embeddings fix the view size, and multicrop mixes sizes; use --preset mocov2 or byol',
      );
    if (c.size % 8 !== 0) throw new ConfigError(`--encoder vit: --size ${c.size} must be a multiple of its patch, 8`);
  }
  if (c.method === 'hapicl' && c.masks === 'encoder' && !(c.attention === 'encoder' || c.attention?.startsWith('encoder:'))) {
    throw new ConfigError('--masks encoder: clusters the features of --attention encoder (the live encoder) or encoder:RUN; give one');
  }
  if (given.has('attention-refresh') && c.attention !== 'encoder')
    throw new ConfigError('--attention-refresh: only --attention encoder (the live encoder) is refreshed');
  // A step pushes its batch's keys into each queue at once, so a queue must hold a batch.
  if (c.method !== 'softrank' && c.queue < c.batch)
    throw new ConfigError(`--queue ${c.queue}: a step's ${c.batch} keys go into the queue at once; give --queue ${c.batch} or more`);
  if (c.method === 'densecl' && c['dense-queue'] > 0 && c['dense-queue'] < c.batch)
    throw new ConfigError(
      `--dense-queue ${c['dense-queue']}: a step's ${c.batch} dense keys go into the dense queue at once; give --dense-queue ${c.batch} or more (0: as --queue)`,
    );
  if (given.has('dense-queue') && c.method !== 'densecl')
    throw new ConfigError(`--dense-queue: only densecl has a dense queue; drop it with --method ${c.method}`);
  if (given.has('dense-cells') && c.method !== 'densecl')
    throw new ConfigError(`--dense-cells: only densecl has a dense term over a queue; drop it with --method ${c.method}`);
  if (given.has('dense-warmup') && c.method !== 'densecl')
    throw new ConfigError(`--dense-warmup: only densecl has a dense term to warm up; drop it with --method ${c.method}`);
  if (c['dense-warmup'] > 0 && !given.has('epochs') && c['dense-warmup'] >= c.steps)
    throw new ConfigError(
      `--dense-warmup ${c['dense-warmup']}: the run has ${c.steps} steps, so its dense term would never start; give fewer`,
    );
  if (given.has('dense-hidden') && c.method !== 'densecl' && c.method !== 'hapicl')
    throw new ConfigError(`--dense-hidden: only densecl's and hapicl's dense heads are sized by it; drop it with --method ${c.method}`);
  if (c.method === 'densecl' && !given.has('dense-hidden')) c['dense-hidden'] = encoderChannels(encoderPreset(c.encoder, c.size));
  if (c.method === 'densecl' && !given.has('dense-cells'))
    c['dense-cells'] = defaultDenseCells(encoderGridSide(encoderPreset(c.encoder, c.size), c.size));
  if (given.has('match') && c.method !== 'densecl')
    throw new ConfigError(`--match: only densecl matches cells between views; drop it with --method ${c.method}`);
  if (c.match === 'geometric' && c.size % encoderStride(encoderPreset(c.encoder, c.size)) !== 0) {
    throw new ConfigError(
      `--match geometric: --size ${c.size} must be a multiple of the ${c.encoder} encoder's stride ${encoderStride(encoderPreset(c.encoder, c.size))}`,
    );
  }
  if (given.has('min-foreground') && c.method !== 'hapicl')
    throw new ConfigError(`--min-foreground: only hapicl has masks to keep crops on; drop it with --method ${c.method}`);
  if (c.method === 'hapicl' && !given.has('min-foreground')) c['min-foreground'] = HARL_MIN_FOREGROUND;
  if (given.has('pixel-cells') && c.method !== 'hapicl')
    throw new ConfigError(`--pixel-cells: only hapicl has a pixel term; drop it with --method ${c.method}`);
  if (c.method === 'hapicl' && !given.has('pixel-cells')) c['pixel-cells'] = DEFAULT_PIXEL_CELLS;
  const precomputed = c.data.startsWith('parquet:');
  c['saliency-size'] = settleSaliencySize(c['saliency-size'], given, {
    size: c.size,
    uses: !precomputed && usesSaliency(viewMasks(c), c['attention-view'], c.attention),
    nowhere: precomputed
      ? `--data ${c.data} holds views precompute cut, with their masks (precompute --saliency-size sizes those maps)`
      : 'this run makes no saliency map (it makes them for --method hapicl with --masks saliency, or for --attention-view, with a saliency --attention)',
  });
  for (const k of ['alpha', 'beta'] as const) {
    if (given.has(k) && c.method !== 'hapicl' && c.method !== 'softrank')
      throw new ConfigError(`--${k}: a weight of hapicl's HARL loss or of softrank's two rankings; drop it with --method ${c.method}`);
  }
  if (c.method === 'softrank' && c.alpha === 0 && c.beta === 0)
    throw new ConfigError('--alpha 0 --beta 0: softrank would have no loss; give one of its two rankings a weight above 0');
  checkKnnOptions(c, given);
  if (given.has('augment') && c.data.startsWith('parquet:'))
    throw new ConfigError(`--augment: --data ${c.data} holds views cut by precompute; there is nothing to cut, drop --augment`);
  return { ...c, resume: false, overwrite, verbose };
}

/** The masks a run's views carry: hapicl's, or none. */
export const viewMasks = (c: Pick<TrainConfig, 'method' | 'masks'>): ViewMasks => (c.method === 'hapicl' ? c.masks : 'none');

/** The kNN monitor's labelled set by default: the training scenes, or Fashion-MNIST's test split; other sources have no labels. */
export function defaultKnnData(data: string): string | undefined {
  if (data === 'scenes' || data.startsWith('scenes:') || data === 'fashion-mnist-test' || data.startsWith('fashion-mnist-test:'))
    return data;
  if (data === 'fashion-mnist' || data.startsWith('fashion-mnist:')) return `fashion-mnist-test${data.slice('fashion-mnist'.length)}`;
  return undefined;
}

/**
 * The kNN monitor is on by default where a labelled set is at hand and the run lasts at least
 * one interval; asked for without a labelled set, it is refused.
 */
function checkKnnOptions(c: TrainConfig, given: ReadonlySet<string>): void {
  const data = c['knn-data'] ?? defaultKnnData(c.data);
  if (data?.startsWith('parquet:'))
    throw new ConfigError(
      `--knn-data ${data}: the kNN monitor needs whole labelled images (scenes, fashion-mnist-test, dir:PATH or tar:PATTERN with labels), not precomputed views`,
    );
  if (c['knn-every'] > 0 && data === undefined) {
    if (given.has('knn-every'))
      throw new ConfigError(
        `--knn-every: --data ${c.data} has no labels for the kNN monitor; name a labelled set with --knn-data (e.g. scenes, fashion-mnist-test), or drop --knn-every`,
      );
    c['knn-every'] = 0; // no labelled set: the monitor is off
  }
  // By default a run shorter than one interval has no monitor: an evaluation would cost more than it tells.
  if (!given.has('knn-every') && c.steps < c['knn-every']) c['knn-every'] = 0;
}

/** softrank's constraints, and its options refused with other methods. */
function checkSoftRankOptions(c: TrainConfig, given: ReadonlySet<string>): void {
  if (c.method !== 'softrank') {
    const misplaced = SOFTRANK_OPTIONS.filter((k) => given.has(k));
    if (misplaced.length > 0)
      throw new ConfigError(
        `--${misplaced.join(', --')}: only --method softrank reads ${misplaced.length === 1 ? 'it' : 'them'} (clustering positives, soft ranking); drop ${misplaced.length === 1 ? 'it' : 'them'} with --method ${c.method}`,
      );
    return;
  }
  if (c.batch % 2 !== 0 || c.batch < 4) {
    throw new ConfigError(
      `--batch: softrank trains on (anchor, positive) pairs, --batch counting both: expected an even number ≥ 4, got ${c.batch}`,
    );
  }
  if (c.data.startsWith('parquet:')) {
    throw new ConfigError(
      `--data ${c.data}: softrank cuts the views of an anchor and its positive after pairing them, so it needs images (scenes, dir:PATH, fashion-mnist, tar:PATTERN), not precomputed views`,
    );
  }
  // Only a stream draws positives from a reservoir; a random-access source reads them again by id.
  if (c.reservoir !== undefined) {
    if (!c.data.startsWith('tar:'))
      throw new ConfigError(
        `--reservoir: only a stream source (tar:PATTERN) draws positives from a reservoir of recent samples; --data ${c.data} reads them again by id, drop --reservoir`,
      );
    if (c.reservoir > MAX_RESERVOIR)
      throw new ConfigError(
        `--reservoir ${c.reservoir}: holds that many decoded images (≈ 62 KB each at --size 64); expected at most ${MAX_RESERVOIR}`,
      );
  }
  const bank = c['bank-size'];
  if (bank !== undefined && c.clusters !== undefined && 4 * c.clusters > bank) {
    throw new ConfigError(
      `--clusters ${c.clusters}: needs at least ${4 * c.clusters} embeddings to cluster (4 per cluster), but --bank-size is ${bank}`,
    );
  }
  // Without --bank-size the bank's size is known once the source is open (positiveSettings checks it then).
  if (bank !== undefined && c.negatives !== undefined && c.negatives >= bank) {
    throw new ConfigError(`--negatives ${c.negatives}: expected fewer negatives per pair than the bank holds, --bank-size ${bank}`);
  }
}
