/**
 * `train --method softrank` on a pure stream (`tar:` shards): each decoded anchor followed by a
 * positive from its cluster, taken from a bounded reservoir of the samples decoded just before
 * it (`PositiveReservoir`) instead of read again by id, which a stream cannot do. Placed where
 * `positivePairs` is, between masks and `multiView`, so a positive gets views of its own, keyed
 * by its id, exactly as a fetched one does.
 *
 * The anchor's cluster is what `positivePairs` gives it: the clustering's assignment if its
 * snapshot holds the anchor, else its nearest centroid from the clustering's frozen target copy
 * (`Reclustering.embedNew`). In a stream nearly every anchor is new, so nearly every anchor is
 * embedded, in one pass per batch. Reservoir members the clustering cannot place (decoded
 * between its snapshot and the first batch it serves) are embedded in the same call, once.
 */
import { concatMap, map, Observable, type OperatorFunction } from 'rxjs';
import type { ClusterIndex } from './cluster-index.js';
import { POSITIVE_NOTES } from './cluster-positives.js';
import type { PositiveReservoir } from './reservoir.js';
import { keyedRng, type Sample } from '../core/index.js';
import { groupConsecutive, selfPair, type NextAnchor, type PendingAnchor } from './pairing.js';

export interface ReservoirPairsOptions {
  /** The next anchor's batch (0-based) and clustering, called once per anchor in stream order (`Reclustering.nextAnchor`). */
  nextAnchor: NextAnchor;
  /** Anchors a batch holds, B/2: the most anchors embedded at once. */
  groupSize: number;
  /** The recent samples positives are drawn from; the operator adds each anchor after its batch is paired. */
  reservoir: PositiveReservoir;
  /** Unit embeddings of decoded samples `index` does not hold, by its frozen target copy (`Reclustering.embedNew`); without it a new anchor is its own positive. */
  embed?: (samples: readonly Sample[], index: ClusterIndex) => Promise<ReadonlyArray<Float32Array | undefined>>;
  seed: number;
  epoch: number;
  /** Each anchor that became its own positive, and why (`POSITIVE_NOTES`): once per such anchor, 'no clustering yet' included (as `positivePairs` notes them). */
  onNote?: (id: string, reason: string) => void;
  /** Each anchor placed in a cluster of the clustering that pairs it, with its batch (`Reclustering.notePairCluster`, for the batch's negatives); before its pair is emitted. */
  onCluster?: (batch: number, anchorId: string, cluster: number) => void;
}

/**
 * Decoded stream anchors → anchor, positive, anchor, positive, … Each anchor's positive is
 * uniform over the reservoir's members in the anchor's cluster, the anchor itself left out,
 * drawn from `keyedRng(seed, 'positive', epoch, id)`; the anchor itself (noted) when no
 * clustering serves its batch yet, it cannot be placed, or no member of its cluster is in the
 * reservoir.
 *
 * One batch at a time, in stream order: a batch is paired against the reservoir as the batches
 * before it left it, and only then are its anchors added (so no anchor is the positive of
 * another anchor of its own batch). The reservoir a batch sees is thus fixed by the stream
 * order, not by how far ahead of the trainer the data plane runs: pairing is deterministic.
 *
 * @example
 * samples$.pipe(decode(), reservoirPairs({ nextAnchor: () => reclustering.nextAnchor(), groupSize: 16, reservoir: new PositiveReservoir(1024), seed, epoch: 0 }), multiView(…), batch(32))
 * @see positivePairs, PositiveReservoir
 */
export function reservoirPairs(o: ReservoirPairsOptions): OperatorFunction<Sample, Sample> {
  const { reservoir } = o;
  return (anchors) =>
    new Observable<Sample>((subscriber) => {
      const note = (id: string, reason: string): void => o.onNote?.(id, reason);

      /** The cluster of each anchor under its clustering (undefined: none), or why it could not be placed. */
      const placeGroup = async (
        group: readonly Sample[],
        indices: ReadonlyArray<ClusterIndex | undefined>,
      ): Promise<Array<number | string | undefined>> => {
        const placed: Array<number | string | undefined> = group.map((anchor, i) => indices[i]?.clusterOf(anchor.id));
        const byIndex = new Map<ClusterIndex, number[]>();
        indices.forEach((index, i) => {
          if (index) byIndex.set(index, [...(byIndex.get(index) ?? []), i]);
        });
        for (const [index, places] of byIndex) {
          const fresh = places.filter((i) => placed[i] === undefined);
          if (!o.embed || !index.centroids) {
            fresh.forEach((i) => {
              placed[i] = POSITIVE_NOTES.notClustered;
            });
            continue;
          }
          // The members this clustering cannot place ride along in the anchors' call (once per clustering: then they are placed).
          const members = reservoir.unplaced(index);
          if (fresh.length === 0 && members.length === 0) continue;
          try {
            const rows = await o.embed([...fresh.map((i) => group[i] as Sample), ...members], index);
            fresh.forEach((i, j) => {
              const row = rows[j];
              placed[i] = row ? index.nearestCluster(row) : POSITIVE_NOTES.notClustered;
            });
            const memberClusters = new Map<string, number>();
            members.forEach((m, j) => {
              const row = rows[fresh.length + j];
              if (row) memberClusters.set(m.id, index.nearestCluster(row));
            });
            reservoir.place(index, memberClusters);
          } catch (err) {
            const why = `${POSITIVE_NOTES.notClustered} (its embedding failed: ${err instanceof Error ? err.message : String(err)})`;
            fresh.forEach((i) => {
              placed[i] = why;
            });
          }
        }
        return placed;
      };

      const pairGroup = async (group: readonly PendingAnchor[]): Promise<Sample[]> => {
        const samples = group.map((g) => g.anchor);
        const indices = await Promise.all(group.map((g) => g.clustering));
        const placed = await placeGroup(samples, indices);
        const out: Sample[] = [];
        samples.forEach((anchor, i) => {
          const index = indices[i];
          const cluster = placed[i];
          let positive: Sample | undefined;
          if (!index) note(anchor.id, POSITIVE_NOTES.noClustering);
          else if (typeof cluster !== 'number') note(anchor.id, cluster ?? POSITIVE_NOTES.notClustered);
          else {
            o.onCluster?.((group[i] as PendingAnchor).batch, anchor.id, cluster);
            positive = reservoir.draw(index, cluster, anchor.id, keyedRng(o.seed, 'positive', o.epoch, anchor.id).next);
            if (!positive) note(anchor.id, POSITIVE_NOTES.notInReservoir);
          }
          out.push(...(positive ? [{ ...anchor, positive: positive.id }, positive] : selfPair(anchor)));
        });
        samples.forEach((anchor, i) => {
          const cluster = placed[i];
          reservoir.add(anchor, indices[i], typeof cluster === 'number' ? cluster : undefined);
        });
        return out;
      };

      return anchors
        .pipe(
          // Synchronous, in stream order: the anchor's place decides its batch and clustering.
          map((anchor): PendingAnchor => ({ anchor, ...o.nextAnchor() })),
          groupConsecutive((a) => a.batch, o.groupSize),
          concatMap(pairGroup), // one batch at a time: each sees the reservoir its predecessors left
          concatMap((pairs) => pairs),
        )
        .subscribe(subscriber);
    });
}
