/**
 * The protocols of `densestream eval` (pipelines/evaluate.ts) on frozen features: computing them
 * (`embedImages`), and each protocol's scores: `knn`, `linear` and `dense` fit on the train
 * split and score the held-out one, `masks` scores the held-out split alone. They work on images
 * already in memory; opening the splits and choosing what to run is evaluate.ts's.
 */
import type { Pixels, Plane } from '../core/index.js';
import type { Encoder } from '../models/encoder-spec.js';
import { featureKmeansMask, kmeansMask, maskFromAttention } from '../operators/foreground-mask.js';
import { saliencyMap } from '../operators/saliency.js';
import { knnAccuracy } from '../train/knn-monitor.js';
import { fitDenseProbe, fitLinearProbe, predictDense, predictLinear, type ProbeOptions } from '../train/linear-probe.js';
import { ConfusionMatrix, maskIoU, resizeNearest } from '../train/segmentation-metrics.js';
import { forEachChunk, type LabelledImages } from '../train/whole-images.js';
import type { EvalConfig, Protocol } from './eval-options.js';

/** Frozen features of a split: pooled `[count, C]`, and the dense grid `[rows, g, g, C]` of the first rows when asked. */
export interface Features {
  pooled: Float32Array;
  dense?: Float32Array;
  dims: number;
  grid: number;
}

/**
 * Embeds `images` with `encoder` in inference mode, `chunk` images per call, freeing every
 * tensor. The dense grid is kept for the first `denseRows` images only (it is grid² times the
 * pooled vector: 5 000 slim grids at 64 px are 164 MB).
 */
export async function embedImages(encoder: Encoder, images: LabelledImages, denseRows = 0, chunk = 64): Promise<Features> {
  const keepDense = Math.min(denseRows, images.count);
  let pooled = new Float32Array(0);
  let grid: Float32Array | undefined;
  let dims = 0;
  let side = 0;
  let cells = 0;
  await forEachChunk(
    images.pixels,
    images.size,
    images.count,
    chunk,
    (x) => {
      const out = encoder.apply(x, { training: false });
      return [out.pooled, out.dense];
    },
    (start, n, [p, d], shapes) => {
      if (start === 0) {
        dims = (p as Float32Array).length / n;
        side = (shapes[1] as number[])[1] as number;
        cells = side * side * dims;
        pooled = new Float32Array(images.count * dims);
        if (keepDense > 0) grid = new Float32Array(keepDense * cells);
      }
      pooled.set(p as Float32Array, start * dims);
      if (grid && start < keepDense)
        grid.set((d as Float32Array).subarray(0, (Math.min(keepDense, start + n) - start) * cells), start * cells);
    },
  );
  return { pooled, ...(grid ? { dense: grid } : {}), dims, grid: side };
}

export type EvalResults = Record<string, number | string | Record<string, number | null>>;

function accuracy(predicted: ArrayLike<number>, truth: ArrayLike<number>): number {
  let right = 0;
  for (let i = 0; i < truth.length; i++) if (predicted[i] === truth[i]) right++;
  return right / truth.length;
}

/** A split's images and their frozen features, the first `rows` of which a protocol uses. */
export interface Split {
  images: LabelledImages;
  features: Features;
  rows: number;
}

/** `knn`: the weighted vote at k = 20, τ = 0.07 (solo-learn) and k = 200, τ = 0.1 (lightly). */
export function knnScores(train: Split, test: Split): EvalResults {
  const { dims } = train.features;
  const memory = train.features.pooled.subarray(0, train.rows * dims);
  const labels = train.images.labels.subarray(0, train.rows);
  return {
    knn20: knnAccuracy(memory, labels, test.features.pooled, test.images.labels, dims, 20, 0.07),
    knn200: knnAccuracy(memory, labels, test.features.pooled, test.images.labels, dims, 200, 0.1),
  };
}

/** `linear`: logistic regression on the pooled features. */
export async function linearScores(train: Split, test: Split, options: ProbeOptions): Promise<EvalResults> {
  const { dims } = train.features;
  const probe = await fitLinearProbe(
    train.features.pooled.subarray(0, train.rows * dims),
    train.images.labels.subarray(0, train.rows),
    dims,
    options,
  );
  return {
    linear: accuracy(await predictLinear(probe, test.features.pooled), test.images.labels),
    linearTrainLoss: probe.losses.at(-1) as number,
  };
}

/**
 * `dense`: a 1×1 classifier of the grid, logits upsampled to pixels, scored per class: 0 is
 * background, k + 1 the image class `names[k]`.
 */
export async function denseScores(
  train: Split,
  test: Split,
  names: readonly string[],
  options: Omit<ProbeOptions, 'classes'>,
): Promise<EvalResults> {
  const { dims, grid } = test.features;
  const size = test.images.size;
  const shape = { grid, dims, size };
  const classes = names.length + 1;
  const trainDense = (train.features.dense as Float32Array).subarray(0, train.rows * grid * grid * dims);
  const probe = await fitDenseProbe(trainDense, (train.images.classes as Uint8Array).subarray(0, train.rows * size * size), shape, {
    ...options,
    classes,
  });
  const confusion = new ConfusionMatrix(classes);
  confusion.add(test.images.classes as Uint8Array, await predictDense(probe, test.features.dense as Float32Array, shape));
  const perClass = confusion.perClassIoU();
  return {
    denseMIoU: confusion.meanIoU(),
    densePixelAccuracy: confusion.accuracy(),
    denseIoU: Object.fromEntries(['background', ...names].map((name, k) => [name, perClass[k] ?? null])),
    denseTrainLoss: probe.losses.at(-1) as number,
  };
}

/**
 * `masks`: mean IoU of foreground masks with the truth, next to the floor of calling every
 * pixel foreground. `encoder` masks are train's 2-means on feature cells, on the grid already embedded.
 */
export function maskScores(test: Split, method: EvalConfig['masks'], seed: number): EvalResults {
  const { size, count, ids } = test.images;
  const { dims, grid } = test.features;
  const plane = size * size;
  const cells = grid * grid * dims;
  const everything: Plane = { data: new Uint8Array(plane).fill(1), width: size, height: size };
  let iou = 0;
  let allForeground = 0;
  for (let i = 0; i < count; i++) {
    const pixels: Pixels = {
      data: test.images.pixels.subarray(i * plane * 3, (i + 1) * plane * 3),
      width: size,
      height: size,
      channels: 3,
    };
    const id = ids[i] as string;
    const mask =
      method === 'encoder'
        ? featureKmeansMask((test.features.dense as Float32Array).subarray(i * cells, (i + 1) * cells), dims, grid, grid, id, seed)
        : method === 'saliency'
          ? maskFromAttention(saliencyMap(pixels))
          : kmeansMask(pixels, id, seed);
    const truth: Plane = { data: (test.images.foreground as Uint8Array).subarray(i * plane, (i + 1) * plane), width: size, height: size };
    iou += maskIoU(resizeNearest(mask, size, size), truth);
    allForeground += maskIoU(everything, truth);
  }
  return { maskIoU: iou / count, maskMethod: method, maskIoUAllForeground: allForeground / count };
}

/** What one evaluation found: the model evaluated, and each protocol's scores with the images it used. */
export interface Evaluation {
  /** checkpoint, step, encoder, data, size */
  model: EvalResults;
  protocols: Partial<Record<Protocol, EvalResults>>;
  /** Unreadable samples of either split, left out. */
  skipped: number;
}
