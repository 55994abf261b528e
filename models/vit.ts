/**
 * Vision Transformer encoder (ViT, Dosovitskiy et al. 2021) with pre-norm blocks, returning the
 * patch tokens as a dense map and the CLS token as the pooled vector, plus the last block's
 * CLS-to-patch attention: the map METHODS.md §3 turns into an object-centred view.
 *
 * ```
 * tokens₀ = [cls ; patchEmbed(x)] + pos                          [B, T, D], T = 1 + N
 * tokensₗ = t + MLP(LN₂(t)),  t = tokensₗ₋₁ + MHSA(LN₁(tokensₗ₋₁))
 * MHSA(u)  = concatₕ softmax(qₕ·kₕᵀ / √dₕ)·vₕ · Wₒ,  [q k v] = u·Wqkv
 * MLP(u)   = GELU(u·W₁ + b₁)·W₂ + b₂                              (tanh approximation)
 * out      = LN(tokens_depth):  pooled = out[:, 0],  dense = out[:, 1:] as [B, H/p, W/p, D]
 * ```
 *
 * Written for the wasm backend: the patch embedding is a `tf.conv2d` with 'valid' padding
 * (kernel = stride = patch), every dense layer a plain `matMul` on `[B·T, D]` (no transpose
 * flags: the scores use an explicitly transposed key, and the BatchMatMul gradient of
 * `matmul-gradient.ts`, installed by `selectBackend`, transposes explicitly too), LayerNorm and
 * GELU from broadcasting ops, and the CLS token broadcast over the batch by adding zeros —
 * no `tf.layers`, `tf.tile`, `tf.gather` or `logSumExp`.
 *
 * There is no dropout nor stochastic depth, so `training` does not change the result; there is
 * no batch norm, so `state` is empty.
 *
 * Shapes by letter: `B` batch, `H×W` input, `p` patch, `G = H/p` (the grid), `N = G²` patches,
 * `T = N + 1` tokens, `D` width, `h` heads, `dₕ = D / h`.
 *
 * A `ViTEncoder` is an `Encoder` (encoder-spec.ts) plus its CLS attention; `models/encoders.ts`
 * builds either kind from a config.
 */
import * as tf from '@tensorflow/tfjs';
import { variableFrom } from './variables.js';
import type { Encoder, ViTConfig } from './encoder-spec.js';
import { tfSeed } from './seed.js';

/**
 * An {@link Encoder} whose `dense` output is the patch tokens `[B, H/p, W/p, D]` and `pooled`
 * the CLS token `[B, D]` (both after the final LayerNorm), `stride` the patch, `state` empty
 * (no batch norm) — plus its CLS attention.
 */
export interface ViTEncoder extends Encoder {
  readonly config: ViTConfig;
  /**
   * The last block's attention of the CLS query over the patch keys, per head,
   * `[B, heads, H/p, W/p]`: a softmax over the patch keys only (the CLS key left out), so each
   * head's map sums to 1. Inference mode, inside `tf.tidy`.
   */
  attention(images: tf.Tensor4D): tf.Tensor4D;
}

/** Refuses a config that cannot build, naming the field. */
export function checkViTConfig(c: ViTConfig): void {
  if (c.kind !== 'vit') throw new Error(`encoder.kind: expected "vit", got ${JSON.stringify(c.kind)}`);
  if (c.patch !== 4 && c.patch !== 8) throw new Error(`encoder.patch: expected 4 or 8, got ${String(c.patch)}`);
  if (!Number.isInteger(c.dim) || c.dim < 1) throw new Error(`encoder.dim: expected a positive integer, got ${c.dim}`);
  if (!Number.isInteger(c.depth) || c.depth < 1) throw new Error(`encoder.depth: expected a positive integer, got ${c.depth}`);
  if (!Number.isInteger(c.heads) || c.heads < 1 || c.dim % c.heads !== 0) {
    throw new Error(`encoder.heads: expected a positive divisor of dim ${c.dim}, got ${c.heads}`);
  }
  const ratio = c.mlpRatio ?? 4;
  if (!(ratio > 0) || !Number.isInteger(Math.round(c.dim * ratio)))
    throw new Error(`encoder.mlpRatio: expected a positive number, got ${ratio}`);
  if (!Number.isInteger(c.imageSize) || c.imageSize < c.patch || c.imageSize % c.patch !== 0) {
    throw new Error(`encoder.imageSize: expected a positive multiple of patch ${c.patch}, got ${c.imageSize}`);
  }
}

const LN_EPSILON = 1e-6; // as timm's ViT

/**
 * LayerNorm over the last axis: `(x − μ)·γ / √(σ² + ε) + β`, μ and σ² (biased) per token.
 * Broadcasting ops only, so its gradient reduces with `Sum` (no `tf.tile`).
 */
export function layerNorm<T extends tf.Tensor>(x: T, gamma: tf.Tensor, beta: tf.Tensor, epsilon = LN_EPSILON): T {
  return tf.tidy(() => {
    const axis = x.rank - 1;
    const centred = tf.sub(x, tf.mean(x, axis, true));
    const variance = tf.mean(tf.square(centred), axis, true);
    return tf.add(tf.mul(tf.mul(centred, tf.rsqrt(tf.add(variance, epsilon))), gamma), beta) as T;
  });
}

const GELU_C = Math.sqrt(2 / Math.PI);

/** GELU, tanh approximation: `½x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`. */
export function gelu<T extends tf.Tensor>(x: T): T {
  return tf.tidy(() => {
    const inner = tf.mul(tf.add(x, tf.mul(tf.mul(tf.square(x), x), 0.044715)), GELU_C);
    return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1)) as T;
  });
}

interface Dense {
  w: tf.Variable;
  b: tf.Variable;
}

interface Norm {
  gamma: tf.Variable;
  beta: tf.Variable;
}

interface Block {
  norm1: Norm;
  qkv: Dense;
  proj: Dense;
  norm2: Norm;
  fc1: Dense;
  fc2: Dense;
}

/**
 * Builds a ViT with timm's initialisation (truncated normal σ = 0.02 for dense weights, position
 * embeddings and the CLS token; LeCun normal for the patch embedding; zero biases; LayerNorm γ = 1,
 * β = 0), deterministic from `seed`.
 *
 * @example
 * const encoder = createViT(VIT_PRESETS.tiny, 1);
 * const { dense, pooled } = encoder.apply(images, { training: true }); // [B,8,8,192], [B,192] at 64 px
 * const maps = encoder.attention(images); // [B,3,8,8], each map sums to 1
 */
export function createViT(config: ViTConfig, seed = 0, scope = 'vit'): ViTEncoder {
  checkViTConfig(config);
  const { patch, dim, depth, heads, imageSize } = config;
  const hidden = Math.round(dim * (config.mlpRatio ?? 4));
  const headDim = dim / heads;
  const grid = imageSize / patch;
  const tokens = grid * grid + 1;

  const trainable: tf.Variable[] = [];
  const weights: Record<string, tf.Variable> = {};
  // tfjs names variables globally: the scope keeps an online and a momentum encoder apart.
  const variable = (init: tf.Tensor, name: string): tf.Variable => {
    const v = variableFrom(init, true, `${scope}/${name}`);
    weights[name] = v;
    trainable.push(v);
    return v;
  };
  const truncated = (shape: number[], name: string, std = 0.02): tf.Variable =>
    variable(tf.truncatedNormal(shape, 0, std, 'float32', tfSeed(seed, name)), name);
  const dense = (inD: number, outD: number, name: string): Dense => ({
    w: truncated([inD, outD], `${name}/w`),
    b: variable(tf.zeros([outD]), `${name}/b`),
  });
  const norm = (name: string): Norm => ({
    gamma: variable(tf.ones([dim]), `${name}/gamma`),
    beta: variable(tf.zeros([dim]), `${name}/beta`),
  });

  const patchW = variable(
    tf.randomNormal([patch, patch, 3, dim], 0, Math.sqrt(1 / (patch * patch * 3)), 'float32', tfSeed(seed, 'patch/w')),
    'patch/w',
  );
  const patchB = variable(tf.zeros([dim]), 'patch/b');
  const cls = truncated([1, 1, dim], 'cls');
  const pos = truncated([1, tokens, dim], 'pos');
  const blocks: Block[] = [];
  for (let i = 0; i < depth; i++) {
    const name = `block${i}`;
    blocks.push({
      norm1: norm(`${name}/norm1`),
      qkv: dense(dim, 3 * dim, `${name}/attn/qkv`),
      proj: dense(dim, dim, `${name}/attn/proj`),
      norm2: norm(`${name}/norm2`),
      fc1: dense(dim, hidden, `${name}/mlp/fc1`),
      fc2: dense(hidden, dim, `${name}/mlp/fc2`),
    });
  }
  const finalNorm = norm('norm');

  /** `x·W + b` on `[rows, in]`. */
  const linear = (x: tf.Tensor2D, d: Dense): tf.Tensor2D => tf.add(tf.matMul(x, d.w as tf.Tensor2D), d.b);

  /** Queries (pre-scaled by 1/√dₕ), transposed keys and values of `u` `[B, T, D]`: `[B·h, T, dₕ]`, `[B·h, dₕ, T]`, `[B·h, T, dₕ]`. */
  const queriesKeysValues = (u: tf.Tensor3D, d: Dense): [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D] => {
    const [b, t] = u.shape;
    // Columns of Wqkv: [q | k | v], each heads × dₕ. Rank-4 transposes and a split along the
    // leading axis only: on wasm a rank-5 transpose ([B,T,3,h,dₕ] → [3,B,h,T,dₕ]) took 120 ms of
    // a 4.2 s tiny step, and a split along an inner axis 20 ms (measured).
    const qkv = tf.transpose(tf.reshape(linear(tf.reshape(u, [b * t, dim]), d), [b, t, 3, dim]), [2, 0, 1, 3]);
    const [q, k, v] = tf.unstack(qkv).map((x) => tf.transpose(tf.reshape(x, [b, t, heads, headDim]), [0, 2, 1, 3]));
    return [
      tf.reshape(tf.mul(q!, 1 / Math.sqrt(headDim)), [b * heads, t, headDim]),
      tf.transpose(tf.reshape(k!, [b * heads, t, headDim]), [0, 2, 1]),
      tf.reshape(v!, [b * heads, t, headDim]),
    ];
  };

  const attentionBlock = (u: tf.Tensor3D, blk: Block): tf.Tensor3D => {
    const [b, t] = u.shape;
    const [q, kT, v] = queriesKeysValues(u, blk.qkv);
    const weightsQK = tf.softmax(tf.matMul(q, kT)); // [B·h, T, T]
    const mixed = tf.reshape(tf.matMul(weightsQK, v), [b, heads, t, headDim]);
    const merged = tf.reshape(tf.transpose(mixed, [0, 2, 1, 3]), [b * t, dim]) as tf.Tensor2D;
    return tf.reshape(linear(merged, blk.proj), [b, t, dim]);
  };

  const mlp = (u: tf.Tensor3D, blk: Block): tf.Tensor3D => {
    const [b, t] = u.shape;
    const h = gelu(linear(tf.reshape(u, [b * t, dim]), blk.fc1));
    return tf.reshape(linear(h, blk.fc2), [b, t, dim]);
  };

  const checkImages = (images: tf.Tensor4D): void => {
    const [, h, w, c] = images.shape;
    if (h !== imageSize || w !== imageSize || c !== 3) {
      throw new Error(`vit: expected images [B, ${imageSize}, ${imageSize}, 3] (config.imageSize), got [${images.shape.join(', ')}]`);
    }
  };

  /** Patch embedding, CLS token and position embeddings: `[B, T, D]`. */
  const embed = (images: tf.Tensor4D): tf.Tensor3D => {
    const b = images.shape[0];
    const patches = tf.add(tf.conv2d(images, patchW as tf.Tensor4D, patch, 'valid'), patchB);
    const clsB = tf.add(tf.zeros([b, 1, dim]), cls); // broadcast over the batch without tf.tile
    return tf.add(tf.concat([clsB, tf.reshape(patches, [b, grid * grid, dim])], 1), pos) as tf.Tensor3D;
  };

  const block = (x: tf.Tensor3D, blk: Block): tf.Tensor3D => {
    const t = tf.add(x, attentionBlock(layerNorm(x, blk.norm1.gamma, blk.norm1.beta), blk)) as tf.Tensor3D;
    return tf.add(t, mlp(layerNorm(t, blk.norm2.gamma, blk.norm2.beta), blk));
  };

  return {
    config,
    channels: dim,
    stride: patch,
    trainable,
    state: [],
    weights,
    apply(images) {
      checkImages(images);
      return tf.tidy(() => {
        const b = images.shape[0];
        let x = embed(images);
        for (const blk of blocks) x = block(x, blk);
        const out = layerNorm(x, finalNorm.gamma, finalNorm.beta);
        const [clsOut, patchOut] = tf.split(out, [1, grid * grid], 1);
        return {
          dense: tf.reshape(patchOut!, [b, grid, grid, dim]) as tf.Tensor4D,
          pooled: tf.reshape(clsOut!, [b, dim]) as tf.Tensor2D,
        };
      });
    },
    attention(images) {
      checkImages(images);
      return tf.tidy(() => {
        const b = images.shape[0];
        let x = embed(images);
        for (const blk of blocks.slice(0, -1)) x = block(x, blk);
        const last = blocks[blocks.length - 1]!;
        const [q, kT] = queriesKeysValues(layerNorm(x, last.norm1.gamma, last.norm1.beta), last.qkv);
        const qCls = tf.slice(q, [0, 0, 0], [b * heads, 1, headDim]); // [B·h, 1, dₕ]
        const kPatches = tf.slice(kT, [0, 0, 1], [b * heads, headDim, grid * grid]); // [B·h, dₕ, N]
        return tf.reshape(tf.softmax(tf.matMul(qCls, kPatches)), [b, heads, grid, grid]) as tf.Tensor4D;
      });
    },
    dispose() {
      tf.dispose(trainable);
    },
  };
}
