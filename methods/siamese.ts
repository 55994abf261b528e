/**
 * The online / momentum pair of encoders and heads that MoCo v2 and DenseCL share: the online
 * branch is trained, the momentum branch follows it by EMA and produces keys.
 */
import * as tf from '@tensorflow/tfjs';
import { createMlp, type Mlp } from '../models/heads.js';
import { createEncoder } from '../models/encoders.js';
import type { Encoder, EncoderConfig } from '../models/encoder-spec.js';
import type { WeightInit } from '../models/weight-init.js';
import { alignLoss, l2Normalize } from './losses.js';
import type { Batch } from '../core/batch.js';
import { logPart, type LossParts, type Method } from './method.js';
import { copyWeights, emaUpdate, PendingKeys, type KeyQueue } from './momentum.js';

export interface Branch {
  encoder: Encoder;
  /** Global projector: pooled `[B, C]` → `[B, D]` (MoCo v2: fc → ReLU → fc(128)). */
  global: Mlp;
  /** Dense projector (DenseCL): cells `[B, S, S, C]` → `[B, S, S, D]` (1×1 conv → ReLU → 1×1 conv). */
  dense?: Mlp;
}

export interface SiameseOptions {
  encoder: EncoderConfig;
  /**
   * Weight λ of the align loss `‖q − k‖²` between the two views' global projections (METHODS.md
   * §3: it counters InfoNCE's over-confidence on the easy pairs an attention view makes). 0: off.
   */
  alignWeight?: number;
  /** Projection size D (default 128). */
  dim?: number;
  /** Hidden width of the projectors (default 2 × the encoder's channels). */
  hidden?: number;
  denseHead?: boolean;
  /**
   * Hidden width of the dense projector (default `hidden`). It runs per cell of the views' grids
   * (the key view's every cell, the query cells drawn), where the global one runs once per image,
   * so its width sets much of the dense methods' extra cost; DenseCL's own keeps the backbone's
   * width (2048 → 2048 → 128), as `train` does.
   */
  denseHidden?: number;
  seed?: number;
  /** How the weights are first drawn (default `densestream`; models/weight-init.ts). */
  init?: WeightInit;
}

/**
 * One branch, its weights named under `scope` (`online`, `momentum`, softrank's `frozen/0`): the
 * encoder, the global projector and, with `denseHead`, the dense one. Every copy of a branch
 * is built here, so their weights have the same names and shapes.
 */
export function createBranch(o: SiameseOptions, scope: string): Branch {
  // checked before any variable is made: a refused option must leave nothing registered
  if (o.denseHidden !== undefined && !(Number.isInteger(o.denseHidden) && o.denseHidden >= 1))
    throw new Error(`denseHidden: expected an integer ≥ 1, got ${o.denseHidden}`);
  const seed = o.seed ?? 0;
  const encoder = createEncoder(o.encoder, seed, `${scope}/encoder`, o.init);
  const dim = o.dim ?? 128;
  const hidden = o.hidden ?? 2 * encoder.channels;
  const b: Branch = { encoder, global: createMlp([encoder.channels, hidden, dim], seed + 1, `${scope}/global`, o.init) };
  if (o.denseHead) b.dense = createMlp([encoder.channels, o.denseHidden ?? hidden, dim], seed + 2, `${scope}/dense`, o.init);
  return b;
}

/** Every weight of a branch by stable name (`encoder/…`, `global/…`, `dense/…`). */
export function branchWeights(b: Branch): Record<string, tf.Variable> {
  const out: Record<string, tf.Variable> = {};
  for (const [k, v] of Object.entries(b.encoder.weights)) out[`encoder/${k}`] = v;
  for (const [k, v] of Object.entries(b.global.weights)) out[`global/${k}`] = v;
  if (b.dense) for (const [k, v] of Object.entries(b.dense.weights)) out[`dense/${k}`] = v;
  return out;
}

export interface Siamese {
  online: Branch;
  momentum: Branch;
  trainable: tf.Variable[];
  /** The online branch's normalised global projection, batch norm in inference mode. */
  embed(images: tf.Tensor4D): tf.Tensor2D;
  /** `θ_k ← m·θ_k + (1 − m)·θ_q`. */
  update(m: number): void;
  dispose(): void;
}

export function createSiamese(o: SiameseOptions): Siamese {
  const online = createBranch(o, 'online');
  const momentum = createBranch(o, 'momentum');
  const onlineWeights = branchWeights(online);
  const momentumWeights = branchWeights(momentum);
  copyWeights(onlineWeights, momentumWeights);
  return {
    online,
    momentum,
    trainable: Object.values(onlineWeights).filter((v) => v.trainable),
    update: (m) => emaUpdate(onlineWeights, momentumWeights, m),
    embed: (images) =>
      tf.tidy(() => {
        const out = online.encoder.apply(images, { training: false });
        return l2Normalize(online.global.apply(out.pooled));
      }),
    dispose: () => tf.dispose([...Object.values(onlineWeights), ...Object.values(momentumWeights)]),
  };
}

/** A checkpoint's view of a method built on a pair: both branches' weights and its queues. */
export function siameseState(pair: Siamese, queues: Record<string, KeyQueue>): Record<string, tf.Variable> {
  const state: Record<string, tf.Variable> = {};
  for (const [name, q] of Object.entries(queues)) {
    state[`${name}/keys`] = q.keys;
    state[`${name}/pointer`] = q.pointer;
  }
  for (const [k, v] of Object.entries(branchWeights(pair.online))) state[`online/${k}`] = v;
  for (const [k, v] of Object.entries(branchWeights(pair.momentum))) state[`momentum/${k}`] = v;
  return state;
}

/** `loss + λ·alignLoss(q, k)` when λ > 0 (logged as `align`), else `loss`. */
export function withAlign(loss: tf.Scalar, q: tf.Tensor2D, k: tf.Tensor2D, weight: number | undefined, parts: LossParts): tf.Scalar {
  if (!weight) return loss;
  if (!(weight > 0)) throw new Error(`--align-weight: expected a number ≥ 0, got ${weight}`);
  const align = alignLoss(q, k);
  logPart(parts, 'align', align);
  return tf.add(loss, tf.mul(align, weight)) as tf.Scalar;
}

export interface SiameseMethodSpec {
  name: string;
  pair: Siamese;
  /** EMA momentum m of the momentum branch. */
  momentum: number;
  /** The method's key queues, by the name checkpoints store them under. */
  queues: Record<string, KeyQueue>;
  /** The loss; `stage(queue, keys)` hands keys to enqueue once the optimiser step is done. */
  loss(batch: Batch, parts: LossParts, stage: (queue: KeyQueue, keys: tf.Tensor2D) => void): tf.Scalar;
  /** {@link Method.atStep}, for a loss that follows a schedule. */
  atStep?(step: number): void;
}

/**
 * A {@link Method} on an online/momentum pair: after each step the momentum branch follows by
 * EMA and the staged keys join their queues; checkpoints hold both branches and the queues.
 * A method supplies only its loss.
 */
export function siameseMethod(spec: SiameseMethodSpec): Method {
  const { pair, queues } = spec;
  const pending = new PendingKeys();
  return {
    name: spec.name,
    trainable: pair.trainable,
    loss: (batch, parts) => spec.loss(batch, parts, (queue, keys) => pending.stage(queue, keys)),
    ...(spec.atStep ? { atStep: spec.atStep } : {}),
    afterStep() {
      pair.update(spec.momentum);
      pending.flush();
    },
    embed: (images) => pair.embed(images),
    checkpointState: () => siameseState(pair, queues),
    dispose() {
      pending.dispose();
      Object.values(queues).forEach((q) => q.dispose());
      pair.dispose();
    },
  };
}
