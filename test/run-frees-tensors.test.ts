import * as tf from '@tensorflow/tfjs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../models/backend.js';
import { runTraining } from '../pipelines/train.js';
import { parseTrainConfig } from '../pipelines/train-options.js';

beforeAll(async () => {
  await selectBackend('wasm', { threads: 1 });
});

/**
 * A whole run — models, queues, optimizer slots, checkpoints every 2 steps, and the batches the
 * data plane collated ahead of a run that stops early — frees every tensor it made. (Counts taken
 * mid-run also hold those collated batches, a number that depends on timing, so the check is at
 * the end.) Each case once leaked: initial values behind variables, the optimizer's step-count
 * scalar per checkpoint, MomentumOptimizer's learning-rate scalar, queued batches.
 */
describe('a training run frees every tensor it made', () => {
  const cases: Array<[string, string]> = [
    ['mocov2', 'sgd'],
    ['mocov2', 'adamw'],
    ['mocov2', 'lars'],
    ['densecl', 'sgd'],
    ['hapicl', 'sgd'],
  ];
  it.each(cases)('%s with %s, stopped early after checkpoints', async (method, optimizer) => {
    const { resume: _r, ...c } = parseTrainConfig([
      '--method',
      method,
      '--optimizer',
      optimizer,
      '--data',
      'scenes:32:16',
      '--size',
      '32',
      '--batch',
      '8',
      '--steps',
      '6',
      '--checkpoint-every',
      '2',
      '--knn-every',
      '0',
      '--threads',
      '1',
      '--out',
      mkdtempSync(join(tmpdir(), 'densestream-frees-')),
    ]);
    const before = tf.memory().numTensors;
    const result = await runTraining(c, { hooks: [{ shouldStop: (done) => done === 5 }] });
    expect(result.steps).toBe(5);
    expect(tf.memory().numTensors).toBe(before);
  });
});
