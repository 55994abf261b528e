import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { concatMap, from, map, timer } from 'rxjs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Method } from '../methods/method.js';
import type { Batch } from '../core/batch.js';
import { SampleBudget } from '../operators/sample-budget.js';
import { cosineWithWarmup } from '../train/schedule.js';
import { closeHooks, type TrainerHook } from '../core/trainer-hook.js';
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

  it('tells each step’s hooks how long it waited for its batch, and the run’s share adds those waits up', async () => {
    const out = mkdtempSync(join(tmpdir(), 'densestream-trainer-'));
    const budget = new SampleBudget(100);
    const method = quadratic();
    const slow = from(fakeBatches(4, budget)).pipe(concatMap((b) => timer(60).pipe(map(() => b)))); // a data plane 60 ms a batch
    const waits: number[] = [];
    const hooks = [{ onStep: (e: { dataWaitMs: number }) => void waits.push(e.dataWaitMs) }];
    const result = await trainLoop(method, slow, budget, { ...options(out, 4), logEvery: 100, checkpointEvery: 100, hooks });
    expect(waits).toHaveLength(4);
    for (const w of waits) expect(w).toBeGreaterThanOrEqual(30); // each batch comes 60 ms after the last; a step takes a few ms
    expect(result.dataWaitFraction).toBeCloseTo(waits.reduce((a, b) => a + b, 0) / 1000 / result.seconds, 6);
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

  it('calls its hooks in order: restore, start, each step, log lines and checkpoints; a hook’s parts reach metrics.jsonl', async () => {
    const out = mkdtempSync(join(tmpdir(), 'densestream-hooks-'));
    const events: string[] = [];
    const recorder = (name: string): TrainerHook => ({
      onRestore: (dir, step) => void events.push(`${name} restore ${dir === join(out, 'checkpoint')} ${step}`),
      onStart: ({ startStep, steps }) => void events.push(`${name} start ${startStep}/${steps}`),
      onStep: ({ step, parts, logged }) => {
        events.push(`${name} step ${step}${logged ? ' logged' : ''}`);
        parts[name] = step;
      },
      onLog: (r) => void events.push(`${name} log ${r.step}`),
      onCheckpoint: (dir, step) => void events.push(`${name} checkpoint ${dir.endsWith('checkpoint.partial')} ${step}`),
    });
    const budget = new SampleBudget(100);
    const method = quadratic();
    await trainLoop(method, from(fakeBatches(4, budget)), budget, {
      ...options(out, 4),
      logEvery: 2,
      hooks: [recorder('a'), recorder('b')],
    });
    expect(events).toEqual([
      'a start 0/4',
      'b start 0/4',
      'a step 1',
      'b step 1',
      'a step 2 logged',
      'b step 2 logged',
      'a log 2',
      'b log 2',
      'a checkpoint true 2',
      'b checkpoint true 2',
      'a step 3',
      'b step 3',
      'a step 4 logged',
      'b step 4 logged',
      'a log 4',
      'b log 4',
      'a checkpoint true 4',
      'b checkpoint true 4',
    ]);
    const logged = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { parts: object });
    expect(logged.map((r) => r.parts)).toEqual([
      { a: 2, b: 2 },
      { a: 4, b: 4 },
    ]);
    events.length = 0;
    await trainLoop(method, from(fakeBatches(2, budget)), budget, { ...options(out, 6), startStep: 4, hooks: [recorder('a')] });
    expect(events.slice(0, 2)).toEqual(['a restore true 4', 'a start 4/6']);
    expect(budget.inFlight).toBe(0);
    method.dispose();
  });

  it('returns the permits the one hook that answers says a batch holds, and refuses two such hooks', async () => {
    const out = mkdtempSync(join(tmpdir(), 'densestream-permits-'));
    const budget = new SampleBudget(100);
    const method = quadratic();
    const batches = fakeBatches(3, budget);
    for (let i = 0; i < 3; i++) void budget.acquire(); // each batch holds two permits: the one fakeBatches took and one more
    await trainLoop(method, from(batches), budget, { ...options(out, 3), hooks: [{ budgetPermits: (b) => 2 * b.ids.length }] });
    expect(budget.inFlight).toBe(0);
    const twice: TrainerHook = { budgetPermits: (b) => b.ids.length };
    await expect(trainLoop(method, from(fakeBatches(1, budget)), budget, { ...options(out, 1), hooks: [twice, twice] })).rejects.toThrow(
      /2 hooks answer budgetPermits; at most one may/,
    );
    method.dispose();
  });

  it('closes every hook once even when one throws, and rethrows the first error', () => {
    const closed: string[] = [];
    const hooks: TrainerHook[] = [
      { close: () => void closed.push('a') },
      {
        close: () => {
          closed.push('b');
          throw new Error('b failed');
        },
      },
      { close: () => void closed.push('c') },
    ];
    expect(() => closeHooks(hooks)).toThrow('b failed');
    expect(closed).toEqual(['a', 'b', 'c']);
  });

  it('warms the learning rate up linearly, then follows a cosine to zero', () => {
    expect(cosineWithWarmup(0, 100, 1, 10)).toBeCloseTo(0.1);
    expect(cosineWithWarmup(9, 100, 1, 10)).toBeCloseTo(1);
    expect(cosineWithWarmup(55, 100, 1, 10)).toBeCloseTo(0.5);
    expect(cosineWithWarmup(100, 100, 1, 10)).toBeCloseTo(0);
  });
});
