import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { createDenseCL, sampledCells } from '../methods/densecl.js';
import { denseInfoNCE, l2Normalize } from '../methods/losses.js';
import type { ResNetConfig } from '../models/encoder-spec.js';

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

  it('refuses a count of cells that is not a positive integer', () => {
    const encoder: ResNetConfig = { kind: 'resnet', width: 8, blocks: [1, 1], stemStride: 2 };
    expect(() => createDenseCL({ encoder, denseCells: 0 })).toThrow('denseCells: expected an integer ≥ 1, got 0');
    expect(() => createDenseCL({ encoder, denseCells: 2.5 })).toThrow('denseCells: expected an integer ≥ 1, got 2.5');
  });
});
