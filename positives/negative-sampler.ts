/**
 * Negatives from other clusters (`--negatives K`), batch by batch: K bank vectors per pair from
 * the clusters other than the pair's, in the clustering that paired the batch (`drawNegatives`).
 * The pair's cluster is the one the pairing stage placed its anchor in (`note`), kept per batch
 * and anchor until the batch is trained: on a stream neither the anchor nor (often) the positive
 * is in the clustering's snapshot, and the live target's embedding of this step is in a space
 * that has drifted from the frozen copy's that placed it.
 */
import type { ClusterIndex } from './cluster-index.js';
import type { EmbeddingBank } from './embedding-bank.js';
import { drawNegatives, type NegativePair } from './negatives.js';

/** Batches whose pair clusters are kept at most: far more than the data plane runs ahead. */
const MAX_RECORDED_BATCHES = 1024;

export class NegativeSampler {
  /** batch (0-based) → anchor id → the cluster its pair was placed in, for the batches not yet trained. */
  private readonly pairClusters = new Map<number, Map<string, number>>();
  private warned = false;

  constructor(
    /** Negatives K per pair (0: none). */
    readonly count: number,
    private readonly seed: number,
    private readonly onWarning: (message: string) => void,
  ) {}

  /** Records the cluster an anchor of batch `batch` was placed in at pairing (kept only with negatives). */
  note(batch: number, anchorId: string, cluster: number): void {
    if (this.count === 0) return;
    let clusters = this.pairClusters.get(batch);
    if (!clusters) {
      clusters = new Map();
      this.pairClusters.set(batch, clusters);
      // The data plane runs ahead of the trainer by the sample budget, a few batches; this bound only guards a caller that never trains.
      if (this.pairClusters.size > MAX_RECORDED_BATCHES) this.pairClusters.delete(Math.min(...this.pairClusters.keys()));
    }
    clusters.set(anchorId, cluster);
  }

  /** Forgets the batches before `done` (trained; two batches may be paired at once, so not necessarily in order). */
  trained(done: number): void {
    for (const batch of this.pairClusters.keys()) if (batch < done) this.pairClusters.delete(batch);
  }

  clear(): void {
    this.pairClusters.clear();
  }

  /**
   * The negatives of batch `batchIndex`, paired by `index`: `[pairs, K, dims]` bank rows, none in
   * a pair's cluster, or undefined. A pair the pairing stage did not place falls back to its
   * positive's or anchor's cluster in `index`, else its nearest centroid to `z`, its target
   * embedding of this step.
   */
  draw(
    index: ClusterIndex,
    bank: EmbeddingBank,
    batchIndex: number,
    ids: readonly string[],
    z: Float32Array,
    dims: number,
  ): Float32Array | undefined {
    const recorded = this.pairClusters.get(batchIndex);
    const pairs: NegativePair[] = [];
    for (let i = 0; i + 1 < ids.length; i += 2) {
      const anchor = ids[i] as string;
      const positive = ids[i + 1] as string;
      const cluster =
        recorded?.get(anchor) ??
        (positive !== anchor ? index.clusterOf(positive) : undefined) ??
        index.clusterOf(anchor) ??
        index.nearestCluster(z.subarray(i * dims, (i + 1) * dims));
      pairs.push({ key: anchor, cluster });
    }
    const drawn = drawNegatives(index, bank, pairs, this.count, this.seed, batchIndex);
    if (!drawn && !this.warned) {
      this.warned = true;
      this.onWarning(
        `softrank: step ${batchIndex + 1} found no bank vector in the clusters other than a pair's; it trains without negatives (warned once)`,
      );
    }
    return drawn?.rows;
  }
}
