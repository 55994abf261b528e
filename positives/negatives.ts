/**
 * Negatives from other clusters (METHODS.md §4, A1–A2: each anchor's candidate set is its
 * positive "plus several negatives"): for each (anchor, positive) pair, K samples drawn from
 * the clusters that are not the pair's, taken with their vectors from the embedding bank.
 *
 * Drawn at training time, from the clustering that paired the batch and the bank as it stands
 * before the step: both follow from the step, so the draw is the same in a resumed run. An id
 * the clustering holds may have left the bank since its snapshot (the ring overwrote it); such
 * a draw is skipped and the next one taken, so every negative has a bank vector.
 */
import type { ClusterIndex } from './cluster-index.js';
import { keyedRng } from '../core/index.js';
import type { EmbeddingBank } from './embedding-bank.js';

/** One pair to draw for: the key of its draws (the anchor's id) and the cluster its negatives stay out of. */
export interface NegativePair {
  key: string;
  cluster: number;
}

/** K negatives per pair. */
export interface Negatives {
  /** `[pairs, K, dims]` unit bank vectors, pair by pair. */
  rows: Float32Array;
  /** `[pairs × K]` the ids drawn, in the same order. */
  ids: string[];
  /** Pairs whose other clusters had fewer than K ids left in the bank, their draws repeated cyclically to K. */
  short: number;
}

/**
 * K distinct ids per pair, uniform without replacement over the ids of the other clusters that
 * the bank still holds (a sparse Fisher–Yates over `index.idOutside`), from
 * `keyedRng(seed, 'negatives', step, key)`. Undefined when some pair has no such id at all.
 *
 * @example
 * const negatives = drawNegatives(index, bank, [{ key: 'img-7', cluster: index.clusterOf('img-7')! }], 8, seed, step);
 * // negatives.rows: [1, 8, bank.dims], none of them in img-7's cluster
 */
export function drawNegatives(
  index: ClusterIndex,
  bank: EmbeddingBank,
  pairs: readonly NegativePair[],
  count: number,
  seed: number,
  step: number,
): Negatives | undefined {
  if (!Number.isInteger(count) || count < 1) throw new Error(`drawNegatives count: expected an integer ≥ 1, got ${count}`);
  const d = bank.dims;
  const rows = new Float32Array(pairs.length * count * d);
  const ids: string[] = [];
  let short = 0;
  for (let p = 0; p < pairs.length; p++) {
    const { key, cluster } = pairs[p] as NegativePair;
    const rng = keyedRng(seed, 'negatives', step, key);
    const outside = index.outsideCount(cluster);
    const swapped = new Map<number, number>();
    const base = p * count;
    let found = 0;
    for (let t = 0; t < outside && found < count; t++) {
      const j = t + Math.min(outside - t - 1, Math.floor(rng.next() * (outside - t)));
      const pick = swapped.get(j) ?? j;
      swapped.set(j, swapped.get(t) ?? t);
      const id = index.idOutside(cluster, pick);
      if (!bank.get(id, rows.subarray((base + found) * d, (base + found + 1) * d))) continue; // left the bank
      ids.push(id);
      found++;
    }
    if (found === 0) return undefined;
    if (found < count) {
      short++;
      // Too few ids in the other clusters: repeat the ones found (a duplicate candidate ties with itself in both rankings).
      for (let f = found; f < count; f++) {
        rows.copyWithin((base + f) * d, (base + (f % found)) * d, (base + (f % found) + 1) * d);
        ids.push(ids[base + (f % found)] as string);
      }
    }
  }
  return { rows, ids, short };
}
