/**
 * densestream's layer kernels on wasm (models/kernels/layer-kernels.ts) against the cpu backend:
 * training batch norm, ReLU and its gradient, batched matrix products and eˣ, each with
 * numTensors flat.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { relativeError } from './helpers/relative-error.js';
import { selectBackend } from '../models/backend.js';
import { batchNormRelu, batchNormTraining } from '../models/batch-norm.js';
import { infoNCE, l2Normalize } from '../methods/losses.js';
import { wasmKernelThreads } from '../models/kernels/wasm-kernels.js';

describe("densestream's layer kernels on wasm", () => {
  beforeAll(async () => {
    await selectBackend('wasm', { threads: 2 });
  });

  // Channel counts that reach the 16-wide blocks, the 4-wide ones and the scalar tail; row
  // counts below and above the 256-row summation block and the two-thread threshold; a mean far
  // from zero (|mean| ≫ std), where folding the mean into an offset would lose digits.
  const batchNorms: Array<{ shape: number[]; mean: number; std: number; statistics: boolean }> = [
    { shape: [128, 7, 7, 64], mean: 0.3, std: 2, statistics: false },
    { shape: [4, 4, 4, 13], mean: 0, std: 1, statistics: true },
    { shape: [2, 3, 3, 3], mean: -1, std: 0.5, statistics: true },
    { shape: [300, 20], mean: 8, std: 0.5, statistics: false },
    { shape: [9, 5, 5, 36], mean: 1, std: 1, statistics: true },
  ];
  it.each(batchNorms)(
    'fuses training batch norm of $shape (mean $mean, std $std): values and gradients of x, γ, β as the ops on cpu give them; statistics differentiated: $statistics',
    async ({ shape, mean, std, statistics }) => {
      const c = shape.at(-1)!;
      const make = () => ({
        x: tf.randomNormal(shape, mean, std, 'float32', 21),
        gamma: tf.randomUniform([c], 0.5, 1.5, 'float32', 22),
        beta: tf.randomNormal([c], 0, 1, 'float32', 23),
        w: tf.randomNormal(shape, 0, 1, 'float32', 24),
        u: tf.randomNormal([c], 0, 1, 'float32', 25),
      });
      // Random weights on every output: with constant ones the x-gradient of a normalised channel is 0.
      const loss = (w: tf.Tensor, u: tf.Tensor) => (x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) => {
        const r = batchNormTraining(x, gamma, beta);
        const out = tf.sum(tf.mul(r.y, w));
        return statistics ? tf.add(out, tf.sum(tf.mul(tf.add(r.mean, tf.sqrt(r.variance)), u))) : out;
      };
      const run = () => {
        const { x, gamma, beta, w, u } = make();
        const r = batchNormTraining(x, gamma, beta);
        const grads = tf.grads(loss(w, u))([x, gamma, beta]);
        const values = [r.y, r.mean, r.variance, ...grads].map((t) => t.dataSync().slice());
        tf.dispose([x, gamma, beta, w, u, r.y, r.mean, r.variance, ...grads]);
        return values;
      };
      await tf.setBackend('cpu');
      const ref = run();
      await tf.setBackend('wasm');
      expect(wasmKernelThreads()).toBe(2);
      const before = tf.memory().numTensors;
      const got = run();
      expect(tf.memory().numTensors).toBe(before);
      ['y', 'mean', 'variance', 'dx', 'dgamma', 'dbeta'].forEach((name, i) => {
        expect(relativeError(got[i]!, ref[i]!), name).toBeLessThanOrEqual(2e-5);
      });
    },
  );

  it('runs the fused batch norm as one kernel forward and one backward', async () => {
    await tf.setBackend('wasm');
    const x = tf.randomNormal([8, 4, 4, 16], 0, 1, 'float32', 26);
    const gamma = tf.ones([16]);
    const beta = tf.zeros([16]);
    const w = tf.randomNormal([8, 4, 4, 16], 0, 1, 'float32', 27);
    const profile = await tf.profile(() => {
      const g = tf.grads((a: tf.Tensor) => tf.sum(tf.mul(batchNormTraining(a, gamma, beta).y, w)))([x]);
      tf.dispose(g);
    });
    const names = profile.kernels.map((k) => k.name);
    expect(names.filter((n) => n === 'DensestreamBatchNorm')).toHaveLength(1);
    expect(names.filter((n) => n === 'DensestreamBatchNormGrad')).toHaveLength(1);
    expect(names).not.toContain('Sub'); // no broadcasting ops of the unfused form
    tf.dispose([x, gamma, beta, w]);
  });

  // A ResNet layer's end, relu(bn(x) + skip): the fused kernel against the three ops it
  // replaces on the same backend (bit for bit: the same float operations in the same order),
  // and against cpu; a residual or none, channels on SIMD lanes and a scalar tail.
  it.each([
    { shape: [16, 7, 7, 64], residual: true },
    { shape: [16, 7, 7, 64], residual: false },
    { shape: [5, 3, 3, 13], residual: true },
  ])(
    'fuses relu(batch norm + residual) for $shape (residual: $residual): values and gradients of x, γ, β, residual',
    async ({ shape, residual }) => {
      const c = shape.at(-1)!;
      const run = (fused: boolean) => {
        const x = tf.randomNormal(shape, 0.5, 2, 'float32', 31);
        const gamma = tf.randomUniform([c], 0.5, 1.5, 'float32', 32);
        const beta = tf.randomNormal([c], 0, 1, 'float32', 33);
        const skip = tf.randomNormal(shape, 0, 1, 'float32', 34);
        const w = tf.randomNormal(shape, 0, 1, 'float32', 35);
        const forward = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor, s: tf.Tensor) =>
          fused
            ? batchNormRelu(a, g, b, residual ? s : undefined).y
            : tf.relu(residual ? tf.add(batchNormTraining(a, g, b).y, s) : batchNormTraining(a, g, b).y);
        const y = tf.tidy(() => forward(x, gamma, beta, skip)); // the statistics are not kept
        const loss = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor, s: tf.Tensor = skip) => tf.sum(tf.mul(forward(a, g, b, s), w));
        const grads = tf.grads(loss)(residual ? [x, gamma, beta, skip] : [x, gamma, beta]);
        const values = [y, ...grads].map((t) => Array.from(t.dataSync(), (v) => v + 0));
        tf.dispose([x, gamma, beta, skip, w, y, ...grads]);
        return values;
      };
      await tf.setBackend('cpu');
      const ref = run(false);
      await tf.setBackend('wasm');
      const before = tf.memory().numTensors;
      const unfused = run(false);
      const got = run(true);
      expect(tf.memory().numTensors).toBe(before);
      expect(got[0]!.filter((v) => v === 0).length).toBeGreaterThan(got[0]!.length / 10); // ReLU cuts somewhere
      ['y', 'dx', 'dgamma', 'dbeta', 'dresidual'].forEach((name, i) => {
        if (name === 'dresidual' && !residual) return;
        expect(got[i], name).toEqual(unfused[i]);
        expect(relativeError(got[i]!, ref[i]!), name).toBeLessThanOrEqual(2e-5);
      });
    },
  );

  it('runs relu(batch norm + residual) as one kernel forward, no Add or Relu', async () => {
    await tf.setBackend('wasm');
    const x = tf.randomNormal([8, 4, 4, 16], 0, 1, 'float32', 36);
    const skip = tf.randomNormal([8, 4, 4, 16], 0, 1, 'float32', 37);
    const gamma = tf.ones([16]);
    const beta = tf.zeros([16]);
    const profile = await tf.profile(() => {
      const r = batchNormRelu(x, gamma, beta, skip);
      tf.dispose([r.y, r.mean, r.variance]);
    });
    expect(profile.kernels.map((k) => k.name)).toEqual(['DensestreamBatchNormRelu']);
    const narrow = tf.zeros([8, 4, 4, 8]);
    expect(() => batchNormRelu(x, gamma, beta, narrow)).toThrow(/residual \[8,4,4,8\] must have x's shape \[8,4,4,16\]/);
    tf.dispose([x, skip, gamma, beta, narrow]);
  });

  it('computes ReLU as cpu does, NaN kept, on SIMD lanes and the tail', async () => {
    const values = [...Array.from({ length: 70 * 1024 + 3 }, (_, i) => Math.sin(i * 0.7) * 3), -0, 0, NaN, -Infinity, Infinity];
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const x = tf.tensor1d(values);
    const y = tf.relu(x);
    const got = Array.from(y.dataSync(), (v) => v + 0);
    tf.dispose([x, y]);
    expect(tf.memory().numTensors).toBe(before);
    expect(got).toEqual(values.map((v) => (Number.isNaN(v) ? NaN : Math.max(Math.fround(v), 0) + 0)));
  });

  it('differentiates ReLU as cpu does, in one kernel, with 0 at 0', async () => {
    const values = Array.from({ length: 6 * 7 * 9 * 5 }, (_, i) => (i % 11 === 0 ? 0 : Math.sin(i * 1.3)));
    const weights = Array.from({ length: values.length }, (_, i) => Math.cos(i));
    const loss = (x: tf.Tensor) => tf.sum(tf.mul(tf.relu(x), tf.tensor(weights, x.shape)));
    await tf.setBackend('cpu');
    const ref = tf
      .grad(loss)(tf.tensor(values, [6, 7, 9, 5]))
      .dataSync()
      .slice();
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const x = tf.tensor(values, [6, 7, 9, 5]);
    let got: tf.Tensor | undefined;
    const profile = await tf.profile(() => {
      got = tf.grad(loss)(x);
    });
    expect(profile.kernels.map((k) => k.name)).toContain('DensestreamReluGrad');
    expect(profile.kernels.map((k) => k.name)).not.toContain('Step');
    expect(Array.from(got!.dataSync(), (v) => v + 0)).toEqual(Array.from(ref, (v) => v + 0)); // −0 and 0 alike
    tf.dispose([x, got!]);
    expect(tf.memory().numTensors).toBe(before);
  });

  // Every path of batch_matmul: B as is (8- and 4-wide column panels, the scalar tail, groups
  // of 16 rows and their rest, k in blocks of 256 and a partial one) and transposed (4-deep dot
  // products and their tail), A transposed, row blocks of 4 and the rest, one side repeated
  // over the batch; single flagged products, 2-d or 3-d (tfjs's wasm kernel is ~20× slower on
  // them); single plain ones with B up to 512 wide; and the shapes it leaves to XNNPACK.
  const matMuls: Array<{ a: number[]; b: number[]; ta: boolean; tb: boolean }> = [
    { a: [5, 13, 17], b: [5, 17, 21], ta: false, tb: false },
    { a: [3, 64, 128], b: [3, 128, 64], ta: false, tb: false }, // HAPiCL's pixel products, on both threads
    { a: [4, 9, 3], b: [4, 3, 3], ta: false, tb: false }, // the per-view colour matrices
    { a: [5, 13, 18], b: [5, 7, 18], ta: false, tb: true },
    { a: [2, 6, 5], b: [2, 11, 5], ta: false, tb: true },
    { a: [5, 17, 13], b: [5, 17, 10], ta: true, tb: false },
    { a: [1, 13, 17], b: [6, 17, 12], ta: false, tb: false },
    { a: [6, 13, 17], b: [1, 9, 17], ta: false, tb: true },
    { a: [3, 7, 5], b: [3, 6, 7], ta: true, tb: true }, // left to the engine
    { a: [1, 30, 20], b: [1, 20, 10], ta: false, tb: false }, // one product, B narrow: ours
    { a: [30, 20], b: [20, 10], ta: false, tb: false }, // 2-d, unflagged, B narrow: ours
    { a: [37, 600], b: [600, 15], ta: false, tb: false }, // three k blocks, the last partial; row and column tails
    { a: [2, 20, 300], b: [1, 300, 12], ta: false, tb: false }, // k blocks with B repeated over the batch
    { a: [9, 20], b: [20, 600], ta: false, tb: false }, // B wider than 512: XNNPACK's
    { a: [64, 128], b: [48, 128], ta: false, tb: true }, // 2-d and flagged: ours (softrank's similarities)
    { a: [17, 13], b: [17, 10], ta: true, tb: false },
    { a: [1, 19, 6], b: [1, 5, 19], ta: true, tb: true },
  ];
  it.each(matMuls)(
    'multiplies $a by $b (transposed: $ta, $tb) and differentiates it as cpu does (batches alike)',
    async ({ a, b, ta, tb }) => {
      // 3-d or 2-d: typed as 3-d for matMul's overloads.
      const make = () =>
        [tf.randomNormal<tf.Rank>(a, 0, 1, 'float32', 31), tf.randomNormal<tf.Rank>(b, 0, 1, 'float32', 32)] as [tf.Tensor3D, tf.Tensor3D];
      const run = () => {
        const [x, y] = make();
        const product = tf.matMul(x, y, ta, tb);
        const w = tf.randomNormal(product.shape, 0, 1, 'float32', 33);
        // tfjs 4.22's BatchMatMul gradient does not reduce over a repeated side (on any backend).
        const loss = (p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.mul(tf.matMul(p as tf.Tensor3D, q as tf.Tensor3D, ta, tb), w));
        const grads = a[0] === b[0] ? tf.grads(loss)([x, y]) : [];
        const values = [product, ...grads].map((t) => t.dataSync().slice());
        const shapes = [product, ...grads].map((t) => t.shape);
        tf.dispose([x, y, product, w, ...grads]);
        return { values, shapes };
      };
      await tf.setBackend('cpu');
      const ref = run();
      await tf.setBackend('wasm');
      const before = tf.memory().numTensors;
      const got = run();
      expect(tf.memory().numTensors).toBe(before);
      expect(got.shapes).toEqual(ref.shapes);
      got.values.forEach((v, i) => expect(relativeError(v, ref.values[i]!), `output ${i}`).toBeLessThanOrEqual(1e-5));
    },
  );

  // InfoNCE's log-probabilities without the logits: rows across threads and one, K with a SIMD
  // tail or below one vector, a low temperature (logits up to 14: the row max subtracted).
  it.each([
    { n: 96, k: 1025, tau: 0.2, scale: 1 },
    { n: 5, k: 7, tau: 0.07, scale: 1 },
    { n: 3, k: 2, tau: 0.2, scale: 1 },
  ])('computes InfoNCE over [$n, 1 + $k] logits (τ $tau) and its gradient as the op graph on cpu does', async ({ n, k, tau, scale }) => {
    const make = () => {
      const q = l2Normalize(tf.randomNormal([n, 16], 0, 1, 'float32', 41)) as tf.Tensor2D;
      const pos = l2Normalize(tf.add(q, tf.randomNormal([n, 16], 0, 0.5, 'float32', 42))) as tf.Tensor2D;
      const neg = l2Normalize(tf.randomNormal([k, 16], 0, 1, 'float32', 43)) as tf.Tensor2D;
      return [tf.mul(q, scale), pos, neg] as tf.Tensor2D[];
    };
    const run = () =>
      tf.tidy(() => {
        const [q, pos, neg] = make();
        const value = infoNCE(q!, pos!, neg!, tau);
        // The negatives are a queue: no gradient reaches them (keySimilarities).
        const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => infoNCE(a as tf.Tensor2D, b as tf.Tensor2D, neg!, tau))([q!, pos!]);
        return [value, ...g].map((t) => Array.from(t.dataSync()));
      });
    await tf.setBackend('cpu');
    const ref = run();
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    let got: number[][] = [];
    const profile = await tf.profile(() => {
      got = run();
    });
    expect(tf.memory().numTensors).toBe(before);
    const names = profile.kernels.map((kernel) => kernel.name);
    expect(names).toContain('DensestreamContrastLogProb');
    expect(names).toContain('DensestreamContrastLogProbGrad');
    expect(names).not.toContain('Concat');
    ['loss', 'dq', 'dpositive'].forEach((name, i) => expect(relativeError(got[i]!, ref[i]!), name).toBeLessThanOrEqual(2e-5));
  });

  it('gives a NaN InfoNCE loss when one negative is NaN, as the op graph does (the divergence guard reads the loss)', async () => {
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const loss = tf.tidy(() => {
      const q = l2Normalize(tf.randomNormal([6, 8], 0, 1, 'float32', 44)) as tf.Tensor2D;
      const negatives = tf.concat([l2Normalize(tf.randomNormal([9, 8], 0, 1, 'float32', 45)), tf.fill([1, 8], NaN)]) as tf.Tensor2D;
      return infoNCE(q, q, negatives).dataSync()[0];
    });
    expect(loss).toBeNaN();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('computes eˣ within 2 ulp of the exact value, with 0 below 2⁻¹²⁶, +∞ above the float range and NaN kept', async () => {
    const values = [
      ...Array.from({ length: 4099 }, (_, i) => -90 + (180 * i) / 4098), // every lane position and a tail of 3
      0,
      -0,
      1,
      -1,
      1e-8,
      88.72,
      88.73,
      -87.33,
      -87.34,
      -1000,
      1000,
      Infinity,
      -Infinity,
      NaN,
    ];
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const x = tf.tensor1d(values);
    const y = tf.exp(x);
    const got = y.dataSync();
    tf.dispose([x, y]);
    expect(tf.memory().numTensors).toBe(before);
    values.forEach((v, i) => {
      const exact = Math.exp(Math.fround(v));
      const g = got[i]!;
      if (Number.isNaN(v)) expect(g, `e^${v}`).toBeNaN();
      else if (exact > 3.4028234663852886e38) expect(g, `e^${v}`).toBe(Infinity);
      else if (exact < 2 ** -126) expect(g, `e^${v}`).toBe(0);
      else expect(Math.abs(g - exact) / exact, `e^${v}`).toBeLessThanOrEqual(2 * 2 ** -23);
    });
  });

  it("keeps NaN in ReLU's gradient as tfjs does: NaN at a NaN input, dy·0 (NaN for a NaN dy) where x ≤ 0", async () => {
    const xs = [1, -1, 0, NaN, 2, -3, 1, -1, 0.5];
    const ws = [NaN, NaN, 1, 1, Infinity, Infinity, 2, 3, -4];
    const loss = (x: tf.Tensor) => tf.sum(tf.mul(tf.relu(x), tf.tensor1d(ws)));
    await tf.setBackend('cpu');
    const ref = Array.from(tf.grad(loss)(tf.tensor1d(xs)).dataSync(), (v) => v + 0);
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const x = tf.tensor1d(xs);
    const g = tf.grad(loss)(x);
    expect(Array.from(g.dataSync(), (v) => v + 0)).toEqual(ref);
    tf.dispose([x, g]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
