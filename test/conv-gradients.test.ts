import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { relativeError } from './helpers/relative-error.js';
import { selectBackend } from '../models/backend.js';
import {
  conv2dFilterGradient,
  conv2dInputGradient,
  convGeometry,
  depthwiseConv2dFilterGradient,
  depthwiseConv2dInputGradient,
  type Conv2DAttrs,
} from '../models/conv-gradients.js';

/**
 * `tf.grads(loss)` at the same input values on cpu (the engine's own gradients: the
 * reference) and on wasm (ours). `inputs` makes the tensors; constants belong inside `loss`.
 */
async function gradsOnCpuAndWasm(loss: (...xs: tf.Tensor[]) => tf.Tensor, inputs: () => tf.Tensor[]) {
  await tf.setBackend('cpu');
  const xs = inputs();
  const ref = tf
    .grads(loss)(xs)
    .map((g) => g.dataSync().slice());
  const values = xs.map((x) => ({ data: x.dataSync().slice(), shape: x.shape }));
  await tf.setBackend('wasm');
  const got = tf.grads(loss)(values.map((v) => tf.tensor(v.data, v.shape)));
  return { ref, got };
}

interface Case {
  stride: number;
  pad: 'same' | 'valid';
  kernel: number;
  height: number;
  width: number;
  batch: number;
}

const cases: Case[] = [];
for (const stride of [1, 2, 3])
  for (const pad of ['same', 'valid'] as const)
    for (const kernel of [1, 3, 5, 7])
      for (const [height, width] of [
        [9, 9],
        [12, 10],
      ] as const)
        for (const batch of [1, 5])
          if (pad === 'same' || kernel <= Math.min(height, width)) cases.push({ stride, pad, kernel, height, width, batch });

/** The cpu backend's own Conv2DBackpropInput / Conv2DBackpropFilter kernels. */
async function referenceGradients(c: Case, inC: number, outC: number) {
  await tf.setBackend('cpu');
  const x = tf.randomNormal([c.batch, c.height, c.width, inC], 0, 1, 'float32', 11) as tf.Tensor4D;
  const filter = tf.randomNormal([c.kernel, c.kernel, inC, outC], 0, 1, 'float32', 12) as tf.Tensor4D;
  const attrs: Conv2DAttrs = { strides: c.stride, pad: c.pad, dataFormat: 'NHWC', dilations: 1 };
  const g = convGeometry(x.shape, filter.shape, attrs);
  const dy = tf.randomNormal([c.batch, g.outHeight, g.outWidth, outC], 0, 1, 'float32', 13) as tf.Tensor4D;
  const common = { strides: c.stride, pad: c.pad, dataFormat: 'NHWC' };
  const dx = tf
    .engine()
    .runKernel('Conv2DBackpropInput', { dy, filter }, { ...common, inputShape: x.shape } as unknown as tf.NamedAttrMap) as tf.Tensor;
  const dW = tf
    .engine()
    .runKernel('Conv2DBackpropFilter', { x, dy }, { ...common, filterShape: filter.shape } as unknown as tf.NamedAttrMap) as tf.Tensor;
  const out = {
    g,
    x: x.dataSync().slice(),
    filter: filter.dataSync().slice(),
    dy: dy.dataSync().slice(),
    shapes: { x: x.shape, filter: filter.shape, dy: dy.shape },
    dx: dx.dataSync().slice(),
    dW: dW.dataSync().slice(),
  };
  tf.dispose([x, filter, dy, dx, dW]);
  return out;
}

describe('Conv2D gradients from forward convolutions', () => {
  beforeAll(async () => {
    await selectBackend('wasm', { threads: 2 });
  });

  it.each(cases)('matches the cpu kernels for stride $stride, $pad padding, $kernel×$kernel, $height×$width, batch $batch', async (c) => {
    const ref = await referenceGradients(c, 3, 4);
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const x = tf.tensor4d(ref.x, ref.shapes.x);
    const filter = tf.tensor4d(ref.filter, ref.shapes.filter);
    const dy = tf.tensor4d(ref.dy, ref.shapes.dy);
    const dx = conv2dInputGradient(dy, filter, ref.g);
    const dW = conv2dFilterGradient(x, dy, ref.g);
    expect(dx.shape).toEqual(ref.shapes.x);
    expect(dW.shape).toEqual(ref.shapes.filter);
    expect(relativeError(dx.dataSync(), ref.dx)).toBeLessThanOrEqual(1e-4);
    expect(relativeError(dW.dataSync(), ref.dW)).toBeLessThanOrEqual(1e-4);
    tf.dispose([x, filter, dy, dx, dW]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('matches a zero-dilated filter on cpu for a dilated 3×3 convolution (dilation 2)', async () => {
    // tfjs has no gradient for dilated conv2d; a 3×3 filter at dilation 2 is a 5×5 filter
    // with zeros between taps, whose gradient the cpu kernels do have.
    await tf.setBackend('cpu');
    const x = tf.randomNormal([2, 11, 9, 3], 0, 1, 'float32', 21) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, 3, 4], 0, 1, 'float32', 22) as tf.Tensor4D;
    const wide = tf.buffer([5, 5, 3, 4]);
    const wv = w.bufferSync();
    for (let p = 0; p < 3; p++)
      for (let q = 0; q < 3; q++) for (let c = 0; c < 3; c++) for (let o = 0; o < 4; o++) wide.set(wv.get(p, q, c, o), 2 * p, 2 * q, c, o);
    const sq = (a: tf.Tensor, b: tf.Tensor, d: number) =>
      tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same', 'NHWC', d)));
    const [rx, rwWide] = tf.grads((a: tf.Tensor, b: tf.Tensor) => sq(a, b, 1))([x, wide.toTensor() as tf.Tensor4D]);
    const rw = tf.stridedSlice(rwWide!, [0, 0, 0, 0], [5, 5, 3, 4], [2, 2, 1, 1]).dataSync().slice();
    const rxv = rx!.dataSync().slice();
    const xs = x.dataSync().slice();
    const ws = w.dataSync().slice();
    await tf.setBackend('wasm');
    const [gx, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => sq(a, b, 2))([tf.tensor4d(xs, x.shape), tf.tensor4d(ws, w.shape)]);
    expect(relativeError(gx!.dataSync(), rxv)).toBeLessThanOrEqual(1e-4);
    expect(relativeError(gw!.dataSync(), rw)).toBeLessThanOrEqual(1e-4);
  });

  it('replaces the engine gradient on wasm, so tf.grads of conv2d works there and agrees with cpu', async () => {
    const loss = (x: tf.Tensor, w: tf.Tensor) => tf.sum(tf.relu(tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, 'same')));
    const { ref, got } = await gradsOnCpuAndWasm(loss, () => [
      tf.randomNormal([3, 16, 16, 5], 0, 1, 'float32', 31),
      tf.randomNormal([3, 3, 5, 8], 0, 1, 'float32', 32),
    ]);
    expect(relativeError(got[0]!.dataSync(), ref[0]!)).toBeLessThanOrEqual(1e-4);
    expect(relativeError(got[1]!.dataSync(), ref[1]!)).toBeLessThanOrEqual(1e-4);
  });

  it('gives wasm the gradients of pooling, resize and batch norm (the encoders use them)', async () => {
    const loss = (x: tf.Tensor, scale: tf.Tensor) => {
      // An explicit offset: tfjs's batchNorm gradient fails when offset is undefined.
      const { mean, variance } = tf.moments(x, [0, 1, 2]);
      const normed = tf.batchNorm(x as tf.Tensor4D, mean, variance, tf.zerosLike(scale), scale, 1e-5) as tf.Tensor4D;
      const pooled = tf.add(tf.maxPool(normed, 3, 2, 'same'), tf.avgPool(normed, 3, 2, 'same')) as tf.Tensor4D;
      return tf.sum(tf.square(tf.image.resizeBilinear(pooled, [13, 13])));
    };
    const { ref, got } = await gradsOnCpuAndWasm(loss, () => [
      tf.randomNormal([2, 10, 10, 4], 0, 1, 'float32', 41),
      tf.randomUniform([4], 0.5, 1.5, 'float32', 42),
    ]);
    expect(relativeError(got[0]!.dataSync(), ref[0]!)).toBeLessThanOrEqual(1e-4);
    expect(relativeError(got[1]!.dataSync(), ref[1]!)).toBeLessThanOrEqual(1e-4);
  });

  const depthwiseCases = [1, 2, 3].flatMap((stride) =>
    (['same', 'valid'] as const).flatMap((pad) =>
      [3, 5].flatMap((kernel) => [1, 2].map((multiplier) => ({ stride, pad, kernel, multiplier }))),
    ),
  );

  it.each(depthwiseCases)(
    'matches the cpu depthwise kernels for stride $stride, $pad padding, $kernel×$kernel, multiplier $multiplier',
    async ({ stride, pad, kernel, multiplier }) => {
      await tf.setBackend('cpu');
      const x = tf.randomNormal([3, 11, 10, 4], 0, 1, 'float32', 51) as tf.Tensor4D;
      const filter = tf.randomNormal([kernel, kernel, 4, multiplier], 0, 1, 'float32', 52) as tf.Tensor4D;
      const g = convGeometry(x.shape, filter.shape, { strides: stride, pad, dataFormat: 'NHWC', dilations: 1 });
      const dy = tf.randomNormal([3, g.outHeight, g.outWidth, 4 * multiplier], 0, 1, 'float32', 53) as tf.Tensor4D;
      const common = { strides: stride, pad, dilations: 1 };
      const refX = (
        tf.engine().runKernel('DepthwiseConv2dNativeBackpropInput', { dy, filter }, {
          ...common,
          inputShape: x.shape,
        } as unknown as tf.NamedAttrMap) as tf.Tensor
      )
        .dataSync()
        .slice();
      const refW = (
        tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, {
          ...common,
          filterShape: filter.shape,
        } as unknown as tf.NamedAttrMap) as tf.Tensor
      )
        .dataSync()
        .slice();
      const [xs, ws, dys] = [x, filter, dy].map((t) => t.dataSync().slice());
      await tf.setBackend('wasm');
      const before = tf.memory().numTensors;
      const X = tf.tensor4d(xs!, x.shape);
      const W = tf.tensor4d(ws!, filter.shape);
      const DY = tf.tensor4d(dys!, dy.shape);
      const dx = depthwiseConv2dInputGradient(DY, W, g);
      const dW = depthwiseConv2dFilterGradient(X, DY, W.shape, g);
      expect(relativeError(dx.dataSync(), refX)).toBeLessThanOrEqual(1e-4);
      expect(relativeError(dW.dataSync(), refW)).toBeLessThanOrEqual(1e-4);
      tf.dispose([X, W, DY, dx, dW]);
      expect(tf.memory().numTensors).toBe(before);
    },
  );

  it('lets tf.grads differentiate a depthwise convolution on wasm, agreeing with cpu', async () => {
    const loss = (x: tf.Tensor, w: tf.Tensor) => tf.sum(tf.square(tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, 'same')));
    const { ref, got } = await gradsOnCpuAndWasm(loss, () => [
      tf.randomNormal([2, 12, 12, 6], 0, 1, 'float32', 61),
      tf.randomNormal([3, 3, 6, 1], 0, 1, 'float32', 62),
    ]);
    expect(relativeError(got[0]!.dataSync(), ref[0]!)).toBeLessThanOrEqual(1e-4);
    expect(relativeError(got[1]!.dataSync(), ref[1]!)).toBeLessThanOrEqual(1e-4);
  });

  interface OddCase {
    name: string;
    x: [number, number, number, number];
    filter: [number, number, number, number];
    strides: [number, number];
    pad: Conv2DAttrs['pad'];
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
  }
  const oddCases: OddCase[] = [
    {
      name: 'explicit padding wider than the stride (only padding is read)',
      x: [1, 1, 1, 1],
      filter: [1, 1, 1, 1],
      strides: [3, 1],
      pad: [
        [0, 0],
        [2, 0],
        [0, 0],
        [0, 0],
      ],
    },
    {
      name: 'explicit padding of 4 columns at stride 3',
      x: [1, 1, 1, 1],
      filter: [1, 3, 1, 1],
      strides: [1, 3],
      pad: [
        [0, 0],
        [0, 0],
        [4, 0],
        [0, 0],
      ],
    },
    { name: 'non-square stride [1, 2] with an even 4×4 kernel', x: [2, 9, 10, 3], filter: [4, 4, 3, 2], strides: [1, 2], pad: 'same' },
    { name: 'non-square stride [3, 2], 2×5 kernel, valid', x: [2, 11, 12, 2], filter: [2, 5, 2, 3], strides: [3, 2], pad: 'valid' },
    ...(['floor', 'round', 'ceil'] as const).map((mode) => ({
      name: `numeric pad 1, stride 2, 3×3, rounding ${mode}`,
      x: [2, 10, 9, 2] as OddCase['x'],
      filter: [3, 3, 2, 3] as OddCase['filter'],
      strides: [2, 2] as [number, number],
      pad: 1,
      dimRoundingMode: mode,
    })),
  ];

  it.each(oddCases)('matches the cpu kernels ($name), conv and depthwise', async (c) => {
    for (const depthwise of [false, true]) {
      await tf.setBackend('cpu');
      const filterShape: [number, number, number, number] = depthwise ? [c.filter[0], c.filter[1], c.x[3], 1] : c.filter;
      const x = tf.randomNormal(c.x, 0, 1, 'float32', 71) as tf.Tensor4D;
      const filter = tf.randomNormal(filterShape, 0, 1, 'float32', 72) as tf.Tensor4D;
      const g = convGeometry(x.shape, filter.shape, {
        strides: c.strides,
        pad: c.pad,
        dataFormat: 'NHWC',
        dilations: 1,
        dimRoundingMode: c.dimRoundingMode,
      });
      const outC = depthwise ? c.x[3] : c.filter[3];
      const dy = tf.randomNormal([c.x[0], g.outHeight, g.outWidth, outC], 0, 1, 'float32', 73) as tf.Tensor4D;
      const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', dilations: 1, dimRoundingMode: c.dimRoundingMode };
      const kernel = depthwise ? 'DepthwiseConv2dNative' : 'Conv2D';
      const refX = (
        tf
          .engine()
          .runKernel(`${kernel}BackpropInput`, { dy, filter }, { ...attrs, inputShape: x.shape } as unknown as tf.NamedAttrMap) as tf.Tensor
      )
        .dataSync()
        .slice();
      const refW = (
        tf.engine().runKernel(`${kernel}BackpropFilter`, { x, dy }, {
          ...attrs,
          filterShape: filter.shape,
        } as unknown as tf.NamedAttrMap) as tf.Tensor
      )
        .dataSync()
        .slice();
      const [xs, ws, dys] = [x, filter, dy].map((t) => t.dataSync().slice());
      await tf.setBackend('wasm');
      const X = tf.tensor4d(xs!, x.shape);
      const W = tf.tensor4d(ws!, filter.shape);
      const DY = tf.tensor4d(dys!, dy.shape);
      const dx = depthwise ? depthwiseConv2dInputGradient(DY, W, g) : conv2dInputGradient(DY, W, g);
      const dW = depthwise ? depthwiseConv2dFilterGradient(X, DY, filterShape, g) : conv2dFilterGradient(X, DY, g);
      expect(dx.shape, `dx ${kernel}`).toEqual(x.shape);
      expect(dW.shape, `dW ${kernel}`).toEqual(filter.shape);
      expect(relativeError(dx.dataSync(), refX), `dx ${kernel}`).toBeLessThanOrEqual(1e-4);
      expect(relativeError(dW.dataSync(), refW), `dW ${kernel}`).toBeLessThanOrEqual(1e-4);
      tf.dispose([X, W, DY, dx, dW]);
    }
  });
});

describe('BatchMatMul gradient with explicit transposes (wasm)', () => {
  it.each([
    [false, false],
    [false, true],
    [true, false],
    [true, true],
  ])('matches the cpu gradient for transposeA=%s, transposeB=%s, rank 2 and rank 3', async (ta, tb) => {
    for (const batch of [[], [3]]) {
      const aShape = [...batch, ...(ta ? [5, 4] : [4, 5])];
      const bShape = [...batch, ...(tb ? [6, 5] : [5, 6])];
      // The weights are seeded, so each backend makes the same ones inside the loss.
      const f = (x: tf.Tensor, y: tf.Tensor) =>
        tf.sum(tf.mul(tf.matMul(x as tf.Tensor3D, y as tf.Tensor3D, ta, tb), tf.randomNormal([...batch, 4, 6], 0, 1, 'float32', 83)));
      const { ref, got } = await gradsOnCpuAndWasm(f, () => [
        tf.randomNormal(aShape, 0, 1, 'float32', 81),
        tf.randomNormal(bShape, 0, 1, 'float32', 82),
      ]);
      expect(got[0]!.shape).toEqual(aShape);
      expect(got[1]!.shape).toEqual(bShape);
      expect(relativeError(got[0]!.dataSync(), ref[0]!)).toBeLessThanOrEqual(1e-4);
      expect(relativeError(got[1]!.dataSync(), ref[1]!)).toBeLessThanOrEqual(1e-4);
    }
  });
});
