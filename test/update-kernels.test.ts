/**
 * The fused weight updates (models/kernels/update-kernels.ts, train/momentum-optimizer.ts) give
 * the values of the ops they replace bit for bit: the momentum branch's EMA against
 * `m·k + (1 − m)·q` by tfjs's ops, and SGD with momentum against tfjs's own MomentumOptimizer,
 * slots and checkpoint format included. Sizes reach the SIMD body, the scalar tail and two threads.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../models/backend.js';
import { emaOf, momentumStep } from '../models/kernels/update-kernels.js';
import { wasmKernelThreads } from '../models/kernels/wasm-kernels.js';
import { FusedMomentumOptimizer } from '../train/momentum-optimizer.js';
import { disposeOptimizer } from '../train/trainer.js';

const SIZES = [[3], [4, 4], [5, 7, 3], [70_001]];

describe('fused weight updates on wasm', () => {
  beforeAll(async () => {
    await selectBackend('wasm', { threads: 2 });
  });

  it.each(SIZES)('gives the EMA of %j as the ops do, to the bit, in one call', async (...shape) => {
    expect(wasmKernelThreads()).toBe(2);
    const before = tf.memory().numTensors;
    for (const m of [0.99, 0.999, 0.5, 0.1]) {
      const [k, q] = [tf.randomNormal(shape, 0, 1, 'float32', 1), tf.randomNormal(shape, 0, 3, 'float32', 2)];
      const fused = emaOf(k, q, m);
      if (m === 0.5) {
        const profiled = await tf.profile(() => emaOf(k, q, m));
        expect(profiled.kernelNames).toEqual(['DensestreamEma']); // one call, ours
        tf.dispose(profiled.result as tf.Tensor);
      }
      const ops = tf.tidy(() => tf.add(tf.mul(k, m), tf.mul(q, 1 - m)));
      expect([...fused.dataSync()]).toEqual([...ops.dataSync()]);
      tf.dispose([k, q, fused, ops]);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it.each(SIZES)('gives a momentum step of %j as the ops do, to the bit, in one call', async (...shape) => {
    const before = tf.memory().numTensors;
    const [v, a, g] = [1, 2, 3].map((s) => tf.randomNormal(shape, 0, s, 'float32', s));
    const [value, accumulation] = momentumStep(v!, a!, g!, 0.9, -0.03);
    const profiled = await tf.profile(() => momentumStep(v!, a!, g!, 0.9, -0.03));
    expect(profiled.kernelNames).toEqual(['DensestreamSgdMomentum']); // one call, ours
    tf.dispose(profiled.result as tf.Tensor[]);
    const [accumulationOps, valueOps] = tf.tidy(() => {
      const acc = tf.add(tf.mul(tf.scalar(0.9), a!), g!);
      return [acc, tf.add(tf.mul(tf.scalar(-0.03), acc), v!)];
    });
    expect([...accumulation.dataSync()]).toEqual([...accumulationOps.dataSync()]);
    expect([...value.dataSync()]).toEqual([...valueOps.dataSync()]);
    tf.dispose([v!, a!, g!, value, accumulation, accumulationOps, valueOps]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("trains as tfjs's MomentumOptimizer does: the same weights and slots after ten steps, and the same checkpoint", async () => {
    const run = async (optimizer: tf.Optimizer & { setLearningRate(lr: number): void }) => {
      const w = tf.tidy(() => tf.variable(tf.randomNormal([70_001], 0, 1, 'float32', 7), true, `w${optimizer.constructor.name}`));
      const b = tf.tidy(() => tf.variable(tf.randomNormal([5], 0, 1, 'float32', 8), true, `b${optimizer.constructor.name}`));
      const x = tf.randomNormal([70_001], 0, 1, 'float32', 9);
      for (let step = 0; step < 10; step++) {
        optimizer.setLearningRate(0.1 / (step + 1)); // as the trainer's schedule sets it every step
        optimizer.minimize(() => tf.add(tf.sum(tf.square(tf.mul(w, x))), tf.sum(tf.square(tf.sub(b, 1)))), false, [w, b]);
      }
      const weights = await optimizer.getWeights();
      const slots = await Promise.all(
        weights.map(async ({ name, tensor }) => ({ name: name.replace(/^[wb][A-Za-z]+/, ''), values: [...(await tensor.data())] })),
      );
      const result = { w: [...w.dataSync()], b: [...b.dataSync()], slots };
      tf.dispose([w, b, x, ...weights.filter((t) => !(t.tensor instanceof tf.Variable)).map((t) => t.tensor)]);
      disposeOptimizer(optimizer);
      return result;
    };
    const before = tf.memory().numTensors;
    const theirs = await run(tf.train.momentum(0.1, 0.9));
    const ours = await run(new FusedMomentumOptimizer(0.1, 0.9));
    expect(ours.w).toEqual(theirs.w);
    expect(ours.b).toEqual(theirs.b);
    expect(ours.slots).toEqual(theirs.slots); // iterations, then `<name>/momentum` per variable
    expect(ours.slots.map((s) => s.name)).toEqual(['iter', '/momentum', '/momentum']);
    expect(tf.memory().numTensors).toBe(before);
  });
});
