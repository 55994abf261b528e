import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { relativeError } from './helpers/relative-error.js';
import { selectBackend } from '../models/backend.js';
import { currentInstall } from '../models/kernels/kernel-registry.js';

/**
 * The direct convolution (kernels.c `conv2d_direct`), which takes wasm's Conv2D where Winograd
 * does not, against the cpu backend's Conv2D at the same values.
 */
interface Case {
  batch: number;
  height: number;
  width: number;
  inC: number;
  outC: number;
  kh: number;
  kw: number;
  stride: number | [number, number];
  pad: 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
  dilation: number;
}

const base: Omit<Case, 'kh' | 'kw' | 'stride' | 'pad' | 'dilation'> = { batch: 3, height: 9, width: 7, inC: 5, outC: 12 };
const cases: Case[] = [
  // the slim ResNet's: a strided 3×3 (a pair whose first, then second, pixel alone has a tap inside), the stem's 3 channels, a strided 1×1
  { ...base, kh: 3, kw: 3, stride: 2, pad: 'same', dilation: 1 },
  { ...base, inC: 3, outC: 32, kh: 3, kw: 3, stride: 2, pad: 'same', dilation: 1 },
  { ...base, inC: 8, outC: 20, kh: 1, kw: 1, stride: 2, pad: 'same', dilation: 1 },
  // a strided input gradient's phases: 2×2, 1×2 and 2×1 at stride 1, no padding
  { ...base, inC: 16, outC: 8, kh: 2, kw: 2, stride: 1, pad: 'valid', dilation: 1 },
  { ...base, inC: 16, outC: 8, kh: 1, kw: 2, stride: 1, pad: 'valid', dilation: 1 },
  { ...base, inC: 16, outC: 8, kh: 2, kw: 1, stride: 1, pad: 'valid', dilation: 1 },
  // every channel tail (16 + 8 + 4), odd input channels, a wide filter, uneven strides, dilation, explicit padding
  { ...base, inC: 7, outC: 28, kh: 5, kw: 3, stride: [2, 3], pad: 'same', dilation: 1 },
  { ...base, outC: 4, kh: 3, kw: 3, stride: 1, pad: 'same', dilation: 2 },
  {
    ...base,
    outC: 16,
    kh: 3,
    kw: 2,
    stride: 2,
    pad: [
      [0, 0],
      [2, 1],
      [0, 3],
      [0, 0],
    ],
    dilation: 1,
  },
  // a pixel alone at the end of its work item and of the output
  { ...base, batch: 1, height: 1, width: 1, outC: 8, kh: 3, kw: 3, stride: 2, pad: 'same', dilation: 1 },
  { ...base, height: 9, width: 9, kh: 3, kw: 3, stride: 2, pad: 'same', dilation: 1 },
  // enough output (4·16·16·64 values) for both threads to claim work items from the shared counter
  { ...base, batch: 4, height: 32, width: 32, inC: 16, outC: 64, kh: 3, kw: 3, stride: 2, pad: 'same', dilation: 1 },
];

async function reference(c: Case) {
  await tf.setBackend('cpu');
  const x = tf.randomNormal([c.batch, c.height, c.width, c.inC], 0, 1, 'float32', 41) as tf.Tensor4D;
  const w = tf.randomNormal([c.kh, c.kw, c.inC, c.outC], 0, 1, 'float32', 42) as tf.Tensor4D;
  const y = tf.conv2d(x, w, c.stride, c.pad, 'NHWC', c.dilation);
  const out = { x: x.dataSync().slice(), w: w.dataSync().slice(), y: y.dataSync().slice(), shape: y.shape };
  tf.dispose([x, w, y]);
  return out;
}

describe('the direct convolution on wasm', () => {
  beforeAll(async () => {
    await selectBackend('wasm', { threads: 2 });
  });
  afterEach(() => {
    delete process.env['DENSESTREAM_DIRECT_CONV'];
  });

  it.each(cases)(
    'matches the cpu Conv2D: $kh×$kw, stride $stride, pad $pad, dilation $dilation, $inC → $outC channels, batch $batch of $height×$width',
    async (c) => {
      const ref = await reference(c);
      await tf.setBackend('wasm');
      const before = tf.memory().numTensors;
      const x = tf.tensor4d(ref.x, [c.batch, c.height, c.width, c.inC]);
      const w = tf.tensor4d(ref.w, [c.kh, c.kw, c.inC, c.outC]);
      // the kernel itself runs, not XNNPACK in its place
      const run = vi.spyOn(currentInstall()!.pool, 'run');
      const y = tf.conv2d(x, w, c.stride, c.pad, 'NHWC', c.dilation);
      expect(run.mock.calls.map(([name]) => name)).toContain('conv2d_direct');
      run.mockRestore();
      expect(y.shape).toEqual(ref.shape);
      expect(relativeError(y.dataSync(), ref.y)).toBeLessThanOrEqual(1e-5);
      tf.dispose([x, w, y]);
      expect(tf.memory().numTensors).toBe(before);
    },
  );

  it('is what wasm runs: DENSESTREAM_DIRECT_CONV=0 hands the same convolution to XNNPACK, which agrees', async () => {
    await tf.setBackend('wasm');
    const x = tf.randomNormal([4, 14, 14, 32], 0, 1, 'float32', 43) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, 32, 64], 0, 0.2, 'float32', 44) as tf.Tensor4D;
    const ours = tf.conv2d(x, w, 2, 'same');
    process.env['DENSESTREAM_DIRECT_CONV'] = '0';
    const run = vi.spyOn(currentInstall()!.pool, 'run');
    const theirs = tf.conv2d(x, w, 2, 'same');
    expect(run.mock.calls.map(([name]) => name)).not.toContain('conv2d_direct');
    run.mockRestore();
    expect(relativeError(ours.dataSync(), theirs.dataSync())).toBeLessThanOrEqual(1e-5);
    tf.dispose([x, w, ours, theirs]);
  });

  it('leaves a convolution whose output channels are not a multiple of 4 to XNNPACK, which still gives the cpu values', async () => {
    const c: Case = { ...base, outC: 6, kh: 3, kw: 3, stride: 2, pad: 'same', dilation: 1 };
    const ref = await reference(c);
    await tf.setBackend('wasm');
    const x = tf.tensor4d(ref.x, [c.batch, c.height, c.width, c.inC]);
    const w = tf.tensor4d(ref.w, [3, 3, c.inC, 6]);
    const run = vi.spyOn(currentInstall()!.pool, 'run');
    const y = tf.conv2d(x, w, 2, 'same');
    expect(run.mock.calls.map(([name]) => name)).not.toContain('conv2d_direct');
    run.mockRestore();
    expect(relativeError(y.dataSync(), ref.y)).toBeLessThanOrEqual(1e-5);
    tf.dispose([x, w, y]);
  });
});
