/**
 * `npm run bench -- conv [--batch 128] [--calls 10] [--rounds 3] [--set winograd,direct]`: ms per
 * call of the convolutions of MoCo v2's slim ResNet on Fashion-MNIST (28 px), on wasm with
 * densestream's kernels, one JSON line per shape and op; the settings compared alternate in one
 * process (the variables are read per call), `--rounds` times, and each line reports the medians.
 * - `winograd`: the 3×3 stride-1 convolutions (14×14×32, 7×7×64, 4×4×128), forward and filter
 *   gradient: direct (DENSESTREAM_WINOGRAD=0), F(2×2) only (=2) and the default (F(4×4) where it
 *   takes the shape; `f4Speedup`: F(2×2) over the default).
 * - `direct`: the forward convolutions Winograd does not take (the stem, the strided 3×3 and 1×1
 *   ones, the phases of the strided input gradients): XNNPACK's (DENSESTREAM_DIRECT_CONV=0)
 *   against densestream's direct kernel (the default).
 */
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import { selectBackend } from '../models/backend.js';
import { positiveInt } from '../pipelines/options.js';
import { median, medianCallMs, printJson, restoringEnv } from './report.js';

/** [x's height = width, Ci, Co] of the 3×3 stride-1 convolutions. */
const SHAPES: ReadonlyArray<[number, number, number]> = [
  [14, 32, 32],
  [7, 64, 64],
  [4, 128, 128],
];

/** [x's height = width, Ci, kh, kw, Co, stride, padding] of the forward convolutions XNNPACK would run in a MoCo v2 step at 28 px. */
const DIRECT_SHAPES: ReadonlyArray<[number, number, number, number, number, number, 'same' | 'valid']> = [
  [28, 3, 3, 3, 32, 2, 'same'], // the stem
  [14, 32, 3, 3, 64, 2, 'same'],
  [7, 64, 3, 3, 128, 2, 'same'],
  [14, 32, 1, 1, 64, 2, 'same'], // the shortcuts
  [7, 64, 1, 1, 128, 2, 'same'],
  [7, 64, 2, 2, 32, 1, 'valid'], // the input gradient of the 14→7 strided 3×3, by its phases
  [7, 64, 1, 2, 32, 1, 'valid'],
  [7, 64, 1, 1, 32, 1, 'valid'],
  [4, 128, 2, 2, 64, 1, 'valid'], // and of the 7→4 one
];

/** Median ms per call of `fn` over `calls` calls (after one untimed). */
function time(fn: () => tf.Tensor, calls: number): number {
  return medianCallMs(() => {
    const out = fn();
    out.dataSync(); // wasm runs synchronously; the read only keeps the call honest
    out.dispose();
  }, calls);
}

export async function convBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      batch: { type: 'string', default: '128' },
      calls: { type: 'string', default: '10' },
      rounds: { type: 'string', default: '3' },
      set: { type: 'string', default: 'winograd,direct' },
    },
  });
  const sets = values.set.split(',');
  const unknown = sets.filter((v) => v !== 'winograd' && v !== 'direct');
  if (unknown.length > 0) throw new Error(`--set: expected winograd and/or direct, got "${unknown.join(',')}"`);
  const batch = positiveInt(values.batch, '--batch');
  const calls = positiveInt(values.calls, '--calls');
  const rounds = positiveInt(values.rounds, '--rounds');
  await selectBackend('wasm');
  if (sets.includes('winograd')) winogradShapes(batch, calls, rounds);
  if (sets.includes('direct')) directShapes(batch, calls, rounds);
}

/**
 * Median ms per call of `fn` with the environment variable `name` at each of `settings` (read per
 * call by the kernels), the settings taking turns `rounds` times; `name` is put back after.
 */
function alternating(name: string, settings: readonly string[], fn: () => tf.Tensor, calls: number, rounds: number): number[] {
  return restoringEnv(name, () => {
    const ms = settings.map((): number[] => []);
    for (let r = 0; r < rounds; r++)
      settings.forEach((value, i) => {
        process.env[name] = value;
        ms[i]!.push(time(fn, calls));
      });
    return ms.map(median);
  });
}

function winogradShapes(batch: number, calls: number, rounds: number): void {
  for (const [hw, inC, outC] of SHAPES) {
    const x = tf.randomNormal([batch, hw, hw, inC], 0, 1, 'float32', 1) as tf.Tensor4D;
    const filter = tf.randomNormal([3, 3, inC, outC], 0, 1, 'float32', 2) as tf.Tensor4D;
    const dy = tf.randomNormal([batch, hw, hw, outC], 0, 1, 'float32', 3) as tf.Tensor4D;
    const ops: Record<string, () => tf.Tensor> = {
      forward: () => tf.conv2d(x, filter, 1, 'same'),
      filterGradient: () =>
        tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, {
          strides: 1,
          pad: 'same',
          dataFormat: 'NHWC',
          filterShape: filter.shape,
        } as unknown as tf.NamedAttrMap) as tf.Tensor,
    };
    for (const [op, fn] of Object.entries(ops)) {
      const [d, f, w] = alternating('DENSESTREAM_WINOGRAD', ['0', '2', '1'], fn, calls, rounds) as [number, number, number];
      const macs = batch * hw * hw * inC * outC * 9;
      printJson({
        bench: 'conv',
        op,
        shape: [batch, hw, hw, inC],
        outChannels: outC,
        directMs: d,
        f2Ms: f,
        winogradMs: w,
        speedup: d / w,
        f4Speedup: f / w,
        directGmacs: macs / d / 1e6,
        winogradGmacs: macs / w / 1e6,
      });
    }
    tf.dispose([x, filter, dy]);
  }
}

function directShapes(batch: number, calls: number, rounds: number): void {
  for (const [hw, inC, kh, kw, outC, stride, pad] of DIRECT_SHAPES) {
    const x = tf.randomNormal([batch, hw, hw, inC], 0, 1, 'float32', 1) as tf.Tensor4D;
    const filter = tf.randomNormal([kh, kw, inC, outC], 0, 1, 'float32', 2) as tf.Tensor4D;
    const fn = () => tf.conv2d(x, filter, stride, pad);
    const [xn, d] = alternating('DENSESTREAM_DIRECT_CONV', ['0', '1'], fn, calls, rounds) as [number, number];
    const out = fn();
    const macs = tf.util.sizeFromShape(out.shape) * kh * kw * inC;
    out.dispose();
    printJson({
      bench: 'conv',
      op: 'forward',
      shape: [batch, hw, hw, inC],
      filter: [kh, kw, inC, outC],
      stride,
      xnnpackMs: xn,
      directMs: d,
      speedup: xn / d,
      xnnpackGmacs: macs / xn / 1e6,
      directGmacs: macs / d / 1e6,
    });
    tf.dispose([x, filter]);
  }
}
