/**
 * `densestream precompute`: cut the training views (and foreground masks) once, offline, into
 * Parquet shards; `densestream train --data parquet:DIR` then trains from them without
 * decoding sources, computing masks or augmenting.
 *
 * source → decode → attention → mask → multiView × G epochs (→ cutPlannedViews with `--augment backend`)
 * → rows of `views` (and `masks`)
 *
 * `--views N` stores N views per image: N / P epochs of a P-view preset, each epoch's views
 * exactly those `train` would cut live with the same seed at that epoch (`views` table,
 * `view` = e·P + k). Training past epoch N / P cycles through them.
 */
import { bufferCount, type Observable } from 'rxjs';
import sharp from 'sharp';
import { parseShard } from '../datasets/source.js';
import { HARL_MIN_FOREGROUND, PRESETS, presetViews } from '../operators/augment-presets.js';
import { fromSource } from '../operators/from-source.js';
import { orderedMergeMap } from '../operators/ordered-merge-map.js';
import { SampleBudget } from '../operators/sample-budget.js';
import { cutPixels, type Plane, type Sample, type SkipRecord } from '../core/index.js';
import { binaries, bools, int32s, masksSchema, strings, tableOf, vectorColumn, viewsSchema } from '../sinks/schemas.js';
import { PARQUET_CODECS, TABLE_FORMATS, type ParquetCodec, type TableFile, type TableFormat } from '../sinks/table-file.js';
import { pull } from '../train/pull.js';
import { selectBackend } from '../models/backend.js';
import { openAttentionSource } from './attention-source.js';
import { openEncoderAttention } from './encoder-attention.js';
import { openSource } from './data-source.js';
import { ConfigError, parseFlags, toConfigError, type Spec } from './options.js';
import { chooseViewAugment, sampleViews, VIEW_MASKS, type SampleViewOptions, type ViewMasks } from './sample-views.js';
import { AUGMENT_CHOICES, type AugmentChoice } from '../operators/augment-path.js';
import { cutPlannedViews } from '../operators/cut-planned-views.js';
import { runShardedJob, type ShardedJobResult } from './sharded-job.js';

export const IMAGE_FORMATS = ['png', 'jpeg', 'webp'] as const;
type ImageFormat = (typeof IMAGE_FORMATS)[number];

const SPEC = {
  data: { type: 'string' },
  out: { type: 'string' },
  preset: { type: 'string', choices: PRESETS },
  size: { type: 'int', min: 16 },
  views: { type: 'int', min: 1 },
  masks: { type: 'string', choices: VIEW_MASKS },
  'attention-view': { type: 'boolean' },
  'min-foreground': { type: 'number', min: 0 },
  attention: { type: 'string' },
  'image-format': { type: 'string', choices: IMAGE_FORMATS },
  format: { type: 'string', choices: TABLE_FORMATS },
  codec: { type: 'string', choices: PARQUET_CODECS },
  shard: { type: 'string' },
  'rows-per-file': { type: 'int', min: 1 },
  seed: { type: 'int', min: 0 },
  quiet: { type: 'boolean' },
  augment: { type: 'string', choices: AUGMENT_CHOICES },
} as const satisfies Record<string, Spec>;

export interface PrecomputeConfig {
  data: string;
  out: string;
  preset: (typeof PRESETS)[number];
  size: number;
  /** Views stored per image: a multiple of the preset's view count (default: one epoch's). */
  views?: number;
  masks: ViewMasks;
  'attention-view': boolean;
  /** Random crops keep at least this fraction on the mask (HARL; default 0.2 with masks, as `train --method hapicl`). */
  'min-foreground'?: number;
  /** The attention map's source: boundary|frequency-tuned|model:PATH|encoder:RUN (default: saliency). */
  attention?: string;
  /** PNG (default) is lossless: training from the shards sees exactly the live pipeline's pixels. */
  'image-format': ImageFormat;
  format: TableFormat;
  codec: ParquetCodec;
  shard: string;
  'rows-per-file': number;
  seed: number;
  quiet: boolean;
  /**
   * Where view pixels are cut (default cpu, the reference path: precomputed views are then
   * exactly those a `train --augment cpu` run cuts live; `backend` and `auto` as train's).
   */
  augment: AugmentChoice;
}

const DEFAULTS = { preset: 'mocov2', size: 64, masks: 'saliency', 'attention-view': false, 'image-format': 'png', format: 'parquet', codec: 'zstd', shard: '0/1', 'rows-per-file': 500, seed: 0, quiet: false, augment: 'cpu' } as const;

/** Samples per Parquet row group of the views table: small, so one sample's read decodes little. */
export const VIEW_GROUP_SAMPLES = 16;

export function parsePrecomputeConfig(argv: string[]): PrecomputeConfig & { perEpoch: number } {
  const flags = parseFlags(argv, SPEC, ['data', 'out']);
  const c = { ...DEFAULTS, ...flags } as unknown as PrecomputeConfig;
  try {
    parseShard(c.shard);
  } catch (err) {
    toConfigError(err);
  }
  if (c.masks === 'encoder' && !c.attention?.startsWith('encoder:')) throw new ConfigError('--masks encoder: clusters the features of the encoder named by --attention encoder:RUN; give it');
  if (c.masks === 'gt' && !c.data.startsWith('scenes')) throw new ConfigError(`--masks gt: only the built-in scenes carry ground truth, not ${c.data}`);
  if (c['min-foreground'] !== undefined) {
    if (!(c['min-foreground'] < 1)) throw new ConfigError(`--min-foreground: expected a fraction in [0, 1), got ${c['min-foreground']}`);
    if (c['min-foreground'] > 0 && c.masks === 'none') throw new ConfigError('--min-foreground: crops keep to the foreground of masks; drop it with --masks none');
  }
  c['min-foreground'] ??= c.masks === 'none' ? 0 : HARL_MIN_FOREGROUND;
  const perEpoch = presetViews(c.preset, c.size).length;
  const views = c.views ?? perEpoch;
  if (views % perEpoch !== 0) throw new ConfigError(`--views: expected a multiple of the ${c.preset} preset's ${perEpoch} views (whole epochs), got ${views}`);
  return { ...c, views, perEpoch };
}

async function encodeImage(p: { data: Uint8Array; width: number; height: number }, channels: 1 | 3, format: ImageFormat): Promise<Uint8Array> {
  const image = sharp(p.data, { raw: { width: p.width, height: p.height, channels } });
  const out = format === 'png' ? image.png({ compressionLevel: 6 }) : format === 'jpeg' ? image.jpeg({ quality: 95 }) : image.webp({ quality: 95 });
  return new Uint8Array(await out.toBuffer());
}

/** A 0/1 plane as a grey PNG (0 / 255): lossless, and viewable as it is. */
function maskPng(m: Plane): Promise<Uint8Array> {
  const grey = new Uint8Array(m.data.length);
  for (let i = 0; i < grey.length; i++) grey[i] = m.data[i] ? 255 : 0;
  return encodeImage({ data: grey, width: m.width, height: m.height }, 1, 'png');
}

interface EncodedSample {
  id: string;
  label?: number;
  views: Array<{ image: Uint8Array; mask: Uint8Array | null; box: readonly number[]; flipped: boolean }>;
  mask?: { png: Uint8Array; width: number; height: number };
}

export async function runPrecompute(c: PrecomputeConfig & { perEpoch: number }): Promise<ShardedJobResult> {
  const shard = parseShard(c.shard);
  const source = await openSource(c.data).catch(toConfigError);
  // A model's attention runs on tfjs: the same backend train would use.
  if ((c.attention !== undefined && /^(model|encoder):/.test(c.attention)) || c.augment !== 'cpu') await selectBackend('auto');
  const maps = c.attention?.startsWith('encoder:') ? openEncoderAttention(c.attention.slice('encoder:'.length), '--attention', c.seed) : undefined;
  const attention = maps?.source ?? (c.attention === undefined ? undefined : await openAttentionSource(c.attention).catch(toConfigError));
  const viewOptions: SampleViewOptions = { size: c.size, preset: c.preset, attentionView: c['attention-view'], masks: c.masks, minForeground: c['min-foreground'] ?? 0, seed: c.seed, ...(attention ? { attention } : {}), ...(maps ? { featureMask: maps.mask } : {}) };
  const augment = await chooseViewAugment(c.augment, source, viewOptions);
  if (!c.quiet) process.stderr.write(`${augment.reason}\n`);
  const options: SampleViewOptions = { ...viewOptions, augment: augment.path };
  const groups = (c.views ?? c.perEpoch) / c.perEpoch;
  const epochs = Array.from({ length: groups }, (_, e) => e);
  const viewTable = viewsSchema(c['image-format']);
  const maskTable = masksSchema();
  const tables = [{ name: 'views', schema: viewTable }, ...(c.masks === 'none' ? [] : [{ name: 'masks', schema: maskTable }])];

  const writePart = async (samples: AsyncIterable<Sample>, files: Record<string, TableFile>, onSkip: (r: SkipRecord) => void, onNote: (r: SkipRecord) => void) => {
    const budget = new SampleBudget(4 * VIEW_GROUP_SAMPLES);
    const encoded: Observable<EncodedSample[]> = fromSource(samples, budget).pipe(
      sampleViews(options, epochs, (r) => { onSkip(r); budget.release(); }, onNote),
      augment.path === 'backend' ? cutPlannedViews({ batch: VIEW_GROUP_SAMPLES }) : (s) => s,
      orderedMergeMap(async (s: Sample): Promise<EncodedSample> => ({
        id: s.id,
        label: s.label,
        views: await Promise.all((s.views ?? []).map(async (v, k) => ({
          image: await encodeImage(cutPixels(s, k), 3, c['image-format']), mask: v.mask ? await maskPng(v.mask) : null, box: v.box, flipped: v.flipped,
        }))),
        ...(s.mask && c.masks !== 'none' ? { mask: { png: await maskPng(s.mask), width: s.mask.width, height: s.mask.height } } : {}),
      }), 4),
      bufferCount(VIEW_GROUP_SAMPLES),
    );
    let rows = 0;
    const stream = pull(encoded);
    try {
      for await (const chunk of stream) {
        const viewRows = chunk.flatMap((s) => s.views.map((v, k) => ({ s, v, k })));
        await (files['views'] as TableFile).write(tableOf(viewTable, {
          id: strings(viewRows.map((r) => r.s.id)),
          label: int32s(viewRows.map((r) => r.s.label)),
          view: int32s(viewRows.map((r) => r.k)),
          box: vectorColumn(Float32Array.from(viewRows.flatMap((r) => [...r.v.box])), 4),
          flipped: bools(viewRows.map((r) => r.v.flipped)),
          image: binaries(viewRows.map((r) => r.v.image)),
          mask: binaries(viewRows.map((r) => r.v.mask)),
        }));
        if (files['masks']) {
          const withMask = chunk.filter((s) => s.mask);
          await files['masks'].write(tableOf(maskTable, {
            id: strings(withMask.map((s) => s.id)),
            height: int32s(withMask.map((s) => s.mask?.height)),
            width: int32s(withMask.map((s) => s.mask?.width)),
            mask: binaries(withMask.map((s) => s.mask?.png ?? null)),
            method: strings(withMask.map(() => c.masks)),
          }));
        }
        budget.release(chunk.length);
        rows += chunk.length;
      }
    } finally {
      stream.close();
    }
    return rows;
  };

  try {
    return await runShardedJob({
    job: 'precompute', out: c.out, source, shard, seed: c.seed, rowsPerFile: c['rows-per-file'], format: c.format, codec: c.codec,
    rowGroupRows: VIEW_GROUP_SAMPLES * (c.views ?? c.perEpoch),
    config: {
      data: c.data, attention: c.attention ?? null, preset: c.preset, size: c.size, views: c.views, viewsPerEpoch: c.perEpoch, masks: c.masks, minForeground: c['min-foreground'] ?? 0, attentionView: c['attention-view'],
      augment: c.augment, imageFormat: c['image-format'], format: c.format, codec: c.format === 'parquet' ? c.codec : null, rowsPerFile: c['rows-per-file'], shard: c.shard, seed: c.seed,
    },
    tables, writePart, progress: !c.quiet,
    });
  } finally {
    maps?.dispose();
  }
}

export async function precomputeCommand(argv: string[]): Promise<void> {
  const c = parsePrecomputeConfig(argv);
  const start = performance.now();
  const result = await runPrecompute(c);
  process.stdout.write(`${JSON.stringify({ ...result, seconds: Math.round((performance.now() - start) / 100) / 10 })}\n`);
}
