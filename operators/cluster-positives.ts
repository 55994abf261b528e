/**
 * Clustering-based positive sampling (METHODS.md §4, A1–A2): each anchor is followed in the
 * stream by one positive drawn from its k-means cluster, so that a batch is made of adjacent
 * (anchor, positive) pairs — the convention `createSoftRank` reads. An anchor the clustering
 * does not hold (first visit, or first seen after the clustering's snapshot) is placed in the
 * cluster of its nearest centroid, from an embedding the caller computes for it.
 */
import { concatMap, type OperatorFunction } from 'rxjs';
import { orderedMergeMap } from './ordered-merge-map.js';
import { keyedRng, type Sample } from '../core/index.js';

/**
 * The members of every cluster of one clustering, for O(1) draws: ids grouped by cluster in one
 * `Int32Array` (a counting sort, O(N) to build), an id → row map, and each row's place in its
 * cluster's group.
 *
 * @example
 * const { rows, ids } = bank.snapshot();
 * const { assignments } = await clusterInWorker(rows, bank.dims, { k: 1000, seed }, { transfer: true });
 * const index = new ClusterIndex(ids, assignments);
 * index.members('img-7'); // ids in img-7's cluster, img-7 included
 */
export class ClusterIndex {
  /** Ids clustered, N. */
  readonly size: number;
  /** Clusters, `max(assignments) + 1` (some may be empty). */
  readonly clusterCount: number;
  /** `ids[i]` is the sample of row i (as given; read-only by contract, for checkpoints). */
  readonly ids: readonly string[];
  /** `[N]` the cluster of row i (as given; read-only by contract, for checkpoints). */
  readonly assignments: Int32Array;
  /** `[k, dims]` unit centroids of the clustering, when given: what {@link nearestCluster} compares with. */
  readonly centroids: Float32Array | undefined;
  /** Dimensions of the centroids (0 without them). */
  readonly dims: number;
  private readonly rowOf = new Map<string, number>();
  /** `[clusterCount + 1]`: cluster c's rows are `grouped[starts[c] … starts[c + 1])`. */
  private readonly starts: Int32Array;
  private readonly grouped: Int32Array;
  /** Row r sits at `grouped[starts[assignments[r]] + place[r]]`. */
  private readonly place: Int32Array;

  /**
   * @param ids `ids[i]` is the sample of row i (distinct).
   * @param assignments `[N]` the cluster of row i, 0 ≤ a < N (what `sphericalKMeans` returns).
   * @param centroids `[k, dims]` the clustering's unit centroids (`sphericalKMeans`' `centroids`), k ≥ every cluster used; without them an anchor outside the clustering cannot be placed.
   */
  constructor(ids: readonly string[], assignments: Int32Array, centroids?: { rows: Float32Array; dims: number }) {
    const n = ids.length;
    if (assignments.length !== n)
      throw new Error(`ClusterIndex: ${n} ids but ${assignments.length} assignments; expected one cluster per id`);
    if (centroids) {
      const { rows, dims } = centroids;
      if (!Number.isInteger(dims) || dims < 1 || rows.length % dims !== 0)
        throw new Error(`ClusterIndex: ${rows.length} centroid values do not make rows of ${dims} dims`);
    }
    let max = -1;
    for (let i = 0; i < n; i++) {
      const a = assignments[i] as number;
      if (a < 0 || a >= n)
        throw new Error(`ClusterIndex: row ${i} (${JSON.stringify(ids[i])}) is in cluster ${a}; expected 0 ≤ cluster < ${n}`);
      if (a > max) max = a;
    }
    this.size = n;
    this.clusterCount = max + 1;
    this.ids = ids;
    this.assignments = assignments;
    this.centroids = centroids?.rows;
    this.dims = centroids?.dims ?? 0;
    if (centroids && centroids.rows.length / centroids.dims < this.clusterCount) {
      throw new Error(
        `ClusterIndex: ${centroids.rows.length / centroids.dims} centroids for clusters up to ${max}; expected one per cluster`,
      );
    }
    for (let i = 0; i < n; i++) {
      const id = ids[i] as string;
      if (this.rowOf.has(id))
        throw new Error(
          `ClusterIndex: id ${JSON.stringify(id)} appears twice (rows ${this.rowOf.get(id)} and ${i}); expected distinct ids`,
        );
      this.rowOf.set(id, i);
    }
    const starts = new Int32Array(this.clusterCount + 1);
    for (let i = 0; i < n; i++) starts[(assignments[i] as number) + 1]! += 1;
    for (let c = 0; c < this.clusterCount; c++) starts[c + 1]! += starts[c] as number;
    const fill = starts.slice(0, this.clusterCount);
    const grouped = new Int32Array(n);
    const place = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const c = assignments[i] as number;
      const at = fill[c] as number;
      grouped[at] = i;
      place[i] = at - (starts[c] as number);
      fill[c] = at + 1;
    }
    this.starts = starts;
    this.grouped = grouped;
    this.place = place;
  }

  /** Whether `id` was clustered. */
  has(id: string): boolean {
    return this.rowOf.has(id);
  }

  /** The cluster of `id`, or undefined if it was not clustered. */
  clusterOf(id: string): number | undefined {
    const row = this.rowOf.get(id);
    return row === undefined ? undefined : (this.assignments[row] as number);
  }

  /** Members of `cluster` (0 when empty). */
  clusterSize(cluster: number): number {
    if (!Number.isInteger(cluster) || cluster < 0 || cluster >= this.clusterCount) return 0;
    return (this.starts[cluster + 1] as number) - (this.starts[cluster] as number);
  }

  /** The ids in `id`'s cluster, `id` included; undefined if it was not clustered. */
  members(id: string): string[] | undefined {
    const c = this.clusterOf(id);
    if (c === undefined) return undefined;
    const out: string[] = [];
    for (let j = this.starts[c] as number; j < (this.starts[c + 1] as number); j++) out.push(this.ids[this.grouped[j] as number] as string);
    return out;
  }

  /**
   * A member of `id`'s cluster other than `id`, uniformly, by one draw of `next` (uniform in
   * [0, 1)); `id` itself when it is alone; undefined if it was not clustered.
   */
  drawOther(id: string, next: () => number): string | undefined {
    const row = this.rowOf.get(id);
    if (row === undefined) return undefined;
    const c = this.assignments[row] as number;
    const start = this.starts[c] as number;
    const count = (this.starts[c + 1] as number) - start;
    if (count < 2) return id;
    // Uniform over the count − 1 others: skip over the anchor's own place.
    const r = Math.min(count - 2, Math.floor(next() * (count - 1)));
    const j = r < (this.place[row] as number) ? r : r + 1;
    return this.ids[this.grouped[start + j] as number] as string;
  }

  /** A member of `cluster`, uniformly, by one draw of `next`; undefined when the cluster is empty. */
  drawIn(cluster: number, next: () => number): string | undefined {
    const count = this.clusterSize(cluster);
    if (count === 0) return undefined;
    const j = Math.min(count - 1, Math.floor(next() * count));
    return this.ids[this.grouped[(this.starts[cluster] as number) + j] as number] as string;
  }

  /**
   * The non-empty cluster whose centroid has the largest dot product with `vector` (cosine, for
   * unit rows; ties: the lower cluster), summed in float64 so every caller agrees bit for bit.
   * Throws without centroids.
   */
  nearestCluster(vector: ArrayLike<number>): number {
    const centroids = this.centroids;
    const d = this.dims;
    if (!centroids) throw new Error('ClusterIndex.nearestCluster: this clustering was indexed without its centroids');
    if (vector.length !== d) throw new Error(`ClusterIndex.nearestCluster: a vector of ${vector.length} dims; the centroids have ${d}`);
    let best = -1;
    let bestDot = -Infinity;
    for (let c = 0; c < this.clusterCount; c++) {
      if (this.clusterSize(c) === 0) continue;
      let dot = 0;
      for (let j = 0, o = c * d; j < d; j++, o++) dot += (vector[j] as number) * (centroids[o] as number);
      if (dot > bestDot) {
        bestDot = dot;
        best = c;
      }
    }
    return best;
  }

  /** Ids outside `cluster`: `N − clusterSize(cluster)`. */
  outsideCount(cluster: number): number {
    return this.size - this.clusterSize(cluster);
  }

  /** The `j`-th id outside `cluster` (0 ≤ j < outsideCount), in the grouped order: an O(1) draw over the other clusters. */
  idOutside(cluster: number, j: number): string {
    const skip = this.clusterSize(cluster);
    if (!Number.isInteger(j) || j < 0 || j >= this.size - skip)
      throw new RangeError(`ClusterIndex.idOutside: ${j} is not among the ${this.size - skip} ids outside cluster ${cluster}`);
    const start = skip > 0 ? (this.starts[cluster] as number) : this.size;
    return this.ids[this.grouped[j < start ? j : j + skip] as number] as string;
  }
}

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
    const self = (anchor: Sample): [Sample, Sample] => {
      const { positive: _, ...copy } = anchor;
      return [{ ...anchor, positive: anchor.id }, copy];
    };
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
