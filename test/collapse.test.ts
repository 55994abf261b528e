import * as tf from '@tensorflow/tfjs';
import { from } from 'rxjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { lossOnly } from './helpers/loss-only.js';
import { renderScene } from '../datasets/scenes.js';
import { createDenseCL } from '../methods/densecl.js';
import { selectBackend } from '../models/backend.js';
import { presetViews } from '../operators/augment-presets.js';
import { batch } from '../operators/batch.js';
import type { Batch } from '../core/batch.js';
import { multiView } from '../operators/multi-view.js';
import { collect } from './helpers/collect.js';

beforeAll(async () => {
  await selectBackend('wasm', { threads: 2 });
});

/** Mean over dimensions of the std across the batch of normalised embeddings `[B, D]`. */
function meanStd(z: tf.Tensor2D): number {
  return tf.tidy(() => tf.mean(tf.sqrt(tf.moments(z, 0).variance)).dataSync()[0] as number);
}

describe('collapse check', () => {
  it('keeps the per-dimension std of normalised embeddings near 1/√D over 30 DenseCL steps on scenes', async () => {
    const samples = Array.from({ length: 64 }, (_, i) => renderScene(6, i, 32));
    const batches: Batch[] = await collect(from(samples).pipe(multiView({ views: presetViews('mocov2', 32), seed: 2 }), batch(16)));
    const method = createDenseCL({ encoder: { kind: 'resnet', width: 8, blocks: [1, 1], stemStride: 2 }, dim: 32, queueSize: 64, seed: 4 });
    const probe = batches[0]!.views[0]!;
    const opt = tf.train.momentum(0.05, 0.9);
    for (let step = 0; step < 30; step++) {
      const loss = opt.minimize(() => lossOnly(method, batches[step % batches.length]!), true, method.trainable);
      expect(Number.isFinite(loss!.dataSync()[0])).toBe(true);
      loss!.dispose();
      method.afterStep?.();
    }
    const z = method.embed(probe);
    // A collapsed encoder maps every image to one point: std 0. Spread-out unit vectors in D
    // dimensions have a per-dimension std of about 1/√D (0.18 for D = 32).
    const std = meanStd(z);
    expect(std).toBeGreaterThan(0.5 / Math.sqrt(32));
    z.dispose();
    opt.dispose();
    method.dispose();
    batches.forEach((b) => b.dispose());
  });
});
