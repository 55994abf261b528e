import type * as tf from '@tensorflow/tfjs';

/**
 * B samples as tensors, built once per batch (DESIGN.md, "Batch"). The consumer owns every
 * tensor: it calls `dispose()` when done, then releases `ids.length` samples of the budget.
 */
export interface Batch {
  ids: string[];
  /** `views[k]`: view k of every sample, `[B, H, W, 3]` float32, normalised. */
  views: tf.Tensor4D[];
  /** `masks[k]`: view k's foreground mask `[B, H, W]` (0/1), when every sample has one. */
  masks: Array<tf.Tensor3D | undefined>;
  /** `boxes[k]`: view k's crop `[B, 4]` in source coordinates, then its flip flags `[B]`. */
  boxes: tf.Tensor2D[];
  flipped: tf.Tensor1D[];
  /** Image labels `[B]` (int32), when every sample has one. */
  labels?: tf.Tensor1D;
  /** With `geometricGrid` S: for each cell of view 0's S×S grid, view 1's cell at the same source spot (`geometricMatch`), `[B, S·S]` int32. */
  geometricMatch?: tf.Tensor2D;
  dispose(): void;
}
