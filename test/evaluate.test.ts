import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../models/backend.js';
import { keyedRng } from '../core/index.js';
import { loadLabelledImages, runEvaluation } from '../pipelines/evaluate.js';
import { embedImages } from '../pipelines/eval-protocols.js';
import { parseEvalConfig } from '../pipelines/eval-options.js';
import { ConfigError } from '../core/config-error.js';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_DIR } from '../datasets/fashion-mnist.js';
import { scenesSource } from '../datasets/scenes.js';
import { encoderPreset } from '../models/encoder-spec.js';
import { createEncoder } from '../models/encoders.js';
import { fitDenseProbe, fitLinearProbe, predictDense, predictLinear, standardizer } from '../train/linear-probe.js';
import { ConfusionMatrix, maskIoU, resizeNearest } from '../train/segmentation-metrics.js';
import { CLI } from './helpers/cli.js';

const evalCli = (...args: string[]) =>
  spawnSync(process.execPath, [CLI, 'eval', '--quiet', '--threads', '1', ...args], { encoding: 'utf8' });
const plane = (values: number[], width: number) => ({ data: Uint8Array.from(values), width, height: values.length / width });

beforeAll(async () => {
  await selectBackend('wasm', { threads: 2 });
});

describe('segmentation metrics', () => {
  it('maskIoU counts intersection over union, and two empty masks agree', () => {
    expect(maskIoU(plane([1, 1, 0, 0], 2), plane([1, 0, 1, 0], 2))).toBeCloseTo(1 / 3, 12);
    expect(maskIoU(plane([0, 0], 2), plane([0, 0], 2))).toBe(1);
    expect(() => maskIoU(plane([1, 1], 2), plane([1, 1], 1))).toThrow(/2×1 against 1×2/);
  });

  it('resizeNearest samples at pixel centres', () => {
    expect(Array.from(resizeNearest(plane([1, 2, 3, 4], 2), 4, 4).data)).toEqual([1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
    expect(Array.from(resizeNearest(plane([1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4], 4), 2, 2).data)).toEqual([1, 2, 3, 4]);
  });

  it('per-class IoU and mIoU match a hand count, leaving out a class with no evidence', () => {
    const m = new ConfusionMatrix(3);
    // truth 0 0 0 1 1 ; predicted 0 0 1 1 0: class 0: TP 2, FP 1, FN 1 → 2/4; class 1: TP 1, FP 1, FN 1 → 1/3; class 2 absent.
    m.add([0, 0, 0, 1, 1], [0, 0, 1, 1, 0]);
    const iou = m.perClassIoU();
    expect(iou[0]).toBeCloseTo(0.5, 12);
    expect(iou[1]).toBeCloseTo(1 / 3, 12);
    expect(iou[2]).toBeNull();
    expect(m.meanIoU()).toBeCloseTo((0.5 + 1 / 3) / 2, 12);
    expect(m.accuracy()).toBeCloseTo(3 / 5, 12);
    expect(() => m.add([3], [0])).toThrow(/outside 0…2/);
  });
});

/** `n` points of `classes` Gaussian blobs in `dims` dimensions, centres far apart. */
function blobs(n: number, classes: number, dims: number, seed: number): { x: Float32Array; y: Int32Array } {
  const rng = keyedRng(seed, 'blobs');
  const centres = Array.from({ length: classes }, () => Array.from({ length: dims }, () => rng.uniform(-4, 4)));
  const x = new Float32Array(n * dims);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % classes;
    y[i] = c;
    for (let d = 0; d < dims; d++) x[i * dims + d] = (centres[c]![d] as number) + rng.uniform(-1, 1) + 100; // an offset the standardisation removes
  }
  return { x, y };
}

describe('linear probes', () => {
  it('standardizer gives each column mean 0 and std 1', () => {
    const { mean, invStd } = standardizer(Float32Array.from([1, 10, 3, 10, 5, 10]), 2);
    expect(Array.from(mean)).toEqual([3, 10]);
    expect(invStd[0]).toBeCloseTo(1 / Math.sqrt(8 / 3), 5);
    expect(Number.isFinite(invStd[1])).toBe(true); // a constant column stays finite
  });

  it('starts at the cross-entropy of a uniform guess, ln K, and separates blobs on held-out points', async () => {
    const before = tf.memory().numTensors;
    const frozen = await fitLinearProbe(blobs(200, 4, 8, 1).x, blobs(200, 4, 8, 1).y, 8, { classes: 4, epochs: 1, learningRate: 0 });
    expect(frozen.losses[0]).toBeCloseTo(Math.log(4), 5); // zero weights: every class 1/4
    const all = blobs(600, 4, 8, 1);
    const trainX = all.x.subarray(0, 400 * 8);
    const probe = await fitLinearProbe(trainX, all.y.subarray(0, 400), 8, { classes: 4, epochs: 30 });
    const heldOut = await predictLinear(probe, all.x.subarray(400 * 8));
    expect(heldOut.filter((p, i) => p === all.y[400 + i]).length / 200).toBeGreaterThan(0.95);
    expect(probe.losses.at(-1)!).toBeLessThan(probe.losses[0]! / 4);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses labels outside the classes', () => {
    expect(() => fitLinearProbe(new Float32Array(4), [0, 2], 2, { classes: 2 })).toThrow(/label 2 outside 0…1/);
  });

  it('the dense probe upsamples logits bilinearly (half-pixel centres) and learns a planted cell map', async () => {
    const before = tf.memory().numTensors;
    // Each cell of a 4×4 grid holds a one-hot code of its class (3 classes) plus noise; labels are the
    // class map at 16×16, nearest-upsampled: a 1×1 classifier can read the class off each cell.
    const grid = 4;
    const size = 16;
    const dims = 3;
    const images = 24;
    const rng = keyedRng(3, 'dense');
    const features = new Float32Array(images * grid * grid * dims);
    const labels = new Uint8Array(images * size * size);
    for (let i = 0; i < images; i++) {
      const cells = Uint8Array.from({ length: grid * grid }, () => rng.int(3));
      cells.forEach((c, k) => {
        for (let d = 0; d < dims; d++) features[(i * grid * grid + k) * dims + d] = (d === c ? 3 : 0) + rng.uniform(-0.3, 0.3);
      });
      labels.set(resizeNearest({ data: cells, width: grid, height: grid }, size, size).data, i * size * size);
    }
    const shape = { grid, dims, size };
    const probe = await fitDenseProbe(features, labels, shape, { classes: 3, epochs: 40, batch: 8, learningRate: 0.05 });
    const m = new ConfusionMatrix(3);
    m.add(labels, await predictDense(probe, features, shape));
    expect(m.meanIoU()).toBeGreaterThan(0.8); // bilinear logits blur each cell's border pixels

    // The upsampling itself: for hand-set weights (identity, zero bias, unit standardisation), a pixel's
    // class is the argmax of the half-pixel bilinear blend of the cells around it.
    const identity = {
      dims: 3,
      classes: 3,
      mean: new Float32Array(3),
      invStd: new Float32Array(3).fill(1),
      weights: Float32Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1]),
      bias: new Float32Array(3),
      losses: [],
    };
    const two = { grid: 2, dims: 3, size: 8 };
    // cells (row-major): class 0 strongly, class 1 weakly, class 2, class 1
    const f = Float32Array.from([4, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0]);
    const out = await predictDense(identity, f, two);
    // pixel (x=2, y=0): source x = (2.5)/4·… = 2.5·0.25 − 0.5 = 0.125 → 0.875·cell0 + 0.125·cell1 → class 0
    expect(out[2]).toBe(0);
    // pixel (x=5, y=0): source x = 5.5·0.25 − 0.5 = 0.875 → 0.125·cell0 (4 → 0.5 on class 0) + 0.875·cell1 (0.875 on class 1) → class 1
    expect(out[5]).toBe(1);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('densestream eval', () => {
  it('loads labelled scenes with their ground truth at the view size and embeds them with flat tensors', async () => {
    const images = await loadLabelledImages(scenesSource({ size: 32, count: 10 }), 10, 64);
    expect(images.count).toBe(10);
    expect(images.classes?.length).toBe(10 * 64 * 64);
    const fg = images.foreground!;
    const cls = images.classes!;
    for (let i = 0; i < fg.length; i++) expect(fg[i]).toBe(cls[i] ? 1 : 0);
    const encoder = createEncoder(encoderPreset('slim', 64), 0, 'test/eval');
    const before = tf.memory().numTensors;
    const features = await embedImages(encoder, images, 10, 4);
    const firstThree = await embedImages(encoder, images, 3, 4);
    expect(firstThree.dense).toEqual(features.dense?.subarray(0, 3 * 64 * 128)); // only the rows asked for, the same values
    expect(tf.memory().numTensors).toBe(before);
    encoder.dispose();
    expect([features.dims, features.grid, features.pooled.length, features.dense?.length]).toEqual([128, 8, 10 * 128, 10 * 64 * 128]);
  });

  it('refuses wrong options before any work', () => {
    expect(() => parseEvalConfig([])).toThrow(ConfigError);
    expect(() => parseEvalConfig(['--checkpoint', 'random', '--data', 'tar:/tmp/x-{0..1}.tar'])).toThrow(/held-out split/);
    expect(() => parseEvalConfig(['--checkpoint', '/nonexistent'])).toThrow(/no checkpoint/);
    expect(() => parseEvalConfig(['--checkpoint', 'random', '--protocol', 'fast'])).toThrow(/knn\|linear\|dense\|masks\|all/);
    // Fashion-MNIST's silhouettes are per-pixel truth, so every protocol runs on it
    expect(parseEvalConfig(['--checkpoint', 'random', '--data', 'fashion-mnist']).protocols).toEqual(['knn', 'linear', 'dense', 'masks']);
    expect(parseEvalConfig(['--checkpoint', 'random', '--data', 'fashion-mnist', '--protocol', 'dense']).protocols).toEqual(['dense']);
    expect(() => parseEvalConfig(['--checkpoint', 'random', '--split', 'holdout'])).toThrow(/test\|val/);
    expect(() => parseEvalConfig(['--checkpoint', 'random', '--data', 'fashion-mnist', '--split', 'val', '--train', '50001'])).toThrow(
      /give --train 50000 or fewer/,
    );
    expect(parseEvalConfig(['--checkpoint', 'random', '--data', 'fashion-mnist', '--split', 'val', '--train', '50000']).split).toBe('val');
    expect(parseEvalConfig(['--checkpoint', 'random', '--init', 'reference']).init).toBe('reference');
    expect(() => parseEvalConfig(['--checkpoint', 'random', '--init', 'he'])).toThrow(/--init.*densestream.*reference/);
    expect(() => parseEvalConfig(['--checkpoint', '/nonexistent', '--init', 'reference'])).toThrow(
      '--init: the checkpoint decides the encoder and its weights; drop --init (or use --checkpoint random)',
    );
    const run = evalCli('--checkpoint', 'random', '--train', '3');
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/--train.*≥ 10/);
  });

  it('scores a size that is not a multiple of the stride (train accepts 28 px) with kNN and the linear probe; refuses the dense protocols by name', async () => {
    const c = {
      ...parseEvalConfig(['--checkpoint', 'random', '--size', '28', '--train', '20', '--test', '10', '--epochs', '1']),
      out: mkdtempSync(join(tmpdir(), 'densestream-eval28-')),
    };
    const lines: string[] = [];
    const evaluation = await runEvaluation(c, (l) => lines.push(l));
    expect(Object.keys(evaluation.protocols).sort()).toEqual(['knn', 'linear']);
    expect(lines).toContain(
      "eval: dense and masks left out: 28 px is not a multiple of the encoder's stride 8 (give --size 32 to score them)",
    );
    await expect(
      runEvaluation({ ...c, ...parseEvalConfig(['--checkpoint', 'random', '--size', '28', '--protocol', 'dense']) }),
    ).rejects.toThrow(
      "--protocol dense: scores whole cells of the encoder's grid, so --size must be a multiple of its stride 8; 28 is not (give --size 32)",
    );
  });

  it('scores a random-init encoder from the CLI with every protocol and merges eval.json', () => {
    const out = mkdtempSync(join(tmpdir(), 'densestream-eval-'));
    const first = evalCli('--checkpoint', 'random', '--protocol', 'knn', '--train', '60', '--test', '20', '--out', out);
    expect(first.status, first.stderr).toBe(0);
    const second = evalCli(
      '--checkpoint',
      'random',
      '--protocol',
      'all',
      '--train',
      '40',
      '--test',
      '20',
      '--dense-train',
      '20',
      '--epochs',
      '2',
      '--masks',
      'saliency',
      '--out',
      out,
    );
    expect(second.status, second.stderr).toBe(0);
    const line = JSON.parse(second.stdout) as Record<string, number>;
    for (const key of ['knn20', 'knn200', 'linear', 'denseMIoU', 'densePixelAccuracy', 'maskIoU']) {
      expect(line[key], key).toBeGreaterThanOrEqual(0);
      expect(line[key], key).toBeLessThanOrEqual(1);
    }
    // Saliency masks do not depend on the encoder: the mask bench measured 0.6 on scenes, an all-foreground guess far less.
    expect(line['maskIoU']).toBeGreaterThan(line['maskIoUAllForeground']! + 0.2);
    type Saved = Record<string, Record<string, Record<string, unknown>>>;
    const read = () => JSON.parse(readFileSync(join(out, 'eval.json'), 'utf8')) as Saved;
    const saved = read();
    expect(saved['scenes']!['knn']).toMatchObject({ checkpoint: 'random-init:0', step: 0, trainImages: 40, testImages: 20 }); // the second run replaced the first's record whole
    expect(saved['scenes']!['masks']).toMatchObject({ maskMethod: 'saliency', trainImages: 0 });
    expect(saved['scenes']!['dense']).toMatchObject({ trainImages: 20 });
    expect(Object.keys(saved['scenes']!['dense']!['denseIoU'] as object)).toHaveLength(9);
    const encoderMasks = evalCli('--checkpoint', 'random', '--protocol', 'masks', '--test', '20', '--out', out);
    expect(encoderMasks.status, encoderMasks.stderr).toBe(0);
    expect(JSON.parse(encoderMasks.stdout)).toMatchObject({ maskMethod: 'encoder', images: { masksTrain: 0, masksTest: 20 } });
    expect((JSON.parse(encoderMasks.stdout) as Record<string, number>)['maskIoU']).toBeGreaterThan(0);
    const after = read();
    expect(after['scenes']!['masks']).toMatchObject({ maskMethod: 'encoder' });
    expect(after['scenes']!['knn']).toEqual(saved['scenes']!['knn']); // other protocols' records untouched
    // --split val scores scenes of another seed and files them apart: the test records stay.
    const val = evalCli('--checkpoint', 'random', '--protocol', 'knn', '--split', 'val', '--train', '40', '--test', '20', '--out', out);
    expect(val.status, val.stderr).toBe(0);
    expect(JSON.parse(val.stdout)).toMatchObject({ split: 'val', images: { knnTest: 20 } });
    const withVal = read();
    expect(withVal['scenes (val)']!['knn']).toMatchObject({ split: 'val', data: 'scenes', testImages: 20 });
    expect(withVal['scenes']).toEqual(after['scenes']);
    writeFileSync(join(out, 'eval.json'), '{"scenes": ');
    const truncated = evalCli('--checkpoint', 'random', '--protocol', 'masks', '--test', '20', '--out', out);
    expect(truncated.status).toBe(2); // refused before any work, not after it
    expect(truncated.stderr).toMatch(/eval\.json is not an eval\.json this job can add to/);
  });

  it('puts labels next to their own features: random-init kNN on Fashion-MNIST is far above chance', () => {
    // A mix-up of rows and labels would score chance (0.1); random conv features of Fashion-MNIST do much better.
    const run = evalCli(
      '--checkpoint',
      'random',
      '--data',
      'fashion-mnist',
      '--protocol',
      'knn',
      '--train',
      '600',
      '--test',
      '200',
      '--size',
      '32',
      '--out',
      mkdtempSync(join(tmpdir(), 'densestream-eval-')),
    );
    expect(run.status, run.stderr).toBe(0);
    expect((JSON.parse(run.stdout) as Record<string, number>)['knn20']).toBeGreaterThan(0.45);
  });

  it('refuses a Fashion-MNIST folder without its test files by name, exit 2, before any work', () => {
    const dir = mkdtempSync(join(tmpdir(), 'densestream-fashion-'));
    for (const file of ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'])
      symlinkSync(join(FASHION_MNIST_DIR, file), join(dir, file));
    const run = evalCli('--checkpoint', 'random', '--data', `fashion-mnist:${dir}`, '--protocol', 'knn', '--out', join(dir, 'out'));
    expect(run.status, run.stderr).toBe(2);
    expect(run.stderr).toMatch(/t10k-images-idx3-ubyte/);
  });

  it("scores Fashion-MNIST's masks against its silhouettes: the all-foreground floor is the share of non-zero pixels, read from the IDX file itself", async () => {
    // At 28 px the view is the image itself, so the floor can be computed from the file alone.
    const test = 40;
    const raw = gunzipSync(readFileSync(join(FASHION_MNIST_DIR, 't10k-images-idx3-ubyte.gz'))).subarray(16);
    let share = 0;
    for (let i = 0; i < test; i++) share += raw.subarray(i * 784, (i + 1) * 784).filter((v) => v > 0).length / 784;
    const c = parseEvalConfig([
      ...['--checkpoint', 'random', '--data', 'fashion-mnist', '--protocol', 'masks', '--masks', 'saliency'],
      ...['--size', '28', '--test', String(test)],
    ]);
    const evaluation = await runEvaluation({
      ...c,
      out: mkdtempSync(join(tmpdir(), 'densestream-eval-fm-masks-')),
    });
    const masks = evaluation.protocols.masks!;
    expect(masks['maskIoUAllForeground']).toBeCloseTo(share / test, 10);
    expect(masks['maskIoU']).toBeGreaterThan(0);
  });

  it("probes Fashion-MNIST's dense grid per garment class: background apart from garments by far, each class by its name", async () => {
    const c = parseEvalConfig([
      ...['--checkpoint', 'random', '--data', 'fashion-mnist', '--protocol', 'dense'],
      ...['--size', '32', '--dense-train', '200', '--test', '100'],
    ]);
    const evaluation = await runEvaluation({
      ...c,
      out: mkdtempSync(join(tmpdir(), 'densestream-eval-fm-dense-')),
    });
    const dense = evaluation.protocols.dense!;
    const iou = dense['denseIoU'] as Record<string, number | null>;
    expect(Object.keys(iou)).toEqual(['background', ...FASHION_MNIST_CLASSES]);
    // A garment is bright on black: even random features split it from the background.
    expect(iou['background']).toBeGreaterThan(0.6);
    // Each garment told apart from the others well above a guess among ten on its pixels (IoU ≈ 0.05).
    for (const name of FASHION_MNIST_CLASSES) expect(iou[name]).toBeGreaterThan(0.1);
  });

  it('--split val scores held-out images no test split holds: scenes of seed 2, the tail of the Fashion-MNIST train file', async () => {
    const scored = async (...args: string[]) => {
      const lines: string[] = [];
      const c = parseEvalConfig([
        '--checkpoint',
        'random',
        '--protocol',
        'knn',
        '--train',
        '20',
        '--test',
        '10',
        '--split',
        'val',
        ...args,
      ]);
      const evaluation = await runEvaluation({ ...c, out: mkdtempSync(join(tmpdir(), 'densestream-eval-val-')) }, (l) => lines.push(l));
      expect(evaluation.model['split']).toBe('val');
      return lines.join('\n');
    };
    expect(await scored()).toMatch(/held-out images \(scenes\(size=\d+, count=\d+, seed=2\)\)/);
    expect(await scored('--data', 'fashion-mnist', '--size', '32')).toMatch(/held-out images \(fashion-mnist:.*validation from 50000\)/);
  });
});
