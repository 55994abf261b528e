import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { backpropFilter, expectWasmMatchesCpu } from './helpers/kernel-calls.js';
import { relativeError } from './helpers/relative-error.js';
import { selectBackend } from '../models/backend.js';
import { KERNELS_SOURCE_SHA256 } from '../models/kernels/kernels-wasm.js';
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
  const dW = backpropFilter(x, dy, filterShape, c.pad, c.stride);
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
        const dW = backpropFilter(x, dy, ref.filterShape, c.pad, c.stride);
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
    { a: [4, 1, 1, 6], b: [4, 5, 5, 6] }, // repeated along a middle block, the repeated operand first
    { a: [64, 128], b: [64, 1] }, // L2 normalisation's per-row scale: one value a row, splatted
    { a: [64, 1], b: [64, 130] }, // the same, the row's value first, a tail of 2
    { a: [1024, 128], b: [1024, 1] }, // large enough to split across threads
    { a: [3, 4, 5, 6], b: [3, 1, 1, 6] }, // rows of 6 with a tail of 2
    { a: [2, 5, 1, 3], b: [2, 1, 1, 3] }, // an axis of 1 in both inside the repeated block
    { a: [6, 5, 7], b: [1, 5, 1] }, // repeated along two blocks: the engine's own kernel
    { a: [5, 6], b: [5, 6] }, // small and the same shape: on the calling thread
    { a: [64, 30, 30, 32], b: [64, 30, 30, 32] }, // large and the same shape: the engine's own kernel
    { a: [33], b: [] }, // a scalar second
    { a: [1025], b: [] }, // a scalar and more than SCALAR_MAX values: the engine's own kernel
    { a: [], b: [7, 5] }, // a scalar first
    { a: [1], b: [] },
    { a: [1, 1], b: [5] }, // a scalar of higher rank: the engine's own kernel
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

  it.each<{ shape: number[]; dtype: 'float32' | 'int32' }>([
    { shape: [64, 128], dtype: 'float32' }, // below PARALLEL_MIN: on the calling thread
    { shape: [64, 16, 128], dtype: 'float32' }, // above PARALLEL_MIN: XNNPACK's multiply
    { shape: [7], dtype: 'float32' },
    { shape: [0, 3], dtype: 'float32' },
    { shape: [5, 3], dtype: 'int32' }, // the engine's own Square
  ])('squares $shape ($dtype) as cpu does', async (c) => {
    const run = () =>
      tf.tidy(() => {
        const n = tf.util.sizeFromShape(c.shape);
        const x = c.dtype === 'int32' ? tf.range(-7, n - 7, 1, 'int32').reshape(c.shape) : tf.randomNormal(c.shape, 0, 3, 'float32', 8);
        const out = tf.square(x);
        return { shape: out.shape, dtype: out.dtype, values: Array.from(out.dataSync()) };
      });
    await expectWasmMatchesCpu(run);
  });

  const gatherCases: Array<{ x: number[]; dtype: 'float32' | 'int32'; indices: number[]; indexShape: number[]; axis: number }> = [
    { x: [1024, 128], dtype: 'float32', indices: Array.from({ length: 1024 }, (_, i) => (i * 37) % 1024), indexShape: [1024], axis: 0 },
    { x: [3, 5, 4], dtype: 'float32', indices: [4, 0, 0, 2, 3, 1], indexShape: [2, 3], axis: 1 },
    { x: [3, 5, 4], dtype: 'int32', indices: [3, 3, 0], indexShape: [3], axis: -1 },
    { x: [6, 2], dtype: 'float32', indices: [], indexShape: [0], axis: 0 },
  ];
  it.each(gatherCases)('gathers $x ($dtype) along axis $axis by $indexShape indices as cpu does', async (c) => {
    const run = () =>
      tf.tidy(() => {
        const x =
          c.dtype === 'int32' ? tf.range(0, tf.util.sizeFromShape(c.x), 1, 'int32').reshape(c.x) : tf.randomNormal(c.x, 0, 1, 'float32', 3);
        const out = tf.gather(x, tf.tensor(c.indices, c.indexShape, 'int32'), c.axis);
        return { shape: out.shape, values: Array.from(out.dataSync()) };
      });
    await expectWasmMatchesCpu(run);
  });

  const sliceCases: Array<{ x: number[]; dtype: 'float32' | 'int32'; begin: number[]; size: number[] }> = [
    { x: [1024, 1025], dtype: 'float32', begin: [0, 1], size: [-1, 1024] }, // InfoNCE's negatives
    { x: [16, 8, 8, 12], dtype: 'float32', begin: [0, 1, 1, 0], size: [-1, 7, 7, -1] },
    { x: [6, 5, 4], dtype: 'int32', begin: [2, 0, 1], size: [3, 5, 2] },
    { x: [6, 5, 4], dtype: 'float32', begin: [1, 0, 0], size: [4, -1, -1] }, // contiguous
    { x: [9], dtype: 'float32', begin: [3], size: [4] },
    { x: [4, 3], dtype: 'float32', begin: [1, 1], size: [0, 2] },
  ];
  it.each(sliceCases)('slices $x ($dtype) at $begin, size $size as cpu does', async (c) => {
    const run = () =>
      tf.tidy(() => {
        const n = tf.util.sizeFromShape(c.x);
        const x = tf.range(0, n, 1, c.dtype).reshape(c.x);
        const out = tf.slice(x, c.begin, c.size);
        return { shape: out.shape, values: Array.from(out.dataSync()) };
      });
    await expectWasmMatchesCpu(run);
  });

  it.each([
    { x: [1024, 1025], sizes: [1, 1024], axis: 1 }, // the gradient of InfoNCE's concat
    { x: [7, 3, 2], sizes: [2, 4, 1], axis: 0 },
    { x: [3, 10], sizes: [5, 5], axis: -1 },
  ])('splits $x into $sizes along axis $axis as cpu does', async (c) => {
    const run = () =>
      tf.tidy(() => {
        const x = tf.randomNormal(c.x, 0, 1, 'float32', 4);
        return tf.split(x, c.sizes, c.axis).map((t) => ({ shape: t.shape, values: Array.from(t.dataSync()) }));
      });
    await expectWasmMatchesCpu(run);
  });

  it('leaves a gather with an index out of range to the engine, which refuses it', async () => {
    await tf.setBackend('wasm');
    const x = tf.ones([4, 3]);
    const bad = tf.tensor1d([1, 4], 'int32');
    expect(() => tf.gather(x, bad).dataSync()).toThrow(/4/);
    tf.dispose([x, bad]);
  });

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
});
