/**
 * `train --method softrank`'s data stage: each decoded anchor followed by its clustering
 * positive, read again by id from the source, so batches are adjacent (anchor, positive) pairs.
 * Placed between masks and `multiView`, so a positive gets views of its own, keyed by its id.
 * An anchor the clustering does not hold is embedded whole by a frozen target copy
 * (`wholeImageEmbedder`, `anchor-embedder.ts`) and paired within its nearest centroid's cluster.
 */
import { concatMap, from, lastValueFrom, map, of, toArray, type OperatorFunction } from 'rxjs';
import type { RandomAccessSource } from '../datasets/source.js';
import type { ClusterIndex } from './cluster-index.js';
import { clusterPositives } from './cluster-positives.js';
import { orderedMergeMap } from '../operators/ordered-merge-map.js';
import type { Sample } from '../core/index.js';
import { groupConsecutive, type NextAnchor, type PendingAnchor } from './pairing.js';

/** A random-access source that remembers the index of the ids it read last, so a sample chosen by id can be read again. */
export interface ReadableById {
  /** The source, reads recorded. */
  source: RandomAccessSource;
  /** Reads the sample `id` again; rejects for an id not among the last `capacity` read. */
  readById(id: string): Promise<Sample>;
  /** The ids remembered with their indices, oldest read first (for a checkpoint). */
  entries(): { ids: string[]; indices: Int32Array };
  /** Remembers `entries` (what {@link entries} gave), before any read: a resumed run reads again what the interrupted one could. */
  restore(entries: { ids: readonly string[]; indices: Int32Array }): void;
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
      if (index === undefined)
        return Promise.reject(new Error(`${source.name}: ${id} is no longer among the last ${capacity} samples read`));
      return source.read(index);
    },
    entries() {
      return { ids: [...indexOf.keys()], indices: Int32Array.from(indexOf.values()) };
    },
    restore({ ids, indices }) {
      if (ids.length !== indices.length) throw new Error(`readableById.restore: ${ids.length} ids but ${indices.length} indices`);
      indexOf.clear();
      // The newest `capacity` of them, in their order: as if they had just been read.
      for (let i = Math.max(0, ids.length - capacity); i < ids.length; i++) indexOf.set(ids[i] as string, indices[i] as number);
    },
  };
}

export interface PositivePairsOptions {
  /** The next anchor's batch (0-based) and clustering, called once per anchor in stream order (`Reclustering.nextAnchor`). */
  nextAnchor: NextAnchor;
  /** Anchors a batch holds, B/2: the most anchors embedded at once. */
  groupSize: number;
  /** The positive `id`, read and decoded (and masked) as the anchors are. */
  fetch: (id: string) => Promise<Sample>;
  /**
   * The embeddings of anchors `index` does not hold (`Reclustering.embedNew`), to place each
   * by its nearest centroid; called once per batch and clustering with all such anchors.
   */
  embed?: (anchors: readonly Sample[], index: ClusterIndex) => Promise<ReadonlyArray<Float32Array | undefined>>;
  seed: number;
  epoch: number;
  /** Anchors paired (positives fetched) at once (default 4). */
  concurrency?: number;
  /**
   * Each anchor that became its own positive, and why (`clusterPositives`' notes): once per
   * such anchor, 'no clustering yet' included (as `reservoirPairs` notes them).
   */
  onNote?: (id: string, reason: string) => void;
  /** Each anchor placed in a cluster of the clustering that pairs it, with its batch (`Reclustering.notePairCluster`, for the batch's negatives); before its pair is emitted. */
  onCluster?: (batch: number, anchorId: string, cluster: number) => void;
}

/**
 * Decoded anchors → anchor, positive, anchor, positive, … : each anchor paired by
 * `clusterPositives` (its rule, draws and fallbacks) against the clustering its place in the
 * stream calls for, which may mean waiting for it. Order kept.
 *
 * The anchors of one batch are taken together, so that those their clustering does not hold
 * are embedded in one forward pass (one image at a time costs ~8× more per image on wasm:
 * 64 ms against 8 ms, slim encoder at 64 px). Groups follow the batches' places in the stream,
 * not the epoch's, so a resumed run groups — and embeds — exactly as the uninterrupted one.
 *
 * @example
 * samples$.pipe(decode(), positivePairs({ nextAnchor: () => reclustering.nextAnchor(), groupSize: 16, fetch, seed, epoch }), multiView(…), batch(32))
 * @see clusterPositives, Reclustering
 */
export function positivePairs(o: PositivePairsOptions): OperatorFunction<Sample, Sample> {
  // One clusterPositives per anchor: its "no clustering yet" note (once per subscription) is then made for every such anchor.
  const pairOf = (anchor: Sample, index: ClusterIndex | undefined, embedding: Float32Array | Error | undefined): Promise<Sample[]> =>
    lastValueFrom(
      of(anchor).pipe(
        clusterPositives({
          clusters: () => index,
          fetch: o.fetch,
          seed: o.seed,
          epoch: o.epoch,
          concurrency: 1,
          ...(o.onNote ? { onNote: o.onNote } : {}),
          ...(o.embed ? { embed: () => (embedding instanceof Error ? Promise.reject(embedding) : Promise.resolve(embedding)) } : {}),
        }),
        toArray(),
      ),
    );
  const pairGroup = async (group: PendingAnchor[]): Promise<Sample[]> => {
    const indices = await Promise.all(group.map((g) => g.clustering));
    const embedded: Array<Float32Array | Error | undefined> = new Array<undefined>(group.length).fill(undefined);
    if (o.embed) {
      // One call per clustering, with the anchors it does not hold. A group is one batch's anchors, so one round's
      // clustering; only anchors asked for after `Reclustering.close()` may get another (the latest).
      const byIndex = new Map<ClusterIndex, number[]>();
      indices.forEach((index, i) => {
        if (index?.centroids && !index.has((group[i] as PendingAnchor).anchor.id)) byIndex.set(index, [...(byIndex.get(index) ?? []), i]);
      });
      for (const [index, places] of byIndex) {
        try {
          const rows = await o.embed(
            places.map((i) => (group[i] as PendingAnchor).anchor),
            index,
          );
          places.forEach((p, j) => {
            embedded[p] = rows[j];
          });
        } catch (err) {
          places.forEach((p) => {
            embedded[p] = err instanceof Error ? err : new Error(String(err));
          });
        }
      }
    }
    if (o.onCluster) {
      // The cluster `choosePositive` draws from: the clustering's own assignment, else the nearest centroid to the embedding.
      group.forEach(({ anchor, batch }, i) => {
        const index = indices[i];
        const row = embedded[i];
        const cluster =
          index?.clusterOf(anchor.id) ?? (index?.centroids && row instanceof Float32Array ? index.nearestCluster(row) : undefined);
        if (cluster !== undefined) o.onCluster?.(batch, anchor.id, cluster);
      });
    }
    const pairs = await lastValueFrom(
      from(group.map((_, i) => i)).pipe(
        orderedMergeMap((i) => pairOf((group[i] as PendingAnchor).anchor, indices[i], embedded[i]), o.concurrency ?? 4),
        toArray(),
      ),
    );
    return pairs.flat();
  };
  return (anchors) =>
    anchors.pipe(
      // Synchronous, in stream order: the anchor's place decides its batch and clustering.
      map((anchor): PendingAnchor => ({ anchor, ...o.nextAnchor() })),
      groupConsecutive((a) => a.batch, o.groupSize),
      orderedMergeMap(pairGroup, 2),
      concatMap((pairs) => pairs),
    );
}
