/**
 * The shared training loop: pulls a batch when it is ready for one, takes an optimiser step on
 * the method's loss, and hands every batch's samples back to the budget. Logs `metrics.jsonl`,
 * checkpoints atomically, and stops on a non-finite loss with the last checkpoint intact.
 */
import * as tf from '@tensorflow/tfjs';
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Observable } from 'rxjs';
import { disposeParts, readParts, type LossParts, type Method } from '../methods/method.js';
import { saveVariables, verifySaved, type NamedTensor } from '../models/weights-io.js';
import type { Batch } from '../core/batch.js';
import type { SampleBudget } from '../operators/sample-budget.js';
import { writeFileAtomic } from '../core/atomic-file.js';
import { LarsOptimizer } from './lars.js';
import { pull } from './pull.js';
import { cosineWithWarmup } from './schedule.js';

export interface TrainerOptions {
  steps: number;
  learningRate: number;
  warmupSteps: number;
  /** Decoupled weight decay on convolution and dense weights (not biases, not batch norm). */
  weightDecay: number;
  /**
   * `sgd` (with momentum, default) or `adamw`: Adam plus the decoupled weight decay applied
   * below (Loshchilov & Hutter) — tfjs's Adam and the decay step together are AdamW. `lars`:
   * momentum SGD with a per-tensor trust ratio, its weight decay inside the ratio (`lars.ts`).
   */
  optimizer?: 'sgd' | 'adamw' | 'lars';
  /** SGD momentum (default 0.9). */
  momentum?: number;
  logEvery: number;
  checkpointEvery: number;
  outDir: string;
  /** Stored with every checkpoint (the run's full configuration). */
  config: unknown;
  /** Called with every metrics record (the CLI draws progress from it). */
  onLog?: (record: MetricsRecord) => void;
  /** Resume: the step to start from and the optimiser's saved slots (iterations first; the trainer frees them). */
  startStep?: number;
  optimizerState?: NamedTensor[];
  /** Asked after every step; true checkpoints and stops (Ctrl-C, or a test's interruption). */
  shouldStop?: (stepsDone: number) => boolean;
  /**
   * Permits of the budget a batch holds, returned after its step: the samples the source read
   * for it. Default `batch.ids.length`; a batch of (anchor, fetched positive) pairs holds one
   * per pair.
   */
  budgetPermits?: (batch: Batch) => number;
  /**
   * Called after every step (after `method.afterStep`, before the batch is freed and the step
   * logged) with the steps done; may add numbers to `parts`, which the step's log line carries
   * next to the loss's own parts. Awaited: a hook that must wait
   * (e.g. for a clustering still running) holds the next step back.
   */
  onStep?: (stepsDone: number, batch: Batch, parts: Record<string, number>) => void | Promise<void>;
  /**
   * Writes more state into the checkpoint folder being written (`dir`, swapped in whole with
   * the weights), taken after `step` steps: softrank's embedding bank and clusterings.
   */
  onCheckpoint?: (dir: string, step: number) => void | Promise<void>;
}

export interface MetricsRecord {
  step: number;
  loss: number;
  parts: Record<string, number>;
  lr: number;
  imagesPerSec: number;
  dataWaitFraction: number;
  seconds: number;
}

export interface TrainResult {
  steps: number;
  images: number;
  seconds: number;
  imagesPerSec: number;
  dataWaitFraction: number;
  losses: number[];
}

/** tfjs's Adam with a settable learning rate (its `learningRate` field is read at every step). */
function adam(learningRate: number): tf.Optimizer & { setLearningRate(lr: number): void } {
  const optimizer = tf.train.adam(learningRate, 0.9, 0.999, 1e-8) as tf.AdamOptimizer & { learningRate: number };
  return Object.assign(optimizer, {
    setLearningRate: (lr: number) => {
      optimizer.learningRate = lr;
    },
  });
}

/**
 * Frees an optimizer. tfjs 4.22's MomentumOptimizer.dispose frees its slots but not the
 * learning-rate scalar `c` its SGD parent keeps: one tensor per run would stay behind.
 */
function disposeOptimizer(optimizer: tf.Optimizer): void {
  optimizer.dispose();
  if (optimizer instanceof tf.MomentumOptimizer) {
    const { c } = optimizer as unknown as { c?: tf.Tensor };
    if (c && !c.isDisposed) c.dispose();
  }
}

/** Writes the checkpoint folder under a temporary name, then swaps it in. */
async function checkpoint(
  dir: string,
  method: Method,
  optimizer: tf.Optimizer,
  meta: CheckpointMeta,
  extra?: TrainerOptions['onCheckpoint'],
): Promise<void> {
  const final = join(dir, 'checkpoint');
  const partial = `${final}.partial`;
  rmSync(partial, { recursive: true, force: true });
  const weights: Record<string, tf.Tensor> = { ...method.checkpointState() };
  const optimizerWeights = await optimizer.getWeights();
  for (const { name, tensor } of optimizerWeights) weights[`optimizer/${name}`] = tensor;
  try {
    await saveVariables(weights, partial, meta);
  } finally {
    // getWeights gives the slots themselves (variables) plus a fresh scalar of the step count
    for (const { tensor } of optimizerWeights) if (!(tensor instanceof tf.Variable)) tensor.dispose();
  }
  await extra?.(partial, meta.step);
  // Read back before it replaces the last good checkpoint: a write the disk did not keep fails here, with the old one intact.
  verifySaved(partial);
  if (existsSync(final)) renameSync(final, `${final}.old`);
  renameSync(partial, final);
  rmSync(`${final}.old`, { recursive: true, force: true });
}

/**
 * A resumed run's log, cut back to its checkpoint's `step`: a run killed after its last
 * checkpoint had logged steps it will now train again, which would otherwise appear twice. A
 * line cut short by the kill goes too. Rewritten atomically.
 */
export function cutMetricsBack(path: string, step: number): void {
  if (!existsSync(path)) return;
  const lines = readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '');
  const kept = lines.filter((line) => {
    try {
      const record = JSON.parse(line) as Partial<MetricsRecord>;
      return typeof record.step === 'number' && record.step <= step;
    } catch {
      return false;
    }
  });
  if (kept.length !== lines.length) writeFileAtomic(path, kept.map((l) => `${l}\n`).join(''));
}

export async function trainLoop(method: Method, batches: Observable<Batch>, budget: SampleBudget, o: TrainerOptions): Promise<TrainResult> {
  mkdirSync(o.outDir, { recursive: true });
  const optimizer: tf.Optimizer & { setLearningRate(lr: number): void } =
    o.optimizer === 'adamw'
      ? adam(o.learningRate)
      : o.optimizer === 'lars'
        ? new LarsOptimizer(o.learningRate, { momentum: o.momentum ?? 0.9, weightDecay: o.weightDecay })
        : tf.train.momentum(o.learningRate, o.momentum ?? 0.9);
  if (o.optimizerState) {
    await optimizer.setWeights(o.optimizerState); // copies them into the optimiser's variables
    tf.dispose(o.optimizerState.map((t) => t.tensor));
  }
  const decayed = method.trainable.filter((v) => /\/w$/.test(v.name));
  const metricsPath = join(o.outDir, 'metrics.jsonl');
  if (o.startStep) cutMetricsBack(metricsPath, o.startStep);
  const stream = pull(batches, (b) => b.dispose());
  const start = performance.now();
  let waited = 0;
  let images = 0;
  const losses: number[] = [];
  let step = o.startStep ?? 0;
  try {
    for (; step < o.steps; step++) {
      const t0 = performance.now();
      const next = await stream.next();
      waited += performance.now() - t0;
      if (next.done) break;
      const batch = next.value;
      const lr = cosineWithWarmup(step, o.steps, o.learningRate, o.warmupSteps);
      optimizer.setLearningRate(lr);
      // The loss's parts stay tensors until a log line reads them (asynchronously, once each);
      // the loss itself is read every step, asynchronously too, for the divergence guard.
      const lossParts: LossParts = {};
      const hookParts: Record<string, number> = {};
      const done = step + 1;
      const logged = done % o.logEvery === 0 || done === o.steps;
      let loss: number;
      let stepDone = false;
      try {
        await method.prepare?.(batch);
        const lossTensor = optimizer.minimize(() => method.loss(batch, lossParts), true, method.trainable);
        loss = lossTensor === null ? Number.NaN : ((await lossTensor.data())[0] as number);
        lossTensor?.dispose();
        if (!Number.isFinite(loss)) {
          batch.dispose();
          throw new Error(
            `step ${step}: the loss is ${loss}; training diverged (try a lower --lr). The last good checkpoint in ${join(o.outDir, 'checkpoint')} is intact.`,
          );
        }
        if (o.weightDecay > 0 && o.optimizer !== 'lars') tf.tidy(() => decayed.forEach((v) => v.assign(tf.mul(v, 1 - lr * o.weightDecay))));
        method.afterStep?.();
        try {
          await o.onStep?.(done, batch, hookParts);
        } finally {
          images += batch.ids.length;
          batch.dispose();
          budget.release(o.budgetPermits?.(batch) ?? batch.ids.length);
        }
        stepDone = true;
      } finally {
        if (!logged || !stepDone) disposeParts(lossParts);
      }
      losses.push(loss);
      if (logged) {
        const parts = { ...(await readParts(lossParts)), ...hookParts };
        const seconds = (performance.now() - start) / 1000;
        const record: MetricsRecord = {
          step: done,
          loss,
          parts,
          lr,
          imagesPerSec: images / seconds,
          dataWaitFraction: waited / 1000 / seconds,
          seconds,
        };
        appendFileSync(metricsPath, `${JSON.stringify(record)}\n`);
        o.onLog?.(record);
      }
      // One turn of the event loop per step: batches of an in-memory source arrive as resolved
      // promises, so without it a run never reaches the loop's poll phase, where Node runs
      // signal handlers, and a Ctrl-C waited for the end of the run (measured: 10 steps).
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (o.shouldStop?.(done)) {
        step = done;
        break;
      }
      if (done % o.checkpointEvery === 0 && done < o.steps)
        await checkpoint(o.outDir, method, optimizer, { step: done, config: o.config }, o.onCheckpoint);
    }
    await checkpoint(o.outDir, method, optimizer, { step, config: o.config }, o.onCheckpoint);
  } finally {
    stream.close();
    disposeOptimizer(optimizer);
  }
  const seconds = (performance.now() - start) / 1000;
  return { steps: step, images, seconds, imagesPerSec: images / seconds, dataWaitFraction: waited / 1000 / seconds, losses };
}

/** The step and configuration a checkpoint was written at. */
export interface CheckpointMeta {
  step: number;
  config: unknown;
}
