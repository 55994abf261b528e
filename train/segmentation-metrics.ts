/**
 * Scores of dense predictions against ground truth: the IoU of a binary mask, and the per-class
 * IoU / mIoU of a class map (the dense-probe protocol, METHODS.md "Evaluation protocols").
 * Pure, no tensors.
 */
import type { Plane } from '../core/index.js';

/** Intersection over union of two binary masks of the same size; two empty masks agree (1). */
export function maskIoU(a: Plane, b: Plane): number {
  if (a.width !== b.width || a.height !== b.height) throw new Error(`maskIoU: ${a.width}×${a.height} against ${b.width}×${b.height}`);
  let inter = 0;
  let union = 0;
  for (let i = 0; i < a.data.length; i++) {
    const x = a.data[i] ? 1 : 0;
    const y = b.data[i] ? 1 : 0;
    inter += x & y;
    union += x | y;
  }
  return union === 0 ? 1 : inter / union;
}

/**
 * `plane` resampled to `width × height` by nearest neighbour at pixel centres: how a mask made
 * on the encoder's grid (8×8) is compared with ground truth at image resolution, and how a
 * class map is brought to the view size (classes must not be blended).
 */
export function resizeNearest(plane: Plane, width: number, height: number): Plane {
  if (plane.width === width && plane.height === height) return plane;
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(plane.height - 1, Math.floor(((y + 0.5) * plane.height) / height));
    for (let x = 0; x < width; x++) {
      const sx = Math.min(plane.width - 1, Math.floor(((x + 0.5) * plane.width) / width));
      out[y * width + x] = plane.data[sy * plane.width + sx] as number;
    }
  }
  return { data: out, width, height };
}

/** A confusion matrix over `classes` labels: rows the truth, columns the prediction. */
export class ConfusionMatrix {
  readonly counts: Float64Array;

  constructor(readonly classes: number) {
    if (!Number.isInteger(classes) || classes < 2) throw new Error(`confusion matrix: expected ≥ 2 classes, got ${classes}`);
    this.counts = new Float64Array(classes * classes);
  }

  /** Counts every position of `truth` against `predicted` (same length, values in [0, classes)). */
  add(truth: ArrayLike<number>, predicted: ArrayLike<number>): void {
    if (truth.length !== predicted.length) throw new Error(`confusion matrix: ${truth.length} truths for ${predicted.length} predictions`);
    const k = this.classes;
    for (let i = 0; i < truth.length; i++) {
      const t = truth[i] as number;
      const p = predicted[i] as number;
      if (!(t >= 0 && t < k && p >= 0 && p < k)) throw new Error(`confusion matrix: label ${t} or prediction ${p} outside 0…${k - 1}`);
      this.counts[t * k + p]! += 1;
    }
  }

  /**
   * IoU of each class, TP / (TP + FP + FN); `null` for a class absent from both truth and
   * prediction (no evidence either way, so it is left out of the mean).
   */
  perClassIoU(): Array<number | null> {
    const k = this.classes;
    return Array.from({ length: k }, (_, c) => {
      let row = 0;
      let col = 0;
      for (let j = 0; j < k; j++) {
        row += this.counts[c * k + j] as number;
        col += this.counts[j * k + c] as number;
      }
      const tp = this.counts[c * k + c] as number;
      const union = row + col - tp;
      return union === 0 ? null : tp / union;
    });
  }

  /** Mean IoU over the classes with evidence (see {@link perClassIoU}). */
  meanIoU(): number {
    const present = this.perClassIoU().filter((v): v is number => v !== null);
    return present.length === 0 ? 0 : present.reduce((a, b) => a + b, 0) / present.length;
  }

  /** Fraction of positions predicted right. */
  accuracy(): number {
    let right = 0;
    let all = 0;
    for (let c = 0; c < this.classes; c++) right += this.counts[c * this.classes + c] as number;
    for (const v of this.counts) all += v;
    return all === 0 ? 0 : right / all;
  }
}
