/**
 * Clustering-based positive sampling (METHODS.md §4, A1–A2): each anchor is followed in the
 * stream by one positive drawn from its k-means cluster, so that a batch is made of adjacent
 * (anchor, positive) pairs — the convention `createSoftRank` reads. An anchor the clustering
 * does not hold (first visit, or first seen after the clustering's snapshot) is placed in the
 * cluster of its nearest centroid, from an embedding the caller computes for it.
 */
import { concatMap, type OperatorFunction } from 'rxjs';
import { orderedMergeMap } from '../operators/ordered-merge-map.js';
import { keyedRng, type Sample } from '../core/index.js';
import type { ClusterIndex } from './cluster-index.js';
import { selfPair } from './pairing.js';

/** Why an anchor is its own positive; the operator's `onNote` hears these. */
export const POSITIVE_NOTES = {
  noClustering: 'no clustering yet: positive is the other view of the same image',
  notClustered: 'not in the clustering yet and no embedding to place it: positive is the other view of the same image',
  singleton: 'singleton cluster',
  fetchFailed: 'fetch failed',
  /** A stream anchor whose cluster has no other member among the recent samples kept (`PositiveReservoir`). */
  notInReservoir: 'no sample of its cluster in the reservoir of recent samples: positive is the other view of the same image',
} as const;

/** One anchor's positive: an id, and why it is the anchor itself when it is. */
export interface PositiveChoice {
  id: string;
  note?: string;
  /** The anchor was not clustered and was placed in this cluster, its centroid's nearest. */
  nearestCluster?: number;
}

/**
 * The positive of `anchorId` in epoch `epoch`: uniform over its cluster without it, drawn from
 * `keyedRng(seed, 'positive', epoch, anchorId)`. An anchor the clustering does not hold, given
 * its `embedding` (unit, the centroids' dims), is placed in the cluster of the nearest centroid
 * and draws uniformly among its members (none of them is the anchor). The anchor itself (with a
 * note) when there is no clustering, it was not clustered and has no embedding, or its cluster
 * holds only it. The rule `clusterPositives` applies, for callers that pair samples without a
 * stream (benchmarks).
 */
export function choosePositive(
  index: ClusterIndex | undefined,
  anchorId: string,
  seed: number,
  epoch: number,
  embedding?: ArrayLike<number>,
): PositiveChoice {
  if (!index) return { id: anchorId, note: POSITIVE_NOTES.noClustering };
  const rng = keyedRng(seed, 'positive', epoch, anchorId);
  const other = index.drawOther(anchorId, rng.next);
  if (other === undefined) {
    if (!embedding || !index.centroids) return { id: anchorId, note: POSITIVE_NOTES.notClustered };
    const cluster = index.nearestCluster(embedding);
    return { id: index.drawIn(cluster, rng.next) as string, nearestCluster: cluster };
  }
  if (other === anchorId) return { id: anchorId, note: POSITIVE_NOTES.singleton };
  return { id: other };
}

export interface ClusterPositivesOptions {
  /** The latest clustering, read as each anchor arrives; undefined before the first one. */
  clusters: () => ClusterIndex | undefined;
  /** Reads and decodes the sample `id` (the same path as the anchors: a decoded Sample with pixels). */
  fetch: (id: string) => Promise<Sample>;
  /**
   * The unit embedding of a decoded anchor that `index` does not hold (in the space of the
   * index's centroids), to place it in its nearest centroid's cluster from its first visit;
   * undefined (or no `embed`): the anchor is its own positive, as before any clustering.
   */
  embed?: (anchor: Sample, index: ClusterIndex) => Promise<Float32Array | undefined>;
  /** Seed of the draws (default 0). */
  seed?: number;
  /** Epoch of the draws: a new positive each epoch (default 0). */
  epoch?: number;
  /** Fetches in flight at most (default 4). */
  concurrency?: number;
  /** Hears each anchor that became its own positive, and why (once per subscription before any clustering). */
  onNote?: (id: string, reason: string) => void;
}

/**
 * Emits each decoded anchor followed by its positive — a sample of the anchor's k-means cluster,
 * fetched by id — so that pairs are adjacent: stream index 2i the anchor (with
 * `positive` = the positive's id), 2i + 1 the positive. Put it before `multiView`, and batch
 * an even number of samples.
 *
 * ```
 * input:    a     b     c|
 * fetch:    [a⁺-] [b⁺] [c⁺]        (concurrency 2)
 * output:   ----a a⁺ b b⁺ -c c⁺|   (order kept)
 * ```
 *
 * The positive is uniform over the anchor's cluster without it, drawn from
 * `keyedRng(seed, 'positive', epoch, id)` (see {@link choosePositive}). An anchor the
 * clustering does not hold is placed by `embed` in its nearest centroid's cluster. The anchor
 * itself (a copy; its two views then make the pair) when: no clustering exists yet (noted
 * once), the anchor was not clustered and there is no `embed` (or no centroids), its cluster
 * holds only it ('singleton cluster'), or the fetch fails or returns no pixels (noted with the
 * reason).
 *
 * @example
 * samples$.pipe(
 *   decode(),
 *   clusterPositives({ clusters: () => latest, fetch: async (id) => decodeSample(await source.read(byId(id))), seed, epoch }),
 *   multiView({ views, seed, epoch }),
 *   batch(64),
 * )
 * @param options See {@link ClusterPositivesOptions}.
 * @see ClusterIndex, choosePositive, createSoftRank
 */
export function clusterPositives(options: ClusterPositivesOptions): OperatorFunction<Sample, Sample> {
  const { clusters, fetch, embed, seed = 0, epoch = 0, onNote } = options;
  if (!Number.isFinite(seed)) throw new Error(`clusterPositives seed: expected a finite number, got "${seed}"`);
  if (!Number.isInteger(epoch) || epoch < 0) throw new Error(`clusterPositives epoch: expected an integer ≥ 0, got "${epoch}"`);
  return (source) => {
    let notedNoClustering = false;
    const self = selfPair;
    const pairUp = async (anchor: Sample): Promise<[Sample, Sample]> => {
      const index = clusters();
      let embedding: Float32Array | undefined;
      if (index?.centroids && embed && !index.has(anchor.id)) {
        try {
          embedding = await embed(anchor, index);
        } catch (err) {
          onNote?.(anchor.id, `${POSITIVE_NOTES.notClustered} (its embedding failed: ${err instanceof Error ? err.message : String(err)})`);
          return self(anchor);
        }
      }
      const choice = choosePositive(index, anchor.id, seed, epoch, embedding);
      if (choice.note !== undefined) {
        if (choice.note !== POSITIVE_NOTES.noClustering) onNote?.(anchor.id, choice.note);
        else if (!notedNoClustering) {
          notedNoClustering = true;
          onNote?.(anchor.id, choice.note);
        }
        return self(anchor);
      }
      let positive: Sample;
      try {
        positive = await fetch(choice.id);
      } catch (err) {
        onNote?.(
          anchor.id,
          `${POSITIVE_NOTES.fetchFailed} for positive ${choice.id} (${err instanceof Error ? err.message : String(err)}): positive is the other view of the same image`,
        );
        return self(anchor);
      }
      if (!positive?.pixels) {
        onNote?.(
          anchor.id,
          `${POSITIVE_NOTES.fetchFailed} for positive ${choice.id} (no decoded pixels): positive is the other view of the same image`,
        );
        return self(anchor);
      }
      return [{ ...anchor, positive: positive.id }, positive];
    };
    return source.pipe(
      orderedMergeMap(pairUp, options.concurrency ?? 4),
      concatMap((pair) => pair),
    );
  };
}
