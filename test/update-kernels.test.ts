/**
 * The fused weight updates (models/kernels/update-kernels.ts, train/momentum-optimizer.ts) give
 * the values of the ops they replace bit for bit: the momentum branch's EMA against
 * `m·k + (1 − m)·q` by tfjs's ops, the batch-norm running statistics' blend against
 * `a·k + b·q`, and SGD with momentum against tfjs's own MomentumOptimizer, slots and checkpoint
 * format included. Sizes reach the SIMD body, the scalar tail and two threads.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../models/backend.js';
import { blendOf, emaOf, momentumStep } from '../models/kernels/update-kernels.js';
import { RESNET_PRESETS } from '../models/encoder-spec.js';
import { createResNet } from '../models/resnet.js';
import { wasmKernelThreads } from '../models/kernels/wasm-kernels.js';
import { FusedMomentumOptimizer } from '../train/momentum-optimizer.js';
import { disposeOptimizer } from '../train/trainer.js';

// tails of 3, 0, 1, 2 and 3 values past the SIMD body; the last two long enough for two threads
const SIZES = [[3], [4, 4], [5, 7, 3], [70_002], [65_539]];

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

  it.each(SIZES)('gives the blend of %j with two scales of its own as the ops do, to the bit, in one call', async (...shape) => {
    const before = tf.memory().numTensors;
    // the running variance's scales: m and (1 − m)·n/(n − 1), as the encoder computes them
    for (const [a, b] of [
      [0.9, 0.1 * (64 / 63)],
      [0.9, 0.1 * (4096 / 4095)],
      [0.5, 3.25],
    ] as const) {
      const [k, q] = [tf.randomNormal(shape, 1, 1, 'float32', 3), tf.randomNormal(shape, 0, 3, 'float32', 4)];
      const fused = blendOf(k, q, a, b);
      const ops = tf.tidy(() => tf.add(tf.mul(k, a), tf.mul(q, b)));
      expect([...fused.dataSync()]).toEqual([...ops.dataSync()]);
      const profiled = await tf.profile(() => blendOf(k, q, a, b));
      expect(profiled.kernelNames).toEqual(['DensestreamEma']);
      tf.dispose([k, q, fused, ops, profiled.result as tf.Tensor]);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it("updates the encoder's running statistics in one call each, and only in training", async () => {
    const encoder = createResNet(RESNET_PRESETS.slim, 3);
    const x = tf.randomUniform([4, 16, 16, 3], 0, 1, 'float32', 5);
    const count = async (training: boolean) => {
      const profiled = await tf.profile(() => {
        const { dense, pooled } = encoder.apply(x as tf.Tensor4D, { training });
        return [dense, pooled];
      });
      tf.dispose(profiled.result as tf.Tensor[]);
      return profiled.kernels.filter((k) => k.name === 'DensestreamEma').length;
    };
    const before = encoder.state.map((v) => v.dataSync().slice());
    expect(await count(true)).toBe(encoder.state.length); // a mean and a variance a layer
    encoder.state.forEach((v, i) => expect(v.dataSync()).not.toEqual(before[i]));
    expect(await count(false)).toBe(0);
    tf.dispose(x);
    encoder.dispose();
  });

  it.each(SIZES)('gives a momentum step of %j as the ops do, to the bit, in one call', async (...shape) => {
    const before = tf.memory().numTensors;
    for (const [m, c, seed] of [
      [0.9, -0.03, 1],
      [0.99, -0.7, 2],
      [0.5, -1e-4, 3],
    ] as const) {
      const [v, a, g] = [1, 2, 3].map((s) => tf.randomNormal(shape, 0, s, 'float32', seed * 10 + s));
      const [value, accumulation] = momentumStep(v!, a!, g!, m, c);
      const [accumulationOps, valueOps] = tf.tidy(() => {
        const acc = tf.add(tf.mul(tf.scalar(m), a!), g!);
        return [acc, tf.add(tf.mul(tf.scalar(c), acc), v!)];
      });
      expect([...accumulation.dataSync()]).toEqual([...accumulationOps.dataSync()]);
      expect([...value.dataSync()]).toEqual([...valueOps.dataSync()]);
      const profiled = await tf.profile(() => momentumStep(v!, a!, g!, m, c));
      expect(profiled.kernelNames).toEqual(['DensestreamSgdMomentum']); // one call, ours
      tf.dispose([v!, a!, g!, value, accumulation, accumulationOps, valueOps, ...(profiled.result as tf.Tensor[])]);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it("trains as tfjs's MomentumOptimizer does, resumed from its slots too: the same weights and slots, step by step", async () => {
    const before = tf.memory().numTensors;
    const loss = (w: tf.Variable, b: tf.Variable, x: tf.Tensor) => () =>
      tf.add(tf.sum(tf.square(tf.mul(w, x))), tf.sum(tf.square(tf.sub(b, 1)))) as tf.Scalar;
    /** Steps `from`..`to` of `optimizer` on fresh weights (or `start`'s), then its weights and slots. */
    const run = async (
      optimizer: tf.Optimizer & { setLearningRate(lr: number): void },
      tag: string,
      from: number,
      to: number,
      start?: Snapshot,
    ) => {
      const w = tf.tidy(() => tf.variable(start ? tf.tensor(start.w) : tf.randomNormal([70_001], 0, 1, 'float32', 7), true, `w${tag}`));
      const b = tf.tidy(() => tf.variable(start ? tf.tensor(start.b) : tf.randomNormal([5], 0, 1, 'float32', 8), true, `b${tag}`));
      const x = tf.randomNormal([70_001], 0, 1, 'float32', 9);
      if (start) {
        const slots = start.slots.map(({ name, values }) => ({
          name: name === 'iter' ? name : `${name[0]}${tag}${name.slice(1)}`,
          tensor: tf.tensor(values),
        }));
        const given = slots.map((t) => (t.name === 'iter' ? { name: t.name, tensor: tf.scalar(t.tensor.dataSync()[0]!) } : t));
        await optimizer.setWeights(given); // the slots become variables on these tensors' data
        tf.dispose([...slots, ...given].map((t) => t.tensor));
      }
      for (let step = from; step < to; step++) {
        optimizer.setLearningRate(0.1 / (step + 1)); // as the trainer's schedule sets it every step
        const grads = tf.variableGrads(loss(w, b, x), [w, b]);
        optimizer.applyGradients(grads.grads);
        tf.dispose([grads.value, ...Object.values(grads.grads)]);
      }
      const weights = await optimizer.getWeights();
      const slots = await Promise.all(
        weights.map(async ({ name, tensor }) => ({
          name: name === 'iter' ? name : `${name[0]}${name.slice(1 + tag.length)}`,
          values: [...(await tensor.data())],
        })),
      );
      const snapshot: Snapshot = { w: [...w.dataSync()], b: [...b.dataSync()], slots };
      tf.dispose([w, b, x, ...weights.filter((t) => !(t.tensor instanceof tf.Variable)).map((t) => t.tensor)]);
      disposeOptimizer(optimizer);
      return snapshot;
    };
    const theirs = await run(tf.train.momentum(0.1, 0.9), 'T', 0, 10);
    const ours = await run(new FusedMomentumOptimizer(0.1, 0.9), 'O', 0, 10);
    expect(ours).toEqual(theirs);
    expect(ours.slots.map((s) => s.name)).toEqual(['iter', 'w/momentum', 'b/momentum']);
    // a checkpoint of tfjs's optimizer at step 5, resumed by ours, ends as tfjs's run does
    const half = await run(tf.train.momentum(0.1, 0.9), 'H', 0, 5);
    const resumed = await run(new FusedMomentumOptimizer(0.1, 0.9), 'R', 5, 10, half);
    expect(resumed.w).toEqual(theirs.w);
    expect(resumed.b).toEqual(theirs.b);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('runs its fused kernel inside a step', async () => {
    const optimizer = new FusedMomentumOptimizer(0.1, 0.9);
    const w = tf.tidy(() => tf.variable(tf.ones([8]), true, 'wProfiled'));
    const profiled = await tf.profile(() => {
      optimizer.minimize(() => tf.sum(tf.square(w)) as tf.Scalar, false, [w]);
      return [];
    });
    expect(profiled.kernelNames).toContain('DensestreamSgdMomentum');
    tf.dispose(w);
    disposeOptimizer(optimizer);
  });
});

interface Snapshot {
  w: number[];
  b: number[];
  slots: Array<{ name: string; values: number[] }>;
}
