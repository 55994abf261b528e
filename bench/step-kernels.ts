/**
 * `npm run bench -- step-kernels [--method M[,M…]] [--rounds 1] [--steps 20] [--warmup 5] [--size 32] [--batch 64]
 * [--top 20] [--train="FLAGS"]`: where a training step's time goes, kernel by kernel, without the
 * data plane. Each method is built as `train` builds it, refusals included (`--train="--queue
 * 1024"` adds train's own flags; those of the data plane change nothing here) and steps on a
 * fixed synthetic batch (random views; for hapicl, random masks) with the trainer's SGD:
 * momentum 0.9, then the decoupled weight decay on weights.
 *
 * A wall-clock timer around every top-level kernel (the engine's `runKernelFunc`) gives each
 * kernel and input shape its calls and milliseconds a step; `tf.profile` was not used, as its
 * profiling mode timed some kernels at 2–3× their cost in a plain step (docs/performance.md).
 * One JSON line per kernel and shape, the `--top` slowest per method, then per method its wall
 * and kernel milliseconds a step and kernel calls, and with `--rounds N` the methods take turns N
 * times and the last line gives each one's ratio to mocov2's step within each round.
 *
 * `--builds simd,relaxed-simd` alternates the builds of densestream's kernels within each round
 * (one process, the same batch), prints each line per build, and a last line with each method's
 * relaxed-SIMD step against its SIMD step, round by round. The relaxed build needs a runtime that
 * compiles it (Node 22; Node 20 with --experimental-wasm-relaxed-simd).
 */
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import { selectBackend } from '../models/backend.js';
import { installWasmKernels, wasmKernelBuild, type WasmKernelBuild } from '../models/kernels/wasm-kernels.js';
import { wasmThreadCount } from '../models/wasm-threads.js';
import type { Batch } from '../core/batch.js';
import type { Method } from '../methods/method.js';
import { disposeParts, type LossParts } from '../methods/method.js';
import { positiveInt } from '../pipelines/options.js';
import { createMethod } from '../pipelines/train.js';
import { parseTrainConfig } from '../pipelines/train-options.js';
import { TRAIN_METHODS, type TrainConfig } from '../pipelines/train-schema.js';
import { disposeOptimizer, weightDecayStep } from '../train/trainer.js';
import { FusedMomentumOptimizer } from '../train/momentum-optimizer.js';
import { median, printJson, requireRelaxedSimd } from './report.js';

type KernelTimes = Map<string, { calls: number; ms: number }>;

/** What the engine's `runKernelFunc` is given, as far as the timer reads it. */
interface KernelRun {
  kernelName?: string;
  inputs?: Record<string, tf.TensorInfo>;
}

/** Times every top-level kernel while `on()` says so; returns the table it fills and a way to stop. */
function timeKernels(on: () => boolean): { times: KernelTimes; stop(): void } {
  const engine = tf.engine() as unknown as { runKernelFunc(config: KernelRun): unknown; state: { kernelDepth: number } };
  const original = engine.runKernelFunc.bind(engine);
  const times: KernelTimes = new Map();
  engine.runKernelFunc = (config: KernelRun) => {
    if (!on() || engine.state.kernelDepth !== 0) return original(config);
    const t0 = performance.now();
    const out = original(config);
    const ms = performance.now() - t0;
    const shapes = Object.values(config.inputs ?? {}).map((t) => `[${t.shape.join(',')}]`);
    const key = `${config.kernelName ?? 'customGrad'} ${shapes.join('·')}`;
    const entry = times.get(key) ?? { calls: 0, ms: 0 };
    entry.calls += 1;
    entry.ms += ms;
    times.set(key, entry);
    return out;
  };
  return { times, stop: () => void (engine.runKernelFunc = original) };
}

/** A fixed batch of `b` random views of `size` px, with random 0/1 masks (which only hapicl reads). */
function syntheticBatch(b: number, size: number): Batch {
  const views = [0, 1].map((k) => tf.randomNormal([b, size, size, 3], 0, 1, 'float32', 10 + k) as tf.Tensor4D);
  const masks = [0, 1].map(
    (k) => tf.tidy(() => tf.cast(tf.greater(tf.randomUniform([b, size, size], 0, 1, 'float32', 20 + k), 0.5), 'float32')) as tf.Tensor3D,
  );
  return {
    ids: Array.from({ length: b }, (_, i) => `synthetic-${i}`),
    views,
    masks,
    boxes: [],
    flipped: [],
    dispose: () => tf.dispose([...views, ...masks]),
  };
}

interface StepStats {
  method: string;
  round: number;
  /** The kernels' build it ran on; undefined off wasm or with the kernels off. */
  build: WasmKernelBuild | undefined;
  wallMs: number;
  kernelMs: number;
  calls: number;
  times: KernelTimes;
}

/** `steps` timed steps of `method` after `warmup` untimed ones, SGD as the trainer's. */
async function timeSteps(c: TrainConfig, method: Method, batch: Batch, warmup: number, steps: number, round: number): Promise<StepStats> {
  const optimizer = new FusedMomentumOptimizer(c.lr, 0.9);
  const decay = weightDecayStep(method, c['weight-decay']);
  let timing = false;
  const timer = timeKernels(() => timing);
  let wallMs = 0;
  try {
    for (let i = 0; i < warmup + steps; i++) {
      timing = i >= warmup;
      const t0 = performance.now();
      const parts: LossParts = {};
      method.atStep?.(i);
      const loss = optimizer.minimize(() => method.loss(batch, parts), true, method.trainable);
      decay(c.lr);
      method.afterStep?.();
      await loss?.data(); // the trainer reads the loss every step
      loss?.dispose();
      disposeParts(parts);
      if (timing) wallMs += performance.now() - t0;
    }
  } finally {
    timer.stop();
    disposeOptimizer(optimizer);
  }
  let kernelMs = 0;
  let calls = 0;
  for (const t of timer.times.values()) [kernelMs, calls] = [kernelMs + t.ms, calls + t.calls];
  const build = wasmKernelBuild();
  return { method: c.method, round, build, wallMs: wallMs / steps, kernelMs: kernelMs / steps, calls: calls / steps, times: timer.times };
}

const BUILDS: readonly WasmKernelBuild[] = ['simd', 'relaxed-simd'];

/** `--builds`: the kernel builds to alternate, checked before anything is built. */
function parseBuilds(value: string): WasmKernelBuild[] {
  if (value === '') return [];
  const builds = value.split(',');
  for (const b of builds)
    if (!(BUILDS as readonly string[]).includes(b)) throw new Error(`--builds: expected some of ${BUILDS.join(',')}, got "${b}"`);
  if (new Set(builds).size !== builds.length) throw new Error(`--builds: "${value}" names a build twice`);
  if (builds.includes('relaxed-simd')) requireRelaxedSimd('--builds relaxed-simd');
  return builds as WasmKernelBuild[];
}

export async function stepKernelsBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      method: { type: 'string', default: 'mocov2,densecl,hapicl' },
      rounds: { type: 'string', default: '1' },
      steps: { type: 'string', default: '20' },
      warmup: { type: 'string', default: '5' },
      size: { type: 'string', default: '32' },
      batch: { type: 'string', default: '64' },
      top: { type: 'string', default: '20' },
      train: { type: 'string', default: '' },
      builds: { type: 'string', default: '' },
    },
  });
  const builds = parseBuilds(values.builds);
  const [rounds, steps, warmup, size, batchSize, top] = (['rounds', 'steps', 'warmup', 'size', 'batch', 'top'] as const).map((k) =>
    positiveInt(values[k], `--${k}`),
  ) as [number, number, number, number, number, number];
  const methods = values.method.split(',');
  for (const m of methods) {
    if (!(TRAIN_METHODS as readonly string[]).includes(m))
      throw new Error(`--method: expected some of ${TRAIN_METHODS.join(',')}, got "${m}"`);
    // softrank's step reads its positives' clusters, which the data plane builds
    if (m === 'softrank')
      throw new Error('--method softrank: its step needs the positives the data plane finds; time it with `bench train`');
  }
  const extra = values.train.split(/\s+/).filter((a) => a !== '');
  // train's own parsing and defaults; --out names a folder that is never written
  const configs = methods.map((m) =>
    parseTrainConfig(['--method', m, '--size', String(size), '--batch', String(batchSize), ...extra, '--out', '/nonexistent']),
  );
  if (configs.some((c) => c.optimizer !== 'sgd')) throw new Error("--optimizer: this bench times the trainer's default SGD step only");
  if (configs.some((c) => c.method === 'densecl' && c.match === 'geometric'))
    throw new Error("--match geometric: its matches come from the data plane's crop boxes; time it with `bench train`");
  const first = configs[0]!;
  const backend = await selectBackend(first.backend, first.threads === undefined ? {} : { threads: first.threads });
  if (builds.length > 0 && backend.kernelBuild === undefined)
    throw new Error(`--builds: densestream's kernels are not running (backend ${backend.backend}; DENSESTREAM_WASM_KERNELS=0?)`);
  const batch = syntheticBatch(batchSize, size);
  const runs: StepStats[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      for (const build of builds.length > 0 ? builds : [undefined]) {
        if (build !== undefined) await installWasmKernels(wasmThreadCount(), build);
        for (const c of configs) {
          const { method } = createMethod(c, () => undefined);
          try {
            runs.push(await timeSteps(c, method, batch, warmup, steps, round));
          } finally {
            method.dispose();
          }
        }
      }
    }
  } finally {
    batch.dispose();
  }
  // the builds the lines are printed for: those alternated, else the one selectBackend took
  const shown = builds.length > 0 ? builds : [backend.kernelBuild];
  for (const build of shown)
    for (const c of configs)
      printMethod(
        runs.filter((r) => r.method === c.method && r.build === build),
        c.method,
        build,
        steps,
        top,
        backend.backend,
      );
  for (const build of shown) {
    const mine = runs.filter((r) => r.build === build);
    const base = mine.filter((r) => r.method === 'mocov2');
    if (base.length === 0) continue;
    const ratios = Object.fromEntries(
      methods
        .filter((m) => m !== 'mocov2')
        .map((m) => {
          const perRound = mine.filter((r) => r.method === m).map((r) => r.wallMs / (base[r.round]?.wallMs ?? NaN));
          return [m, { perRound, median: median(perRound) }];
        }),
    );
    printJson({
      bench: 'step-kernels',
      summary: 'wall ms a step against mocov2, within each round',
      kernelBuild: build ?? null,
      rounds,
      ratios,
    });
  }
  if (builds.length === 2) {
    const ratios = Object.fromEntries(
      methods.map((m) => {
        const of = (b: WasmKernelBuild) => runs.filter((r) => r.method === m && r.build === b);
        const simd = of('simd');
        const perRound = of('relaxed-simd').map((r) => r.wallMs / (simd[r.round]?.wallMs ?? NaN));
        return [m, { perRound, median: median(perRound) }];
      }),
    );
    printJson({ bench: 'step-kernels', summary: 'wall ms a step, relaxed-simd against simd, within each round', rounds, ratios });
  }
}

/** A method's lines on one build: its `top` slowest kernels by shape, then its totals. */
function printMethod(
  mine: StepStats[],
  method: string,
  build: WasmKernelBuild | undefined,
  steps: number,
  top: number,
  backend: string,
): void {
  const merged: KernelTimes = new Map();
  for (const r of mine)
    for (const [k, t] of r.times) {
      const m = merged.get(k) ?? { calls: 0, ms: 0 };
      merged.set(k, { calls: m.calls + t.calls, ms: m.ms + t.ms });
    }
  const per = steps * mine.length;
  const slowest = [...merged].sort((a, b) => b[1].ms - a[1].ms).slice(0, top);
  for (const [kernel, t] of slowest)
    printJson({
      bench: 'step-kernels',
      method,
      kernelBuild: build ?? null,
      kernel,
      msPerStep: t.ms / per,
      callsPerStep: t.calls / per,
      msPerCall: t.ms / t.calls,
    });
  printJson({
    bench: 'step-kernels',
    method,
    backend,
    kernelBuild: build ?? null,
    wallMsPerStep: median(mine.map((r) => r.wallMs)),
    kernelMsPerStep: median(mine.map((r) => r.kernelMs)),
    kernelCallsPerStep: median(mine.map((r) => r.calls)),
  });
}
