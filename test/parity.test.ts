/**
 * densestream against its PyTorch twin (bench/torch_parity.py): every method's loss, every
 * gradient, the whole state after one trainer step, and a 20-step loss curve, on identical
 * inputs, against numbers the twin wrote into test/fixtures/parity/ (`npm run bench -- parity`
 * regenerates them; torch is not needed here). On wasm, the engine these machines train on.
 */
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  densestreamNumbers,
  parityErrors,
  parityFixturePath,
  PARITY_METHODS,
  type ParityErrors,
  type ParityFixture,
} from '../bench/parity-cases.js';
import { selectBackend } from '../models/backend.js';

const ROOT = new URL('..', import.meta.url).pathname;

beforeAll(async () => {
  await selectBackend('wasm', { threads: 2 });
});

describe.each(PARITY_METHODS)('%s matches its PyTorch twin', (method) => {
  let errors: ParityErrors;
  let fixture: ParityFixture;

  beforeAll(async () => {
    fixture = JSON.parse(readFileSync(parityFixturePath(ROOT, method), 'utf8')) as ParityFixture;
    if (!fixture.torch) throw new Error(`${method}: the fixture holds no twin numbers; regenerate it (npm run bench -- parity)`);
    const before = tf.memory().numTensors;
    errors = parityErrors(await densestreamNumbers(fixture), fixture.torch);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('gives the same loss and parts on the first batch (1e-4 relative)', () => {
    expect(errors.loss).toBeLessThan(1e-4);
    expect(Object.keys(errors.parts).sort()).toEqual(Object.keys(fixture.torch!.parts).sort());
    for (const [part, e] of Object.entries(errors.parts)) expect(e, part).toBeLessThan(1e-4);
  });

  it('gives every trainable weight the same gradient (1e-4 relative, per tensor)', () => {
    expect(Object.keys(errors.grads).sort()).toEqual([...fixture.trainable].sort());
    for (const [name, e] of Object.entries(errors.grads)) expect(e, name).toBeLessThan(1e-4);
  });

  it('holds the same state after one trainer step: weights, momentum copies, queues, batch-norm statistics', () => {
    expect(Object.keys(errors.afterStep).sort()).toEqual(Object.keys(fixture.initial).sort());
    for (const [name, e] of Object.entries(errors.afterStep)) expect(e, name).toBeLessThan(1e-4);
  });

  it('follows the same loss curve over 20 steps (1e-3)', () => {
    expect(fixture.torch!.losses).toHaveLength(20);
    expect(errors.curve).toBeLessThan(1e-3);
  });
});
