/** One clustering of the embedding bank, indexed for the draws positives and negatives make. */
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
