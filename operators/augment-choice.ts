/**
 * `--augment auto`: which path cuts a run's views — per image on the CPU (sharp) or per batch on
 * the compute backend — decided by measuring both on the run's own first images, not guessed.
 * The cost compared is the CPU time each path takes per image (sharp's threads and the wasm
 * backend's workers alike, `process.cpuUsage`): on a CPU-only machine that is what the data
 * plane takes from the training step. On a GPU backend the wall time is compared instead.
 */
import * as tf from '@tensorflow/tfjs';
import { from, lastValueFrom, toArray } from 'rxjs';
import { augmentBatch } from './augment-views.js';
import type { ViewConfig } from './augment-presets.js';
import type { AugmentChoice, AugmentPath } from './augment-path.js';
import { multiView } from './multi-view.js';
import type { Sample } from '../core/index.js';

/** tfjs backends that compute on a GPU: there the wall time is what a path costs. */
const GPU_BACKENDS = ['webgpu', 'webgl', 'tensorflow'];

export interface AugmentDecision {
  path: AugmentPath;
  /** One line for the log: what was chosen and why. */
  reason: string;
  /** Cost per image of each path, when measured (ms of CPU, or of wall time on a GPU). */
  cpuMs?: number;
  backendMs?: number;
}

export interface AugmentProbe {
  /** Decoded images of the run (a few dozen suffice), of one size or several as the source has them. */
  samples: readonly Sample[];
  views: ViewConfig[];
  seed?: number;
}

/** Timed rounds per path in `auto`'s measurement, after one warm-up run each. */
export const PROBE_ROUNDS = 3;

/**
 * Wall milliseconds a timed round lasts at least: `work` is repeated until then. Fashion-MNIST's
 * 32 probe images cost about 3 ms a path, and rounds that short picked the dearer path in 2 of 6
 * first calls (one process each, 2026-12-05); a photo corpus's round is one pass already.
 */
export const MIN_ROUND_MS = 40;

/** Milliseconds of cost of one `work`: CPU time (user + system, all threads), or wall time; the mean over a round's repeats. */
async function cost(work: () => Promise<void>, wall: boolean): Promise<number> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let repeats = 0;
  do {
    await work();
    repeats++;
  } while (performance.now() - t0 < MIN_ROUND_MS);
  if (wall) return (performance.now() - t0) / repeats;
  const used = process.cpuUsage(cpu0);
  return (used.user + used.system) / 1000 / repeats;
}

/**
 * The path for `choice`: `cpu` and `backend` as asked; `auto` measures both on `probe.samples`
 * (each run once to warm up, then timed in {@link PROBE_ROUNDS} alternating rounds, keeping each
 * path's fastest) and takes the cheaper. Images of several sizes are measured as they come: the
 * backend then cuts each batch size by size (`augmentBatch`).
 */
export async function chooseAugmentPath(choice: AugmentChoice, probe: AugmentProbe): Promise<AugmentDecision> {
  if (choice === 'cpu' || choice === 'backend') return { path: choice, reason: `augment: ${choice} (asked for)` };
  const samples = [...probe.samples];
  if (samples.length === 0) return { path: 'cpu', reason: 'augment: cpu (auto: no image to measure on)' };
  const seed = probe.seed ?? 0;
  const onCpu = async () => {
    await lastValueFrom(from(samples).pipe(multiView({ views: probe.views, seed }), toArray()));
  };
  const onBackend = async () => {
    const planned = await lastValueFrom(from(samples).pipe(multiView({ views: probe.views, seed, augment: 'backend' }), toArray()));
    const views = augmentBatch(planned);
    try {
      for (const view of views) await view.data(); // waits for a GPU; the wasm backend is done already
    } finally {
      tf.dispose(views);
    }
  };
  const wall = GPU_BACKENDS.includes(tf.getBackend());
  await onCpu();
  await onBackend();
  // One timing each flipped between runs on a busy machine (20.7 against 19.1 ms of CPU, where
  // the next run measured 8.2 against 19.3): the fastest of alternating rounds is steadier.
  let cpuMs = Infinity;
  let backendMs = Infinity;
  for (let round = 0; round < PROBE_ROUNDS; round++) {
    cpuMs = Math.min(cpuMs, (await cost(onCpu, wall)) / samples.length);
    backendMs = Math.min(backendMs, (await cost(onBackend, wall)) / samples.length);
  }
  const path: AugmentPath = backendMs < cpuMs ? 'backend' : 'cpu';
  const unit = wall ? 'ms' : 'ms of CPU';
  return {
    path,
    cpuMs,
    backendMs,
    reason: `augment: ${path} (auto: ${backendMs.toFixed(3)} ${unit} per image on the backend, ${cpuMs.toFixed(3)} on the CPU path, measured on ${samples.length} images)`,
  };
}
