/**
 * `densestream export`: dense features of a trained encoder, to Parquet or Arrow IPC files
 * that DuckDB, pandas and polars read directly.
 *
 * source → decode → whole image resized to SIZE² → batch → encoder (inference mode) → rows
 *
 * One row per image (`--dense grid`: pooled `embedding` and the `dense` grid, row-major
 * h, w, c) or one row per grid cell (`--dense cells`: `y`, `x`, `vector`). See
 * `sinks/schemas.ts` for the schemas.
 */
import * as tf from '@tensorflow/tfjs';
import { map, tap } from 'rxjs';
import { parseShard } from '../datasets/source.js';
import { backendFields, backendLines, selectBackend } from '../models/backend.js';
import { centreSquareView } from '../operators/augment-presets.js';
import { batch as collate } from '../operators/batch.js';
import { decode } from '../operators/decode.js';
import { fromSource } from '../operators/from-source.js';
import { multiView } from '../operators/multi-view.js';
import { SampleBudget } from '../operators/sample-budget.js';
import type { Sample, SkipRecord } from '../core/index.js';
import { featureCellsSchema, featuresSchema, int32s, strings, tableOf, vectorColumn, type FeatureShape } from '../sinks/schemas.js';
import type { TableFile } from '../sinks/table-file.js';
import { pull } from '../train/pull.js';
import { loadCheckpointEncoder, randomInitEncoder, type CheckpointEncoder } from './checkpoint-encoder.js';
import { DEFAULT_RECIPE } from './recipe.js';
import { openSource } from './data-source.js';
import { tarOptionsOf } from './shared-options.js';
import { ConfigError, toConfigError } from '../core/config-error.js';
import type { ExportConfig } from './export-options.js';
import { runShardedJob, type ShardedJobResult } from './sharded-job.js';

/** One batch of features as rows of the features (or feature-cells) table. */
function featureRows(
  c: ExportConfig,
  schema: ReturnType<typeof featuresSchema>,
  shape: FeatureShape,
  ids: string[],
  labels: Array<number | undefined>,
  embedding: Float32Array,
  dense: Float32Array,
) {
  if (c.dense === 'grid') {
    return tableOf(schema, {
      id: strings(ids),
      label: int32s(labels),
      embedding: vectorColumn(embedding, shape.embedding),
      dense: vectorColumn(dense, shape.gridH * shape.gridW * shape.channels),
    });
  }
  const cells = shape.gridH * shape.gridW;
  const cellIds: string[] = [];
  const cellLabels: Array<number | undefined> = [];
  const ys: number[] = [];
  const xs: number[] = [];
  ids.forEach((id, b) => {
    for (let k = 0; k < cells; k++) {
      cellIds.push(id);
      cellLabels.push(labels[b]);
      ys.push(Math.floor(k / shape.gridW));
      xs.push(k % shape.gridW);
    }
  });
  return tableOf(schema, {
    id: strings(cellIds),
    label: int32s(cellLabels),
    y: int32s(ys),
    x: int32s(xs),
    vector: vectorColumn(dense, shape.channels),
  });
}

/** Runs an export; the caller has selected the backend. */
export async function runExport(c: ExportConfig): Promise<ShardedJobResult & { origin: string }> {
  const shard = parseShard(c.shard);
  const source = await openSource(c.data, { tar: tarOptionsOf(c) }).catch(toConfigError);
  const model: CheckpointEncoder = c.checkpoint
    ? loadCheckpointEncoder(c.checkpoint)
    : randomInitEncoder(c.encoder, c.seed, c.size ?? DEFAULT_RECIPE.size);
  const size = c.size ?? model.trainedSize;
  const { encoder } = model;
  const grid = size / encoder.stride;
  if (!Number.isInteger(grid)) {
    encoder.dispose();
    throw new ConfigError(`--size: ${size} is not a multiple of the encoder's stride ${encoder.stride}`);
  }
  if (encoder.config.kind === 'vit' && size !== encoder.config.imageSize) {
    encoder.dispose();
    throw new ConfigError(`--size: the ViT's position embeddings fix its input at ${encoder.config.imageSize} px; drop --size ${size}`);
  }
  const shape: FeatureShape = { embedding: encoder.channels, gridH: grid, gridW: grid, channels: encoder.channels };
  const schema = c.dense === 'grid' ? featuresSchema(shape) : featureCellsSchema(shape);
  const table = 'features';
  const writePart = async (samples: AsyncIterable<Sample>, files: Record<string, TableFile>, onSkip: (r: SkipRecord) => void) => {
    const budget = new SampleBudget(2 * c.batch + 8);
    const labels = new Map<string, number | undefined>();
    const batches = fromSource(samples, budget).pipe(
      decode({
        minSide: size,
        onSkip: (r) => {
          onSkip(r);
          budget.release();
        },
      }),
      tap((s) => labels.set(s.id, s.label)),
      map((s) => ({ id: s.id, pixels: s.pixels })), // drop maps the features do not use
      multiView({ views: [centreSquareView(size)], seed: c.seed }),
      collate(c.batch),
    );
    let rows = 0;
    const stream = pull(batches, (b) => b.dispose());
    try {
      for await (const b of stream) {
        const [embedding, dense] = tf.tidy(() => {
          const out = encoder.apply(b.views[0] as tf.Tensor4D, { training: false });
          return [out.pooled, out.dense];
        });
        const ids = b.ids;
        const rowLabels = ids.map((id) => labels.get(id));
        ids.forEach((id) => labels.delete(id));
        const e = (await embedding.data()) as Float32Array;
        const d = (await dense.data()) as Float32Array;
        tf.dispose([embedding, dense]);
        b.dispose();
        await (files[table] as TableFile).write(featureRows(c, schema, shape, ids, rowLabels, e, d));
        budget.release(ids.length);
        rows += ids.length;
      }
    } finally {
      stream.close();
    }
    return rows;
  };
  try {
    const result = await runShardedJob({
      job: 'export',
      out: c.out,
      source,
      shard,
      seed: c.seed,
      rowsPerFile: c['rows-per-file'],
      format: c.format,
      codec: c.codec,
      rowGroupRows: c.dense === 'grid' ? 256 : 256 * grid * grid,
      config: {
        data: c.data,
        checkpoint: model.origin,
        step: model.step,
        encoder: model.encoderName,
        size,
        batch: c.batch,
        format: c.format,
        dense: c.dense,
        codec: c.format === 'parquet' ? c.codec : null,
        rowsPerFile: c['rows-per-file'],
        shard: c.shard,
      },
      tables: [{ name: table, schema }],
      writePart,
      progress: !c.quiet,
    });
    return { ...result, origin: model.origin };
  } finally {
    encoder.dispose();
  }
}

/** `densestream export` with its options parsed (`parseExportConfig`). */
export async function exportCommand(c: ExportConfig): Promise<void> {
  const selection = await selectBackend(c.backend, c.threads === undefined ? {} : { threads: c.threads });
  if (!c.quiet) for (const line of backendLines(selection, c.verbose)) process.stderr.write(`${line}\n`);
  const start = performance.now();
  const result = await runExport(c);
  process.stdout.write(
    `${JSON.stringify({ ...result, seconds: Math.round((performance.now() - start) / 100) / 10, ...backendFields(selection) })}\n`,
  );
}
