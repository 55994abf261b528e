/**
 * Positives for a pure stream (issue #6): a stream (`tar:` shards) cannot read a sample again
 * by id, so the positive of a stream anchor is drawn from a bounded reservoir of the samples
 * seen just before it, kept decoded. "Reservoir" as in NNCLR's support set: the most recent
 * `capacity` samples, the oldest evicted first, not Vitter's uniform reservoir sampling — the
 * recent samples are the ones the serving clustering (and the frozen target copy that embeds
 * new samples for it) saw last, so their cluster is the freshest the run has.
 *
 * Each member carries its cluster under one clustering: the clustering's own assignment when
 * its bank snapshot holds the member, else the cluster of its nearest centroid, placed by the
 * caller from the clustering's frozen target copy. A member is drawn only by clusterings that
 * place it, so a positive always shares its anchor's cluster.
 *
 * Memory: `capacity` decoded images (with their masks and attention maps, if any), their ids
 * and one placement each — no copy of the pixels, which the anchor already carried.
 */
import type { ClusterIndex } from '../cluster-positives.js';
import type { Sample } from '../types/index.js';

interface Member {
  sample: Sample;
  /** The clustering `cluster` was placed under (by nearest centroid); undefined until placed. */
  placedIn?: ClusterIndex;
  cluster?: number;
}

/**
 * The last `capacity` stream samples, decoded, each with its cluster under the clustering it
 * was last placed in. Draws are uniform over the members of one cluster, in insertion order,
 * so they are deterministic given the stream order and the random numbers.
 *
 * @example
 * const reservoir = new PositiveReservoir(1024);
 * const positive = reservoir.draw(index, cluster, anchor.id, keyedRng(seed, 'positive', epoch, anchor.id).next);
 * reservoir.add(anchor, index, cluster);
 */
export class PositiveReservoir {
  readonly capacity: number;
  /** A ring: member `i` (0 = oldest) is `ring[(start + i) % capacity]`. */
  private readonly ring: Array<Member | undefined>;
  private start = 0;
  private count = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`PositiveReservoir capacity: expected an integer ≥ 1, got ${capacity}`);
    this.capacity = capacity;
    this.ring = new Array<Member | undefined>(capacity).fill(undefined);
  }

  /** Members held, at most `capacity`. */
  get size(): number {
    return this.count;
  }

  /** The members' ids, oldest first. */
  ids(): string[] {
    return this.members().map((m) => m.sample.id);
  }

  /**
   * Keeps `sample` (decoded) as the newest member, evicting the oldest when full; with `index`
   * and `cluster`, placed in that cluster of that clustering. Stored without its views, its
   * encoded bytes and its own positive: what it would be read back as from a random-access source.
   */
  add(sample: Sample, index?: ClusterIndex, cluster?: number): void {
    const { views: _v, bytes: _b, encodedViews: _e, positive: _p, ...kept } = sample;
    const member: Member = { sample: kept, ...(index && cluster !== undefined ? { placedIn: index, cluster } : {}) };
    if (this.count < this.capacity) {
      this.ring[(this.start + this.count) % this.capacity] = member;
      this.count++;
    } else {
      this.ring[this.start] = member; // the oldest goes
      this.start = (this.start + 1) % this.capacity;
    }
  }

  /** Members `index` cannot place yet: not in its snapshot and not placed under it (to embed by its frozen copy). */
  unplaced(index: ClusterIndex): Sample[] {
    return this.members().filter((m) => this.clusterIn(m, index) === undefined).map((m) => m.sample);
  }

  /** Places members by id in clusters of `index` (their nearest centroids'), in one pass. */
  place(index: ClusterIndex, clusters: ReadonlyMap<string, number>): void {
    for (const m of this.members()) {
      const cluster = clusters.get(m.sample.id);
      if (cluster === undefined) continue;
      m.placedIn = index;
      m.cluster = cluster;
    }
  }

  /** The cluster of member `id` under `index`, or undefined when it is not held or not placed. */
  clusterOf(id: string, index: ClusterIndex): number | undefined {
    const m = this.members().find((x) => x.sample.id === id);
    return m === undefined ? undefined : this.clusterIn(m, index);
  }

  /** Members of `cluster` under `index`, `excludeId` left out, oldest first. */
  membersOf(index: ClusterIndex, cluster: number, excludeId?: string): Sample[] {
    return this.members().filter((m) => m.sample.id !== excludeId && this.clusterIn(m, index) === cluster).map((m) => m.sample);
  }

  /**
   * A member of `cluster` under `index` other than `excludeId` (the anchor), uniformly, by one
   * draw of `next` (uniform in [0, 1)); undefined when the reservoir holds none. A shallow copy:
   * the views cut from it are its own.
   */
  draw(index: ClusterIndex, cluster: number, excludeId: string, next: () => number): Sample | undefined {
    const candidates = this.membersOf(index, cluster, excludeId);
    if (candidates.length === 0) return undefined;
    const j = Math.min(candidates.length - 1, Math.floor(next() * candidates.length));
    return { ...(candidates[j] as Sample) };
  }

  private members(): Member[] {
    const out: Member[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.ring[(this.start + i) % this.capacity] as Member);
    return out;
  }

  /** The snapshot's own assignment first: it is what the clustering was computed from. */
  private clusterIn(m: Member, index: ClusterIndex): number | undefined {
    return index.clusterOf(m.sample.id) ?? (m.placedIn === index ? m.cluster : undefined);
  }
}
