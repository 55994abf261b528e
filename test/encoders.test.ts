import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../models/backend.js';
import { createMlp } from '../models/heads.js';
import { encoderChannels, encoderPreset, ENCODER_NAMES, RESNET_PRESETS } from '../models/encoder-spec.js';
import { createEncoder } from '../models/encoders.js';
import { checkResNetConfig, createResNet } from '../models/resnet.js';
import { scaleCentred } from '../models/batch-norm.js';
import { loadVariables, saveVariables } from '../models/weights-io.js';
import { readWeightsMeta } from '../models/weights-manifest.js';

beforeAll(async () => {
  await selectBackend('wasm', { threads: 2 });
});

describe('encoderChannels', () => {
  it.each(ENCODER_NAMES)('gives the channels the built %s encoder outputs, without building it', (name) => {
    const config = encoderPreset(name, 64);
    const encoder = createEncoder(config, 1, 'e');
    expect(encoderChannels(config)).toBe(encoder.channels);
    encoder.dispose();
  });
});

describe('ResNet encoder', () => {
  it('returns the dense map and its average: slim at 64 px is [B,8,8,128] and [B,128]', () => {
    const encoder = createResNet(RESNET_PRESETS.slim, 1);
    const x = tf.randomUniform([2, 64, 64, 3]) as tf.Tensor4D;
    const { dense, pooled } = encoder.apply(x, { training: false });
    expect(dense.shape).toEqual([2, 8, 8, 128]);
    expect(pooled.shape).toEqual([2, 128]);
    expect([encoder.channels, encoder.stride]).toEqual([128, 8]);
    const mean = tf.mean(dense, [1, 2]).dataSync();
    pooled.dataSync().forEach((v, i) => expect(v).toBeCloseTo(mean[i]!, 5));
    tf.dispose([x, dense, pooled]);
    encoder.dispose();
  });

  it('builds the CIFAR-style ResNet-18: 4 stages, [B,4,4,512] at 32 px, 11.2 M weights', () => {
    const encoder = createResNet(RESNET_PRESETS.resnet18, 1);
    const x = tf.zeros([1, 32, 32, 3]) as tf.Tensor4D;
    const { dense, pooled } = encoder.apply(x, { training: false });
    expect(dense.shape).toEqual([1, 4, 4, 512]);
    const weights = encoder.trainable.reduce((n, v) => n + v.size, 0);
    expect(weights).toBeGreaterThan(11_100_000); // torchvision's resnet18 backbone: 11.17 M
    expect(weights).toBeLessThan(11_200_000);
    tf.dispose([x, dense, pooled]);
    encoder.dispose();
  });

  it('gives every trainable variable a non-zero gradient on wasm, and updates batch-norm running statistics in training only', () => {
    const encoder = createResNet(RESNET_PRESETS.slim, 2);
    const head = createMlp([128, 64, 16], 3, 'head');
    const x = tf.randomNormal([4, 32, 32, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const runningBefore = encoder.state[0]!.dataSync().slice();
    const { grads, value } = tf.variableGrads(() => {
      const { pooled } = encoder.apply(x, { training: true });
      return tf.sum(tf.square(head.apply(pooled))) as tf.Scalar;
    }, [...encoder.trainable, ...head.trainable]);
    for (const v of [...encoder.trainable, ...head.trainable]) {
      const g = grads[v.name];
      expect(g, v.name).toBeDefined();
      expect(tf.max(tf.abs(g!)).dataSync()[0], v.name).toBeGreaterThan(0);
    }
    expect(encoder.state[0]!.dataSync()).not.toEqual(runningBefore);
    const afterTraining = encoder.state[0]!.dataSync().slice();
    const evalOut = encoder.apply(x, { training: false });
    tf.dispose([evalOut.dense, evalOut.pooled]);
    expect(encoder.state[0]!.dataSync()).toEqual(afterTraining);
    tf.dispose([value, x, ...Object.values(grads)]);
    encoder.dispose();
    head.dispose();
  });

  it('keeps tf.memory().numTensors flat over 30 SGD steps', () => {
    const encoder = createResNet(RESNET_PRESETS.slim, 4);
    const head = createMlp([128, 10], 5, 'fc');
    const x = tf.randomUniform([4, 32, 32, 3], 0, 1, 'float32', 6) as tf.Tensor4D;
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 3], 'int32'), 10);
    const opt = tf.train.sgd(0.05);
    const step = () =>
      tf.dispose(
        opt.minimize(() => tf.losses.softmaxCrossEntropy(y, head.apply(encoder.apply(x, { training: true }).pooled)) as tf.Scalar, true)!,
      );
    step();
    const before = tf.memory().numTensors;
    const losses: number[] = [];
    for (let i = 0; i < 30; i++) {
      const loss = opt.minimize(
        () => tf.losses.softmaxCrossEntropy(y, head.apply(encoder.apply(x, { training: true }).pooled)) as tf.Scalar,
        true,
      );
      losses.push(loss!.dataSync()[0]!);
      loss!.dispose();
      expect(tf.memory().numTensors).toBe(before);
    }
    expect(losses[29]!).toBeLessThan(losses[0]!);
    tf.dispose([x, y]);
    opt.dispose();
    encoder.dispose();
    head.dispose();
  });

  it('is deterministic from its seed, seed 0 included (tfjs treats a 0 seed as none)', () => {
    for (const seed of [0, 3]) {
      const a = createResNet(RESNET_PRESETS.slim, seed, 'twin-a');
      const b = createResNet(RESNET_PRESETS.slim, seed, 'twin-b');
      const c = createResNet(RESNET_PRESETS.slim, seed + 1, 'twin-c');
      for (const [name, v] of Object.entries(a.weights)) expect(b.weights[name]!.dataSync(), `${seed} ${name}`).toEqual(v.dataSync());
      expect(c.weights['stem/w']!.dataSync()).not.toEqual(a.weights['stem/w']!.dataSync());
      [a, b, c].forEach((e) => e.dispose());
    }
  });

  it("draws He-normal on fan_in, or on fan_out with init 'reference' (torchvision's), the same seed either way", () => {
    const std = (v: tf.Variable) => {
      const x = v.dataSync<'float32'>();
      return Math.sqrt(x.reduce((a, b) => a + b * b, 0) / x.length);
    };
    const ours = createResNet(RESNET_PRESETS.slim, 4, 'draw-ours');
    const reference = createResNet(RESNET_PRESETS.slim, 4, 'draw-reference', 'reference');
    // stem 3×3×3→32: fan_in 27, fan_out 288; a block's 3×3×32→32 has both 288, so the draws are equal there
    expect(std(ours.weights['stem/w']!)).toBeCloseTo(Math.sqrt(2 / 27), 1);
    expect(std(reference.weights['stem/w']!) / Math.sqrt(2 / 288)).toBeGreaterThan(0.9);
    expect(std(reference.weights['stem/w']!) / Math.sqrt(2 / 288)).toBeLessThan(1.1);
    const stemRatio = std(reference.weights['stem/w']!) / std(ours.weights['stem/w']!);
    expect(stemRatio).toBeCloseTo(Math.sqrt(27 / 288), 5); // one normal draw, scaled
    const square = Object.keys(ours.weights).find(
      (k) => k.endsWith('/w') && k !== 'stem/w' && ours.weights[k]!.shape[2] === ours.weights[k]!.shape[3],
    );
    expect(reference.weights[square!]!.dataSync()).toEqual(ours.weights[square!]!.dataSync());
    [ours, reference].forEach((e) => e.dispose());
  });

  it('refuses a bad config, naming the field', () => {
    expect(() => checkResNetConfig({ kind: 'resnet', width: 0, blocks: [1], stemStride: 1 })).toThrow('encoder.width');
    expect(() => checkResNetConfig({ kind: 'resnet', width: 8, blocks: [], stemStride: 1 })).toThrow('encoder.blocks');
  });
});

describe('MLP heads', () => {
  it("draw He-uniform with zero biases, or with init 'reference' as nn.Linear: weights and biases U(±1/√in)", () => {
    const before = tf.memory().numTensors;
    const ours = createMlp([256, 512, 128], 9, 'draw-ours');
    const reference = createMlp([256, 512, 128], 9, 'draw-reference', 'reference');
    for (const [i, inDim] of [256, 512].entries()) {
      const w = ours.weights[`fc${i}/w`]!.dataSync<'float32'>();
      const wRef = reference.weights[`fc${i}/w`]!.dataSync<'float32'>();
      const bRef = reference.weights[`fc${i}/b`]!.dataSync<'float32'>();
      expect(Array.from(ours.weights[`fc${i}/b`]!.dataSync()).every((b) => b === 0)).toBe(true);
      const max = (x: Float32Array) => x.reduce((a, b) => Math.max(a, Math.abs(b)), 0);
      // the bounds, and nearly reached: a uniform draw of thousands of values fills its range
      expect(max(w)).toBeLessThanOrEqual(Math.sqrt(6 / inDim));
      expect(max(w)).toBeGreaterThan(0.99 * Math.sqrt(6 / inDim));
      expect(max(wRef)).toBeLessThanOrEqual(1 / Math.sqrt(inDim));
      expect(max(wRef)).toBeGreaterThan(0.99 / Math.sqrt(inDim));
      expect(max(bRef)).toBeLessThanOrEqual(1 / Math.sqrt(inDim));
      expect(max(bRef)).toBeGreaterThan(0.9 / Math.sqrt(inDim));
      expect(bRef.some((b) => b !== 0)).toBe(true);
    }
    [ours, reference].forEach((h) => h.dispose());
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('batch norm without tf.tile', () => {
  it('matches tf.batchNorm in value and in the gradients for x, gamma and beta (training-mode statistics)', () => {
    // Random weights on every output: with per-channel constants the x-gradient is exactly 0
    // (a normalised channel sums to a constant) and only float noise would be compared.
    const w = tf.randomNormal([3, 5, 4, 6], 0, 1, 'float32', 12);
    const x = tf.randomNormal([3, 5, 4, 6], 2, 3, 'float32', 9) as tf.Tensor4D;
    const gamma = tf.randomUniform([6], 0.5, 1.5, 'float32', 10);
    const beta = tf.randomNormal([6], 0, 1, 'float32', 11);
    const ours = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
      const mean = tf.mean(a, [0, 1, 2]);
      const centred = tf.sub(a, mean) as tf.Tensor4D;
      return tf.sum(tf.mul(scaleCentred(centred, tf.mean(tf.square(centred), [0, 1, 2]), g, b), w));
    };
    const theirs = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
      const { mean, variance } = tf.moments(a, [0, 1, 2]);
      return tf.sum(tf.mul(tf.batchNorm(a as tf.Tensor4D, mean, variance, b, g, 1e-5), w));
    };
    expect(ours(x, gamma, beta).dataSync()[0]).toBeCloseTo(theirs(x, gamma, beta).dataSync()[0]!, 3);
    const g1 = tf.grads(ours)([x, gamma, beta]);
    const g2 = tf.grads(theirs)([x, gamma, beta]);
    g1.forEach((g, i) => {
      const diff = tf.max(tf.abs(tf.sub(g, g2[i]!))).dataSync()[0]!;
      const mag = tf.max(tf.abs(g2[i]!)).dataSync()[0]!;
      expect(diff / mag).toBeLessThan(1e-4);
    });
    // and a central finite difference on one input pixel and one gamma
    const h = 1e-2;
    const bump = (t: tf.Tensor, i: number, d: number) => {
      const v = t.dataSync().slice();
      v[i]! += d;
      return tf.tensor(v, t.shape);
    };
    const fdX = (ours(bump(x, 7, h), gamma, beta).dataSync()[0]! - ours(bump(x, 7, -h), gamma, beta).dataSync()[0]!) / (2 * h);
    const fdG = (ours(x, bump(gamma, 3, h), beta).dataSync()[0]! - ours(x, bump(gamma, 3, -h), beta).dataSync()[0]!) / (2 * h);
    expect(g1[0]!.dataSync()[7]!).toBeCloseTo(fdX, 2);
    expect(g1[1]!.dataSync()[3]!).toBeCloseTo(fdG, 2);
  });
});

describe('weights on disk', () => {
  it('round-trips trainable weights and running statistics with a config, and refuses a mismatched model', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'densestream-weights-'));
    const a = createResNet(RESNET_PRESETS.slim, 7, 'online');
    const images = tf.randomUniform([2, 32, 32, 3]) as tf.Tensor4D;
    const moved = a.apply(images, { training: true }); // move the running stats
    tf.dispose([moved.dense, moved.pooled]);
    await saveVariables(a.weights, dir, { encoder: RESNET_PRESETS.slim });
    const b = createResNet(RESNET_PRESETS.slim, 8, 'target'); // another scope: the momentum encoder
    loadVariables(b.weights, dir);
    for (const [name, v] of Object.entries(a.weights)) expect(b.weights[name]!.dataSync(), name).toEqual(v.dataSync());
    expect(readWeightsMeta(dir)).toEqual({ encoder: RESNET_PRESETS.slim });
    const wider = createResNet({ ...RESNET_PRESETS.slim, width: 16 }, 1, 'wider');
    expect(() => loadVariables(wider.weights, dir)).toThrow(/stem\/w has shape \[3, 3, 3, 32\] on disk, \[3, 3, 3, 16\] in the model/);
    images.dispose();
    [a, b, wider].forEach((e) => e.dispose());
  });
});

describe('tfSeed', () => {
  it('is never 0 and differs across run seeds and names', async () => {
    const { tfSeed } = await import('../models/seed.js');
    const seen = new Set<number>();
    for (let seed = 0; seed < 50; seed++)
      for (const name of ['stem', 'stage0/block0/a', 'fc0']) {
        const s = tfSeed(seed, name);
        expect(s).toBeGreaterThan(0);
        seen.add(s);
      }
    expect(seen.size).toBe(150);
  });
});
