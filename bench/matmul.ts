/**
 * `npm run bench -- matmul [--calls 20] [--rounds 3]`: GMAC/s of the plain matrix products of a
 * training step at the recipe (DenseCL's and MoCo v2's heads, logits and their gradients), on
 * wasm, by densestream's `batch_matmul` and by XNNPACK (DENSESTREAM_PLAIN_MATMUL=0), alternating
 * in one process `--rounds` times. One JSON line per shape with the medians. Products with B wider
 * than 512 go to XNNPACK on both sides.
 */
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import { selectBackend } from '../models/backend.js';
import { positiveInt } from '../pipelines/options.js';
import { median, medianCallMs, printJson, restoringEnv } from './report.js';

/** [M, K, N]: A is M×K, B K×N. */
const SHAPES: ReadonlyArray<[number, number, number]> = [
  [64, 128, 256], // global head, first layer (batch 64)
  [64, 256, 128], // global head, second layer
  [512, 128, 128], // DenseCL's dense head on 8 cells of 64 images
  [1024, 128, 128], // the momentum dense head on every cell
  [128, 512, 128], // a dense head's weight gradient
  [64, 1024, 128], // MoCo v2's logits gradient against a queue of 1 024
  [512, 1024, 128], // DenseCL's dense logits gradient
  [512, 128, 512],
];

/**
 * Median ms per product of `a` by each of `bs` but the first (untimed). A fresh B each call, as in
 * a step, where B is an activation or a gradient: tfjs's XNNPACK path keeps the operator it built
 * for a B, its packed copy of B, and reuses it when the same B comes again, which a step never
 * does.
 */
function time(a: tf.Tensor2D, bs: tf.Tensor2D[]): number {
  return medianCallMs((i) => tf.matMul(a, bs[i] as tf.Tensor2D).dispose(), bs.length - 1); // wasm runs synchronously
}

export async function matmulBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      calls: { type: 'string', default: '20' },
      rounds: { type: 'string', default: '3' },
    },
  });
  const calls = positiveInt(values.calls, '--calls');
  const rounds = positiveInt(values.rounds, '--rounds');
  await selectBackend('wasm');
  restoringEnv('DENSESTREAM_PLAIN_MATMUL', () => {
    for (const [m, k, n] of SHAPES) {
      const a = tf.randomNormal([m, k], 0, 1, 'float32', 1) as tf.Tensor2D;
      const b = tf.randomNormal([k, n], 0, 1, 'float32', 2) as tf.Tensor2D;
      const fresh = () => Array.from({ length: calls + 1 }, () => tf.add(b, 0) as tf.Tensor2D);
      const ours: number[] = [];
      const xnnpack: number[] = [];
      for (let r = 0; r < rounds; r++) {
        for (const [flag, into] of [
          ['1', ours],
          ['0', xnnpack],
        ] as const) {
          process.env['DENSESTREAM_PLAIN_MATMUL'] = flag;
          const bs = fresh();
          into.push(time(a, bs));
          tf.dispose(bs);
        }
      }
      const [o, x] = [median(ours), median(xnnpack)];
      const macs = m * k * n;
      printJson({
        bench: 'matmul',
        shape: [m, k, n],
        oursMs: o,
        xnnpackMs: x,
        oursGmacs: macs / o / 1e6,
        xnnpackGmacs: macs / x / 1e6,
        speedup: x / o,
      });
      tf.dispose([a, b]);
    }
  });
}
