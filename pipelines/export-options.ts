/**
 * `densestream export`'s options: one declaration (flags, `--config` keys, `--help`) and the
 * checks across them. Free of tfjs, Arrow and sharp, so a wrong option is refused at once.
 */
import * as z from 'zod';
import { ConfigError, toConfigError } from '../core/config-error.js';
import { parseShard } from '../datasets/source.js';
import { ENCODER_NAMES } from '../models/encoder-spec.js';
import { PARQUET_CODECS, TABLE_FORMATS } from '../sinks/table-formats.js';
import { parseCommand, type CommandSchema } from './command-schema.js';
import { DEFAULT_RECIPE } from './recipe.js';
import { checkpointDir } from './run-folder.js';
import { BACKEND_OPTIONS, checkRemoteShardOptions, REMOTE_SHARD_OPTIONS } from './shared-options.js';

export const EXPORT_COMMAND = {
  name: 'export',
  summary: 'dense features of a trained encoder to Parquet / Arrow files, resumable and shardable',
  required: ['data', 'out'] as const,
  configFile: true,
  options: z.object({
    data: z.string().optional().meta({
      arg: 'SOURCE',
      description:
        'the images, all of them: scenes[:SIZE[:COUNT]] (20 000 by default), dir:PATH, tar:PATTERN or tar:@LIST (local, https:// or s3://), fashion-mnist[-test][:DIR]',
    }),
    out: z.string().optional().meta({ arg: 'DIR', description: 'the folder of feature files and their manifest.json' }),
    checkpoint: z
      .string()
      .optional()
      .meta({ arg: 'RUN', description: 'a train --out folder (or its checkpoint/); without it, a random-init --encoder: the baseline' }),
    encoder: z.enum(ENCODER_NAMES).default('slim').meta({ arg: 'NAME', description: 'the random-init encoder, without --checkpoint' }),
    format: z.enum(TABLE_FORMATS).default('parquet').meta({ arg: 'FORMAT', description: 'Parquet, or Arrow IPC files' }),
    dense: z
      .enum(['grid', 'cells'])
      .default('grid')
      .meta({ arg: 'ROWS', description: 'a row per image (pooled embedding and the dense grid), or a row per grid cell' }),
    // lz4: zstd makes 16 % smaller feature files but took 11 % of export time against lz4's 6 % (`npm run bench -- export`, 10 000 rows).
    codec: z.enum(PARQUET_CODECS).default('lz4').meta({ arg: 'CODEC', description: 'Parquet compression' }),
    shard: z.string().default('0/1').meta({ arg: 'i/n', description: "this host's share of the source: part i of n" }),
    'rows-per-file': z.number().int().min(1).default(1000).meta({ arg: 'R', description: 'rows per file, each file a unit of resume' }),
    size: z
      .number()
      .int()
      .min(16)
      .optional()
      .meta({
        arg: 'PX',
        defaultText: `the checkpoint's; ${DEFAULT_RECIPE.size} for the random-init encoder (train's default)`,
        description: 'image side fed to the encoder',
      }),
    batch: z.number().int().min(1).default(32).meta({ arg: 'B', description: 'images per forward pass' }),
    seed: z.number().int().min(0).default(0).meta({ arg: 'S', description: 'seeds the random-init encoder and the source order' }),
    ...BACKEND_OPTIONS,
    ...REMOTE_SHARD_OPTIONS,
    quiet: z.boolean().default(false).meta({ description: 'no progress or backend lines on stderr' }),
  }),
} satisfies CommandSchema;

export type ExportConfig = Omit<z.output<typeof EXPORT_COMMAND.options>, 'data' | 'out'> & { data: string; out: string };

export function parseExportConfig(argv: readonly string[]): ExportConfig {
  const { values, given } = parseCommand(EXPORT_COMMAND, argv);
  if (given.has('checkpoint') && given.has('encoder'))
    throw new ConfigError('--encoder: the checkpoint decides the encoder; drop --encoder');
  const c = values as ExportConfig; // --data and --out are required
  checkRemoteShardOptions(c, given);
  try {
    parseShard(c.shard);
  } catch (err) {
    toConfigError(err);
  }
  if (c.checkpoint !== undefined) c.checkpoint = checkpointDir(c.checkpoint);
  return c;
}
