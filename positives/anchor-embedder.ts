/**
 * New anchors placed among a clustering's centroids: embedded whole by the target copy frozen
 * with the clustering's snapshot (softrank's `freezeTarget` / `embedFrozen`).
 */
import * as tf from '@tensorflow/tfjs';
import { from, lastValueFrom, toArray } from 'rxjs';
import type { FrozenSlot, SoftRank } from '../methods/softrank.js';
import { centreSquareView } from '../operators/augment-presets.js';
import type { AugmentPath } from '../operators/augment-path.js';
import { augmentBatch } from '../operators/augment-views.js';
import { IMAGENET_MEAN, IMAGENET_STD, normalizeRgb } from '../operators/batch.js';
import { multiView } from '../operators/multi-view.js';
import type { Sample } from '../core/index.js';
import type { AnchorEmbedder } from './reclustering.js';

/** Images per forward pass of {@link wholeImageEmbedder} (a batch's anchors fit in one; a stream's unplaced reservoir members take several). */
export const EMBED_CHUNK = 64;

export interface WholeImageEmbedderOptions {
  /** Images per forward pass (default {@link EMBED_CHUNK}). */
  chunk?: number;
  /**
   * Where the whole-image views are cut: `cpu` (default) by sharp, one call per anchor; `backend`
   * in one batched cut (`augmentBatch`), as the run's own views are. A run passes its own path:
   * on small images sharp's calls finish one event-loop turn at a time, and a batch of anchors
   * waited for them.
   */
  augment?: AugmentPath;
}

/**
 * Embeds anchors as `export` and the kNN monitor see an image — whole, resized to
 * `size × size`, ImageNet-normalised — by softrank's frozen target copies, batch norm in
 * inference mode, `chunk` images per forward pass (each in its own `tf.tidy`, its views cut
 * just before it), so a call with thousands of images (a stream's reservoir members) holds one
 * chunk's input and activations at a time. Batch norm in inference mode makes each row depend
 * on its image only, so chunking does not change the embeddings. The whole image rather than a
 * training view: the embedding places the image among centroids that average many views, and
 * an augmented crop would add its own noise.
 */
export function wholeImageEmbedder(method: SoftRank, size: number, seed: number, options: WholeImageEmbedderOptions = {}): AnchorEmbedder {
  const { chunk = EMBED_CHUNK, augment = 'cpu' } = options;
  if (!Number.isInteger(chunk) || chunk < 1) throw new Error(`wholeImageEmbedder chunk: expected an integer ≥ 1, got ${chunk}`);
  const view = multiView({ views: [centreSquareView(size)], seed, concurrency: 4, augment });
  const plane = size * size * 3;
  const images = async (anchors: readonly Sample[]): Promise<tf.Tensor4D> => {
    // Only the pixels: the maps an anchor carries (ground truth, masks) would be cut for nothing.
    const viewed = await lastValueFrom(
      from(anchors.map(({ id, pixels }) => ({ id, ...(pixels ? { pixels } : {}) }))).pipe(view, toArray()),
    );
    if (augment === 'backend') return augmentBatch(viewed, { mean: IMAGENET_MEAN, std: IMAGENET_STD })[0] as tf.Tensor4D;
    const input = new Float32Array(anchors.length * plane);
    viewed.forEach((s, i) => normalizeRgb((s.views?.[0]?.pixels as { data: Uint8Array }).data, input, i * plane));
    return tf.tensor4d(input, [anchors.length, size, size, 3]);
  };
  const forward = async (anchors: readonly Sample[], slot: FrozenSlot): Promise<Float32Array[]> => {
    const input = await images(anchors);
    let z: tf.Tensor;
    try {
      z = tf.tidy(() => method.embedFrozen(slot, input));
    } finally {
      input.dispose();
    }
    let rows: Float32Array;
    try {
      rows = (await z.data()) as Float32Array; // asynchronous: a GPU backend has no synchronous read under Node
    } finally {
      z.dispose();
    }
    const dims = rows.length / anchors.length;
    return anchors.map((_, i) => rows.slice(i * dims, (i + 1) * dims));
  };
  return {
    freeze: (slot: FrozenSlot) => method.freezeTarget(slot),
    async embed(anchors, slot) {
      const out: Float32Array[] = [];
      for (let at = 0; at < anchors.length; at += chunk) out.push(...(await forward(anchors.slice(at, at + chunk), slot)));
      return out;
    },
  };
}
