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
import { geometricMatch } from '../operators/view-geometry.js';
import { parseTrainConfig } from '../pipelines/train-options.js';
import { collect } from './helpers/collect.js';

beforeAll(async () => {
  await selectBackend('wasm', { threads: 1 });
});

describe('geometric correspondence (DenseCL --match geometric)', () => {
  it('maps a view onto itself, mirrors a flipped copy, and follows a shifted crop', () => {
    const v = { box: [0, 0, 40, 40] as const, flipped: false };
    expect(Array.from(geometricMatch(v, v, 4))).toEqual([...Array(16).keys()]);
    // The flipped copy shows column c at column 3 − c.
    expect(Array.from(geometricMatch(v, { ...v, flipped: true }, 4)).slice(0, 4)).toEqual([3, 2, 1, 0]);
    // b is a's right half, drawn at the same 2×2 grid: a's cells (0,1) and (1,1) fall in b's column 0;
    // a's left column lies outside b and takes b's nearest, also column 0.
    const a = { box: [0, 0, 40, 40] as const, flipped: false };
    const b = { box: [20, 0, 40, 40] as const, flipped: false };
    expect(Array.from(geometricMatch(a, b, 2))).toEqual([0, 0, 2, 2]);
  });

  it('collates the matches into the batch and trains densecl on them with flat tensors', async () => {
    const samples = await collect(
      from([0, 1, 2, 3].map((i) => renderScene(0, i, 64))).pipe(multiView({ views: presetViews('mocov2', 32), seed: 1 })),
    );
    const [b] = (await collect(from(samples).pipe(batch(4, { geometricGrid: 8 })))) as [Batch]; // 32 px / stride 4
    expect(b.geometricMatch?.shape).toEqual([4, 64]);
    const s0 = samples[0]!;
    expect(Array.from(b.geometricMatch!.dataSync().slice(0, 64))).toEqual(Array.from(geometricMatch(s0.views![0]!, s0.views![1]!, 8)));
    const method = createDenseCL({
      encoder: { kind: 'resnet', width: 8, blocks: [1, 1, 1], stemStride: 1 },
      queueSize: 16,
      match: 'geometric',
    });
    const optimizer = tf.train.sgd(0.01);
    const step = () => {
      const loss = optimizer.minimize(() => lossOnly(method, b), true, method.trainable);
      const v = loss!.dataSync()[0]!;
      loss!.dispose();
      method.afterStep?.();
      return v;
    };
    step();
    const before = tf.memory().numTensors;
    const losses = [step(), step(), step()];
    expect(tf.memory().numTensors).toBe(before);
    losses.forEach((l) => expect(Number.isFinite(l)).toBe(true));
    b.dispose();
    method.dispose();
    optimizer.dispose();
  });

  it('refuses --match with another method, or a size off the encoder grid', () => {
    expect(() => parseTrainConfig(['--method', 'mocov2', '--match', 'geometric'])).toThrow(
      '--match: only densecl matches cells between views',
    );
    expect(() => parseTrainConfig(['--method', 'densecl', '--match', 'geometric', '--size', '60'])).toThrow(
      "--size 60 must be a multiple of the slim encoder's stride 8",
    );
  });
});
