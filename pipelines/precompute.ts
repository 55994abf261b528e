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
import { fromSource } from '../operators/from-source.js';
import { orderedMergeMap } from '../operators/ordered-merge-map.js';
import { PixelWorkers } from '../operators/pixel-workers.js';
import { SampleBudget } from '../operators/sample-budget.js';
import { cutPixels, type Plane, type Sample, type SkipRecord } from '../core/index.js';
import { binaries, bools, int32s, masksSchema, strings, tableOf, vectorColumn, viewsSchema } from '../sinks/schemas.js';
import type { TableFile } from '../sinks/table-file.js';
import { pull } from '../train/pull.js';
import { selectBackend } from '../models/backend.js';
import { presetHue } from '../operators/augment-presets.js';
import { SALIENCY_SIZE } from '../operators/saliency.js';
import { openAttentionSource } from './attention-source.js';
import { openEncoderAttention } from './encoder-attention.js';
import { openSource } from './data-source.js';
import { pixelWorkerCount, tarOptionsOf } from './shared-options.js';
import { toConfigError } from '../core/config-error.js';
import type { PrecomputeConfig } from './precompute-options.js';
import { chooseViewAugment, mapsOnWorkers, sampleViews, type SampleViewOptions } from './sample-views.js';
import { cutPlannedViews } from '../operators/cut-planned-views.js';
import { runShardedJob, type ShardedJobResult } from './sharded-job.js';

type ImageFormat = PrecomputeConfig['image-format'];

/** Samples per Parquet row group of the views table: small, so one sample's read decodes little. */
export const VIEW_GROUP_SAMPLES = 16;

async function encodeImage(
  p: { data: Uint8Array; width: number; height: number },
  channels: 1 | 3,
  format: ImageFormat,
): Promise<Uint8Array> {
  const image = sharp(p.data, { raw: { width: p.width, height: p.height, channels } });
  const out =
    format === 'png' ? image.png({ compressionLevel: 6 }) : format === 'jpeg' ? image.jpeg({ quality: 95 }) : image.webp({ quality: 95 });
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
  const source = await openSource(c.data, { tar: tarOptionsOf(c), groundTruth: c.masks === 'gt' }).catch(toConfigError);
  // A model's attention runs on tfjs: the same backend train would use.
  if ((c.attention !== undefined && /^(model|encoder):/.test(c.attention)) || c.augment !== 'cpu') await selectBackend('auto');
  const maps = c.attention?.startsWith('encoder:')
    ? openEncoderAttention(c.attention.slice('encoder:'.length), '--attention', c.seed)
    : undefined;
  const attention =
    maps?.source ??
    (c.attention === undefined
      ? undefined
      : await openAttentionSource(c.attention, '--attention', c['saliency-size']).catch(toConfigError));
  const viewOptions: SampleViewOptions = {
    size: c.size,
    preset: c.preset,
    attentionView: c['attention-view'],
    masks: c.masks,
    minForeground: c['min-foreground'] ?? 0,
    hue: c.hue,
    ...(c['saliency-size'] === undefined ? {} : { saliencySize: c['saliency-size'] }),
    seed: c.seed,
    ...(attention ? { attention } : {}),
    ...(maps ? { featureMask: maps.mask } : {}),
  };
  const augment = await chooseViewAugment(c.augment, source, viewOptions);
  if (!c.quiet) process.stderr.write(`${augment.reason}\n`);
  const options: SampleViewOptions = { ...viewOptions, augment: augment.path };
  const groups = (c.views ?? c.perEpoch) / c.perEpoch;
  const epochs = Array.from({ length: groups }, (_, e) => e);
  const viewTable = viewsSchema(c['image-format']);
  const maskTable = masksSchema();
  const tables = [{ name: 'views', schema: viewTable }, ...(c.masks === 'none' ? [] : [{ name: 'masks', schema: maskTable }])];

  const writePart = async (
    samples: AsyncIterable<Sample>,
    files: Record<string, TableFile>,
    onSkip: (r: SkipRecord) => void,
    onNote: (r: SkipRecord) => void,
  ) => {
    const budget = new SampleBudget(4 * VIEW_GROUP_SAMPLES);
    const encoded: Observable<EncodedSample[]> = fromSource(samples, budget).pipe(
      sampleViews(
        options,
        epochs,
        (r) => {
          onSkip(r);
          budget.release();
        },
        onNote,
      ),
      augment.path === 'backend' ? cutPlannedViews({ batch: VIEW_GROUP_SAMPLES }) : (s) => s,
      orderedMergeMap(
        async (s: Sample): Promise<EncodedSample> => ({
          id: s.id,
          label: s.label,
          views: await Promise.all(
            (s.views ?? []).map(async (v, k) => ({
              image: await encodeImage(cutPixels(s, k), 3, c['image-format']),
              mask: v.mask ? await maskPng(v.mask) : null,
              box: v.box,
              flipped: v.flipped,
            })),
          ),
          ...(s.mask && c.masks !== 'none' ? { mask: { png: await maskPng(s.mask), width: s.mask.width, height: s.mask.height } } : {}),
        }),
        4,
      ),
      bufferCount(VIEW_GROUP_SAMPLES),
    );
    let rows = 0;
    const stream = pull(encoded);
    try {
      for await (const chunk of stream) {
        const viewRows = chunk.flatMap((s) => s.views.map((v, k) => ({ s, v, k })));
        await (files['views'] as TableFile).write(
          tableOf(viewTable, {
            id: strings(viewRows.map((r) => r.s.id)),
            label: int32s(viewRows.map((r) => r.s.label)),
            view: int32s(viewRows.map((r) => r.k)),
            box: vectorColumn(Float32Array.from(viewRows.flatMap((r) => [...r.v.box])), 4),
            flipped: bools(viewRows.map((r) => r.v.flipped)),
            image: binaries(viewRows.map((r) => r.v.image)),
            mask: binaries(viewRows.map((r) => r.v.mask)),
          }),
        );
        if (files['masks']) {
          const withMask = chunk.filter((s) => s.mask);
          await files['masks'].write(
            tableOf(maskTable, {
              id: strings(withMask.map((s) => s.id)),
              height: int32s(withMask.map((s) => s.mask?.height)),
              width: int32s(withMask.map((s) => s.mask?.width)),
              mask: binaries(withMask.map((s) => s.mask?.png ?? null)),
              method: strings(withMask.map(() => c.masks)),
            }),
          );
        }
        budget.release(chunk.length);
        rows += chunk.length;
      }
    } finally {
      stream.close();
    }
    return rows;
  };

  // Pixel workers, where this job has work for them: saliency maps to compute.
  const count = pixelWorkerCount(c.workers);
  const workers = count > 0 && mapsOnWorkers(options) ? new PixelWorkers(count) : undefined;
  if (workers) options.workers = workers;
  try {
    return await runShardedJob({
      job: 'precompute',
      out: c.out,
      source,
      shard,
      seed: c.seed,
      rowsPerFile: c['rows-per-file'],
      format: c.format,
      codec: c.codec,
      rowGroupRows: VIEW_GROUP_SAMPLES * (c.views ?? c.perEpoch),
      config: {
        data: c.data,
        attention: c.attention ?? null,
        preset: c.preset,
        size: c.size,
        views: c.views,
        viewsPerEpoch: c.perEpoch,
        masks: c.masks,
        minForeground: c['min-foreground'] ?? 0,
        hue: c.hue,
        saliencySize: c['saliency-size'] ?? null,
        attentionView: c['attention-view'],
        augment: c.augment,
        imageFormat: c['image-format'],
        format: c.format,
        codec: c.format === 'parquet' ? c.codec : null,
        rowsPerFile: c['rows-per-file'],
        shard: c.shard,
        seed: c.seed,
      },
      // Outputs from before --hue have no hue: theirs was the preset's, so they resume with --hue 0.1.
      // Those from before --saliency-size made any saliency maps at 64 px.
      previousDefaults: { hue: presetHue(c.preset, c.size), saliencySize: c['saliency-size'] === undefined ? null : SALIENCY_SIZE },
      tables,
      writePart,
      progress: !c.quiet,
    });
  } finally {
    maps?.dispose();
    await workers?.close();
  }
}

/** `densestream precompute` with its options parsed (`parsePrecomputeConfig`). */
export async function precomputeCommand(c: PrecomputeConfig & { perEpoch: number }): Promise<void> {
  const start = performance.now();
  const result = await runPrecompute(c);
  process.stdout.write(`${JSON.stringify({ ...result, seconds: Math.round((performance.now() - start) / 100) / 10 })}\n`);
}
