import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { renderScene } from '../datasets/scenes.js';
import { createSoftRank } from '../methods/softrank.js';
import { selectBackend } from '../models/backend.js';
import type { ResNetConfig } from '../models/encoder-spec.js';
import { wholeImageEmbedder } from '../positives/anchor-embedder.js';

const tiny: ResNetConfig = { kind: 'resnet', width: 8, blocks: [1, 1], stemStride: 2 };
const create = () => createSoftRank({ encoder: tiny, momentum: 0.9, dim: 16, seed: 1, frozenTargets: true });
const cosine = (a: Float32Array, b: Float32Array) => {
  let [ab, aa, bb] = [0, 0, 0];
  a.forEach((v, j) => ((ab += v * b[j]!), (aa += v * v), (bb += b[j]! ** 2)));
  return ab / Math.sqrt(aa * bb);
};

beforeAll(async () => {
  await selectBackend('wasm', { threads: 2 });
});

describe('wholeImageEmbedder (softrank: new anchors placed among centroids)', () => {
  it('embeds whole images by a frozen copy in chunks: several forward passes give the embeddings of one, with numTensors flat', async () => {
    const method = create();
    const samples = Array.from({ length: 5 }, (_, i) => renderScene(3, i, 32));
    const passes: number[] = [];
    const embedFrozen = method.embedFrozen;
    method.embedFrozen = (slot, images) => {
      passes.push(images.shape[0]);
      return embedFrozen(slot, images);
    };
    const once = await wholeImageEmbedder(method, 32, 1).embed(samples, 0);
    const before = tf.memory().numTensors;
    const chunked = await wholeImageEmbedder(method, 32, 1, { chunk: 2 }).embed(samples, 0);
    expect(tf.memory().numTensors).toBe(before);
    expect(passes).toEqual([5, 2, 2, 1]); // 5 ≤ 64: one pass; then chunks of 2
    expect(chunked).toHaveLength(5);
    chunked.forEach((row, i) => expect([...row!]).toEqual([...once[i]!]));
    expect(() => wholeImageEmbedder(method, 32, 1, { chunk: 0 })).toThrow('chunk: expected an integer ≥ 1, got 0');
    method.dispose();
  });

  it('embeds anchors cut on the backend as it does those cut by sharp, in one batched cut, with numTensors flat', async () => {
    const method = create();
    const samples = Array.from({ length: 6 }, (_, i) => renderScene(4, i, 48)); // 48 → 32: a shrinking cut
    const cpu = await wholeImageEmbedder(method, 32, 1).embed(samples, 0);
    const backend = wholeImageEmbedder(method, 32, 1, { augment: 'backend' });
    await backend.embed(samples, 0);
    const before = tf.memory().numTensors;
    const cut = await backend.embed(samples, 0);
    expect(tf.memory().numTensors).toBe(before);
    // The two paths' pixels agree within rounding: cosine 0.99999+ for one image on both paths,
    // where two different images of this set reach 0.25–0.91.
    cut.forEach((row, i) => expect(cosine(row!, cpu[i]!)).toBeGreaterThan(0.9999));
    method.dispose();
  });
});
