/**
 * The shared training loop: pulls a batch when it is ready for one, takes an optimiser step on
 * the method's loss, and hands every batch's samples back to the budget. Logs `metrics.jsonl`,
 * checkpoints atomically (both through `sinks/`), and stops on a non-finite loss with the last
 * checkpoint intact. Whatever a run adds around the step is a {@link TrainerHook}.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Observable } from 'rxjs';
import { disposeParts, readParts, type LossParts, type Method } from '../methods/method.js';
import { saveVariables, verifySaved, type NamedTensor } from '../models/weights-io.js';
import type { Batch } from '../core/batch.js';
import type { SampleBudget } from '../operators/sample-budget.js';
import { replaceFolder } from '../sinks/checkpoint-folder.js';
import { MetricsLog } from '../sinks/metrics-log.js';
import { budgetPermitsOf, eachHook, type MetricsRecord, type StepEvent, type TrainerHook } from '../core/trainer-hook.js';
import { LarsOptimizer } from './lars.js';
import { FusedMomentumOptimizer } from './momentum-optimizer.js';
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
  /** Resume: the step to start from and the optimiser's saved slots (iterations first; the trainer frees them). */
  startStep?: number;
  optimizerState?: NamedTensor[];
  /** What the run adds around each step, called in this order (`hooks.ts`). */
  hooks?: readonly TrainerHook[];
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
 * The decoupled weight decay of a step at rate `lr`, `w ← w·(1 − lr·λ)`, on the method's
 * convolution and dense weights (not biases, not batch norm). Returns the step for the loop to
 * call after each optimiser step; a `weightDecay` of 0 makes it do nothing (the loop passes 0
 * under LARS, whose decay is inside its trust ratio).
 */
export function weightDecayStep(method: Method, weightDecay: number): (lr: number) => void {
  const decayed = method.trainable.filter((v) => /\/w$/.test(v.name));
  return (lr) => {
    if (weightDecay > 0) tf.tidy(() => decayed.forEach((v) => v.assign(tf.mul(v, 1 - lr * weightDecay))));
  };
}

/**
 * Frees an optimizer. tfjs 4.22's MomentumOptimizer.dispose frees its slots but not the
 * learning-rate scalar `c` its SGD parent keeps: one tensor per run would stay behind.
 */
export function disposeOptimizer(optimizer: tf.Optimizer): void {
  optimizer.dispose();
  if (optimizer instanceof tf.MomentumOptimizer) {
    const { c } = optimizer as unknown as { c?: tf.Tensor };
    if (c && !c.isDisposed) c.dispose();
  }
}

/** Writes the checkpoint folder (weights, optimiser slots, then what the hooks add), read back before it replaces the last one. */
async function checkpoint(
  dir: string,
  method: Method,
  optimizer: tf.Optimizer,
  meta: CheckpointMeta,
  hooks: readonly TrainerHook[],
): Promise<void> {
  await replaceFolder(
    join(dir, 'checkpoint'),
    async (partial) => {
      const weights: Record<string, tf.Tensor> = { ...method.checkpointState() };
      const optimizerWeights = await optimizer.getWeights();
      for (const { name, tensor } of optimizerWeights) weights[`optimizer/${name}`] = tensor;
      try {
        await saveVariables(weights, partial, meta);
      } finally {
        // getWeights gives the slots themselves (variables) plus a fresh scalar of the step count
        for (const { tensor } of optimizerWeights) if (!(tensor instanceof tf.Variable)) tensor.dispose();
      }
      await eachHook(hooks, (h) => h.onCheckpoint?.(partial, meta.step));
    },
    verifySaved,
  );
}

export async function trainLoop(method: Method, batches: Observable<Batch>, budget: SampleBudget, o: TrainerOptions): Promise<TrainResult> {
  mkdirSync(o.outDir, { recursive: true });
  const hooks = o.hooks ?? [];
  const permits = budgetPermitsOf(hooks);
  const metrics = new MetricsLog(join(o.outDir, 'metrics.jsonl'));
  const startStep = o.startStep ?? 0;
  try {
    if (startStep > 0) {
      metrics.cutBack(startStep);
      await eachHook(hooks, (h) => h.onRestore?.(join(o.outDir, 'checkpoint'), startStep));
    }
    await eachHook(hooks, (h) => h.onStart?.({ startStep, steps: o.steps })); // before the data plane is subscribed to, and outside the run's clock
  } catch (err) {
    if (o.optimizerState) tf.dispose(o.optimizerState.map((t) => t.tensor));
    throw err;
  }
  const optimizer: tf.Optimizer & { setLearningRate(lr: number): void } =
    o.optimizer === 'adamw'
      ? adam(o.learningRate)
      : o.optimizer === 'lars'
        ? new LarsOptimizer(o.learningRate, { momentum: o.momentum ?? 0.9, weightDecay: o.weightDecay })
        : new FusedMomentumOptimizer(o.learningRate, o.momentum ?? 0.9);
  if (o.optimizerState) {
    await optimizer.setWeights(o.optimizerState); // copies them into the optimiser's variables
    tf.dispose(o.optimizerState.map((t) => t.tensor));
  }
  const decay = weightDecayStep(method, o.optimizer === 'lars' ? 0 : o.weightDecay);
  const stream = pull(batches, (b) => b.dispose());
  const start = performance.now();
  let waited = 0;
  let images = 0;
  const losses: number[] = [];
  let step = startStep;
  try {
    for (; step < o.steps; step++) {
      const t0 = performance.now();
      const next = await stream.next();
      const dataWaitMs = performance.now() - t0;
      waited += dataWaitMs;
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
        method.atStep?.(step);
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
        decay(lr);
        method.afterStep?.();
        try {
          const event: StepEvent = { step: done, steps: o.steps, batch, parts: hookParts, logged, dataWaitMs };
          await eachHook(hooks, (h) => h.onStep?.(event));
        } finally {
          images += batch.ids.length;
          batch.dispose();
          budget.release(permits(batch));
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
        metrics.append(record);
        for (const h of hooks) h.onLog?.(record);
      }
      // One turn of the event loop per step: batches of an in-memory source arrive as resolved
      // promises, so without it a run never reaches the loop's poll phase, where Node runs
      // signal handlers, and a Ctrl-C waited for the end of the run (measured: 10 steps).
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (hooks.some((h) => h.shouldStop?.(done) === true)) {
        step = done;
        break;
      }
      if (done % o.checkpointEvery === 0 && done < o.steps)
        await checkpoint(o.outDir, method, optimizer, { step: done, config: o.config }, hooks);
    }
    await checkpoint(o.outDir, method, optimizer, { step, config: o.config }, hooks);
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
