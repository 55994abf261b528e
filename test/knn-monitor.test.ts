import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { scenesSource } from '../datasets/scenes.js';
import { readSamples } from '../datasets/source.js';
import { createMocoV2 } from '../methods/mocov2.js';
import { selectBackend } from '../models/backend.js';
import { RESNET_PRESETS } from '../models/encoder-spec.js';
import { keyedRng, type Sample } from '../core/index.js';
import { parseTrainConfig } from '../pipelines/train-options.js';
import { createKnnMonitor, knnAccuracy, knnGainStdErr, loadKnnSet, type KnnSet } from '../train/knn-monitor.js';
import { cli } from './helpers/cli.js';

const f32 = (rows: number[][]) => new Float32Array(rows.flat());

describe('knnAccuracy (weighted vote, pure)', () => {
  // References in 2-D: r0 = (1, 0) class 0, r1 = (0.8, 0.6) class 1, r2 = (0, 1) class 1.
  const reference = f32([
    [1, 0],
    [0.8, 0.6],
    [0, 1],
  ]);
  const refLabels = [0, 1, 1];
  const q = f32([[1, 0]]); // cosines 1, 0.8, 0

  it('weights neighbours by exp(s/τ): at τ = 0.1 the nearest wins, at τ = 1 the two farther ones outvote it', () => {
    // τ = 0.1: class 0 gets e^10 ≈ 22026, class 1 gets e^8 + e^0 ≈ 2982 → 0.
    expect(knnAccuracy(reference, refLabels, q, [0], 2, 3, 0.1)).toBe(1);
    // τ = 1: class 0 gets e^1 ≈ 2.718, class 1 gets e^0.8 + e^0 ≈ 3.226 → 1.
    expect(knnAccuracy(reference, refLabels, q, [0], 2, 3, 1)).toBe(0);
    expect(knnAccuracy(reference, refLabels, q, [1], 2, 3, 1)).toBe(1);
  });

  it('lets only the k most similar vote', () => {
    // k = 1 at τ = 1: only r0 votes → 0, where all three would have voted 1 (above).
    expect(knnAccuracy(reference, refLabels, q, [0], 2, 1, 1)).toBe(1);
    // k = 2 at τ = 1: e^1 ≈ 2.718 against e^0.8 ≈ 2.226 → 0.
    expect(knnAccuracy(reference, refLabels, q, [0], 2, 2, 1)).toBe(1);
    // k above the reference count: all references vote.
    expect(knnAccuracy(reference, refLabels, q, [1], 2, 20, 1)).toBe(1);
  });

  it("uses cosine similarity: the rows' lengths do not matter", () => {
    const scaled = f32([
      [10, 0],
      [0.08, 0.06],
      [0, 3],
    ]);
    expect(knnAccuracy(scaled, refLabels, f32([[5, 0]]), [0], 2, 3, 1)).toBe(0);
    expect(knnAccuracy(scaled, refLabels, f32([[5, 0]]), [0], 2, 3, 0.1)).toBe(1);
  });

  it('counts the fraction of queries voted their own label', () => {
    // (1, 0) → 0 ✓; (0.6, 0.8): cosines 0.6, 0.96, 0.8 → 1 ✓; (0.1, 1) labelled 0: nearest r2 → 1 ✗.
    expect(
      knnAccuracy(
        reference,
        refLabels,
        f32([
          [1, 0],
          [0.6, 0.8],
          [0.1, 1],
        ]),
        [0, 1, 0],
        2,
        1,
        0.07,
      ),
    ).toBeCloseTo(2 / 3, 12);
  });

  it('breaks ties: among equal similarities the earlier reference is nearer, among equal votes the lower class wins', () => {
    const twins = f32([
      [1, 0],
      [2, 0],
      [0, 1],
    ]); // r0 and r1 point the same way
    // k = 1: r0 (class 1) is taken before its twin r1 (class 0).
    expect(knnAccuracy(twins, [1, 0, 0], q, [1], 2, 1, 0.07)).toBe(1);
    expect(knnAccuracy(twins, [0, 1, 0], q, [0], 2, 1, 0.07)).toBe(1);
    // k = 2: equal votes for classes 0 and 1 → class 0, whichever reference comes first.
    expect(knnAccuracy(twins, [1, 0, 2], q, [0], 2, 2, 0.07)).toBe(1);
    expect(knnAccuracy(twins, [0, 1, 2], q, [0], 2, 2, 0.07)).toBe(1);
  });

  it('refuses wrong shapes and hyper-parameters, naming them', () => {
    expect(() => knnAccuracy(reference, [0, 1], q, [0], 2)).toThrow('6 reference values for 2 labels of 2 dims');
    expect(() => knnAccuracy(reference, refLabels, q, [0], 2, 0)).toThrow('knn k: expected a positive integer');
    expect(() => knnAccuracy(reference, refLabels, q, [0], 2, 20, 0)).toThrow('knn tau: expected a temperature > 0');
    expect(() => knnAccuracy(reference, refLabels, new Float32Array(0), [], 2)).toThrow('at least one reference and one query');
  });
});

describe('knnGainStdErr', () => {
  it('is the standard error of a difference of two accuracies on n queries (hand-computed)', () => {
    // √((0.2·0.8 + 0.5·0.5)/100) = √0.0041
    expect(knnGainStdErr(0.2, 0.5, 100)).toBeCloseTo(Math.sqrt(0.0041), 12);
    expect(() => knnGainStdErr(0.2, 0.5, 0)).toThrow(/at least one query/);
  });
});

describe('kNN monitor', () => {
  beforeAll(async () => {
    await selectBackend('wasm', { threads: 2 });
  });

  const method = () => createMocoV2({ encoder: RESNET_PRESETS.slim, queueSize: 16, seed: 1 });

  it('reads the first N scenes in index order as whole images, every fifth a query', async () => {
    const set = await loadKnnSet(readSamples(scenesSource({ size: 48, count: 1000 }), { shuffle: false, limit: 50 }), { size: 32 });
    expect(set).toMatchObject({ size: 32, count: 50, references: 40, queries: 10, skipped: 0 });
    expect(set.pixels.length).toBe(50 * 32 * 32 * 3);
    const scenes = scenesSource({ size: 48 });
    const labelOf = async (i: number) => (await scenes.read(i)).label;
    expect(set.labels[0]).toBe(await labelOf(0));
    expect(set.labels[4]).toBe(await labelOf(5)); // sample 4 is the first query
    expect(set.labels[40]).toBe(await labelOf(4));
  });

  it('refuses samples without labels, and too few samples', async () => {
    const unlabelled: Sample[] = Array.from({ length: 10 }, (_, i) => ({
      id: `x${i}`,
      pixels: { data: new Uint8Array(8 * 8 * 3), width: 8, height: 8, channels: 3 },
    }));
    await expect(loadKnnSet(unlabelled, { size: 8 })).rejects.toThrow('sample x0 has no label');
    const few = unlabelled.slice(0, 4).map((s) => ({ ...s, label: 0 }));
    await expect(loadKnnSet(few, { size: 8 })).rejects.toThrow('4 readable samples: the kNN monitor needs at least 5');
  });

  it('scores a random-init encoder in [0, 1] on scenes, the same twice, with tf.memory().numTensors flat', async () => {
    const m = method();
    try {
      const set = await loadKnnSet(readSamples(scenesSource({ size: 32, count: 100 }), { shuffle: false, limit: 100 }), { size: 32 });
      const monitor = createKnnMonitor({ method: m, set, chunk: 32 }); // 100 = 3 full chunks + 4
      const before = tf.memory().numTensors;
      const first = await monitor.evaluate();
      const afterOne = tf.memory().numTensors;
      const second = await monitor.evaluate();
      expect(afterOne).toBe(before);
      expect(tf.memory().numTensors).toBe(before);
      expect(first).toBeGreaterThanOrEqual(0);
      expect(first).toBeLessThanOrEqual(1);
      expect(second).toBe(first);
    } finally {
      m.dispose();
    }
  });

  it('separates an easy case (noisy red against noisy blue images) with a random-init encoder', async () => {
    const m = method();
    try {
      const size = 32;
      const plane = size * size * 3;
      const count = 60;
      const rng = keyedRng(7, 'knn-easy');
      const pixels = new Uint8Array(count * plane);
      const labels = new Int32Array(count);
      for (let n = 0; n < count; n++) {
        labels[n] = n % 2;
        for (let i = 0; i < plane; i += 3) {
          const noise = () => rng.int(60);
          pixels[n * plane + i] = labels[n] === 0 ? 180 + noise() : noise();
          pixels[n * plane + i + 1] = noise();
          pixels[n * plane + i + 2] = labels[n] === 0 ? noise() : 180 + noise();
        }
      }
      const set: KnnSet = { pixels, labels, size, count, references: 48, queries: 12, skipped: 0 };
      expect(await createKnnMonitor({ method: m, set }).evaluate()).toBe(1); // chance: 0.5
    } finally {
      m.dispose();
    }
  });
});

describe('train --knn-every', () => {
  it('logs knn in metrics.jsonl every K steps and knnInit / knnFinal in the summary', () => {
    const out = mkdtempSync(join(tmpdir(), 'densestream-knn-'));
    // --log-every 2: an evaluation lands on a logged step (the first at least K steps after the last).
    const run = cli(
      'train',
      '--data',
      'scenes:32:64',
      '--size',
      '32',
      '--batch',
      '8',
      '--steps',
      '4',
      '--queue',
      '16',
      '--knn-every',
      '2',
      '--knn-size',
      '64',
      '--log-every',
      '1',
      '--threads',
      '2',
      '--out',
      out,
    );
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).toContain('knn monitor: 52 references and 12 queries of scenes(size=32, count=64, seed=0)');
    const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { step: number; parts: Record<string, number> });
    expect(metrics.map((m) => m.step)).toEqual([1, 2, 3, 4]);
    expect(metrics.map((m) => m.parts['knn'] !== undefined)).toEqual([false, true, false, true]);
    const summary = JSON.parse(run.stdout) as { knnInit: number; knnFinal: number; knnGain: number; knnGainStdErr: number };
    expect(summary.knnInit).toBeGreaterThanOrEqual(0);
    expect(summary.knnInit).toBeLessThanOrEqual(1);
    expect(summary.knnFinal).toBeCloseTo(metrics[3]!.parts['knn']!, 4);
    // The gain over random init, with its standard error on the 12 queries.
    expect(summary.knnGain).toBeCloseTo(summary.knnFinal - summary.knnInit, 3);
    expect(summary.knnGainStdErr).toBeCloseTo(knnGainStdErr(summary.knnInit, summary.knnFinal, 12), 3);
    expect(run.stderr).toMatch(
      /knn: \d\.\d{3} at random init, \d\.\d{3} now: [+-]\d\.\d{3} ± \d\.\d{3} \(one standard error, 12 queries\)/,
    );
    expect(run.stderr).toMatch(/step 4\/4 .* knn \d\.\d\d /);
  });

  it('is on by default for scenes and fashion-mnist (its test split), silently off for a source without labels', () => {
    expect(parseTrainConfig([])['knn-every']).toBe(100);
    expect(parseTrainConfig(['--data', 'fashion-mnist'])['knn-every']).toBe(100);
    expect(parseTrainConfig(['--data', 'dir:/nowhere'])['knn-every']).toBe(0);
    expect(parseTrainConfig(['--data', 'dir:/nowhere', '--knn-data', 'scenes:32:100', '--knn-every', '5'])['knn-every']).toBe(5);
  });

  it('refuses --knn-every on a source without labels, naming the flag (exit 2)', () => {
    const run = cli(
      'train',
      '--data',
      `dir:${mkdtempSync(join(tmpdir(), 'densestream-knn-dir-'))}`,
      '--knn-every',
      '2',
      '--out',
      mkdtempSync(join(tmpdir(), 'densestream-knn-never-')),
    );
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('--knn-every: --data dir:');
    expect(run.stderr).toContain('has no labels for the kNN monitor; name a labelled set with --knn-data');
  });
});
