/**
 * `densestream train`'s options declared: each one's type, range, default (with the measurement
 * that chose it, for the dense methods' cells and keys) and help text, from which its flags,
 * `--config` keys and `--help` come; and `TrainConfig`, the run's configuration they make. Parsing
 * them and the checks across options are train-options.ts's, the per-method ones
 * train-method-options.ts's. It loads no tfjs, sharp or data code.
 */
import * as z from 'zod';
import { ENCODER_NAMES } from '../models/encoder-spec.js';
import { WEIGHT_INITS } from '../models/weight-init.js';
import { HARL_MIN_FOREGROUND, PRESETS } from '../operators/augment-presets.js';
import { SOFTRANK_RELATIONS } from '../methods/softrank-relation.js';
import type { CommandSchema } from './command-schema.js';
import { DEFAULT_RECIPE } from './recipe.js';
import {
  augmentOption,
  BACKEND_OPTIONS,
  HUE_OPTION,
  minForegroundOption,
  REMOTE_SHARD_OPTIONS,
  SALIENCY_SIZE_OPTION,
  WORKERS_OPTION,
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
  summary: `self-supervised training; with no options: the default recipe, ${DEFAULT_RECIPE.method} on scenes at ${DEFAULT_RECIPE.size} px, ${DEFAULT_RECIPE.steps} steps (5–6 min on 2 cores, measured)`,
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
    'min-foreground': minForegroundOption(
      `${HARL_MIN_FOREGROUND} with hapicl`,
      "hapicl: each random crop keeps at least this fraction of its area on the mask (HARL's mask-aware crop); 0 gives plain crops",
    ),
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
    init: z.enum(WEIGHT_INITS).default('densestream').meta({
      arg: 'DRAW',
      description:
        "the initial weights' draw: densestream (He on fan_in, zero head biases; the better dense features on the scenes) or reference (as the PyTorch code: torchvision's fan_out convolutions, nn.Linear heads)",
    }),
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
