/**
 * `npm run bench -- train [--method M[,M…]] [--rounds 1] [--steps 40] [--batch 32] [--size 64] [--encoder slim|resnet18|vit]
 * [--data scenes] [--augment cpu|backend|auto|both] [--kernels on|off|direct|xnnpack|simd|relaxed-simd|both|all] [--backend auto|webgpu|wasm|…] [--dense-cells N] [--dense-queue K] [--dense-hidden N] [--pixel-cells N] [--masks M] [--saliency-size PX]
 * [--workers N|both] [--queue K] [--hue H] [--heap-growth PCT|v8|both]`: training throughput per method, each in its own process (a fresh backend).
 * One JSON line per method (and per augment path, kernels setting, pixel-worker count or heap growth with `both`, run side by side): images/s, ms per step, and the share of wall time the trainer waited for data.
 * `--rounds N` runs the whole set N times in turn, so that the machine's drift falls on every
 * method alike, then prints one line per setting with its median ms a step over the rounds and,
 * for a method beside mocov2, its ratio to mocov2's step in each round (same augment, kernels,
 * workers and heap growth) and their median: the #14 targets' figure in one command.
 * The first 5 steps (warm-up, queue filling, the data plane's start-up) are excluded from the rates and from
 * `dataWaitFraction`; `runDataWaitFraction` is the whole run's. `--heap-growth` sets V8's old-generation growth
 * as `train` does (default {@link HEAP_GROWING_PERCENT}); `v8` leaves V8's own.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runTraining } from '../pipelines/train.js';
import { parseTrainConfig } from '../pipelines/train-options.js';
import { TRAIN_METHODS } from '../pipelines/train-schema.js';
import { positiveInt } from '../pipelines/options.js';
import { pixelWorkerCount } from '../pipelines/shared-options.js';
import { benchFile, kernelsEnv, parseKernels, printJson, roundSummaries, runForJson, type BenchRun } from './report.js';
import { wasmKernelBuild, wasmKernelSpinUs, wasmKernelThreads } from '../models/kernels/wasm-kernels.js';
import { directConvEnabled } from '../models/kernels/direct-conv.js';
import { winogradEnabled } from '../models/kernels/winograd.js';
import { webGpuAdapter } from '../models/webgpu.js';
import { checkHeapGrowth, HEAP_GROWING_PERCENT, widenHeapGrowth } from '../train/heap-growth.js';

export async function trainBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      method: { type: 'string' },
      rounds: { type: 'string', default: '1' },
      steps: { type: 'string', default: '40' },
      batch: { type: 'string', default: '32' },
      size: { type: 'string', default: '64' },
      encoder: { type: 'string', default: 'slim' },
      single: { type: 'boolean', default: false },
      data: { type: 'string', default: 'scenes' },
      augment: { type: 'string', default: 'auto' },
      kernels: { type: 'string', default: 'on' },
      backend: { type: 'string', default: 'auto' },
      'dense-cells': { type: 'string' },
      'dense-queue': { type: 'string' },
      'dense-hidden': { type: 'string' },
      'pixel-cells': { type: 'string' },
      masks: { type: 'string' },
      workers: { type: 'string' },
      queue: { type: 'string' },
      hue: { type: 'string' },
      'saliency-size': { type: 'string' },
      'heap-growth': { type: 'string', default: `${HEAP_GROWING_PERCENT}` },
    },
  });
  const steps = positiveInt(values.steps, '--steps');
  const rounds = positiveInt(values.rounds, '--rounds');
  const methods = values.method === undefined ? [...TRAIN_METHODS] : values.method.split(',');
  for (const m of methods) {
    if (!(TRAIN_METHODS as readonly string[]).includes(m)) throw new Error(`--method: expected ${TRAIN_METHODS.join('|')}, got "${m}"`);
  }
  if (values.single && (methods.length > 1 || rounds > 1)) throw new Error('--single trains one method once: drop the list or --rounds');
  const common = [
    '--steps',
    `${steps}`,
    '--batch',
    values.batch,
    '--size',
    values.size,
    '--encoder',
    values.encoder,
    '--data',
    values.data,
    '--backend',
    values.backend,
  ];
  /** The given ones of these flags, passed on to train as they came. */
  const passOn = (
    keys: ReadonlyArray<'queue' | 'hue' | 'dense-cells' | 'dense-queue' | 'dense-hidden' | 'pixel-cells' | 'masks' | 'saliency-size'>,
  ) => keys.flatMap((k) => (values[k] === undefined ? [] : [`--${k}`, values[k]]));
  // The momentum queue and hue range, when not train's defaults (the PyTorch twin's task).
  common.push(...passOn(['queue', 'hue']));
  // Each method's own flags, given to its runs only (train refuses them for the other methods).
  const dense = passOn(['dense-cells', 'dense-queue', 'dense-hidden']);
  const pixel = passOn(['pixel-cells', 'dense-hidden', 'masks', 'saliency-size']);
  const methodFlags = (method: string) => (method === 'densecl' ? dense : method === 'hapicl' ? pixel : []);
  const paths = values.augment === 'both' ? ['cpu', 'backend'] : [values.augment];
  // Pixel workers: as given, both (none, then train's default count), or train's default.
  const workerCounts = values.workers === 'both' ? ['0', undefined] : [values.workers];
  const workerFlags = (w: string | undefined) => (w === undefined ? [] : ['--workers', w]);
  const kernels = parseKernels(values.kernels);
  // V8's old-generation growth: train's (a percentage), V8's own (`v8`), or both side by side.
  const growths = values['heap-growth'] === 'both' ? [`${HEAP_GROWING_PERCENT}`, 'v8'] : [values['heap-growth']];
  for (const g of growths) {
    if (g !== 'v8' && !/^\d+$/.test(g)) throw new Error(`--heap-growth: expected a percentage, v8 or both, got "${g}"`);
    if (g !== 'v8') checkHeapGrowth(Number(g)); // refused here, before any run starts
  }
  if (values.single) {
    const growth = values['heap-growth'] === 'v8' ? 'v8' : widenHeapGrowth(Number(values['heap-growth']));
    const out = mkdtempSync(join(tmpdir(), 'densestream-bench-train-'));
    const { resume: _unused, ...config } = parseTrainConfig([
      ...common,
      '--method',
      values.method ?? 'densecl',
      '--out',
      out,
      '--log-every',
      '1000',
      '--knn-every',
      '0',
      '--augment',
      values.augment,
      ...methodFlags(values.method ?? 'densecl'),
      ...workerFlags(values.workers),
    ]);
    const stamps: number[] = [];
    const waits: number[] = [];
    const result = await runTraining(config, {
      hooks: [
        {
          onStep: (e) => void waits.push(e.dataWaitMs),
          shouldStop: () => {
            stamps.push(performance.now());
            return false;
          },
        },
      ],
    });
    // Rates and data wait over the steps after the first 5 (stamps[i]: step i + 1 done), as the
    // first batch's wait holds the data plane's start-up (a dataset file read, workers started);
    // the whole run's share is printed too.
    const warm = Math.min(5, stamps.length - 1);
    const seconds = ((stamps.at(-1) ?? 0) - (stamps[warm] ?? 0)) / 1000;
    const measured = stamps.length - 1 - warm;
    const waited = waits.slice(warm + 1).reduce((a, b) => a + b, 0) / 1000;
    printJson({
      bench: 'train',
      data: config.data,
      method: config.method,
      encoder: config.encoder,
      batch: config.batch,
      size: config.size,
      augment: result.augment,
      backend: tf.getBackend(),
      adapter: webGpuAdapter() ?? null,
      kernels: wasmKernelThreads() > 0,
      kernelBuild: wasmKernelBuild() ?? null,
      winograd: wasmKernelThreads() > 0 && winogradEnabled(),
      directConv: wasmKernelThreads() > 0 && directConvEnabled(),
      poolSpinUs: wasmKernelSpinUs(),
      workers: pixelWorkerCount(config.workers),
      heapGrowingPercent: growth,
      imagesPerSec: (measured * config.batch) / seconds,
      msPerStep: (1000 * seconds) / measured,
      ...(config.method === 'densecl' || config.method === 'hapicl' ? { denseHidden: config['dense-hidden'] || 'as global' } : {}),
      ...(config.method === 'densecl'
        ? { denseCells: config['dense-cells'] || 'all', denseQueue: config['dense-queue'] || config.queue }
        : {}),
      ...(config.method === 'hapicl'
        ? { pixelCells: config['pixel-cells'] || 'all', masks: config.masks, saliencySize: config['saliency-size'] ?? null }
        : {}),
      dataWaitFraction: seconds > 0 ? waited / seconds : result.dataWaitFraction,
      runDataWaitFraction: result.dataWaitFraction,
    });
    return;
  }
  // Every combination of the side-by-side options, each run once per method and round.
  const settings = paths.flatMap((augment) =>
    kernels.flatMap((k) => workerCounts.flatMap((w) => growths.map((g) => ({ augment: augment ?? 'auto', k, w, g })))),
  );
  const runs: BenchRun[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const method of methods) {
      for (const { augment, k, w, g } of settings) {
        const line = runForJson<{ msPerStep: number }>(
          `train bench ${method}`,
          process.execPath,
          [
            benchFile('run.js'),
            'train',
            '--single',
            '--method',
            method,
            '--augment',
            augment,
            ...common,
            ...methodFlags(method),
            ...workerFlags(w),
            '--heap-growth',
            g,
          ],
          kernelsEnv(k),
        );
        const setting = { augment, kernels: k, workers: w ?? 'default', heapGrowth: g };
        runs.push({ round, method, setting, msPerStep: line.msPerStep });
      }
    }
  }
  if (rounds > 1) for (const line of roundSummaries(runs, 'mocov2')) printJson({ bench: 'train', rounds, ...line });
}
