/**
 * `densestream precompute`'s options: one declaration (flags, `--config` keys, `--help`) and the
 * checks across them. Free of tfjs, Arrow and sharp, so a wrong option is refused at once.
 */
import * as z from 'zod';
import { ConfigError, toConfigError } from '../core/config-error.js';
import { parseShard } from '../datasets/source.js';
import { HARL_MIN_FOREGROUND, PRESETS, presetViews } from '../operators/augment-presets.js';
import { PARQUET_CODECS, TABLE_FORMATS } from '../sinks/table-formats.js';
import { parseCommand, type CommandSchema } from './command-schema.js';
import { DEFAULT_RECIPE } from './recipe.js';
import {
  augmentOption,
  carriesGroundTruth,
  checkRemoteShardOptions,
  HUE_OPTION,
  minForegroundOption,
  REMOTE_SHARD_OPTIONS,
  SALIENCY_SIZE_OPTION,
  settleSaliencySize,
  usesSaliency,
  VIEW_MASKS,
  WORKERS_OPTION,
} from './shared-options.js';

export const IMAGE_FORMATS = ['png', 'jpeg', 'webp'] as const;

export const PRECOMPUTE_COMMAND = {
  name: 'precompute',
  summary: 'training views (and foreground masks) cut once into Parquet shards; train --data parquet:DIR trains from them',
  required: ['data', 'out'] as const,
  configFile: true,
  options: z.object({
    data: z.string().optional().meta({
      arg: 'SOURCE',
      description:
        'the images, all of them: scenes[:SIZE[:COUNT]] (20 000 by default), dir:PATH, tar:PATTERN or tar:@LIST (local, https:// or s3://), fashion-mnist[-test][:DIR]',
    }),
    out: z.string().optional().meta({ arg: 'DIR', description: 'the folder of view shards and their manifest.json' }),
    preset: z.enum(PRESETS).default('mocov2').meta({ arg: 'NAME', description: 'the views and their augmentation' }),
    size: z
      .number()
      .int()
      .min(16)
      .default(DEFAULT_RECIPE.size)
      .meta({ arg: 'PX', description: "side of every view, in pixels (the default is train's)" }),
    views: z.number().int().min(1).optional().meta({
      arg: 'N',
      defaultText: "the preset's count: one epoch",
      description:
        "views stored per image: a multiple of the preset's count, each epoch's views exactly those train cuts live with the same seed",
    }),
    masks: z.enum(VIEW_MASKS).default('saliency').meta({
      arg: 'SOURCE',
      description: 'foreground masks stored with the views (encoder: 2-means on the features of --attention encoder:RUN)',
    }),
    'min-foreground': minForegroundOption(
      `${HARL_MIN_FOREGROUND} with masks, else 0`,
      "each random crop keeps at least this fraction of its area on the mask (HARL's mask-aware crop, as train --method hapicl)",
    ),
    'attention-view': z.boolean().default(false).meta({ description: 'one view keeps the main object (attention-driven crop)' }),
    attention: z.string().optional().meta({
      arg: 'SOURCE',
      defaultText: 'boundary',
      description: 'the attention map: boundary, frequency-tuned, model:PATH, encoder:RUN',
    }),
    // PNG is lossless: training from the shards sees exactly the live pipeline's pixels.
    'image-format': z.enum(IMAGE_FORMATS).default('png').meta({ arg: 'FORMAT', description: 'how each view is stored; png is lossless' }),
    format: z.enum(TABLE_FORMATS).default('parquet').meta({ arg: 'FORMAT', description: 'Parquet, or Arrow IPC files' }),
    codec: z.enum(PARQUET_CODECS).default('zstd').meta({ arg: 'CODEC', description: 'Parquet compression' }),
    shard: z.string().default('0/1').meta({ arg: 'i/n', description: "this host's share of the source: part i of n" }),
    'rows-per-file': z.number().int().min(1).default(500).meta({ arg: 'R', description: 'images per file, each file a unit of resume' }),
    seed: z.number().int().min(0).default(0).meta({ arg: 'S', description: 'seeds every view, as train --seed' }),
    quiet: z.boolean().default(false).meta({ description: 'no progress lines on stderr' }),
    // cpu, the reference path: precomputed views are then exactly those a `train --augment cpu` run cuts live.
    augment: augmentOption('cpu'),
    ...HUE_OPTION,
    ...SALIENCY_SIZE_OPTION,
    ...WORKERS_OPTION,
    ...REMOTE_SHARD_OPTIONS,
  }),
} satisfies CommandSchema;

type PrecomputeOptions = z.output<typeof PRECOMPUTE_COMMAND.options>;
export type PrecomputeConfig = Omit<PrecomputeOptions, 'data' | 'out'> & { data: string; out: string };

export function parsePrecomputeConfig(argv: readonly string[]): PrecomputeConfig & { perEpoch: number } {
  const { values, given } = parseCommand(PRECOMPUTE_COMMAND, argv);
  const c = values as PrecomputeConfig; // --data and --out are required
  checkRemoteShardOptions(c, given);
  try {
    parseShard(c.shard);
  } catch (err) {
    toConfigError(err);
  }
  if (c.masks === 'encoder' && !c.attention?.startsWith('encoder:'))
    throw new ConfigError('--masks encoder: clusters the features of the encoder named by --attention encoder:RUN; give it');
  if (c.masks === 'gt' && !carriesGroundTruth(c.data))
    throw new ConfigError(`--masks gt: only the built-in scenes and Fashion-MNIST (its silhouettes) carry ground truth, not ${c.data}`);
  if (c['min-foreground'] !== undefined && c['min-foreground'] > 0 && c.masks === 'none') {
    throw new ConfigError('--min-foreground: crops keep to the foreground of masks; drop it with --masks none');
  }
  c['min-foreground'] ??= c.masks === 'none' ? 0 : HARL_MIN_FOREGROUND;
  c['saliency-size'] = settleSaliencySize(c['saliency-size'], given, {
    size: c.size,
    uses: usesSaliency(c.masks, c['attention-view'], c.attention),
    nowhere: 'these views need no saliency map (saliency masks or --attention-view with a saliency --attention do)',
  });
  const perEpoch = presetViews(c.preset, c.size).length;
  const views = c.views ?? perEpoch;
  if (views % perEpoch !== 0)
    throw new ConfigError(`--views: expected a multiple of the ${c.preset} preset's ${perEpoch} views (whole epochs), got ${views}`);
  return { ...c, views, perEpoch };
}
