/**
 * Query cells drawn from a dense grid: DenseCL's dense term and HAPiCL's pixel term can score N
 * of an image's P = S² cells per step instead of all of them (`train --dense-cells`,
 * `--pixel-cells`). The draw is keyed by the batch's ids, so a run and its resume draw the same
 * cells.
 */
import * as tf from '@tensorflow/tfjs';
import { keyedRng } from '../core/random.js';

/**
 * `n` distinct cells of `p` per image, for each of `ids`' images, as flat rows `b·p + cell`
 * (`[B·n]`): a partial Fisher–Yates shuffle per image from `keyedRng(seed, 'dense-cells', …ids)`.
 */
export function sampledCells(ids: readonly string[], p: number, n: number, seed: number): Int32Array {
  const rng = keyedRng(seed, 'dense-cells', ...ids);
  const out = new Int32Array(ids.length * n);
  const order = new Int32Array(p);
  for (let b = 0; b < ids.length; b++) {
    for (let i = 0; i < p; i++) order[i] = i;
    for (let i = 0; i < n; i++) {
      const j = i + rng.int(p - i);
      const cell = order[j] as number;
      order[j] = order[i] as number;
      order[i] = cell;
      out[b * n + i] = b * p + cell;
    }
  }
  return out;
}

/**
 * The one-hot `[B, N, P]` that picks flat rows `rows` (`b·P + cell`, N per image) from
 * `[B, P, …]` by a batched product. Not a gather: gather's gradient needs UnsortedSegmentSum,
 * which tfjs-backend-wasm 4.22 does not have.
 */
export function onePick(rows: Int32Array, b: number, n: number, p: number): tf.Tensor3D {
  const pick = new Float32Array(b * n * p);
  rows.forEach((row, i) => {
    pick[i * p + (row % p)] = 1;
  });
  return tf.tensor3d(pick, [b, n, p]);
}

/** `[B, S, S, C]` → `[B, S·S, C]`. */
export const gridCells = (t: tf.Tensor4D): tf.Tensor3D => tf.reshape(t, [t.shape[0], t.shape[1] * t.shape[2], t.shape[3]]);

/** Checks a cell count option: undefined (every cell) or an integer ≥ 1. */
export function checkCellCount(name: string, n: number | undefined): void {
  if (n !== undefined && !(Number.isInteger(n) && n >= 1)) throw new Error(`${name}: expected an integer ≥ 1, got ${n}`);
}
