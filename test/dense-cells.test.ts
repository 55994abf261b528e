import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { sampledCells } from '../methods/dense-cells.js';
import { createDenseCL } from '../methods/densecl.js';
import { createHapicl } from '../methods/hapicl.js';
import { denseInfoNCE, l2Normalize, pixelNTXent } from '../methods/losses.js';
import type { ResNetConfig } from '../models/encoder-spec.js';
import type { Batch } from '../core/batch.js';
import { readParts, type LossParts } from '../methods/method.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe("DenseCL's sampled dense cells (train --dense-cells)", () => {
  it('draws N distinct cells of each image, the same for the same batch and others for another', () => {
    const ids = ['a', 'b', 'c'];
    const rows = sampledCells(ids, 16, 5, 7);
    expect(rows).toHaveLength(15);
    for (let b = 0; b < 3; b++) {
      const mine = Array.from(rows.subarray(b * 5, (b + 1) * 5));
      expect(new Set(mine).size).toBe(5); // distinct
      for (const r of mine) expect(r >= b * 16 && r < (b + 1) * 16).toBe(true); // within image b's 16 rows
    }
    expect(Array.from(sampledCells(ids, 16, 5, 7))).toEqual(Array.from(rows)); // a resumed run draws the same
    expect(Array.from(sampledCells(['a', 'b', 'd'], 16, 5, 7))).not.toEqual(Array.from(rows));
    expect(Array.from(sampledCells(ids, 16, 5, 8))).not.toEqual(Array.from(rows));
    // N = P: every cell once, in some order
    expect(Array.from(sampledCells(['a'], 16, 16, 7)).sort((x, y) => x - y)).toEqual(Array.from({ length: 16 }, (_, i) => i));
  });

  it('scores the query cells it is given against the whole key grid: all cells in another order give the full loss', () => {
    const [b, p, d, k] = [2, 9, 4, 6];
    const query = l2Normalize(tf.randomNormal([b, p, d], 0, 1, 'float32', 1)) as tf.Tensor3D;
    const keys = l2Normalize(tf.randomNormal([b, p, d], 0, 1, 'float32', 2)) as tf.Tensor3D;
    const match = tf.randomUniform([b, p], 0, p, 'int32', 3) as tf.Tensor2D;
    const queue = l2Normalize(tf.randomNormal([k, d], 0, 1, 'float32', 4)) as tf.Tensor2D;
    const full = denseInfoNCE(query, keys, match, queue).dataSync()[0]!;
    const rows = tf.tensor1d(sampledCells(['x', 'y'], p, p, 0), 'int32');
    const permuted = (t: tf.Tensor, shape: number[]) => tf.reshape(tf.gather(tf.reshape(t, [b * p, -1]), rows), shape);
    const reordered = denseInfoNCE(
      permuted(query, [b, p, d]) as tf.Tensor3D,
      keys,
      permuted(match, [b, p]) as tf.Tensor2D,
      queue,
    ).dataSync()[0]!;
    expect(reordered).toBeCloseTo(full, 6);
    // Three cells of each image: the mean of those cells' own terms, as a hand computation of InfoNCE per row gives.
    const three = tf.tensor1d(sampledCells(['x', 'y'], p, 3, 0), 'int32');
    const q3 = tf.gather(tf.reshape(query, [b * p, d]), three);
    const m3 = tf.reshape(tf.gather(tf.reshape(match, [b * p]), three), [b, 3]);
    const sampled = denseInfoNCE(tf.reshape(q3, [b, 3, d]) as tf.Tensor3D, keys, m3 as tf.Tensor2D, queue).dataSync()[0]!;
    const q = q3.arraySync() as number[][];
    const flatKeys = tf.reshape(keys, [b * p, d]).arraySync() as number[][];
    const m = m3.arraySync() as number[][];
    const negatives = queue.arraySync() as number[][];
    const dot = (x: number[], y: number[]) => x.reduce((s, v, i) => s + v * y[i]!, 0);
    let total = 0;
    q.forEach((row, i) => {
      const image = Math.floor(i / 3);
      const positive = flatKeys[image * p + m[image]![i % 3]!]!;
      const logits = [dot(row, positive), ...negatives.map((n) => dot(row, n))].map((s) => s / 0.2);
      total += -logits[0]! + Math.log(logits.reduce((s, l) => s + Math.exp(l), 0));
    });
    expect(sampled).toBeCloseTo(total / q.length, 5);
  });

  it("warms up on the global term alone (--dense-warmup): λ = 0 before its step, the paper's loss after, the dense keys queued all along", async () => {
    const encoder: ResNetConfig = { kind: 'resnet', width: 8, blocks: [1, 1], stemStride: 2 };
    const method = createDenseCL({ encoder, dim: 16, queueSize: 32, denseQueueSize: 8, seed: 3, denseWarmup: 2 });
    const views = [10, 11].map((seed) => tf.randomNormal([4, 16, 16, 3], 0, 1, 'float32', seed) as tf.Tensor4D);
    const batch: Batch = { ids: ['a', 'b', 'c', 'd'], views, masks: [], boxes: [], flipped: [], dispose: () => {} };
    const before = tf.memory().numTensors;
    const run = async (step: number) => {
      method.atStep?.(step);
      const parts: LossParts = {};
      const loss = tf.tidy(() => method.loss(batch, parts));
      const value = (await loss.data())[0]!;
      loss.dispose();
      return { ...(await readParts(parts)), loss: value } as Record<string, number> & { loss: number };
    };
    const paper = await run(2); // the step the dense term starts at
    expect(paper.loss).toBeCloseTo(0.5 * paper['global']! + 0.5 * paper['dense']!, 5);
    const during = await run(1);
    expect(during['dense']).toBeUndefined();
    expect(during.loss).toBeCloseTo(paper['global']!, 5); // (1 − 0)·L_global: the same weights see the same batch
    const state = method.checkpointState();
    const queued = () => Array.from(state['dense-queue/keys']!.dataSync());
    const initial = queued();
    method.afterStep?.();
    expect(state['dense-queue/pointer']!.dataSync()[0]).toBe(4); // the warm-up step's four dense keys went in
    expect(queued().slice(0, 4 * 16)).not.toEqual(initial.slice(0, 4 * 16));
    expect(queued().slice(4 * 16)).toEqual(initial.slice(4 * 16));
    expect(tf.memory().numTensors).toBe(before);
    method.dispose();
    tf.dispose(views);
    expect(() => createDenseCL({ encoder, denseWarmup: -1 })).toThrow('denseWarmup: expected an integer ≥ 0, got -1');
  });

  it('sizes the dense queue on its own (--dense-queue), the global queue as --queue', () => {
    const encoder: ResNetConfig = { kind: 'resnet', width: 8, blocks: [1, 1], stemStride: 2 };
    const method = createDenseCL({ encoder, dim: 16, queueSize: 32, denseQueueSize: 8 });
    const state = method.checkpointState();
    expect(state['dense-queue/keys']!.shape).toEqual([8, 16]);
    expect(state['queue/keys']!.shape).toEqual([32, 16]);
    method.dispose();
    const paper = createDenseCL({ encoder, dim: 16, queueSize: 32 });
    expect(paper.checkpointState()['dense-queue/keys']!.shape).toEqual([32, 16]);
    paper.dispose();
  });

  it('sizes the dense head on its own (--dense-hidden), the global head as `hidden`', () => {
    const encoder: ResNetConfig = { kind: 'resnet', width: 8, blocks: [1, 1], stemStride: 2 }; // 16 channels out
    const shapes = (method: ReturnType<typeof createDenseCL> | ReturnType<typeof createHapicl>) =>
      Object.fromEntries(
        method.trainable.filter((v) => /fc0\/w$/.test(v.name)).map((v) => [v.name.replace(/^.*(global|dense)\//, '$1/'), v.shape]),
      );
    const narrow = createDenseCL({ encoder, dim: 16, queueSize: 8, denseHidden: 12 });
    expect(shapes(narrow)).toEqual({ 'global/fc0/w': [16, 32], 'dense/fc0/w': [16, 12] });
    narrow.dispose();
    const same = createDenseCL({ encoder, dim: 16, queueSize: 8 });
    expect(shapes(same)).toEqual({ 'global/fc0/w': [16, 32], 'dense/fc0/w': [16, 32] });
    same.dispose();
    const hapicl = createHapicl({ encoder, dim: 16, queueSize: 8, denseHidden: 12 }); // HAPiCL's dense head takes the same option
    expect(shapes(hapicl)).toEqual({ 'global/fc0/w': [16, 32], 'dense/fc0/w': [16, 12] });
    hapicl.dispose();
    expect(() => createDenseCL({ encoder, denseHidden: 0 })).toThrow('denseHidden: expected an integer ≥ 1, got 0');
  });

  it('refuses a count of cells that is not a positive integer', () => {
    const encoder: ResNetConfig = { kind: 'resnet', width: 8, blocks: [1, 1], stemStride: 2 };
    expect(() => createDenseCL({ encoder, denseCells: 0 })).toThrow('denseCells: expected an integer ≥ 1, got 0');
    expect(() => createDenseCL({ encoder, denseCells: 2.5 })).toThrow('denseCells: expected an integer ≥ 1, got 2.5');
  });
});

describe("HAPiCL's sampled pixel cells (train --pixel-cells)", () => {
  it('scales the sums over N sampled query cells by P/N, as a hand computation gives', () => {
    const [b, p, n, d] = [2, 4, 2, 3];
    const cells1 = l2Normalize(tf.randomNormal([b, n, d], 0, 1, 'float32', 5)) as tf.Tensor3D;
    const cells2 = l2Normalize(tf.randomNormal([b, p, d], 0, 1, 'float32', 6)) as tf.Tensor3D;
    const mask1 = tf.tensor2d([
      [1, 0],
      [1, 1],
    ]);
    const mask2 = tf.tensor2d([
      [1, 1, 0, 0],
      [0, 1, 0, 1],
    ]);
    const got = pixelNTXent(cells1, cells2, mask1, mask2, 0.2, false, p / n).dataSync()[0]!;
    const c1 = cells1.arraySync();
    const c2 = cells2.arraySync();
    const m1 = mask1.arraySync();
    const m2 = mask2.arraySync();
    let total = 0;
    for (let i = 0; i < b; i++) {
      let pos = 0;
      let all = 0;
      for (let q = 0; q < n; q++)
        for (let k = 0; k < p; k++) {
          const e = Math.exp(c1[i]![q]!.reduce((s, v, j) => s + v * c2[i]![k]![j]!, 0) / 0.2);
          all += e;
          if (m1[i]![q] === 1 && m2[i]![k] === 1) pos += e;
        }
      total += -Math.log(((p / n) * pos + 1) / ((p / n) * all + 2));
    }
    expect(got).toBeCloseTo(total / b, 5);
    expect(() => pixelNTXent(cells1, cells2, mask1, mask2, 0.2, false, 0.5)).toThrow('pairScale is P / N ≥ 1');
  });

  it('trains on N cells of each image: every weight gets a gradient, every cell gives the full term, a count below 1 is refused', () => {
    const encoder: ResNetConfig = { kind: 'resnet', width: 8, blocks: [1, 1], stemStride: 2 };
    const size = 16; // a 4×4 grid: P = 16
    const batch = {
      ids: ['a', 'b'],
      views: [tf.randomNormal([2, size, size, 3], 0, 1, 'float32', 7), tf.randomNormal([2, size, size, 3], 0, 1, 'float32', 8)],
      masks: [
        tf.randomUniform([2, size, size], 0, 2, 'int32', 9).toFloat(),
        tf.randomUniform([2, size, size], 0, 2, 'int32', 10).toFloat(),
      ],
    } as unknown as Parameters<ReturnType<typeof createHapicl>['loss']>[0];
    const pixel = (pixelCells?: number) => {
      const method = createHapicl({ encoder, queueSize: 8, seed: 3, ...(pixelCells ? { pixelCells } : {}) });
      const parts = {};
      const { value, grads } = tf.variableGrads(() => method.loss(batch, parts), method.trainable);
      for (const v of method.trainable) expect(tf.max(tf.abs(grads[v.name]!)).dataSync()[0], v.name).toBeGreaterThan(0);
      const out = (parts as Record<string, tf.Scalar>)['pixel']!.dataSync()[0]!;
      tf.dispose([value, ...Object.values(grads), ...Object.values(parts as Record<string, tf.Scalar>)]);
      method.dispose();
      return out;
    };
    const full = pixel();
    expect(pixel(16)).toBeCloseTo(full, 5); // every cell: the paper's term
    const four = pixel(4);
    expect(Number.isFinite(four)).toBe(true);
    expect(four).not.toBeCloseTo(full, 5);
    expect(pixel(4)).toBe(four); // the same batch draws the same cells
    expect(() => createHapicl({ encoder, pixelCells: 0 })).toThrow('pixelCells: expected an integer ≥ 1, got 0');
  });
});
