import * as tf from '@tensorflow/tfjs';
import { from } from 'rxjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { lossOnly } from './helpers/loss-only.js';
import { renderScene } from '../datasets/scenes.js';
import { disposeParts, readParts, type LossParts } from '../methods/method.js';
import { assertSameWeights } from '../methods/momentum.js';
import { createSoftRank, type SoftRankOptions } from '../methods/softrank.js';
import { selectBackend } from '../models/backend.js';
import type { ResNetConfig } from '../models/encoder-spec.js';
import { presetViews } from '../operators/augment-presets.js';
import { batch } from '../operators/batch.js';
import type { Batch } from '../core/batch.js';
import { ClusterIndex } from '../positives/cluster-index.js';
import { clusterPositives } from '../positives/cluster-positives.js';
import { multiView } from '../operators/multi-view.js';
import type { Sample } from '../core/index.js';
import { collect } from './helpers/collect.js';

const tiny: ResNetConfig = { kind: 'resnet', width: 8, blocks: [1, 1], stemStride: 2 };
const views = presetViews('mocov2', 32);
/** Batches of 4 (anchor, positive) pairs from clusters, and one of self-pairs (no clustering yet). */
let paired: Batch[];
let selfPaired: Batch;

beforeAll(async () => {
  await selectBackend('wasm', { threads: 2 });
  const samples = Array.from({ length: 8 }, (_, i) => renderScene(3, i, 32));
  const byId = new Map(samples.map((s) => [s.id, s]));
  const index = new ClusterIndex(
    samples.map((s) => s.id),
    Int32Array.from([0, 0, 1, 1, 0, 1, 2, 2]),
  );
  const fetch = async (id: string): Promise<Sample> => byId.get(id)!;
  paired = await collect(
    from(samples).pipe(clusterPositives({ clusters: () => index, fetch, seed: 1 }), multiView({ views, seed: 1 }), batch(8)),
  );
  [selfPaired] = (await collect(
    from(samples.slice(0, 4)).pipe(clusterPositives({ clusters: () => undefined, fetch }), multiView({ views, seed: 1 }), batch(8)),
  )) as [Batch];
});

const create = (extra: Partial<SoftRankOptions> = {}) => createSoftRank({ encoder: tiny, momentum: 0.9, dim: 16, seed: 1, ...extra });

describe('softrank options', () => {
  it("relation 'cross' gives a different image loss than 'within' on the same batch, with a gradient; an unknown relation is refused", async () => {
    const [b] = paired as [Batch];
    const run = async (relation: 'within' | 'cross') => {
      const method = create({ relation });
      const logged: LossParts = {};
      const { value, grads } = tf.variableGrads(() => method.loss(b, logged), method.trainable);
      const image = (await readParts(logged))['image']!;
      const norm = tf.tidy(() => Math.sqrt(Object.values(grads).reduce((acc, g) => acc + tf.sum(tf.square(g)).dataSync()[0]!, 0)));
      const out = { loss: value.dataSync()[0]!, image, norm };
      tf.dispose([value, ...Object.values(grads)]);
      method.dispose();
      return out;
    };
    const within = await run('within');
    const cross = await run('cross');
    expect(Number.isFinite(cross.loss) && cross.norm > 0).toBe(true);
    expect(Math.abs(cross.image - within.image)).toBeGreaterThan(1e-4);
    expect(() => create({ relation: 'sideways' as never })).toThrow(/relation: expected cross or within, got sideways/);
  });

  it('refuses bad hyper-parameters, naming them', () => {
    expect(() => create({ alpha: -1 })).toThrow(/alpha/);
    expect(() => createSoftRank({ encoder: tiny, tauT: 0 })).toThrow(/tauT/);
    expect(() => createSoftRank({ encoder: tiny, momentum: 1.5 })).toThrow(/momentum/);
  });
});

describe('softrank method', () => {
  it('pairs the batch as clusterPositives emits it: each odd row in its anchor’s cluster', () => {
    const clusterOf = [0, 0, 1, 1, 0, 1, 2, 2];
    for (const b of paired) {
      for (let i = 0; i < b.ids.length; i += 2) {
        const a = Number(b.ids[i]!.split(':').at(-1));
        const p = Number(b.ids[i + 1]!.split(':').at(-1));
        expect(p).not.toBe(a);
        expect(clusterOf[p]).toBe(clusterOf[a]);
      }
    }
    expect(paired).toHaveLength(2);
  });

  it('gives every trainable variable (predictor included) a gradient; the loss is finite, positive, α·image + β·patch', async () => {
    const method = create({ alpha: 0.7, beta: 0.3 });
    const logged: LossParts = {};
    const { value, grads } = tf.variableGrads(() => method.loss(paired[0]!, logged), method.trainable);
    const parts = await readParts(logged);
    const loss = value.dataSync()[0]!;
    expect(Number.isFinite(loss)).toBe(true);
    expect(loss).toBeGreaterThan(0);
    expect(loss).toBeCloseTo(0.7 * parts['image']! + 0.3 * parts['patch']!, 4);
    expect(parts['targetSimilarity']).toBeGreaterThan(-1);
    expect(parts['targetSimilarity']).toBeLessThanOrEqual(1 + 1e-6);
    expect(parts['targetSpread']).toBeGreaterThanOrEqual(0);
    expect(method.trainable.some((v) => v.name.startsWith('online/predictor/'))).toBe(true);
    for (const v of method.trainable) expect(tf.max(tf.abs(grads[v.name]!)).dataSync()[0], v.name).toBeGreaterThan(0);
    expect(Object.keys(method.checkpointState()).filter((k) => k.startsWith('online/predictor/'))).toHaveLength(4);
    tf.dispose([value, ...Object.values(grads)]);
    method.dispose();
  });

  it('keeps numTensors flat over SGD steps and EMA updates, and lowers the loss on a fixed batch', () => {
    const method = create();
    const opt = tf.train.momentum(0.05, 0.9);
    const losses: number[] = [];
    const step = (b: Batch) => {
      const loss = opt.minimize(() => lossOnly(method, b), true, method.trainable);
      losses.push(loss!.dataSync()[0]!);
      loss!.dispose();
      method.afterStep?.();
    };
    step(paired[0]!);
    step(paired[1]!);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 4; i++) {
      step(paired[i % 2]!);
      expect(tf.memory().numTensors).toBe(before);
    }
    // On one batch, repeated: the online ranking learns the (slowly moving) target's.
    const fixed: number[] = [];
    for (let i = 0; i < 8; i++) {
      step(paired[0]!);
      fixed.push(losses.at(-1)!);
    }
    expect(fixed.at(-1)!).toBeLessThan(fixed[0]!);
    expect(tf.memory().numTensors).toBe(before);
    opt.dispose();
    method.dispose();
  });

  it('asks for negatives with the batch ids and its target embeddings, and trains on them with numTensors flat', () => {
    const calls: Array<{ ids: readonly string[]; z: Float32Array }> = [];
    const rng = (i: number) => (Math.sin(i * 12.9898) * 43758.5453) % 1;
    const method = create({
      negatives: (ids, z, dims) => {
        calls.push({ ids, z: z.slice() });
        expect(dims).toBe(16);
        return Float32Array.from({ length: (ids.length / 2) * 3 * dims }, (_, i) => rng(i)); // K = 3
      },
    });
    const opt = tf.train.momentum(0.05, 0.9);
    const parts: LossParts = {}; // logPart replaces a part's tensor each step: numTensors stays flat
    const step = (b: Batch) => {
      const loss = opt.minimize(() => method.loss(b, parts), true, method.trainable);
      expect(Number.isFinite(loss!.dataSync()[0]!)).toBe(true);
      loss!.dispose();
      method.afterStep?.();
    };
    step(paired[0]!);
    step(paired[1]!);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step(paired[i % 2]!);
    expect(tf.memory().numTensors).toBe(before);
    expect(parts['negatives']).toBe(3);
    disposeParts(parts);
    expect(calls).toHaveLength(5);
    expect(calls[4]!.ids).toEqual(paired[0]!.ids);
    expect([...calls[4]!.z]).toEqual([...method.targetEmbeddings()!.rows]);
    opt.dispose();
    method.dispose();
  });

  it('freezes copies of the target branch: embedFrozen gives a slot’s copy’s unit projections in inference mode, untouched by later training', () => {
    const method = create({ frozenTargets: true });
    const state = method.checkpointState();
    expect(Object.keys(state).filter((k) => k.startsWith('frozen/0/')).length).toBeGreaterThan(0);
    expect(Object.keys(state).filter((k) => k.startsWith('frozen/1/')).length).toBe(
      Object.keys(state).filter((k) => k.startsWith('frozen/0/')).length,
    );
    expect(method.trainable.some((v) => v.name.startsWith('frozen/'))).toBe(false);
    const images = paired[0]!.views[0]!;
    const embed = (slot: 0 | 1) => tf.tidy(() => method.embedFrozen(slot, images).arraySync());
    const initial = embed(0);
    expect(embed(1)).toEqual(initial); // both start as the initial target
    initial.forEach((row) => expect(Math.hypot(...row)).toBeCloseTo(1, 5));
    const opt = tf.train.momentum(0.05, 0.9);
    for (let i = 0; i < 3; i++) {
      opt.minimize(() => lossOnly(method, paired[i % 2]!), true, method.trainable)?.dispose();
      method.afterStep?.();
    }
    const before = tf.memory().numTensors;
    method.freezeTarget(1);
    expect(tf.memory().numTensors).toBe(before);
    expect(embed(0)).toEqual(initial);
    const moved = embed(1);
    expect(Math.max(...moved.flat().map((v, i) => Math.abs(v - initial.flat()[i]!)))).toBeGreaterThan(1e-4);
    // Slot 1 now is the target as it stands: the momentum encoder's inference-mode projection.
    const variables = state as Record<string, tf.Variable>;
    for (const name of Object.keys(variables).filter((k) => k.startsWith('frozen/1/'))) {
      const live = variables[name.replace('frozen/1/', 'momentum/')]!;
      expect(tf.max(tf.abs(tf.sub(variables[name]!, live))).dataSync()[0], name).toBe(0);
    }
    opt.dispose();
    method.dispose();
    const plain = create();
    expect(() => plain.freezeTarget(0)).toThrow(/without frozenTargets/);
    plain.dispose();
  });

  it('builds its frozen copies as the target branch is built: the same weight names as its encoder and global head; a copy that differs is refused', () => {
    const method = create({ frozenTargets: true });
    const state = method.checkpointState();
    const under = (prefix: string) =>
      Object.keys(state)
        .filter((k) => k.startsWith(prefix))
        .map((k) => k.slice(prefix.length))
        .sort();
    const target = under('momentum/').filter((k) => !k.startsWith('dense/'));
    expect(target.length).toBeGreaterThan(4);
    expect(under('frozen/0/')).toEqual(target);
    expect(under('frozen/1/')).toEqual(target);
    method.dispose();
    const w = (shape: number[]) => tf.variable(tf.zeros(shape));
    const source = { a: w([2]), b: w([3]) };
    const copies: Array<Record<string, tf.Variable>> = [{ a: w([2]) }, { a: w([2]), b: w([3]), c: w([1]) }, { a: w([2]), b: w([4]) }];
    expect(() => assertSameWeights(source, copies[0]!, 'copy')).toThrow(
      "copy: the copy's weights do not match its source's: the copy lacks b",
    );
    expect(() => assertSameWeights(source, copies[1]!, 'copy')).toThrow('the copy has c the source lacks');
    expect(() => assertSameWeights(source, copies[2]!, 'copy')).toThrow('shapes differ for b');
    const same = { a: w([2]), b: w([3]) };
    expect(() => assertSameWeights(source, same, 'copy')).not.toThrow();
    tf.dispose([source, ...copies, same].flatMap((r) => Object.values(r)));
  });

  it('refuses a batch of odd size, and one too small to rank', () => {
    const method = create();
    const fake = (b: number): Batch => ({
      ids: Array.from({ length: b }, (_, i) => `x${i}`),
      views: [tf.zeros([b, 32, 32, 3]), tf.zeros([b, 32, 32, 3])] as tf.Tensor4D[],
      masks: [],
      boxes: [],
      flipped: [],
      dispose: () => {},
    });
    expect(() => lossOnly(method, fake(7))).toThrow(/even B of adjacent \(anchor, positive\) pairs/);
    expect(() => lossOnly(method, fake(2))).toThrow(/B ≥ 4/);
    method.dispose();
  });

  it('hands out the target projections of the last batch: one unit row per id', () => {
    const method = create();
    expect(method.targetEmbeddings()).toBeUndefined();
    tf.tidy(() => lossOnly(method, paired[1]!));
    const z = method.targetEmbeddings()!;
    expect(z.ids).toEqual(paired[1]!.ids);
    expect(z.dims).toBe(16);
    expect(z.rows).toHaveLength(8 * 16);
    for (let i = 0; i < 8; i++) {
      const norm = Math.hypot(...z.rows.subarray(i * 16, (i + 1) * 16));
      expect(norm).toBeCloseTo(1, 5);
    }
    method.dispose();
  });

  it('pairs an anchor that is its own positive with its other view (not with an identical copy)', async () => {
    const ids = selfPaired.ids;
    expect(ids).toHaveLength(8);
    for (let i = 0; i < 8; i += 2) expect(ids[i + 1]).toBe(ids[i]);
    const method = create();
    const logged: LossParts = {};
    const loss = tf.tidy(() => method.loss(selfPaired, logged).dataSync()[0]!);
    expect(Number.isFinite(loss)).toBe(true);
    const parts = await readParts(logged);
    // Identical copies would make every online and target cell similarity 1: all P = ½, BCE = ln 2.
    expect(Math.abs(parts['patch']! - Math.LN2)).toBeGreaterThan(1e-3);
    method.dispose();
  });
});
