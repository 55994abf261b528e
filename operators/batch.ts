import * as tf from '@tensorflow/tfjs';
import { Observable, type OperatorFunction } from 'rxjs';
import type { PlannedView, Sample, View } from '../core/index.js';
import { augmentBatch } from './augment-views.js';
import { geometricMatch } from './view-geometry.js';
import type { Batch } from '../core/batch.js';

/** ImageNet statistics, the usual normalisation for SSL encoders. */
export const IMAGENET_MEAN: readonly [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: readonly [number, number, number] = [0.229, 0.224, 0.225];

export interface BatchOptions {
  mean?: readonly [number, number, number];
  std?: readonly [number, number, number];
  /** Emit the last, smaller batch (default true); false drops it. */
  keepLast?: boolean;
  /** Side S of the feature grid: adds `geometricMatch` between views 0 and 1 (DenseCL's `--match geometric`). */
  geometricGrid?: number;
}

/**
 * Writes interleaved 8-bit RGB into `out` from `offset`, normalised as the encoders expect:
 * `(x / 255 − mean) / std` per channel. Every path that feeds an encoder (batches, the kNN
 * monitor, benches) normalises through here.
 */
export function normalizeRgb(
  rgb: Uint8Array,
  out: Float32Array,
  offset = 0,
  mean: readonly number[] = IMAGENET_MEAN,
  std: readonly number[] = IMAGENET_STD,
): void {
  const [s0, s1, s2] = [0, 1, 2].map((c) => 1 / (255 * (std[c] as number))) as [number, number, number];
  const [m0, m1, m2] = [0, 1, 2].map((c) => (mean[c] as number) / (std[c] as number)) as [number, number, number];
  for (let i = 0, o = offset; i < rgb.length; i += 3, o += 3) {
    out[o] = (rgb[i] as number) * s0 - m0;
    out[o + 1] = (rgb[i + 1] as number) * s1 - m1;
    out[o + 2] = (rgb[i + 2] as number) * s2 - m2;
  }
}

function viewsTensor(views: View[], mean: readonly number[], std: readonly number[]): tf.Tensor4D {
  const { width, height } = views[0]!.pixels;
  const plane = width * height * 3;
  const out = new Float32Array(views.length * plane);
  views.forEach((v, b) => {
    if (v.pixels.width !== width || v.pixels.height !== height) {
      throw new Error(`batch: view sizes differ within a batch (${v.pixels.width}×${v.pixels.height} vs ${width}×${height})`);
    }
    normalizeRgb(v.pixels.data, out, b * plane, mean, std);
  });
  return tf.tensor4d(out, [views.length, height, width, 3]);
}

/**
 * Every view index's pixels as `[B, H, W, 3]` tensors: the CPU-cut views normalised and
 * copied, or the planned views cut on the compute backend from the stacked source images.
 */
function viewTensors(
  samples: Sample[],
  viewCount: number,
  mean: readonly [number, number, number],
  std: readonly [number, number, number],
): tf.Tensor4D[] {
  const planned = samples.map((s) => s.views!.every((v) => v.plan !== undefined));
  if (planned.every((p) => !p)) {
    return Array.from({ length: viewCount }, (_, k) =>
      viewsTensor(
        samples.map((s) => s.views![k] as View),
        mean,
        std,
      ),
    );
  }
  const odd = samples.find((s, i) => !planned[i]);
  if (odd)
    throw new Error(
      `batch: sample ${odd.id} has views cut on the CPU in a batch of views planned for the backend (one --augment path per run)`,
    );
  return augmentBatch(samples, { mean, std });
}

function collate(samples: Sample[], mean: readonly [number, number, number], std: readonly [number, number, number], grid?: number): Batch {
  const viewCount = samples[0]?.views?.length ?? 0;
  for (const s of samples) {
    if (s.views?.length !== viewCount || viewCount === 0)
      throw new Error(`batch: sample ${s.id} has no views or a different number (put multiView() first)`);
  }
  const byView = (k: number) => samples.map((s) => (s.views as Array<View | PlannedView>)[k] as View | PlannedView);
  const views = viewTensors(samples, viewCount, mean, std);
  const masks: Array<tf.Tensor3D | undefined> = [];
  const boxes: tf.Tensor2D[] = [];
  const flipped: tf.Tensor1D[] = [];
  for (let k = 0; k < viewCount; k++) {
    const vs = byView(k);
    const withMasks = vs.every((v) => v.mask);
    if (withMasks) {
      const { width, height } = vs[0]!.mask!;
      const m = new Float32Array(vs.length * width * height);
      vs.forEach((v, b) => m.set(v.mask!.data, b * width * height));
      masks.push(tf.tensor3d(m, [vs.length, height, width]));
    } else masks.push(undefined);
    boxes.push(
      tf.tensor2d(
        vs.flatMap((v) => [...v.box]),
        [vs.length, 4],
      ),
    );
    flipped.push(
      tf.tensor1d(
        vs.map((v) => (v.flipped ? 1 : 0)),
        'int32',
      ),
    );
  }
  const labels = samples.every((s) => s.label !== undefined)
    ? tf.tensor1d(
        samples.map((s) => s.label as number),
        'int32',
      )
    : undefined;
  let match: tf.Tensor2D | undefined;
  if (grid !== undefined) {
    if (viewCount < 2) throw new Error('batch: geometric matching needs two views per sample');
    const cells = grid * grid;
    const m = new Int32Array(samples.length * cells);
    samples.forEach((s, b) => m.set(geometricMatch(s.views![0]!, s.views![1]!, grid), b * cells));
    match = tf.tensor2d(m, [samples.length, cells], 'int32');
  }
  const batch: Batch = {
    ids: samples.map((s) => s.id),
    views,
    masks,
    boxes,
    flipped,
    dispose: () =>
      tf.dispose([
        ...views,
        ...masks.filter((m): m is tf.Tensor3D => m !== undefined),
        ...boxes,
        ...flipped,
        ...(labels ? [labels] : []),
        ...(match ? [match] : []),
      ]),
  };
  if (labels) batch.labels = labels;
  if (match) batch.geometricMatch = match;
  return batch;
}

/**
 * Collates every `size` samples (with views) into a {@link Batch} of tensors.
 *
 * ```
 * input:   a b c d e|
 * output:  ---[ab]-[cd]-[e]|     (size 2)
 * ```
 *
 * Tensors are created only when a batch is full, and the consumer disposes them. If the
 * subscriber leaves, the samples held back are simply dropped (they hold no tensors).
 * Views planned for the backend (`multiView({ augment: 'backend' })`) are cut here, per batch,
 * by tensor ops (`augmentBatch`), images of one size together.
 *
 * @param size Samples per batch.
 * @see multiView
 */
export function batch(size: number, options: BatchOptions = {}): OperatorFunction<Sample, Batch> {
  if (!Number.isInteger(size) || size < 1) throw new Error(`--batch: expected a positive integer, got "${size}"`);
  const mean = options.mean ?? IMAGENET_MEAN;
  const std = options.std ?? IMAGENET_STD;
  return (source) =>
    new Observable<Batch>((subscriber) => {
      let pending: Sample[] = [];
      const emit = () => {
        const samples = pending;
        pending = [];
        try {
          subscriber.next(collate(samples, mean, std, options.geometricGrid));
        } catch (err) {
          subscriber.error(err);
        }
      };
      const subscription = source.subscribe({
        next: (sample) => {
          pending.push(sample);
          if (pending.length === size) emit();
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => {
          if (pending.length > 0 && options.keepLast !== false) emit();
          subscriber.complete();
        },
      });
      return () => {
        pending = [];
        subscription.unsubscribe();
      };
    });
}
