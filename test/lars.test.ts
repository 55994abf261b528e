import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../models/backend.js';
import { LarsOptimizer } from '../train/lars.js';

beforeAll(async () => {
  await selectBackend('wasm', { threads: 1 });
});

/** The update rule in plain JS: what LarsOptimizer must compute. */
function reference(w: number[], grads: number[][], o: { lr: number; m: number; wd: number; eta: number; adapt: boolean }): number[] {
  const v = w.map(() => 0);
  const x = [...w];
  for (const g of grads) {
    const u = o.adapt ? g.map((gi, i) => gi + o.wd * (x[i] as number)) : g;
    const norm = (a: number[]) => Math.sqrt(a.reduce((s, b) => s + b * b, 0));
    const wn = norm(x);
    const un = norm(u);
    const rate = o.adapt && wn > 0 && un > 0 ? Math.min((o.eta * wn) / un, o.lr) : o.lr;
    u.forEach((ui, i) => {
      v[i] = o.m * (v[i] as number) + rate * ui;
      x[i] = (x[i] as number) - (v[i] as number);
    });
  }
  return x;
}

describe('LARS', () => {
  it('follows the clipped trust-ratio rule with momentum on weights, and plain momentum SGD on biases', () => {
    const w = tf.variable(tf.tensor1d([3, -4, 1, 2]), true, 'lars-test/layer/w');
    const b = tf.variable(tf.tensor1d([0.5, -0.5]), true, 'lars-test/layer/b');
    const target = tf.tensor1d([1, 2, 3, 4]);
    const opt = new LarsOptimizer(0.1, { momentum: 0.9, weightDecay: 0.01, eta: 0.02 });
    const wGrads: number[][] = [];
    const bGrads: number[][] = [];
    const wStart = Array.from(w.dataSync());
    const bStart = Array.from(b.dataSync());
    for (let step = 0; step < 3; step++) {
      // loss = ½‖w − t‖² + ½‖3b‖²: gradients w − t and 9b, recorded before the step.
      wGrads.push(Array.from(tf.sub(w, target).dataSync()));
      bGrads.push(Array.from(tf.mul(b, 9).dataSync()));
      opt.minimize(
        () => tf.add(tf.mul(tf.sum(tf.square(tf.sub(w, target))), 0.5), tf.mul(tf.sum(tf.square(tf.mul(b, 3))), 0.5)) as tf.Scalar,
        false,
        [w, b],
      );
    }
    const expectW = reference(wStart, wGrads, { lr: 0.1, m: 0.9, wd: 0.01, eta: 0.02, adapt: true });
    const expectB = reference(bStart, bGrads, { lr: 0.1, m: 0.9, wd: 0.01, eta: 0.02, adapt: false });
    Array.from(w.dataSync()).forEach((x, i) => expect(x).toBeCloseTo(expectW[i] as number, 5));
    Array.from(b.dataSync()).forEach((x, i) => expect(x).toBeCloseTo(expectB[i] as number, 5));
    // The ratio bit: the weight moved by at most η of its norm per step, far less than SGD's lr would.
    expect(Math.abs((w.dataSync()[0] as number) - 3)).toBeLessThan(3 * 0.02 * 5 * 3);
    opt.dispose();
    tf.dispose([w, b, target]);
  });

  it('saves and restores its momentum slots, and keeps numTensors flat', async () => {
    const w = tf.variable(tf.ones([4, 4]), true, 'lars-test2/w');
    const opt = new LarsOptimizer(0.05, { weightDecay: 1e-4 });
    const step = () => opt.minimize(() => tf.sum(tf.square(w)) as tf.Scalar, false, [w]);
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 10; i++) step();
    expect(tf.memory().numTensors).toBe(before);
    const saved = await opt.getWeights();
    expect(saved.map((s) => s.name)).toEqual(['iter', 'lars-test2/w/momentum']);
    const copy = new LarsOptimizer(0.05, { weightDecay: 1e-4 });
    await copy.setWeights(saved.map((s) => ({ name: s.name, tensor: s.tensor.clone() })));
    expect(Array.from((await copy.getWeights())[1]!.tensor.dataSync())).toEqual(Array.from(saved[1]!.tensor.dataSync()));
    opt.dispose();
    copy.dispose();
    w.dispose();
  });

  it('refuses a negative rate or coefficient', () => {
    expect(() => new LarsOptimizer(0.1, { eta: -1 })).toThrow('lars eta: expected a number ≥ 0, got -1');
  });
});
