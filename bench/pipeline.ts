/**
 * `npm run bench -- pipeline [--data dir:PATH] [--size 224] [--views 2] [--augment cpu|backend|both]
 * [--images N]`: images per second through decode → multiView (MoCo v2 views) → batch, against
 * decode alone and, for a folder, against torchvision's MoCo v2 chain (DataLoader, one worker
 * per core) on the same files in the same run (`ratio`: the CPU path's, or the only path's;
 * `backendRatio`: the backend path's, when it ran). Without --data it builds a folder of 600 photos
 * from python3-skimage's data. `--augment both` runs the CPU path and the backend path (views
 * cut per batch by tensor ops, on the compute backend) side by side; any finite source works
 * then, e.g. `--data fashion-mnist --size 28 --batch 128 --images 2560`.
 */
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { lastValueFrom, tap, type Observable } from 'rxjs';
import { readSamples } from '../datasets/source.js';
import { selectBackend } from '../models/backend.js';
import { presetViews } from '../operators/augment-presets.js';
import { batch } from '../operators/batch.js';
import { decode } from '../operators/decode.js';
import { fromSource } from '../operators/from-source.js';
import { multiView } from '../operators/multi-view.js';
import type { AugmentPath } from '../operators/augment-path.js';
import { SampleBudget } from '../operators/sample-budget.js';
import { openSource } from '../pipelines/data-source.js';
import { positiveInt } from '../pipelines/options.js';
import { photoCorpus } from './photo-corpus.js';
import { benchFile, printJson, pythonHas, runForJson, SYSTEM_PYTHON } from './report.js';

async function drain<T>(stream: Observable<T>): Promise<void> {
  await lastValueFrom(stream, { defaultValue: undefined });
}

export async function pipelineBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      data: { type: 'string' },
      size: { type: 'string', default: '224' },
      views: { type: 'string', default: '2' },
      batch: { type: 'string', default: '32' },
      concurrency: { type: 'string', default: '8' },
      augment: { type: 'string', default: 'cpu' },
      images: { type: 'string' },
    },
  });
  if (!['cpu', 'backend', 'both'].includes(values.augment))
    throw new Error(`--augment: expected cpu|backend|both, got "${values.augment}"`);
  const paths = (values.augment === 'both' ? ['cpu', 'backend'] : [values.augment]) as AugmentPath[];
  const limit = values.images === undefined ? undefined : positiveInt(values.images, '--images');
  const size = positiveInt(values.size, '--size');
  const viewCount = positiveInt(values.views, '--views');
  const batchSize = positiveInt(values.batch, '--batch');
  const concurrency = positiveInt(values.concurrency, '--concurrency');
  const data = values.data ?? `dir:${await photoCorpus(600)}`;
  if (!data.startsWith('dir:') && values.augment === 'cpu')
    throw new Error('--data: the pipeline bench compares with torchvision on a folder; expected dir:PATH (or --augment both)');
  // The CPU path's batches only copy into tensors; the backend path computes on the run's backend.
  await selectBackend(paths.includes('backend') ? 'auto' : 'cpu');
  const source = await openSource(data);
  const views = Array.from({ length: viewCount }, () => presetViews('mocov2', size)[0]!);
  const minSide = Math.ceil(size / Math.sqrt(0.2)); // the smallest crop still has `size` pixels

  const run = async (label: string, full: boolean, augment: AugmentPath = 'cpu') => {
    const budget = new SampleBudget(Math.max(4 * batchSize, 2 * concurrency));
    let images = 0;
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const decoded = fromSource(readSamples(source, { seed: 0, ...(limit ? { limit } : {}) }), budget).pipe(
      decode({ minSide, concurrency, onSkip: () => budget.release() }),
    );
    if (full) {
      await drain(
        decoded.pipe(
          multiView({ views, seed: 0, concurrency, augment }),
          batch(batchSize),
          tap((b) => {
            images += b.ids.length;
            b.dispose();
            budget.release(b.ids.length);
          }),
        ),
      );
    } else {
      await drain(
        decoded.pipe(
          tap(() => {
            images++;
            budget.release();
          }),
        ),
      );
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    // Cores busy on average: main thread plus sharp's pool (≈ the machine's cores when CPU-bound).
    const coresBusy = (cpu.user + cpu.system) / 1e6 / seconds;
    const cpuMsPerImage = (cpu.user + cpu.system) / 1000 / images;
    printJson({
      bench: `pipeline-${label}`,
      augment,
      images,
      seconds,
      imagesPerSec: images / seconds,
      coresBusy,
      cpuMsPerImage,
      peakInFlight: budget.peak,
    });
    return { imagesPerSec: images / seconds, cpuMsPerImage };
  };

  await run('warmup', false);
  const decodeOnly = await run('decode-only', false);
  const full: Partial<Record<AugmentPath, { imagesPerSec: number; cpuMsPerImage: number }>> = {};
  for (const augment of paths) {
    if (augment === 'backend') await run('warmup-backend', true, 'backend'); // first calls of each kernel
    full[augment] = await run(`full-${augment}`, true, augment);
  }
  const torchvision = data.startsWith('dir:') ? torchvisionImagesPerSec(data.slice(4), size, batchSize) : null;
  const main = full.cpu ?? full.backend;
  printJson({
    bench: 'pipeline',
    data,
    images: limit ?? ('size' in source ? source.size : null),
    size,
    views: viewCount,
    imagesPerSec: main?.imagesPerSec,
    ...(full.backend ? { backendImagesPerSec: full.backend.imagesPerSec, backendCpuMsPerImage: full.backend.cpuMsPerImage } : {}),
    ...(full.cpu ? { cpuCpuMsPerImage: full.cpu.cpuMsPerImage } : {}),
    decodeOnlyImagesPerSec: decodeOnly.imagesPerSec,
    torchvisionImagesPerSec: torchvision,
    ratio: torchvision === null || !main ? null : main.imagesPerSec / torchvision,
    ...(full.backend && torchvision !== null ? { backendRatio: full.backend.imagesPerSec / torchvision } : {}),
    uvThreadpool: Number(process.env['UV_THREADPOOL_SIZE'] ?? 4),
  });
}

function torchvisionImagesPerSec(root: string, size: number, batchSize: number): number | null {
  if (!pythonHas('torchvision')) return null;
  return runForJson<{ torchvisionImagesPerSec: number }>('torchvision pipeline', SYSTEM_PYTHON, [
    benchFile('torchvision_pipeline.py', true),
    root,
    '--size',
    `${size}`,
    '--batch',
    `${batchSize}`,
    '--workers',
    `${availableParallelism()}`,
  ]).torchvisionImagesPerSec;
}
