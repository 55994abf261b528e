/**
 * What a run's positives were made of: pairs trained, self-pairs and why, anchors placed by
 * their nearest centroid. The counts of trained pairs go into checkpoints (they follow from the
 * step); the notes of self-pairs count anchors paired, ahead of training, and are not carried.
 */
import type { PositiveCounts } from './checkpoint-codec.js';
import type { ClusterIndex } from './cluster-index.js';
import { POSITIVE_NOTES } from './cluster-positives.js';

/** What the positives of a run were made of, for the summary and the tests. */
export interface PositiveStats {
  /** Clusterings done (rounds whose k-means finished). */
  reclusters: number;
  /** k. */
  clusters: number;
  /** Embeddings in the bank at the end. */
  bank: number;
  /** Pairs trained, and how many had the anchor as its own positive. */
  pairs: number;
  selfPairs: number;
  selfPositiveFraction: number;
  /** Pairs whose positive is another image, of the anchor's cluster: pairs − selfPairs. */
  clusterPairs: number;
  /** Pairs whose anchor the clustering did not hold, placed by its nearest centroid (first visits). */
  centroidPairs: number;
  /** The first step served by a clustering (1-based, as the metrics count), or null. */
  firstClusteredStep: number | null;
  /** Pairs trained from that step on, and their fraction of self-pairs (null before any). */
  pairsAfterClustering: number;
  selfPositiveFractionAfterClustering: number | null;
  /** Why anchors were their own positives, by note kind (`POSITIVE_NOTES`'s keys): every such anchor, `noClustering` included, on streams and random-access sources alike; counts anchors paired in this process, which at the end runs ahead of those trained. */
  selfReasons: Record<string, number>;
  /** Wall seconds from each snapshot to its clustering in hand, this process's rounds: the worker's k-means plus the wait for the main thread (busy with a step) to take its answer. */
  clusteringSeconds: number;
  /** Seconds steps waited for the previous clustering before starting a new one (this process). */
  waitedSeconds: number;
  /** A stream's reservoir of recent samples positives are drawn from (`--reservoir`): its capacity and the samples it held at the end. */
  reservoir?: { capacity: number; held: number };
}

/** The categories of `clusterPositives`' notes (a failed fetch carries the id and error after the prefix). */
function noteKind(reason: string): string {
  for (const [kind, text] of Object.entries(POSITIVE_NOTES)) if (reason.startsWith(text)) return kind;
  return 'other';
}

export class PairCounts {
  readonly counts: PositiveCounts = { reclusters: 0, pairs: 0, selfPairs: 0, pairsAfter: 0, selfPairsAfter: 0, centroidAnchors: 0 };
  readonly selfReasons: Record<string, number> = {};

  /** Notes why an anchor was its own positive (`clusterPositives`' `onNote` reasons). */
  noteSelf(reason: string): void {
    const kind = noteKind(reason);
    this.selfReasons[kind] = (this.selfReasons[kind] ?? 0) + 1;
  }

  /**
   * Counts the pairs of a trained batch (adjacent anchor, positive ids) that `index` paired;
   * `clustered`: the batch was served by a clustering (the counts "after clustering").
   * Returns the batch's pairs and self-pairs.
   */
  countBatch(ids: readonly string[], index: ClusterIndex | undefined, clustered: boolean): { pairs: number; self: number } {
    let self = 0;
    for (let i = 0; i + 1 < ids.length; i += 2) {
      if (ids[i] === ids[i + 1]) self++;
      else if (index && !index.has(ids[i] as string)) this.counts.centroidAnchors++;
    }
    const pairs = Math.floor(ids.length / 2);
    this.counts.pairs += pairs;
    this.counts.selfPairs += self;
    if (clustered) {
      this.counts.pairsAfter += pairs;
      this.counts.selfPairsAfter += self;
    }
    return { pairs, self };
  }
}
