/**
 * `npm run bench -- conv [--batch 128] [--calls 10] [--rounds 3]`: ms per call of the 3×3
 * stride-1 convolutions of MoCo v2's slim ResNet on Fashion-MNIST (28 px: 14×14×32, 7×7×64,
 * 4×4×128), forward and filter gradient, on wasm with densestream's kernels: direct
 * (DENSESTREAM_WINOGRAD=0), F(2×2) only (=2) and the default (F(4×4) where it takes
 * the shape). The three alternate in one process (the variable is read per call), `--rounds`
 * times, and each line reports the medians (`f4Speedup`: F(2×2) over the default). One JSON
 * line per shape and op.
 */
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import { selectBackend } from '../models/backend.js';
import { positiveInt } from '../pipelines/options.js';
import { median, medianCallMs, printJson, restoringEnv } from './report.js';

const SHAPES: ReadonlyArray<[number, number, number]> = [
  [14, 32, 32],
  [7, 64, 64],
  [4, 128, 128],
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
    },
  });
  const batch = positiveInt(values.batch, '--batch');
  const calls = positiveInt(values.calls, '--calls');
  const rounds = positiveInt(values.rounds, '--rounds');
  await selectBackend('wasm');
  restoringEnv('DENSESTREAM_WINOGRAD', () => {
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
        const direct: number[] = [];
        const f2: number[] = [];
        const winograd: number[] = [];
        for (let r = 0; r < rounds; r++) {
          process.env['DENSESTREAM_WINOGRAD'] = '0';
          direct.push(time(fn, calls));
          process.env['DENSESTREAM_WINOGRAD'] = '2';
          f2.push(time(fn, calls));
          process.env['DENSESTREAM_WINOGRAD'] = '1';
          winograd.push(time(fn, calls));
        }
        const [d, f, w] = [median(direct), median(f2), median(winograd)];
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
  });
}
