import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { relativeError } from './helpers/relative-error.js';
import { selectBackend } from '../models/backend.js';
import { KERNELS_SOURCE_SHA256 } from '../models/kernels/kernels-wasm.js';
import { batchNormTraining } from '../models/batch-norm.js';
import { INTERLEAVE_KERNEL } from '../models/kernels/layer-kernels.js';
import { blockSwap, installWasmKernels, wasmKernelThreads } from '../models/kernels/wasm-kernels.js';

interface FilterCase {
  inC: number;
  outC: number;
  kernel: number;
  stride: number;
  pad: 'same' | 'valid';
  batch: number;
  h: number;
  w: number;
}

// Channel counts that reach every tile of the kernel: 4×8 and 4×4 blocks, single input
// channels (Ci mod 4) and the scalar output tail (Co mod 4).
const filterCases: FilterCase[] = [];
for (const [inC, outC] of [
  [3, 4],
  [8, 8],
  [13, 19],
  [32, 64],
  [5, 3],
] as const)
  for (const [kernel, stride, pad] of [
    [3, 1, 'same'],
    [3, 2, 'same'],
    [1, 2, 'valid'],
    [5, 3, 'valid'],
    [4, 2, 'same'],
  ] as const)
    // The widest pair only twice: its cpu reference is the slow part of this file.
    if (inC < 32 || (kernel === 3 && pad === 'same')) filterCases.push({ inC, outC, kernel, stride, pad, batch: 3, h: 11, w: 9 });
// Enough output rows (240) that the kernel streams them in three L2 slices, each adding into dw
// what the slices before it left there.
filterCases.push({ inC: 8, outC: 8, kernel: 3, stride: 1, pad: 'same', batch: 12, h: 20, w: 20 });

type FilterReference = Awaited<ReturnType<typeof computeCpuFilterGradient>>;
const cpuReferences = new Map<FilterCase, FilterReference>();

/** The cpu backend's gradient, once per case: its naive loops are the slow part of this file. */
async function cpuFilterGradient(c: FilterCase): Promise<FilterReference> {
  let ref = cpuReferences.get(c);
  if (ref === undefined) cpuReferences.set(c, (ref = await computeCpuFilterGradient(c)));
  return ref;
}

/** The cpu backend's Conv2DBackpropFilter on fixed random values. */
async function computeCpuFilterGradient(c: FilterCase) {
  await tf.setBackend('cpu');
  const x = tf.randomNormal([c.batch, c.h, c.w, c.inC], 0, 1, 'float32', 5) as tf.Tensor4D;
  const filterShape: [number, number, number, number] = [c.kernel, c.kernel, c.inC, c.outC];
  const info = tf.backend_util.computeConv2DInfo(x.shape, filterShape, c.stride, 1, c.pad);
  const dy = tf.randomNormal([c.batch, info.outHeight, info.outWidth, c.outC], 0, 1, 'float32', 6) as tf.Tensor4D;
  const dW = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, {
    strides: c.stride,
    pad: c.pad,
    dataFormat: 'NHWC',
    filterShape,
  } as unknown as tf.NamedAttrMap) as tf.Tensor;
  const out = {
    x: x.dataSync().slice(),
    dy: dy.dataSync().slice(),
    xShape: x.shape,
    dyShape: dy.shape,
    filterShape,
    dW: dW.dataSync().slice(),
  };
  tf.dispose([x, dy, dW]);
  return out;
}

describe('densestream wasm kernels', () => {
  beforeAll(async () => {
    await selectBackend('wasm', { threads: 2 });
  });

  it('were built from the kernels.c in the tree (npm run build:kernels after editing it)', () => {
    const source = readFileSync(new URL('../models/kernels/kernels.c', import.meta.url));
    expect(createHash('sha256').update(source).digest('hex')).toBe(KERNELS_SOURCE_SHA256);
  });

  it('are installed by selectBackend on the threaded build, one part per thread', () => {
    expect(wasmKernelThreads()).toBe(2);
  });

  for (const parts of [2, 1]) {
    it.each(filterCases)(
      `Conv2DBackpropFilter matches cpu in ${parts} part(s): Ci $inC, Co $outC, $kernel×$kernel stride $stride $pad, $batch×$h×$w`,
      async (c) => {
        const ref = await cpuFilterGradient(c);
        await tf.setBackend('wasm');
        await installWasmKernels(parts);
        expect(wasmKernelThreads()).toBe(parts);
        const before = tf.memory().numTensors;
        const x = tf.tensor4d(ref.x, ref.xShape);
        const dy = tf.tensor4d(ref.dy, ref.dyShape);
        const dW = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, {
          strides: c.stride,
          pad: c.pad,
          dataFormat: 'NHWC',
          filterShape: ref.filterShape,
        } as unknown as tf.NamedAttrMap) as tf.Tensor;
        expect(dW.shape).toEqual(ref.filterShape);
        expect(relativeError(dW.dataSync(), ref.dW)).toBeLessThanOrEqual(1e-5);
        tf.dispose([x, dy, dW]);
        expect(tf.memory().numTensors).toBe(before);
        await installWasmKernels(2);
      },
    );
  }

  it('lets the engine differentiate a fused convolution on wasm (it calls Conv2DBackpropFilter)', async () => {
    const loss = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) =>
      tf.sum(
        tf.square(tf.fused.conv2d({ x: x as tf.Tensor4D, filter: w as tf.Tensor4D, bias: b, strides: 2, pad: 'same', activation: 'relu' })),
      );
    const make = () => [
      tf.randomNormal([2, 10, 10, 6], 0, 1, 'float32', 7),
      tf.randomNormal([3, 3, 6, 8], 0, 1, 'float32', 8),
      tf.randomNormal([8], 0, 1, 'float32', 9),
    ];
    await tf.setBackend('cpu');
    const ref = tf
      .grads(loss)(make())
      .map((g) => g.dataSync().slice());
    await tf.setBackend('wasm');
    const got = tf.grads(loss)(make());
    got.forEach((g, i) => expect(relativeError(g.dataSync(), ref[i]!)).toBeLessThanOrEqual(1e-4));
    tf.dispose(got);
  });

  const reductions: Array<{ shape: number[]; axis: number | number[]; keepDims: boolean }> = [
    { shape: [128, 14, 14, 32], axis: [0, 1, 2], keepDims: false },
    { shape: [7, 5, 5, 13], axis: [0, 1, 2], keepDims: true },
    { shape: [300, 35], axis: 0, keepDims: false },
    { shape: [6, 4, 3], axis: [1, 0], keepDims: false },
    { shape: [6, 4, 3], axis: [-3], keepDims: true },
    { shape: [6, 4, 3], axis: [1, 2], keepDims: false }, // not leading: the engine's own kernel
    { shape: [6, 4, 3], axis: [0, 1, 2], keepDims: false }, // every axis: the engine's own kernel
  ];

  for (const op of ['sum', 'mean'] as const) {
    it.each(reductions)(`${op} over $axis of $shape (keepDims $keepDims) matches cpu`, async ({ shape, axis, keepDims }) => {
      await tf.setBackend('cpu');
      const values = tf.randomNormal(shape, 1, 2, 'float32', 10);
      const data = values.dataSync().slice();
      const ref = tf[op](values, axis, keepDims);
      const refData = ref.dataSync().slice();
      const refShape = ref.shape;
      tf.dispose([values, ref]);
      await tf.setBackend('wasm');
      const before = tf.memory().numTensors;
      const x = tf.tensor(data, shape);
      const got = tf[op](x, axis, keepDims);
      expect(got.shape).toEqual(refShape);
      expect(relativeError(got.dataSync(), refData)).toBeLessThanOrEqual(1e-5);
      tf.dispose([x, got]);
      expect(tf.memory().numTensors).toBe(before);
    });
  }

  const binaryCases: Array<{ a: number[]; b: number[] }> = [
    { a: [64, 30, 30, 32], b: [32] }, // large enough to split across threads
    { a: [1, 1, 1, 13], b: [5, 7, 3, 13] }, // the broadcast operand first, a column tail
    { a: [3, 2, 6], b: [2, 6] },
    { a: [4, 1, 1, 6], b: [4, 5, 5, 6] }, // broadcast along inner axes: the engine's own kernel
    { a: [5, 6], b: [5, 6] }, // same shape: the engine's own kernel
  ];
  for (const op of ['add', 'sub', 'mul', 'div'] as const) {
    it.each(binaryCases)(`${op} of $a and $b matches cpu`, async ({ a, b }) => {
      await tf.setBackend('cpu');
      const x = tf.randomNormal(a, 0, 1, 'float32', 13);
      const y = tf.randomUniform(b, 0.5, 2, 'float32', 14);
      const [xs, ys] = [x.dataSync().slice(), y.dataSync().slice()];
      const ref = tf[op](x, y);
      const refData = ref.dataSync().slice();
      tf.dispose([x, y, ref]);
      await tf.setBackend('wasm');
      const before = tf.memory().numTensors;
      const X = tf.tensor(xs, a);
      const Y = tf.tensor(ys, b);
      const got = tf[op](X, Y);
      expect(relativeError(got.dataSync(), refData)).toBeLessThanOrEqual(1e-6);
      tf.dispose([X, Y, got]);
      expect(tf.memory().numTensors).toBe(before);
    });
  }

  it('shares the data in Identity, and a clone outlives its source', async () => {
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const x = tf.tensor2d([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    const y = tf.clone(x);
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
    const one = tf.scalar(1);
    const z = tf.add(y, one); // reads it on the backend, not only from JS
    expect(Array.from(z.dataSync())).toEqual([2, 3, 4, 5, 6, 7]);
    tf.dispose([y, one, z]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('recognises the permutations that move one block of axes before the next', () => {
    expect(blockSwap([1, 0])).toEqual([0, 1, 2]);
    expect(blockSwap([0, 2, 1])).toEqual([1, 2, 3]);
    expect(blockSwap([0, 1, 3, 2, 4, 5])).toEqual([2, 3, 4]);
    expect(blockSwap([2, 0, 1])).toEqual([0, 2, 3]);
    expect(blockSwap([3, 1, 2, 0])).toBeUndefined();
    expect(blockSwap([1, 0, 3, 2])).toBeUndefined();
    expect(blockSwap([0, 1, 2])).toBeUndefined();
  });

  const transposes: Array<{ shape: number[]; perm: number[]; dtype: 'float32' | 'int32' }> = [
    { shape: [4096, 128], perm: [1, 0], dtype: 'float32' }, // the MoCo queue: split across threads
    { shape: [37, 19], perm: [1, 0], dtype: 'int32' }, // partial tiles
    { shape: [6, 7, 7, 2, 2, 5], perm: [0, 1, 3, 2, 4, 5], dtype: 'float32' }, // phase interleave, odd inner run
    { shape: [3, 5, 8], perm: [0, 2, 1], dtype: 'float32' },
    { shape: [3, 5, 8], perm: [2, 0, 1], dtype: 'float32' },
    { shape: [2, 3, 4, 5], perm: [3, 1, 2, 0], dtype: 'float32' }, // not a block swap: the engine's own
  ];
  it.each(transposes)('transposes $shape by $perm ($dtype) as cpu does', async ({ shape, perm, dtype }) => {
    await tf.setBackend('cpu');
    const n = shape.reduce((p, d) => p * d, 1);
    const values = Array.from({ length: n }, (_, i) => (dtype === 'int32' ? i : Math.sin(i)));
    const ref = tf.transpose(tf.tensor(values, shape, dtype), perm);
    const refData = Array.from(ref.dataSync());
    const refShape = ref.shape;
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const x = tf.tensor(values, shape, dtype);
    const got = tf.transpose(x, perm);
    expect(got.shape).toEqual(refShape);
    expect(got.dtype).toBe(dtype);
    expect(Array.from(got.dataSync())).toEqual(refData);
    tf.dispose([x, got]);
    expect(tf.memory().numTensors).toBe(before);
  });

  for (const op of ['sum', 'mean'] as const) {
    it(`differentiates a leading-axis ${op} (and an inner-axis one) as cpu does`, async () => {
      const weights = Array.from({ length: 5 * 13 }, (_, i) => Math.cos(i));
      const loss = (x: tf.Tensor) => {
        const lead = tf[op](x, [0, 1], true); // [1,1,5,13]: the kernel's gradient
        const inner = tf[op](x, 3); // [4,6,5]: the engine's own
        return tf.add(tf.sum(tf.mul(tf.reshape(lead, [5, 13]), tf.tensor(weights, [5, 13]))), tf.sum(tf.square(inner)));
      };
      const make = () => tf.randomNormal([4, 6, 5, 13], 0, 1, 'float32', 15);
      await tf.setBackend('cpu');
      const ref = tf.grad(loss)(make()).dataSync().slice();
      await tf.setBackend('wasm');
      const before = tf.memory().numTensors;
      const x = make();
      const got = tf.grad(loss)(x);
      expect(relativeError(got.dataSync(), ref)).toBeLessThanOrEqual(1e-5);
      tf.dispose([x, got]);
      expect(tf.memory().numTensors).toBe(before);
    });
  }

  it('leaves integer reductions to the engine', async () => {
    const x = tf.tensor2d(
      [
        [1, 2],
        [3, 4],
        [5, 6],
      ],
      [3, 2],
      'int32',
    );
    const s = tf.sum(x, 0);
    expect(s.dtype).toBe('int32');
    expect(Array.from(s.dataSync())).toEqual([9, 12]);
    tf.dispose([x, s]);
  });

  it('gives the batch-norm moments of a training step the engine gradient (sum and mean inside tf.grads)', async () => {
    // Σ z·r with z the per-channel standardised x and r fixed: Σ z² would be constant in x.
    const weights = Array.from({ length: 4 * 6 * 6 * 5 }, (_, i) => Math.sin(i));
    const loss = (x: tf.Tensor) => {
      const { mean, variance } = tf.moments(x, [0, 1, 2]);
      const z = tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5)));
      return tf.sum(tf.mul(z, tf.tensor(weights, x.shape)));
    };
    const make = () => tf.randomNormal([4, 6, 6, 5], 0, 1, 'float32', 12);
    await tf.setBackend('cpu');
    const ref = tf.grad(loss)(make()).dataSync().slice();
    await tf.setBackend('wasm');
    const got = tf.grad(loss)(make());
    expect(relativeError(got.dataSync(), ref)).toBeLessThanOrEqual(1e-4);
    got.dispose();
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

  it('shares the data in a Cast to the same dtype, and still converts between dtypes', async () => {
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const x = tf.tensor1d([1.5, -2, 3]);
    const same = tf.cast(x, 'float32');
    x.dispose();
    expect(Array.from(same.dataSync())).toEqual([1.5, -2, 3]);
    const ints = tf.cast(same, 'int32');
    expect(ints.dtype).toBe('int32');
    expect(Array.from(ints.dataSync())).toEqual([1, -2, 3]);
    tf.dispose([same, ints]);
    expect(tf.memory().numTensors).toBe(before);
  });

  // Every path of batch_matmul: B as is (8- and 4-wide column blocks, the scalar tail) and
  // transposed (4-deep dot products and their tail), A transposed, row blocks of 4 and the
  // rest, one side repeated over the batch; and the shapes it leaves to XNNPACK.
  const matMuls: Array<{ a: [number, number, number]; b: [number, number, number]; ta: boolean; tb: boolean }> = [
    { a: [5, 13, 17], b: [5, 17, 21], ta: false, tb: false },
    { a: [3, 64, 128], b: [3, 128, 64], ta: false, tb: false }, // HAPiCL's pixel products, on both threads
    { a: [4, 9, 3], b: [4, 3, 3], ta: false, tb: false }, // the per-view colour matrices
    { a: [5, 13, 18], b: [5, 7, 18], ta: false, tb: true },
    { a: [2, 6, 5], b: [2, 11, 5], ta: false, tb: true },
    { a: [5, 17, 13], b: [5, 17, 10], ta: true, tb: false },
    { a: [1, 13, 17], b: [6, 17, 12], ta: false, tb: false },
    { a: [6, 13, 17], b: [1, 9, 17], ta: false, tb: true },
    { a: [3, 7, 5], b: [3, 6, 7], ta: true, tb: true }, // left to the engine
    { a: [1, 30, 20], b: [1, 20, 10], ta: false, tb: false }, // one product: XNNPACK's
  ];
  it.each(matMuls)(
    'multiplies $a by $b (transposed: $ta, $tb) and differentiates it as cpu does (batches alike)',
    async ({ a, b, ta, tb }) => {
      const make = () => [tf.randomNormal(a, 0, 1, 'float32', 31), tf.randomNormal(b, 0, 1, 'float32', 32)] as [tf.Tensor3D, tf.Tensor3D];
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

  it('weaves phases as the Pack-and-Transpose form does, and differentiates the weave by strided slices', async () => {
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const [sh, sw] = [2, 3];
    const phases = Array.from({ length: sh * sw }, (_, i) => tf.randomNormal([2, 3, 4, 5], 0, 1, 'float32', 40 + i));
    const weave = (...ps: tf.Tensor[]) =>
      tf.engine().runKernel(INTERLEAVE_KERNEL, Object.fromEntries(ps.map((t, i) => [`p${i}`, t])), {
        sh,
        sw,
      } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
    const woven = weave(...phases);
    const ops = tf.tidy(() =>
      tf.reshape(tf.transpose(tf.reshape(tf.stack(phases, 3), [2, 3, 4, sh, sw, 5]), [0, 1, 3, 2, 4, 5]), [2, 3 * sh, 4 * sw, 5]),
    );
    expect(Array.from(woven.dataSync())).toEqual(Array.from(ops.dataSync()));
    const w = tf.randomNormal(woven.shape, 0, 1, 'float32', 50);
    const grads = tf.grads((...ps: tf.Tensor[]) => tf.sum(tf.mul(weave(...ps), w)))(phases);
    grads.forEach((g, i) => {
      const [a, b] = [Math.floor(i / sw), i % sw];
      const expected = tf.stridedSlice(w, [0, a, b, 0], w.shape, [1, sh, sw, 1]);
      expect(Array.from(g.dataSync())).toEqual(Array.from(expected.dataSync()));
      expected.dispose();
    });
    tf.dispose([...phases, woven, ops, w, ...grads]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
