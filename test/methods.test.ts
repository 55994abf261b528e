import * as tf from '@tensorflow/tfjs';
import { from } from 'rxjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { lossOnly } from './helpers/loss-only.js';
import { renderScene } from '../datasets/scenes.js';
import { createDenseCL } from '../methods/densecl.js';
import { createHapicl, maskToGrid } from '../methods/hapicl.js';
import { DEFAULT_PIXEL_CELLS } from '../pipelines/train-schema.js';
import { parseTrainConfig } from '../pipelines/train-options.js';
import { readParts, type LossParts, type Method } from '../methods/method.js';
import { createMocoV2 } from '../methods/mocov2.js';
import { KeyQueue } from '../methods/momentum.js';
import { selectBackend } from '../models/backend.js';
import type { ResNetConfig } from '../models/encoder-spec.js';
import { presetViews } from '../operators/augment-presets.js';
import { batch } from '../operators/batch.js';
import type { Batch } from '../core/batch.js';
import { multiView } from '../operators/multi-view.js';
import { collect } from './helpers/collect.js';

const tiny: ResNetConfig = { kind: 'resnet', width: 8, blocks: [1, 1], stemStride: 2 };
let batches: Batch[];

beforeAll(async () => {
  await selectBackend('wasm', { threads: 2 });
  const samples = Array.from({ length: 8 }, (_, i) => renderScene(3, i, 32)).map((s) => ({ ...s, mask: s.gtMask }));
  batches = await collect(from(samples).pipe(multiView({ views: presetViews('mocov2', 32), seed: 1 }), batch(4)));
});

const methods: Array<[string, () => Method]> = [
  ['mocov2', () => createMocoV2({ encoder: tiny, queueSize: 16, momentum: 0.9, seed: 1 })],
  ['densecl', () => createDenseCL({ encoder: tiny, queueSize: 16, momentum: 0.9, seed: 1 })],
  ['densecl, 4 sampled cells', () => createDenseCL({ encoder: tiny, queueSize: 16, momentum: 0.9, seed: 1, denseCells: 4 })],
  ['hapicl', () => createHapicl({ encoder: tiny, queueSize: 16, momentum: 0.9, seed: 1 })],
  ['hapicl, 4 sampled pixel cells', () => createHapicl({ encoder: tiny, queueSize: 16, momentum: 0.9, seed: 1, pixelCells: 4 })],
];

describe.each(methods)('%s', (_, create) => {
  it('gives every trainable variable a gradient, and the loss is finite and positive', async () => {
    const method = create();
    const parts: LossParts = {};
    const { value, grads } = tf.variableGrads(() => method.loss(batches[0]!, parts), method.trainable);
    expect(value.dataSync()[0]).toBeGreaterThan(0);
    expect(Number.isFinite(value.dataSync()[0])).toBe(true);
    for (const v of method.trainable) expect(tf.max(tf.abs(grads[v.name]!)).dataSync()[0], v.name).toBeGreaterThan(0);
    expect(Object.keys(parts).length).toBeGreaterThan(0);
    // Parts are kept scalars, read only when a log line is written.
    expect(Object.values(await readParts(parts)).every(Number.isFinite)).toBe(true);
    tf.dispose([value, ...Object.values(grads)]);
    method.dispose();
  });

  it('moves the momentum branch by θ_k ← m·θ_k + (1 − m)·θ_q after a step, and keeps numTensors flat', () => {
    const method = create();
    const state = method.checkpointState();
    const name = Object.keys(state).find((k) => k.startsWith('online/') && k.endsWith('stem/w'))!;
    const online = state[name]!;
    const momentum = state[name.replace('online/', 'momentum/')]!;
    const opt = tf.train.momentum(0.05, 0.9);
    const step = (b: Batch) => {
      const loss = opt.minimize(() => lossOnly(method, b), true, method.trainable);
      loss?.dispose();
    };
    step(batches[0]!);
    const kBefore = momentum.dataSync().slice();
    step(batches[1]!); // changes the online weights
    const q = online.dataSync().slice();
    method.afterStep?.();
    const k = momentum.dataSync();
    for (let i = 0; i < 5; i++) expect(k[i]!).toBeCloseTo(0.9 * kBefore[i]! + 0.1 * q[i]!, 5);
    method.afterStep?.();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 4; i++) {
      step(batches[i % 2]!);
      method.afterStep?.();
      expect(tf.memory().numTensors).toBe(before);
    }
    opt.dispose();
    method.dispose();
  });
});

describe('key queue', () => {
  it('replaces the oldest rows and wraps around', () => {
    const queue = new KeyQueue(5, 2, 0, 'test-queue');
    queue.enqueue(
      tf.tensor2d([
        [1, 0],
        [0, 1],
        [1, 1],
      ]),
    );
    queue.enqueue(
      tf.tensor2d([
        [2, 2],
        [3, 3],
        [4, 4],
      ]),
    ); // rows 3, 4, then 0
    expect(queue.keys.arraySync()).toEqual([
      [4, 4],
      [0, 1],
      [1, 1],
      [2, 2],
      [3, 3],
    ]);
    expect(queue.pointer.dataSync()[0]).toBe(1);
    queue.dispose();
  });

  it('fills to the last row exactly, takes a batch as large as itself from any row, and leaves no tensor behind', () => {
    const queue = new KeyQueue(4, 1, 0, 'test-queue');
    const before = tf.memory().numTensors;
    const put = (values: number[]) => tf.tidy(() => queue.enqueue(tf.tensor2d(values, [values.length, 1])));
    put([1, 2, 3, 4]); // rows 0–3: the whole queue from row 0
    expect(queue.keys.dataSync()).toEqual(new Float32Array([1, 2, 3, 4]));
    put([5]);
    put([6, 7, 8]); // rows 1–3, ending exactly at the last row
    expect(queue.keys.dataSync()).toEqual(new Float32Array([5, 6, 7, 8]));
    expect(queue.pointer.dataSync()[0]).toBe(0);
    put([9, 10]);
    put([11, 12, 13, 14]); // rows 2, 3, then 0, 1: the whole queue from row 2
    expect(queue.keys.dataSync()).toEqual(new Float32Array([13, 14, 11, 12]));
    expect(queue.pointer.dataSync()[0]).toBe(2);
    expect(() => put([1, 2, 3, 4, 5])).toThrow('queue: 5 keys do not fit a queue of 4');
    expect(() => tf.tidy(() => queue.enqueue(tf.zeros([2, 3])))).toThrow('queue: keys of 3 values do not fit a queue of 1');
    expect(tf.memory().numTensors).toBe(before);
    queue.dispose();
  });

  it('writes where a restored pointer says, though it keeps its own as a number between steps', () => {
    const queue = new KeyQueue(4, 1, 0, 'test-queue');
    const put = (values: number[]) => tf.tidy(() => queue.enqueue(tf.tensor2d(values, [values.length, 1])));
    put([1, 2]); // rows 0–1, the pointer now 2
    tf.tidy(() => queue.pointer.assign(tf.scalar(3, 'int32'))); // as a checkpoint's restore assigns it
    put([7]);
    expect(queue.keys.dataSync()[3]).toBe(7);
    expect(queue.pointer.dataSync()[0]).toBe(0);
    put([8]);
    expect(queue.keys.dataSync()[0]).toBe(8);
    queue.dispose();
  });
});

describe('hapicl masks', () => {
  it('pools a view mask to the feature grid: a cell is foreground when at least half its pixels are', () => {
    const mask = tf.tensor3d([
      [
        [1, 1, 0, 0],
        [1, 1, 0, 1],
        [0, 0, 1, 1],
        [0, 0, 0, 0],
      ],
    ]);
    expect(maskToGrid(mask, 2).arraySync()).toEqual([
      [
        [1, 0],
        [0, 1],
      ],
    ]);
  });

  it('pools each image of a batch on its own, cells of 2×3 pixels, as counted by hand', () => {
    const [b, h, w, grid] = [3, 8, 12, 4];
    const values = Array.from({ length: b * h * w }, (_, i) => ((i * 7919) % 13) % 2); // a fixed 0/1 pattern
    const expected = Array.from({ length: b }, (_, n) =>
      Array.from({ length: grid }, (_, gy) =>
        Array.from({ length: grid }, (_, gx) => {
          let count = 0;
          for (let y = gy * 2; y < gy * 2 + 2; y++) for (let x = gx * 3; x < gx * 3 + 3; x++) count += values[(n * h + y) * w + x]!;
          return count >= 3 ? 1 : 0;
        }),
      ),
    );
    const grids = tf.tidy(() => maskToGrid(tf.tensor3d(values, [b, h, w]), grid).arraySync());
    expect(grids).toEqual(expected);
    expect(expected.flat(2)).toContain(0); // the pattern gives both kinds of cell
    expect(expected.flat(2)).toContain(1);
    expect(() => maskToGrid(tf.zeros([1, 8, 10]), grid)).toThrow('hapicl: view size 8×10 is not a multiple of the feature grid 4');
  });
});

describe('hapicl without foreground in a view', () => {
  it('leaves such an image out of L_fg, so no gradient passes through a normalised zero vector', () => {
    // Image 0's second view has no foreground; image 1's first view is all foreground (no background).
    const b = batches[0]!;
    const [m1, m2] = b.masks as [tf.Tensor3D, tf.Tensor3D];
    const edited = tf.tidy(() => {
      const n = m1.shape[0];
      const rowMask = (row: number) => tf.reshape(tf.oneHot([row], n), [n, 1, 1]);
      return [
        tf.add(tf.mul(m1, tf.sub(1, rowMask(1))), rowMask(1)), // image 1: all foreground in view 1
        tf.mul(m2, tf.sub(1, rowMask(0))), // image 0: no foreground in view 2
      ] as [tf.Tensor3D, tf.Tensor3D];
    });
    const degenerate: Batch = { ...b, masks: edited };
    const method = createHapicl({ encoder: tiny, queueSize: 16, momentum: 0.9, seed: 1 });
    const parts: LossParts = {};
    const { value, grads } = tf.variableGrads(() => method.loss(degenerate, parts), method.trainable);
    expect(Number.isFinite(value.dataSync()[0])).toBe(true);
    // Before the fix the global head's output bias took a gradient of about 1/√ε = 10⁶ here.
    const largest = Math.max(...method.trainable.map((v) => tf.max(tf.abs(grads[v.name]!)).dataSync()[0]!));
    expect(largest).toBeLessThan(100);
    tf.dispose([value, ...Object.values(grads), ...edited, ...Object.values(parts).filter((p): p is tf.Scalar => typeof p !== 'number')]);
    method.dispose();
  });
});

describe("hapicl's HARL weights (--alpha, --beta)", () => {
  it('L = L_pix + β·L_img + (1 − β)·(α·L_fg + (1 − α)·L_bg), from the logged parts', () => {
    const b = batches[0]!;
    for (const [alpha, beta] of [
      [0.5, 0.5],
      [1, 0],
      [0.25, 0.8],
    ] as const) {
      const method = createHapicl({ encoder: tiny, queueSize: 16, momentum: 0.9, seed: 1, alpha, beta });
      const parts: LossParts = {};
      const loss = method.loss(b, parts);
      const p = Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, typeof v === 'number' ? v : v.dataSync()[0]!]));
      const expected = p.pixel! + beta * p.image! + (1 - beta) * (alpha * p.fg! + (1 - alpha) * p.bg!);
      expect(loss.dataSync()[0]).toBeCloseTo(expected, 5);
      tf.dispose([loss, ...Object.values(parts).filter((v): v is tf.Scalar => typeof v !== 'number')]);
      method.dispose();
    }
  });

  it('are hapicl and softrank flags, in [0, 1]', () => {
    const c = parseTrainConfig(['--method', 'hapicl', '--alpha', '1', '--beta', '0', '--out', '/tmp/never']);
    expect([c.alpha, c.beta]).toEqual([1, 0]);
    expect(() => parseTrainConfig(['--method', 'mocov2', '--beta', '0'])).toThrow(
      "--beta: a weight of hapicl's HARL loss or of softrank's two rankings; drop it with --method mocov2",
    );
    expect(() => parseTrainConfig(['--method', 'hapicl', '--alpha', '1.5'])).toThrow(/--alpha/);
  });
});

describe("hapicl's sampled pixel cells (--pixel-cells)", () => {
  it('default to DEFAULT_PIXEL_CELLS with hapicl, take 0 for every cell, and are refused for the other methods', () => {
    expect(parseTrainConfig(['--method', 'hapicl', '--out', '/tmp/never'])['pixel-cells']).toBe(DEFAULT_PIXEL_CELLS);
    expect(parseTrainConfig(['--method', 'hapicl', '--pixel-cells', '0', '--out', '/tmp/never'])['pixel-cells']).toBe(0);
    expect(parseTrainConfig(['--method', 'mocov2', '--out', '/tmp/never'])['pixel-cells']).toBeUndefined();
    expect(() => parseTrainConfig(['--method', 'densecl', '--pixel-cells', '8'])).toThrow(
      '--pixel-cells: only hapicl has a pixel term; drop it with --method densecl',
    );
    expect(() => parseTrainConfig(['--method', 'hapicl', '--pixel-cells', '-1'])).toThrow(/--pixel-cells/);
  });
});

describe("densecl's sampled dense cells (--dense-cells)", () => {
  it('default to a quarter of the grid, at most 8, with densecl; 0 keeps every cell; none for the other methods', () => {
    const cells = (...args: string[]) => parseTrainConfig(['--method', 'densecl', ...args, '--out', '/tmp/never'])['dense-cells'];
    expect(cells()).toBe(4); // the recipe: 32 px on the slim encoder's stride 8, 4×4 cells
    expect(cells('--size', '64')).toBe(8); // 8×8: a quarter would be 16
    expect(cells('--size', '28')).toBe(4); // Fashion-MNIST's own size: the grid rounds up to 4×4
    expect(cells('--size', '16')).toBe(1); // 2×2
    expect(cells('--size', '64', '--dense-cells', '0')).toBe(0);
    expect(cells('--dense-cells', '12')).toBe(12);
    expect(parseTrainConfig(['--method', 'mocov2', '--out', '/tmp/never'])['dense-cells']).toBeUndefined();
    expect(cells('--encoder', 'resnet18', '--size', '224')).toBe(8); // stride 8: 28×28, at most 8
    expect(cells('--encoder', 'resnet18', '--size', '28')).toBe(4); // stride 8 as the slim one, 4×4
    expect(cells('--encoder', 'vit', '--size', '64')).toBe(8); // 8-px patches: 8×8
    expect(parseTrainConfig(['--method', 'densecl', '--out', '/tmp/never'])['dense-queue']).toBe(512);
  });

  it('refuses a queue or a dense queue smaller than a batch, whose keys go in at once', () => {
    expect(() => parseTrainConfig(['--method', 'densecl', '--batch', '600', '--out', '/tmp/never'])).toThrow(
      "--dense-queue 512: a step's 600 dense keys go into the dense queue at once; give --dense-queue 600 or more (0: as --queue)",
    );
    expect(parseTrainConfig(['--method', 'densecl', '--batch', '600', '--dense-queue', '0', '--out', '/tmp/never']).batch).toBe(600);
    expect(() => parseTrainConfig(['--method', 'mocov2', '--batch', '64', '--queue', '32', '--out', '/tmp/never'])).toThrow(
      "--queue 32: a step's 64 keys go into the queue at once; give --queue 64 or more",
    );
  });
});

describe("densecl's and hapicl's dense head width (--dense-hidden)", () => {
  it("defaults to the encoder's channels with densecl and to the global head's width with hapicl, and is refused for the other methods", () => {
    expect(parseTrainConfig(['--method', 'densecl', '--out', '/tmp/never'])['dense-hidden']).toBe(128); // slim: 32 · 2²
    expect(parseTrainConfig(['--method', 'densecl', '--encoder', 'resnet18', '--out', '/tmp/never'])['dense-hidden']).toBe(512);
    expect(parseTrainConfig(['--method', 'densecl', '--dense-hidden', '0', '--out', '/tmp/never'])['dense-hidden']).toBe(0);
    expect(parseTrainConfig(['--method', 'mocov2', '--out', '/tmp/never'])['dense-hidden']).toBeUndefined();
    expect(parseTrainConfig(['--method', 'hapicl', '--out', '/tmp/never'])['dense-hidden']).toBeUndefined(); // the global head's 2C
    expect(parseTrainConfig(['--method', 'hapicl', '--dense-hidden', '64', '--out', '/tmp/never'])['dense-hidden']).toBe(64);
    expect(() => parseTrainConfig(['--method', 'softrank', '--dense-hidden', '64'])).toThrow(
      "--dense-hidden: only densecl's and hapicl's dense heads are sized by it; drop it with --method softrank",
    );
    expect(() => parseTrainConfig(['--method', 'densecl', '--dense-hidden', '1.5'])).toThrow(/--dense-hidden/);
  });
});

describe("densecl's dense warm-up (--dense-warmup)", () => {
  it('defaults to none, is refused for the other methods and where the dense term would never start', () => {
    expect(parseTrainConfig(['--method', 'densecl', '--out', '/tmp/never'])['dense-warmup']).toBe(0);
    expect(parseTrainConfig(['--method', 'densecl', '--dense-warmup', '300', '--out', '/tmp/never'])['dense-warmup']).toBe(300);
    expect(() => parseTrainConfig(['--method', 'mocov2', '--dense-warmup', '10'])).toThrow(
      '--dense-warmup: only densecl has a dense term to warm up; drop it with --method mocov2',
    );
    expect(() => parseTrainConfig(['--method', 'densecl', '--steps', '100', '--dense-warmup', '100'])).toThrow(
      '--dense-warmup 100: the run has 100 steps, so its dense term would never start; give fewer',
    );
    expect(() => parseTrainConfig(['--method', 'densecl', '--dense-warmup', '-1'])).toThrow(/--dense-warmup/);
  });
});

describe("the initial weights' draw (--init)", () => {
  it('defaults to densestream, takes reference, and refuses anything else before any work', () => {
    expect(parseTrainConfig(['--out', '/tmp/never']).init).toBe('densestream');
    expect(parseTrainConfig(['--init', 'reference', '--out', '/tmp/never']).init).toBe('reference');
    expect(() => parseTrainConfig(['--init', 'torchvision', '--out', '/tmp/never'])).toThrow(/--init.*densestream.*reference/);
  });

  it('reaches every head and the encoder of both branches, and the momentum branch starts as the online one', () => {
    const before = tf.memory().numTensors;
    const drawn = (init: 'densestream' | 'reference') => {
      const method = createDenseCL({ encoder: tiny, queueSize: 16, seed: 3, init });
      const state = Object.fromEntries(Object.entries(method.checkpointState()).map(([k, v]) => [k, v.dataSync().slice()]));
      method.dispose();
      return state;
    };
    const ours = drawn('densestream');
    const reference = drawn('reference');
    for (const head of ['global', 'dense'])
      for (const branch of ['online', 'momentum']) {
        expect(
          Array.from(ours[`${branch}/${head}/fc0/b`]!).every((b) => b === 0),
          `${branch}/${head}`,
        ).toBe(true);
        expect(
          Array.from(reference[`${branch}/${head}/fc0/b`]!).some((b) => b !== 0),
          `${branch}/${head}`,
        ).toBe(true);
      }
    expect(reference['online/encoder/stem/w']).not.toEqual(ours['online/encoder/stem/w']);
    for (const [name, values] of Object.entries(reference))
      if (name.startsWith('online/')) expect(reference[name.replace('online/', 'momentum/')], name).toEqual(values);
    expect(tf.memory().numTensors).toBe(before);
  });
});
