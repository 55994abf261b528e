import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { backpropFilter } from './helpers/kernel-calls.js';
import { relativeError } from './helpers/relative-error.js';
import { selectBackend } from '../models/backend.js';
import { installWasmKernels, wasmKernelThreads } from '../models/kernels/wasm-kernels.js';
import { winogradBlock, winogradEnabled, winogradGeometry } from '../models/kernels/winograd.js';

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

interface Case {
  name: string;
  x: [number, number, number, number];
  outC: number;
  pad: Pad;
}

// Each reaches a different edge of the kernel: outputs of odd height and width (a tile's
// second row or column dropped), no padding, asymmetric explicit padding, a block whose last
// tiles are not a multiple of 4 (5×5 → 9 tiles an image), the 4-wide output tail (Co mod 8),
// 128 channels (blocks of 16 tiles) and enough work to split across threads. F(4×4)
// takes the maps it tiles with fewer products (7×9, 11×7, 4×4, 12×12) and F(2×2) the others (6×6,
// 5×5); each case runs under F(2×2) alone as well.
const cases: Case[] = [
  { name: 'odd output 7×9, Co mod 8 = 4', x: [2, 7, 9, 8], outC: 12, pad: 'same' },
  { name: 'valid', x: [3, 8, 8, 4], outC: 4, pad: 'valid' },
  { name: '9 tiles an image, 45 in all', x: [5, 5, 5, 4], outC: 8, pad: 'same' },
  {
    name: 'explicit pads 2/0 and 1/2',
    x: [3, 11, 6, 12],
    outC: 20,
    pad: [
      [0, 0],
      [2, 0],
      [1, 2],
      [0, 0],
    ],
  },
  { name: '128 channels', x: [2, 4, 4, 128], outC: 128, pad: 'same' },
  { name: 'split across threads', x: [8, 12, 12, 32], outC: 32, pad: 'same' },
];

function attrs(pad: Pad): tf.Conv2DAttrs {
  return { strides: 1, pad, dataFormat: 'NHWC', dilations: 1 } as tf.Conv2DAttrs;
}

interface Reference {
  x: Float32Array;
  filter: Float32Array;
  dy: Float32Array;
  y: Float32Array;
  dW: Float32Array;
  yShape: number[];
}

const references = new Map<Case, Reference>();

/** The cpu backend's convolution and filter gradient on fixed random values, once per case (cpu's loops are slow). */
async function reference(c: Case): Promise<Reference> {
  let ref = references.get(c);
  if (ref === undefined) references.set(c, (ref = await computeReference(c)));
  return ref;
}

async function computeReference(c: Case): Promise<Reference> {
  await tf.setBackend('cpu');
  return tf.tidy(() => {
    const x = tf.randomNormal(c.x, 0, 1, 'float32', 1) as tf.Tensor4D;
    const filter = tf.randomNormal([3, 3, c.x[3], c.outC], 0, 1, 'float32', 2) as tf.Tensor4D;
    const y = tf.conv2d(x, filter, 1, c.pad);
    const dy = tf.randomNormal(y.shape, 0, 1, 'float32', 3);
    const dW = backpropFilter(x, dy, filter.shape, c.pad);
    return {
      x: x.dataSync() as Float32Array,
      filter: filter.dataSync() as Float32Array,
      dy: dy.dataSync() as Float32Array,
      y: y.dataSync() as Float32Array,
      dW: dW.dataSync() as Float32Array,
      yShape: y.shape,
    };
  });
}

describe('Winograd F(2×2, 3×3) and F(4×4, 3×3) convolutions on wasm', () => {
  beforeAll(async () => {
    await selectBackend('wasm', { threads: 2 });
  });

  it('takes 3×3 stride-1 convolutions with channels in fours, and leaves every other to the direct kernels', () => {
    expect(winogradGeometry([8, 14, 14, 32], [3, 3, 32, 64], attrs('same'))).toBeDefined();
    expect(winogradGeometry([8, 14, 14, 32], [3, 3, 32, 64], attrs('valid'))).toBeDefined();
    expect(winogradGeometry([8, 28, 28, 3], [3, 3, 3, 32], attrs('same'))).toBeUndefined(); // Ci = 3
    expect(winogradGeometry([8, 14, 14, 32], [3, 3, 32, 6], attrs('same'))).toBeUndefined(); // Co = 6
    expect(winogradGeometry([8, 14, 14, 32], [3, 3, 32, 64], { ...attrs('same'), strides: 2 })).toBeUndefined();
    expect(winogradGeometry([8, 14, 14, 32], [3, 3, 32, 64], { ...attrs('same'), dilations: 2 })).toBeUndefined();
    expect(winogradGeometry([8, 14, 14, 32], [5, 5, 32, 64], attrs('same'))).toBeUndefined();
    expect(winogradGeometry([8, 14, 14, 32], [1, 1, 32, 64], attrs('same'))).toBeUndefined();
    expect(winogradGeometry([8, 32, 14, 14], [3, 3, 32, 64], { ...attrs('same'), dataFormat: 'NCHW' })).toBeUndefined();
  });

  it('sizes a block of tiles to 256 KiB of scratch, in fours from 4 to 64', () => {
    expect(winogradBlock(32, 32)).toBe(64);
    expect(winogradBlock(64, 64)).toBe(32);
    expect(winogradBlock(128, 128)).toBe(16);
    expect(winogradBlock(512, 1024)).toBe(4);
  });

  for (const [parts, f2] of [
    [2, false],
    [1, false],
    [2, true],
  ] as const) {
    const label = `in ${parts} part(s)${f2 ? ', F(2×2) only' : ''}`;
    it.each(cases)(`gives the cpu backend's convolution and filter gradient ${label}: $name`, async (c) => {
      const ref = await reference(c);
      await tf.setBackend('wasm');
      await installWasmKernels(parts);
      if (f2) process.env['DENSESTREAM_WINOGRAD'] = '2';
      expect(wasmKernelThreads()).toBe(parts);
      const before = tf.memory().numTensors;
      const x = tf.tensor4d(ref.x, c.x);
      const filter = tf.tensor4d(ref.filter, [3, 3, c.x[3], c.outC]);
      const dy = tf.tensor(ref.dy, ref.yShape);
      const y = tf.conv2d(x, filter, 1, c.pad);
      const dW = backpropFilter(x, dy, filter.shape, c.pad);
      delete process.env['DENSESTREAM_WINOGRAD'];
      expect(y.shape).toEqual(ref.yShape);
      // F(2×2)'s transforms add and halve: its rounding is the direct sum's, well inside 1e-5.
      // F(4×4)'s multiply by up to 8 and divide by 24: 3–9e-6 on ResNet-like layers (measured).
      expect(relativeError(y.dataSync(), ref.y)).toBeLessThanOrEqual(f2 ? 1e-5 : 2e-5);
      expect(relativeError(dW.dataSync(), ref.dW)).toBeLessThanOrEqual(f2 ? 1e-5 : 2e-5);
      tf.dispose([x, filter, dy, y, dW]);
      expect(tf.memory().numTensors).toBe(before);
      await installWasmKernels(2);
    });
  }

  it('takes F(4×4) where it needs fewer products, F(2×2) for maps 1–2 pixels across or under DENSESTREAM_WINOGRAD=2', async () => {
    await tf.setBackend('wasm');
    const conv = (shape: [number, number, number, number], mode?: string) => {
      if (mode) process.env['DENSESTREAM_WINOGRAD'] = mode;
      try {
        return tf.tidy(() =>
          Array.from(
            tf
              .conv2d(
                tf.randomNormal(shape, 0, 1, 'float32', 5) as tf.Tensor4D,
                tf.randomNormal([3, 3, shape[3], 8], 0, 1, 'float32', 6) as tf.Tensor4D,
                1,
                'same',
              )
              .dataSync(),
          ),
        );
      } finally {
        delete process.env['DENSESTREAM_WINOGRAD'];
      }
    };
    // Different transforms round differently: bitwise equality says which one ran.
    expect(conv([2, 8, 8, 8])).not.toEqual(conv([2, 8, 8, 8], '2'));
    expect(conv([2, 6, 6, 8])).toEqual(conv([2, 6, 6, 8], '2')); // 4 tiles of 36 against 9 of 16: a tie stays F(2×2)
    expect(conv([2, 2, 2, 8])).toEqual(conv([2, 2, 2, 8], '2'));
    expect(conv([2, 1, 9, 8])).toEqual(conv([2, 1, 9, 8], '2'));
    expect(winogradBlock(128, 128, 36)).toBe(16); // at least 16 tiles: every item reads all of U
    expect(winogradBlock(16, 16, 36)).toBe(56);
  });

  it('differentiates a 3×3 layer as cpu does: the input gradient runs through it too', async () => {
    const loss = (x: tf.Tensor, w: tf.Tensor) => tf.sum(tf.square(tf.relu(tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'))));
    const make = () => [tf.randomNormal([4, 9, 10, 8], 0, 1, 'float32', 7), tf.randomNormal([3, 3, 8, 16], 0, 1, 'float32', 8)];
    await tf.setBackend('cpu');
    const ref = tf.tidy(() =>
      tf
        .grads(loss)(make())
        .map((g) => g.dataSync().slice()),
    );
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const got = tf.tidy(() =>
      tf
        .grads(loss)(make())
        .map((g) => g.dataSync().slice()),
    );
    got.forEach((g, i) => expect(relativeError(g, ref[i]!)).toBeLessThanOrEqual(1e-5));
    expect(tf.memory().numTensors).toBe(before);
  });

  it('steps aside under DENSESTREAM_WINOGRAD=0, and the direct kernels give the same convolution', async () => {
    const c = cases[0]!;
    const ref = await reference(c);
    await tf.setBackend('wasm');
    const run = () =>
      tf.tidy(() => tf.conv2d(tf.tensor4d(ref.x, c.x), tf.tensor4d(ref.filter, [3, 3, c.x[3], c.outC]), 1, c.pad).dataSync());
    const winograd = run();
    process.env['DENSESTREAM_WINOGRAD'] = '0';
    try {
      expect(winogradEnabled()).toBe(false);
      const direct = run();
      expect(relativeError(direct, ref.y)).toBeLessThanOrEqual(1e-5);
      // Different summation orders: equal within rounding, not bit for bit.
      expect(Array.from(direct)).not.toEqual(Array.from(winograd));
    } finally {
      delete process.env['DENSESTREAM_WINOGRAD'];
    }
    expect(winogradEnabled()).toBe(true);
  });

  it('repeats a filter gradient bit for bit, however the threads meet the work (an exact resume depends on it)', async () => {
    await tf.setBackend('wasm');
    expect(wasmKernelThreads()).toBe(2);
    const x = tf.randomNormal([16, 14, 14, 32], 0, 1, 'float32', 11);
    const dy = tf.randomNormal([16, 14, 14, 32], 0, 1e-3, 'float32', 12);
    const gradient = () => tf.tidy(() => Array.from(backpropFilter(x, dy, [3, 3, 32, 32], 'same').dataSync()));
    const first = gradient();
    for (let i = 0; i < 8; i++) expect(gradient()).toEqual(first);
    tf.dispose([x, dy]);
  });
});
