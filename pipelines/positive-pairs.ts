/**
 * `train --method softrank`'s data stage: each decoded anchor followed by its clustering
 * positive, read again by id from the source, so batches are adjacent (anchor, positive) pairs.
 * Placed between masks and `multiView`, so a positive gets views of its own, keyed by its id.
 */
import { concatMap, lastValueFrom, map, of, toArray, type OperatorFunction } from 'rxjs';
import type { RandomAccessSource } from '../datasets/source.js';
import { clusterPositives, type ClusterIndex } from '../operators/cluster-positives.js';
import { orderedMergeMap } from '../operators/ordered-merge-map.js';
import type { Sample } from '../operators/types/index.js';

/** A random-access source that remembers the index of the ids it read last, so a sample chosen by id can be read again. */
export interface ReadableById {
  /** The source, reads recorded. */
  source: RandomAccessSource;
  /** Reads the sample `id` again; rejects for an id not among the last `capacity` read. */
  readById(id: string): Promise<Sample>;
}

/**
 * Wraps `source` to remember `id → index` of the last `capacity` distinct ids it read (a Map in
 * read order, the oldest dropped first): positives are drawn among samples trained before, so
 * their index was seen. Bounded, so an endless stream keeps constant memory.
 */
export function readableById(source: RandomAccessSource, capacity: number): ReadableById {
  if (!Number.isInteger(capacity) || capacity < 0) throw new Error(`readableById capacity: expected an integer ≥ 0, got ${capacity}`);
  const indexOf = new Map<string, number>();
  return {
    source: {
      name: source.name,
      size: source.size,
      id: (index) => source.id(index),
      read: async (index) => {
        const sample = await source.read(index);
        if (capacity > 0) {
          indexOf.delete(sample.id); // re-inserted last: the most recently read
          indexOf.set(sample.id, index);
          if (indexOf.size > capacity) indexOf.delete(indexOf.keys().next().value as string);
        }
        return sample;
      },
    },
    readById(id) {
      const index = indexOf.get(id);
      if (index === undefined) return Promise.reject(new Error(`${source.name}: ${id} is no longer among the last ${capacity} samples read`));
      return source.read(index);
    },
  };
}

export interface PositivePairsOptions {
  /** The clustering of the next anchor, called once per anchor in stream order (`Reclustering.clusteringForNextAnchor`). */
  clusteringForNextAnchor: () => Promise<ClusterIndex | undefined>;
  /** The positive `id`, read and decoded (and masked) as the anchors are. */
  fetch: (id: string) => Promise<Sample>;
  seed: number;
  epoch: number;
  /** Anchors paired at once (default 4). */
  concurrency?: number;
  /** Each anchor that became its own positive, and why (`clusterPositives`' notes). */
  onNote?: (id: string, reason: string) => void;
}

/**
 * Decoded anchors → anchor, positive, anchor, positive, … : each anchor paired by
 * `clusterPositives` (its rule, draws and fallbacks) against the clustering its place in the
 * stream calls for, which may mean waiting for it. Order kept.
 *
 * @example
 * samples$.pipe(decode(), positivePairs({ clusteringForNextAnchor: () => reclustering.clusteringForNextAnchor(), fetch, seed, epoch }), multiView(…), batch(32))
 * @see clusterPositives, Reclustering
 */
export function positivePairs(o: PositivePairsOptions): OperatorFunction<Sample, Sample> {
  const pairOf = (anchor: Sample, index: ClusterIndex | undefined): Promise<Sample[]> =>
    lastValueFrom(of(anchor).pipe(
      clusterPositives({ clusters: () => index, fetch: o.fetch, seed: o.seed, epoch: o.epoch, concurrency: 1, ...(o.onNote ? { onNote: o.onNote } : {}) }),
      toArray(),
    ));
  return (anchors) => anchors.pipe(
    // Synchronous, in stream order: the anchor's place decides its clustering.
    map((anchor) => ({ anchor, clustering: o.clusteringForNextAnchor() })),
    orderedMergeMap(async ({ anchor, clustering }) => pairOf(anchor, await clustering), o.concurrency ?? 4),
    concatMap((pair) => pair),
  );
}
