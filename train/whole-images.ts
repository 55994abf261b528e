/**
 * Labelled images as feature export sees them: each decoded, its central square resized to
 * `size × size` (`decode` → `multiView([centreSquareView])`), with its label and, where the source has them, its
 * ground-truth class and foreground maps cut by the same view. Read by the kNN monitor and by
 * `densestream eval`; plain data, no tensors.
 */
import * as tf from '@tensorflow/tfjs';
import { lastValueFrom, map, tap } from 'rxjs';
import { centreSquareView } from '../operators/augment-presets.js';
import { normalizeRgb } from '../operators/batch.js';
import { decode } from '../operators/decode.js';
import { fromSource } from '../operators/from-source.js';
import { multiView } from '../operators/multi-view.js';
import { SampleBudget } from '../operators/sample-budget.js';
import { cutPixels, type Plane, type Sample, type SkipRecord } from '../core/index.js';

export interface LabelledImages {
  ids: string[];
  /** RGB, `[count, size, size, 3]`, in the order the samples came. */
  pixels: Uint8Array;
  labels: Int32Array;
  /** Per-pixel classes and foreground, `[count, size, size]` (sources with ground truth, e.g. scenes). */
  classes?: Uint8Array;
  foreground?: Uint8Array;
  size: number;
  count: number;
  /** Samples that could not be decoded (left out). */
  skipped: number;
}

export interface WholeImagesOptions {
  /** Seed of the view pipeline (a whole-image view draws nothing, but multiView takes one). */
  seed?: number;
  /** Samples decoded at once (default 4). */
  concurrency?: number;
  /** Called with each undecodable sample; it is left out. */
  onSkip?: (record: SkipRecord) => void;
  /** Who needs the labels, for the error when a sample has none. */
  purpose?: string;
}

/**
 * Reads `samples` (in the order given; at most 32 in flight) as whole `size²` images. Throws
 * when a sample has no label.
 */
export async function readWholeImages(
  samples: AsyncIterable<Sample> | Iterable<Sample>,
  size: number,
  options: WholeImagesOptions = {},
): Promise<LabelledImages> {
  if (!Number.isInteger(size) || size < 1) throw new Error(`image size: expected a positive integer of pixels, got "${size}"`);
  const budget = new SampleBudget(32);
  const rows: Array<{ id: string; pixels: Uint8Array; label: number; classes?: Plane; foreground?: Plane }> = [];
  let skipped = 0;
  const onSkip = (r: SkipRecord) => {
    skipped++;
    budget.release();
    options.onSkip?.(r);
  };
  const concurrency = options.concurrency ?? 4;
  await lastValueFrom(
    fromSource(samples, budget).pipe(
      map((s): Sample => {
        if (s.label === undefined) throw new Error(`sample ${s.id} has no label${options.purpose ? `; ${options.purpose}` : ''}`);
        // keep only what is read: the view cuts the ground-truth maps with the pixels
        return {
          id: s.id,
          label: s.label,
          ...(s.bytes ? { bytes: s.bytes } : {}),
          ...(s.pixels ? { pixels: s.pixels } : {}),
          ...(s.gtMask ? { gtMask: s.gtMask } : {}),
          ...(s.gtClasses ? { gtClasses: s.gtClasses } : {}),
        };
      }),
      decode({ minSide: size, onSkip, concurrency }),
      multiView({ views: [centreSquareView(size)], seed: options.seed ?? 0, concurrency }),
      tap((s) => {
        const view = s.views?.[0];
        if (!view) throw new Error(`sample ${s.id}: no whole-image view`);
        rows.push({
          id: s.id,
          pixels: cutPixels(s, 0).data,
          label: s.label as number,
          ...(view.gtClasses ? { classes: view.gtClasses } : {}),
          ...(view.gtMask ? { foreground: view.gtMask } : {}),
        });
        budget.release();
      }),
    ),
    { defaultValue: undefined },
  );
  const plane = size * size;
  const out: LabelledImages = {
    ids: rows.map((r) => r.id),
    pixels: new Uint8Array(rows.length * plane * 3),
    labels: Int32Array.from(rows, (r) => r.label),
    size,
    count: rows.length,
    skipped,
  };
  rows.forEach((r, i) => out.pixels.set(r.pixels, i * plane * 3));
  if (rows.length > 0 && rows.every((r) => r.classes && r.foreground)) {
    const classes = new Uint8Array(rows.length * plane);
    const foreground = new Uint8Array(rows.length * plane);
    rows.forEach((r, i) => {
      classes.set((r.classes as Plane).data, i * plane);
      foreground.set((r.foreground as Plane).data, i * plane);
    });
    Object.assign(out, { classes, foreground });
  }
  return out;
}

/**
 * Runs `forward` on RGB images (`[count, size, size, 3]`, normalised as batches are) `chunk` at
 * a time, in inference, and hands each chunk's outputs, read back, to `take(start, n, values)`.
 * Every tensor is freed before the next chunk: memory is one chunk's, whatever `count`.
 */
export async function forEachChunk(
  pixels: Uint8Array,
  size: number,
  count: number,
  chunk: number,
  forward: (x: tf.Tensor4D) => tf.Tensor[],
  take: (start: number, n: number, values: Float32Array[], shapes: number[][]) => void,
): Promise<void> {
  const plane = size * size * 3;
  const input = new Float32Array(Math.min(chunk, count) * plane);
  for (let start = 0; start < count; start += chunk) {
    const n = Math.min(chunk, count - start);
    normalizeRgb(pixels.subarray(start * plane, (start + n) * plane), input);
    const outputs = tf.tidy(() => forward(tf.tensor4d(input.subarray(0, n * plane), [n, size, size, 3])));
    try {
      const values = (await Promise.all(outputs.map((t) => t.data()))) as Float32Array[];
      take(
        start,
        n,
        values,
        outputs.map((t) => t.shape),
      );
    } finally {
      tf.dispose(outputs);
    }
  }
}
