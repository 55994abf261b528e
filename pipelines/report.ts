/**
 * `densestream report RUN [--out FILE]`: one self-contained HTML page about a `train` run —
 * its curves (loss and parts, learning rate, images/s, kNN accuracy), the training views of its
 * first samples with boxes, attention and masks (the `preview` contact sheet, cut with the run's
 * own configuration), a PCA of its encoder's dense features as RGB, the skipped inputs and the
 * configuration. Reads the run; writes only the page (atomically).
 *
 * metrics.jsonl → charts · checkpoint config → sampleViews → preview sheet
 * checkpoint encoder → whole images → dense grid [N, S, S, C] → top-3 PCA → RGB
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { lastValueFrom, take, toArray, type OperatorFunction } from 'rxjs';
import { mapInOrder, thenOrNow } from '../operators/map-in-order.js';
import sharp from 'sharp';
import { readSamples, type Source } from '../datasets/source.js';
import { backendFields, backendLines, selectBackend } from '../models/backend.js';
import { saliencyAttention, type AttentionSource } from '../operators/attention-map.js';
import { centreSquareView } from '../operators/augment-presets.js';
import { normalizeRgb } from '../operators/batch.js';
import { decode } from '../operators/decode.js';
import { pcaRgb } from '../operators/feature-pca.js';
import { fromSource } from '../operators/from-source.js';
import { multiView } from '../operators/multi-view.js';
import { SampleBudget } from '../operators/sample-budget.js';
import { cutPixels, type Pixels, type Sample, type SkipRecord } from '../core/index.js';
import { writeFileAtomic } from '../core/atomic-file.js';
import { writePreviewSheet } from '../sinks/preview-sheet.js';
import { readEvaluations, type SavedEvaluations } from './eval-file.js';
import { formatNumber, reportHtml, type LineChart, type ReportContent } from '../sinks/report-html.js';
import { readWeightsMeta } from '../models/weights-manifest.js';
import type { MetricsRecord } from '../core/trainer-hook.js';
import type { CheckpointMeta } from '../train/trainer.js';
import { openAttentionSource } from './attention-source.js';
import { loadCheckpointEncoder } from './checkpoint-encoder.js';
import { openSource } from './data-source.js';
import { openEncoderAttention, type EncoderMaps } from './encoder-attention.js';
import type { ReportConfig } from './report-options.js';
import { prepareOutFolder } from './out-folder.js';
import { sampleViews, type SampleViewOptions, type ViewMasks } from './sample-views.js';
import type { TrainConfig } from './train-schema.js';
import { checkpointDir } from './run-folder.js';

/** Parts of `metrics.jsonl` that are not loss terms: each gets its own chart or none. */
const NOT_LOSS = new Set(['knn', 'selfPositives', 'reclusters', 'bank', 'negatives']); // monitors and counts, not loss terms

/** The JSON lines of `path` (none when it is absent); unparseable lines are counted, not fatal. */
function readJsonLines<T>(path: string): { rows: T[]; bad: number } {
  if (!existsSync(path)) return { rows: [], bad: 0 };
  const rows: T[] = [];
  let bad = 0;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    try {
      rows.push(JSON.parse(line) as T);
    } catch {
      bad++;
    }
  }
  return { rows, bad };
}

/** A metric of every record that has it, as chart points against the step. */
function seriesOf(records: MetricsRecord[], name: string, value: (r: MetricsRecord) => number | undefined) {
  const points: Array<readonly [number, number]> = [];
  for (const r of records) {
    const v = value(r);
    if (typeof v === 'number' && Number.isFinite(v)) points.push([r.step, v]);
  }
  return { name, points };
}

/** The charts of `metrics.jsonl` (series named by their metric key), and sentences for those with no data. */
export function metricsCharts(records: MetricsRecord[]): { charts: LineChart[]; notes: string[] } {
  const partKeys = [...new Set(records.flatMap((r) => Object.keys(r.parts ?? {})))].filter((k) => !NOT_LOSS.has(k));
  const part = (k: string) => (r: MetricsRecord) => r.parts?.[k];
  const candidates: LineChart[] = [
    {
      id: 'loss',
      title: 'Loss (total and parts)',
      xLabel: 'step',
      series: [seriesOf(records, 'loss', (r) => r.loss), ...partKeys.map((k) => seriesOf(records, k, part(k)))],
    },
    { id: 'lr', title: 'Learning rate', xLabel: 'step', series: [seriesOf(records, 'lr', (r) => r.lr)] },
    {
      id: 'imagesPerSec',
      title: 'Images per second (mean since start)',
      xLabel: 'step',
      series: [seriesOf(records, 'imagesPerSec', (r) => r.imagesPerSec)],
    },
    { id: 'knn', title: 'kNN accuracy (k = 20, cosine)', xLabel: 'step', series: [seriesOf(records, 'knn', part('knn'))] },
    {
      id: 'selfPositives',
      title: 'Self-positive fraction (softrank)',
      xLabel: 'step',
      series: [seriesOf(records, 'selfPositives', part('selfPositives'))],
    },
  ];
  const charts = candidates.map((c) => ({ ...c, series: c.series.filter((s) => s.points.length > 0) })).filter((c) => c.series.length > 0);
  const notes: string[] = [];
  if (records.length === 0) notes.push('No metrics were logged (metrics.jsonl is empty or missing).');
  else if (!charts.some((c) => c.id === 'knn'))
    notes.push('No kNN accuracy was logged in this run (train --knn-every 0, or the run was shorter than one interval).');
  return { charts, notes };
}

/** The attention (and encoder masks) the run cut its views with; the run's own final encoder for `--attention encoder`. */
async function runAttention(
  config: Partial<TrainConfig>,
  run: string,
  notes: string[],
): Promise<{ source: AttentionSource; maps?: EncoderMaps }> {
  const value = config.attention;
  try {
    if (value === 'encoder' || value?.startsWith('encoder:')) {
      const maps = openEncoderAttention(value === 'encoder' ? run : value.slice('encoder:'.length), '--attention', config.seed ?? 0);
      if (value === 'encoder') notes.push('Attention: the run trained with its live encoder; shown here with its final weights.');
      return { source: maps.source, maps };
    }
    if (value !== undefined) return { source: await openAttentionSource(value) };
  } catch (err) {
    notes.push(`Attention ${value}: ${err instanceof Error ? err.message : String(err)}; shown with saliency instead.`);
  }
  return { source: saliencyAttention() };
}

/** The first `count` samples of the run's epoch 0 with the views training cut from them, each with attention and a mask. */
async function trainingViews(source: Source, config: Partial<TrainConfig>, run: string, count: number, notes: string[]): Promise<Sample[]> {
  const { source: attention, maps } = await runAttention(config, run, notes);
  try {
    // Masks feed the loss only with hapicl; other runs show saliency masks for reference.
    const hapicl = config.method === 'hapicl';
    let masks: ViewMasks = hapicl ? (config.masks ?? 'saliency') : 'saliency';
    if (masks === 'encoder' && !maps) masks = 'saliency';
    if (!hapicl) notes.push(`Masks: saliency, for reference (only hapicl trains with masks; this run is ${config.method ?? 'densecl'}).`);
    const options: SampleViewOptions = {
      size: config.size ?? 64,
      preset: config.preset ?? 'mocov2',
      attentionView: config['attention-view'] ?? false,
      masks,
      ...(hapicl && config['min-foreground'] ? { minForeground: config['min-foreground'] } : {}),
      ...(config.hue === undefined ? {} : { hue: config.hue }),
      seed: config.seed ?? 0,
      attention,
      ...(maps ? { featureMask: maps.mask } : {}),
    };
    const budget = new SampleBudget(count + 8); // never released: take() stops the source
    const noted: SkipRecord[] = [];
    const withAttention: OperatorFunction<Sample, Sample> = mapInOrder((s) =>
      s.attention ? s : thenOrNow(attention(s.pixels as Pixels, s), (a) => ({ ...s, attention: a })),
    );
    const samples = await lastValueFrom(
      fromSource(readSamples(source, { seed: config.seed ?? 0, epoch: 0 }), budget).pipe(
        sampleViews(
          options,
          [0],
          (r) => {
            noted.push(r);
            budget.release();
          },
          (r) => noted.push(r),
        ),
        withAttention,
        take(count),
        toArray(),
      ),
    );
    if (noted.length > 0) notes.push(`${noted.length} sample(s) skipped or given fallbacks while cutting these views.`);
    return samples;
  } finally {
    maps?.dispose();
  }
}

/** The preview contact sheet of `samples` as PNG bytes (`writePreviewSheet` writes a file: through a temporary folder). */
async function previewSheetPng(samples: Sample[]): Promise<Uint8Array> {
  const dir = mkdtempSync(join(tmpdir(), 'densestream-report-'));
  try {
    const path = join(dir, 'views.png');
    await writePreviewSheet(samples, path);
    // Palette PNG: 10× smaller (1.9 MB → 0.19 MB for six rows), no visible loss on these tiles.
    return await sharp(path).removeAlpha().png({ palette: true, effort: 8 }).toBuffer();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The first `count` readable images of the source (index order) as the encoder sees them whole, and the
 * top-3 PCA of all their dense cells together as RGB, upsampled (nearest) to the image size.
 */
async function densePca(source: Source, checkpoint: string, count: number, seed: number): Promise<ReportContent['pca']['rows']> {
  const loaded = loadCheckpointEncoder(checkpoint);
  const { encoder } = loaded;
  try {
    const size = loaded.trainedSize;
    const budget = new SampleBudget(count + 8);
    const samples = await lastValueFrom(
      fromSource(readSamples(source, { shuffle: false }), budget).pipe(
        decode({ minSide: size, onSkip: () => budget.release() }),
        take(count), // the first `count` readable ones
        multiView({ views: [centreSquareView(size)], seed }),
        toArray(),
      ),
    );
    if (samples.length === 0) return [];
    const views = samples.map((s) => cutPixels(s, 0));
    const x = new Float32Array(views.length * size * size * 3);
    views.forEach((p, b) => normalizeRgb(p.data, x, b * size * size * 3));
    const dense = tf.tidy(() => encoder.apply(tf.tensor4d(x, [views.length, size, size, 3]), { training: false }).dense);
    const [, grid, gridW, channels] = dense.shape as [number, number, number, number];
    let features: Float32Array;
    try {
      features = (await dense.data()) as Float32Array; // asynchronous: a GPU backend has no synchronous read under Node
    } finally {
      dense.dispose();
    }
    const rgb = pcaRgb(features, channels); // one colour scale over all images, so colours compare across them
    const cells = grid * gridW * 3;
    return Promise.all(
      samples.map(async (s, b) => ({
        id: s.id,
        image: await sharp((views[b] as Pixels).data, { raw: { width: size, height: size, channels: 3 } })
          .png()
          .toBuffer(),
        pca: await sharp(rgb.subarray(b * cells, (b + 1) * cells), { raw: { width: gridW, height: grid, channels: 3 } })
          .resize(size, size, { kernel: 'nearest', fit: 'fill' })
          .png()
          .toBuffer(),
      })),
    );
  } finally {
    encoder.dispose();
  }
}

const fixed = (v: number | undefined, digits: number) => (v === undefined ? '—' : v.toFixed(digits));

/** Runs a report; the caller has selected the backend. */
export async function runReport(c: ReportConfig): Promise<{ out: string; bytes: number; charts: number; images: number; skipped: number }> {
  const checkpoint = checkpointDir(c.run, 'RUN');
  const meta = readWeightsMeta(checkpoint) as CheckpointMeta;
  const config = (meta.config ?? {}) as Partial<TrainConfig>;
  const metrics = readJsonLines<MetricsRecord>(join(c.run, 'metrics.jsonl'));
  const skipped = readJsonLines<SkipRecord>(join(c.run, 'skipped.jsonl'));
  const { charts, notes: chartNotes } = metricsCharts(metrics.rows);
  if (metrics.bad > 0) chartNotes.push(`${metrics.bad} line(s) of metrics.jsonl could not be read and are left out.`);

  const views: ReportContent['views'] = {
    sheets: [],
    caption: `The first ${c.images} samples of epoch 0 in the run's seeded order, as training saw them: each image with its views' boxes (dashed: flipped), its attention, its foreground mask, then each view.`,
  };
  const pca: ReportContent['pca'] = {
    rows: [],
    caption: `The first ${c.images} images of the data whole at ${config.size ?? 64} px, and beside each the projection of the trained encoder's dense features on their top 3 principal components (over all ${c.images} images together) as RGB.`,
  };
  const viewNotes: string[] = [];
  let source: Source | undefined;
  try {
    source = await openSource(config.data ?? 'scenes');
  } catch (err) {
    const why = `the run's data ${config.data} cannot be opened here (${err instanceof Error ? err.message : String(err)})`;
    views.note = `Not shown: ${why}.`;
    pca.note = views.note;
  }
  if (source && 'precomputed' in source) {
    views.note = 'Not shown: the run trained on precomputed views (parquet:DIR); see densestream preview for its source.';
    pca.note = views.note;
  } else if (source) {
    const samples = await trainingViews(source, config, c.run, c.images, viewNotes);
    if (samples.length > 0) views.sheets.push(await previewSheetPng(samples));
    if (viewNotes.length > 0) views.note = viewNotes.join(' ');
    pca.rows = await densePca(source, checkpoint, c.images, config.seed ?? 0);
  }

  const last = metrics.rows.at(-1);
  const knn = metrics.rows.map((r) => r.parts?.['knn']).filter((v): v is number => typeof v === 'number');
  const content: ReportContent = {
    title: `densestream run ${c.run}`,
    subtitle: [`checkpoint at step ${meta.step} of ${config.steps ?? '?'}: ${checkpoint}`, `report made ${new Date().toISOString()}`],
    summary: [
      ['method', `${config.method ?? '?'} on ${config.encoder ?? 'slim'} (${config.optimizer ?? 'sgd'}, lr ${config.lr ?? '?'})`],
      ['data', `${config.data ?? '?'}, batch ${config.batch ?? '?'}, ${config.size ?? '?'} px, preset ${config.preset ?? '?'}`],
      ['steps', `${meta.step}${config.steps === undefined ? '' : ` of ${config.steps}`}`],
      ['final loss', last ? formatNumber(last.loss) : '—'],
      ['images/s', fixed(last?.imagesPerSec, 1)],
      ['data wait', last ? `${(100 * last.dataWaitFraction).toFixed(0)}%` : '—'],
      ['training time', last ? `${last.seconds.toFixed(0)} s` : '—'],
      ['kNN first / last', knn.length > 0 ? `${fixed(knn[0], 3)} / ${fixed(knn.at(-1), 3)}` : 'not logged'],
      ['skipped inputs', String(skipped.rows.length)],
    ],
    charts,
    chartNotes,
    views,
    pca,
    skipped: skipped.rows.map((s) => ({ id: String(s.id), stage: String(s.stage), reason: String(s.reason) })),
    config: config as Record<string, unknown>,
  };
  const evaluation = evaluationRows(c.run, chartNotes);
  if (evaluation) content.evaluation = evaluation;
  const html = reportHtml(content);
  prepareOutFolder(dirname(c.out));
  writeFileAtomic(c.out, html);
  return { out: c.out, bytes: Buffer.byteLength(html), charts: charts.length, images: pca.rows.length, skipped: skipped.rows.length };
}

/** The scores of `RUN/eval.json` (written by `densestream eval`): a row per data set and score, with the step it scored. */
function evaluationRows(run: string, notes: string[]): Array<readonly [string, string]> | undefined {
  let saved: SavedEvaluations;
  try {
    saved = readEvaluations(run);
  } catch (err) {
    notes.push(`Evaluation not shown: ${err instanceof Error ? err.message : String(err)}.`);
    return undefined;
  }
  const scores: Array<[string, string]> = [
    ['knn20', 'kNN top-1 (k = 20)'],
    ['knn200', 'kNN top-1 (k = 200)'],
    ['linear', 'linear probe top-1'],
    ['denseMIoU', 'dense probe mIoU'],
    ['densePixelAccuracy', 'dense probe pixel accuracy'],
    ['maskIoU', 'foreground mask IoU'],
  ];
  const rows: Array<readonly [string, string]> = [];
  for (const [data, protocols] of Object.entries(saved)) {
    for (const r of Object.values(protocols)) {
      for (const [key, label] of scores) {
        const v = r?.[key];
        if (typeof v === 'number') rows.push([`${data}: ${label}`, `${v.toFixed(3)} (step ${String(r?.['step'] ?? '?')})`]);
      }
    }
  }
  return rows.length > 0 ? rows : undefined;
}

/** `densestream report` with its options parsed (`parseReportConfig`). */
export async function reportCommand(c: ReportConfig): Promise<void> {
  prepareOutFolder(dirname(c.out));
  const selection = await selectBackend(c.backend, c.threads === undefined ? {} : { threads: c.threads });
  for (const line of backendLines(selection, c.verbose)) process.stderr.write(`${line}\n`);
  const start = performance.now();
  const result = await runReport(c);
  process.stdout.write(
    `${JSON.stringify({ ...result, seconds: Math.round((performance.now() - start) / 100) / 10, ...backendFields(selection) })}\n`,
  );
}
