import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { from } from 'rxjs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Method } from '../methods/method.js';
import type { Batch } from '../core/batch.js';
import { SampleBudget } from '../operators/sample-budget.js';
import { cosineWithWarmup } from '../train/schedule.js';
import { trainLoop } from '../train/trainer.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** A method whose loss is (w − 3)², turning NaN from step `nanAt` on. */
function quadratic(nanAt = Infinity): Method & { w: tf.Variable } {
  const w = tf.variable(tf.scalar(0), true, `quadratic-${Math.random()}`);
  let step = 0;
  return {
    name: 'quadratic',
    w,
    trainable: [w],
    loss: () => (step++ >= nanAt ? tf.mul(w, Number.NaN) : tf.square(tf.sub(w, 3))) as tf.Scalar,
    embed: () => tf.zeros([1, 1]) as tf.Tensor2D,
    checkpointState: () => ({ w }),
    dispose: () => w.dispose(),
  };
}

function fakeBatches(n: number, budget: SampleBudget): Batch[] {
  return Array.from({ length: n }, (_, i) => {
    void budget.acquire(); // as the source would have, for the trainer to release
    return { ids: [`s${i}`], views: [], masks: [], boxes: [], flipped: [], dispose: () => {} };
  });
}

const options = (outDir: string, steps: number) => ({
  steps,
  learningRate: 0.1,
  warmupSteps: 0,
  weightDecay: 0,
  momentum: 0,
  logEvery: 1,
  checkpointEvery: 2,
  outDir,
  config: { test: true },
});

describe('trainer', () => {
  it('descends the loss, releases every batch to the budget, logs each step and checkpoints at the end', async () => {
    const out = mkdtempSync(join(tmpdir(), 'densestream-trainer-'));
    const budget = new SampleBudget(100);
    const method = quadratic();
    const result = await trainLoop(method, from(fakeBatches(20, budget)), budget, options(out, 20));
    expect(result.steps).toBe(20);
    // lr 0.1 decaying by cosine over 20 steps: w goes most of the way from 0 to 3
    expect(result.losses[19]!).toBeLessThan(result.losses[0]! / 5);
    expect(method.w.dataSync()[0]).toBeGreaterThan(2);
    expect(budget.inFlight).toBe(0);
    expect(readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(20);
    expect(existsSync(join(out, 'checkpoint', 'weights.json'))).toBe(true);
    method.dispose();
  });

  it('stops on a NaN loss with a clear message and leaves the last good checkpoint intact', async () => {
    const out = mkdtempSync(join(tmpdir(), 'densestream-nan-'));
    const budget = new SampleBudget(100);
    const method = quadratic(5); // steps 0–4 are fine; a checkpoint lands after step 4 (every 2)
    await expect(trainLoop(method, from(fakeBatches(10, budget)), budget, options(out, 10))).rejects.toThrow(
      /step 5: the loss is NaN; training diverged .* The last good checkpoint in .*checkpoint is intact/,
    );
    const meta = JSON.parse(readFileSync(join(out, 'checkpoint', 'weights.json'), 'utf8')) as { meta: { step: number } };
    expect(meta.meta.step).toBe(4);
    expect(existsSync(join(out, 'checkpoint.partial'))).toBe(false);
    method.dispose();
  });

  it('trains with AdamW: Adam steps plus decoupled weight decay', async () => {
    const out = mkdtempSync(join(tmpdir(), 'densestream-adamw-'));
    const budget = new SampleBudget(100);
    const method = quadratic();
    const result = await trainLoop(method, from(fakeBatches(40, budget)), budget, {
      ...options(out, 40),
      optimizer: 'adamw',
      learningRate: 0.3,
    });
    expect(result.losses[39]!).toBeLessThan(result.losses[0]! / 5);
    expect(method.w.dataSync()[0]).toBeGreaterThan(2);
    method.dispose();
  });

  it('warms the learning rate up linearly, then follows a cosine to zero', () => {
    expect(cosineWithWarmup(0, 100, 1, 10)).toBeCloseTo(0.1);
    expect(cosineWithWarmup(9, 100, 1, 10)).toBeCloseTo(1);
    expect(cosineWithWarmup(55, 100, 1, 10)).toBeCloseTo(0.5);
    expect(cosineWithWarmup(100, 100, 1, 10)).toBeCloseTo(0);
  });
});
