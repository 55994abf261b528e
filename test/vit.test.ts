import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../models/backend.js';
import { VIT_PRESETS, type ViTConfig } from '../models/encoder-spec.js';
import { checkViTConfig, createViT, gelu, layerNorm, type ViTEncoder } from '../models/vit.js';

const SMALL: ViTConfig = { kind: 'vit', patch: 8, dim: 32, depth: 2, heads: 2, imageSize: 32 };

beforeAll(async () => {
  await selectBackend('wasm', { threads: 1 });
});

/** A loss reaching every weight: Σ pooled² plus the dense map against fixed random weights. */
function lossOf(encoder: ViTEncoder, x: tf.Tensor4D, mix: tf.Tensor): tf.Scalar {
  const { dense, pooled } = encoder.apply(x, { training: true });
  return tf.add(tf.sum(tf.square(pooled)), tf.mean(tf.mul(dense, mix))) as tf.Scalar;
}

/** Gradients by weight name (without scope), read back to arrays. */
function gradientsByName(encoder: ViTEncoder, x: tf.Tensor4D, mix: tf.Tensor): Record<string, Float32Array> {
  const { grads, value } = tf.variableGrads(() => lossOf(encoder, x, mix), encoder.trainable);
  const out: Record<string, Float32Array> = {};
  for (const [name, v] of Object.entries(encoder.weights)) out[name] = grads[v.name]!.dataSync() as Float32Array;
  tf.dispose([value, ...Object.values(grads)]);
  return out;
}

describe('ViT encoder', () => {
  it('returns patch tokens [B,4,4,32], the CLS token [B,32] and per-head attention [B,2,4,4] for patch 8 at 32 px', () => {
    const encoder = createViT(SMALL, 1);
    const x = tf.randomUniform([3, 32, 32, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
    const { dense, pooled } = encoder.apply(x, { training: false });
    const attention = encoder.attention(x);
    expect(dense.shape).toEqual([3, 4, 4, 32]);
    expect(pooled.shape).toEqual([3, 32]);
    expect(attention.shape).toEqual([3, 2, 4, 4]);
    expect([encoder.channels, encoder.stride, encoder.state.length]).toEqual([32, 8, 0]);
    // The CLS token differs from every patch token (it is not, say, their average).
    const meanPatch = tf.mean(dense, [1, 2]).dataSync();
    const cls = pooled.dataSync();
    expect(Math.max(...cls.map((v, i) => Math.abs(v - meanPatch[i]!)))).toBeGreaterThan(1e-3);
    tf.dispose([x, dense, pooled, attention]);
    encoder.dispose();
  });

  it('names its weights: patch embedding, CLS, positions, 12 per block and the final norm', () => {
    const encoder = createViT(SMALL, 1, 'named');
    const names = Object.keys(encoder.weights);
    expect(names).toHaveLength(4 + 12 * SMALL.depth + 2);
    expect(names).toContain('block1/attn/qkv/w');
    expect(encoder.weights['pos']!.shape).toEqual([1, 17, 32]);
    expect(encoder.weights['block0/mlp/fc1/w']!.shape).toEqual([32, 128]);
    expect(encoder.weights['patch/w']!.name).toBe('named/patch/w');
    expect(encoder.trainable).toHaveLength(names.length);
    encoder.dispose();
  });

  it('has ViT-Tiny widths in the tiny preset: 4 blocks of 192 with 3 heads, 1.8 M weights', () => {
    const encoder = createViT(VIT_PRESETS.tiny, 0);
    const count = encoder.trainable.reduce((n, v) => n + v.size, 0);
    // Per block 12·D² + 13·D = 445 632; patch 8·8·3·192 + 192; cls 192; pos 65·192; final norm 384.
    expect(count).toBe(4 * (12 * 192 * 192 + 13 * 192) + 8 * 8 * 3 * 192 + 192 + 192 + 65 * 192 + 384);
    encoder.dispose();
  });

  it('refuses configs that cannot build, naming the field', () => {
    expect(() => checkViTConfig({ ...SMALL, heads: 3 })).toThrow(/encoder.heads/);
    expect(() => checkViTConfig({ ...SMALL, imageSize: 30 })).toThrow(/encoder.imageSize/);
    expect(() => checkViTConfig({ ...SMALL, patch: 5 as 8 })).toThrow(/encoder.patch/);
    const encoder = createViT(SMALL, 1);
    const x = tf.zeros([1, 64, 64, 3]) as tf.Tensor4D;
    expect(() => encoder.apply(x, { training: false })).toThrow(/config.imageSize/);
    x.dispose();
    encoder.dispose();
  });

  it('gives attention maps that are softmaxes over the patches: each head sums to 1, all positive', () => {
    const encoder = createViT({ ...SMALL, depth: 3 }, 4);
    const x = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    const attention = encoder.attention(x);
    const sums = tf.sum(attention, [2, 3]).dataSync();
    expect(sums).toHaveLength(4);
    sums.forEach((s) => expect(Math.abs(s - 1)).toBeLessThan(1e-5));
    expect(tf.min(attention).dataSync()[0]).toBeGreaterThan(0);
    tf.dispose([x, attention]);
    encoder.dispose();
  });

  it("gives uniform attention 1/N when the last block's queries are zero, and peaked maps when one key dominates", () => {
    const encoder = createViT(SMALL, 5);
    const x = tf.randomNormal([1, 32, 32, 3], 0, 1, 'float32', 6) as tf.Tensor4D;
    const qkv = encoder.weights['block1/attn/qkv/w']!;
    const original = qkv.clone();
    // Columns [0, D) of qkv are the queries (heads in order); zero them.
    qkv.assign(tf.concat([tf.zeros([32, 32]), tf.slice(original, [0, 32], [32, 64])], 1));
    const uniform = encoder.attention(x).dataSync();
    uniform.forEach((a) => expect(a).toBeCloseTo(1 / 16, 6));
    // Scaled-up weights sharpen the softmax: the maps are no longer uniform.
    qkv.assign(tf.mul(original, 50));
    const sharp = encoder.attention(x);
    expect(tf.max(sharp).dataSync()[0]).toBeGreaterThan(2 / 16);
    tf.dispose([x, original, sharp]);
    encoder.dispose();
  });

  it('normalises each token: LayerNorm gives mean 0 and variance 1 over the channels, then γ and β', () => {
    const x = tf.add(tf.mul(tf.randomNormal([2, 5, 48], 0, 1, 'float32', 7), 3), 10);
    const y = layerNorm(x, tf.ones([48]), tf.zeros([48]));
    const { mean, variance } = tf.moments(y, -1);
    mean.dataSync().forEach((m) => expect(Math.abs(m)).toBeLessThan(1e-5));
    variance.dataSync().forEach((v) => expect(Math.abs(v - 1)).toBeLessThan(1e-3));
    // γ and β scale and shift per channel.
    const gamma = tf.linspace(0.5, 2, 48);
    const beta = tf.linspace(-1, 1, 48);
    const z = layerNorm(x, gamma, beta);
    const expected = tf.add(tf.mul(y, gamma), beta);
    expect(tf.max(tf.abs(tf.sub(z, expected))).dataSync()[0]).toBeLessThan(1e-5);
    // The encoder's outputs come out of the final LayerNorm (γ = 1, β = 0 at initialisation).
    const encoder = createViT(SMALL, 8);
    const images = tf.randomUniform([2, 32, 32, 3], 0, 1, 'float32', 9) as tf.Tensor4D;
    const { dense, pooled } = encoder.apply(images, { training: true });
    for (const t of [dense, pooled]) {
      const m = tf.moments(t, -1);
      m.mean.dataSync().forEach((v) => expect(Math.abs(v)).toBeLessThan(1e-5));
      m.variance.dataSync().forEach((v) => expect(Math.abs(v - 1)).toBeLessThan(1e-3));
      tf.dispose([m.mean, m.variance]);
    }
    tf.dispose([x, y, mean, variance, gamma, beta, z, expected, images, dense, pooled]);
    encoder.dispose();
  });

  it('computes GELU with the tanh approximation', () => {
    const x = tf.tensor1d([-3, -1, -0.5, 0, 0.5, 1, 3]);
    // PyTorch's F.gelu(x, approximate='tanh').
    const expected = [-0.0036373, -0.158808, -0.1542859, 0, 0.3457141, 0.841192, 2.9963627];
    const y = gelu(x).dataSync();
    expected.forEach((e, i) => expect(y[i]).toBeCloseTo(e, 5));
    x.dispose();
  });

  it('is deterministic in its seed: same seed, same weights and outputs; another seed differs', () => {
    const a = createViT(SMALL, 11, 'a');
    const b = createViT(SMALL, 11, 'b');
    const c = createViT(SMALL, 12, 'c');
    const x = tf.randomUniform([2, 32, 32, 3], 0, 1, 'float32', 10) as tf.Tensor4D;
    const [oa, ob, oc] = [a, b, c].map((e) => e.apply(x, { training: true }));
    expect(oa!.pooled.dataSync()).toEqual(ob!.pooled.dataSync());
    expect(oa!.dense.dataSync()).toEqual(ob!.dense.dataSync());
    expect(oa!.pooled.dataSync()).not.toEqual(oc!.pooled.dataSync());
    const [aa, ab] = [a.attention(x), b.attention(x)];
    expect(aa.dataSync()).toEqual(ab.dataSync());
    tf.dispose([x, aa, ab, ...[oa!, ob!, oc!].flatMap((o) => [o.dense, o.pooled])]);
    [a, b, c].forEach((e) => e.dispose());
  });

  it("gives every trainable variable a finite non-zero gradient on wasm, equal to the cpu backend's within 1e-4", async () => {
    const x = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 12) as tf.Tensor4D;
    const mix = tf.randomNormal([2, 4, 4, 32], 0, 1, 'float32', 13);
    const wasm = createViT(SMALL, 14, 'grad-wasm');
    const onWasm = gradientsByName(wasm, x, mix);
    const xData = x.dataSync().slice();
    const mixData = mix.dataSync().slice();
    let onCpu: Record<string, Float32Array>;
    await tf.setBackend('cpu');
    try {
      const cpu = createViT(SMALL, 14, 'grad-cpu');
      const [xc, mc] = [tf.tensor4d(xData, x.shape), tf.tensor4d(mixData, [2, 4, 4, 32])];
      onCpu = gradientsByName(cpu, xc, mc);
      tf.dispose([xc, mc]);
      cpu.dispose();
    } finally {
      await tf.setBackend('wasm');
    }
    expect(Object.keys(onWasm)).toHaveLength(Object.keys(wasm.weights).length);
    let worst = 0;
    for (const [name, g] of Object.entries(onWasm)) {
      expect(g.every(Number.isFinite), name).toBe(true);
      expect(Math.max(...g.map(Math.abs)), name).toBeGreaterThan(0);
      const ref = onCpu[name]!;
      const scale = Math.max(1, ...ref.map(Math.abs));
      g.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - ref[i]!) / scale)));
    }
    expect(worst).toBeLessThan(1e-4);
    tf.dispose([x, mix]);
    wasm.dispose();
  });

  it('matches a finite difference for one position-embedding weight', () => {
    const encoder = createViT(SMALL, 15);
    const x = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 16) as tf.Tensor4D;
    const mix = tf.randomNormal([2, 4, 4, 32], 0, 1, 'float32', 17);
    const pos = encoder.weights['pos']!;
    const index = 5 * 32 + 3; // token 5, channel 3
    const analytic = gradientsByName(encoder, x, mix)['pos']![index]!;
    const original = pos.dataSync().slice();
    const at = (delta: number): number => {
      const shifted = original.slice();
      shifted[index]! += delta;
      pos.assign(tf.tensor(shifted, pos.shape));
      const loss = tf.tidy(() => lossOf(encoder, x, mix));
      const value = loss.dataSync()[0]!;
      loss.dispose();
      return value;
    };
    const h = 1e-2;
    const numeric = (at(h) - at(-h)) / (2 * h);
    expect(Math.abs(numeric - analytic)).toBeLessThan(2e-2 * Math.max(1, Math.abs(analytic)));
    tf.dispose([x, mix]);
    encoder.dispose();
  });

  it('keeps the tensor count flat over repeated apply, attention and gradient calls', () => {
    const encoder = createViT(SMALL, 18);
    const x = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 19) as tf.Tensor4D;
    const mix = tf.randomNormal([2, 4, 4, 32], 0, 1, 'float32', 20);
    const round = (): void => {
      const { dense, pooled } = encoder.apply(x, { training: true });
      const attention = encoder.attention(x);
      tf.dispose([dense, pooled, attention]);
      gradientsByName(encoder, x, mix);
    };
    round();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) round();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, mix]);
    encoder.dispose();
  });
});
