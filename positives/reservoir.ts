/**
 * Positives for a pure stream (issue #6): a stream (`tar:` shards) cannot read a sample again
 * by id, so the positive of a stream anchor is drawn from a bounded reservoir of the samples
 * seen just before it, kept decoded. "Reservoir" as in NNCLR's support set: the most recent
 * `capacity` distinct samples, the oldest evicted first, not Vitter's uniform reservoir sampling — the
 * recent samples are the ones the serving clustering (and the frozen target copy that embeds
 * new samples for it) saw last, so their cluster is the freshest the run has.
 *
 * Each member carries its cluster under one clustering: the clustering's own assignment when
 * its bank snapshot holds the member, else the cluster of its nearest centroid, placed by the
 * caller from the clustering's frozen target copy. A member is drawn only by clusterings that
 * place it, so a positive always shares its anchor's cluster.
 *
 * Memory: `capacity` decoded images (with their masks and attention maps, if any), their ids
 * (with an id → slot map) and one placement each — no copy of the pixels, which the anchor
 * already carried. Lookups by id are O(1); draws scan the ring without building a list.
 */
import type { ClusterIndex } from './cluster-index.js';
import type { Sample } from '../core/index.js';

interface Member {
  sample: Sample;
  /** The clustering `cluster` was placed under (by nearest centroid); undefined until placed. */
  placedIn?: ClusterIndex;
  cluster?: number;
}

/**
 * The last `capacity` distinct stream samples, decoded, each with its cluster under the
 * clustering it was last placed in. Draws are uniform over the members of one cluster, in
 * insertion order, so they are deterministic given the stream order and the random numbers.
 *
 * An id is held once: adding a sample already held replaces that member where it stands (its
 * slot, so its place in the eviction order, is kept), so a stream that cycles through fewer
 * samples than the capacity holds each once and draws them with equal weight.
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
  /** Each member's id → its slot in `ring`. */
  private readonly slotOf = new Map<string, number>();
  private start = 0;
  private count = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new Error(`PositiveReservoir capacity: expected an integer ≥ 1, got ${capacity}`);
    this.capacity = capacity;
    this.ring = new Array<Member | undefined>(capacity).fill(undefined);
  }

  /** Members held, at most `capacity`. */
  get size(): number {
    return this.count;
  }

  /** The members' ids, oldest first. */
  ids(): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.at(i).sample.id);
    return out;
  }

  /**
   * Keeps `sample` (decoded) as the newest member, evicting the oldest when full, or, when its
   * id is already held, in place of that member; with `index` and `cluster`, placed in that
   * cluster of that clustering. Stored without its views, its encoded bytes and its own
   * positive: what it would be read back as from a random-access source.
   */
  add(sample: Sample, index?: ClusterIndex, cluster?: number): void {
    const { views: _v, bytes: _b, encodedViews: _e, positive: _p, ...kept } = sample;
    const member: Member = { sample: kept, ...(index && cluster !== undefined ? { placedIn: index, cluster } : {}) };
    const held = this.slotOf.get(kept.id);
    if (held !== undefined) {
      this.ring[held] = member;
      return;
    }
    let slot: number;
    if (this.count < this.capacity) {
      slot = (this.start + this.count) % this.capacity;
      this.count++;
    } else {
      slot = this.start; // the oldest goes
      this.slotOf.delete((this.ring[slot] as Member).sample.id);
      this.start = (this.start + 1) % this.capacity;
    }
    this.ring[slot] = member;
    this.slotOf.set(kept.id, slot);
  }

  /** Members `index` cannot place yet: not in its snapshot and not placed under it (to embed by its frozen copy). */
  unplaced(index: ClusterIndex): Sample[] {
    const out: Sample[] = [];
    for (let i = 0; i < this.count; i++) {
      const m = this.at(i);
      if (this.clusterIn(m, index) === undefined) out.push(m.sample);
    }
    return out;
  }

  /** Places members by id in clusters of `index` (their nearest centroids'); ids not held are ignored. */
  place(index: ClusterIndex, clusters: ReadonlyMap<string, number>): void {
    for (const [id, cluster] of clusters) {
      const slot = this.slotOf.get(id);
      if (slot === undefined) continue;
      const m = this.ring[slot] as Member;
      m.placedIn = index;
      m.cluster = cluster;
    }
  }

  /** The cluster of member `id` under `index`, or undefined when it is not held or not placed. */
  clusterOf(id: string, index: ClusterIndex): number | undefined {
    const slot = this.slotOf.get(id);
    return slot === undefined ? undefined : this.clusterIn(this.ring[slot] as Member, index);
  }

  /** Members of `cluster` under `index`, `excludeId` left out, oldest first. */
  membersOf(index: ClusterIndex, cluster: number, excludeId?: string): Sample[] {
    const out: Sample[] = [];
    for (let i = 0; i < this.count; i++) {
      const m = this.at(i);
      if (this.isCandidate(m, index, cluster, excludeId)) out.push(m.sample);
    }
    return out;
  }

  /**
   * A member of `cluster` under `index` other than `excludeId` (the anchor), uniformly, by one
   * draw of `next` (uniform in [0, 1)); undefined when the reservoir holds none. A shallow copy:
   * the views cut from it are its own. Two passes over the ring (count, then find the chosen
   * one), no list built: the same member {@link membersOf}`[j]` would give.
   */
  draw(index: ClusterIndex, cluster: number, excludeId: string, next: () => number): Sample | undefined {
    let candidates = 0;
    for (let i = 0; i < this.count; i++) if (this.isCandidate(this.at(i), index, cluster, excludeId)) candidates++;
    if (candidates === 0) return undefined;
    let j = Math.min(candidates - 1, Math.floor(next() * candidates));
    for (let i = 0; i < this.count; i++) {
      const m = this.at(i);
      if (this.isCandidate(m, index, cluster, excludeId) && j-- === 0) return { ...m.sample };
    }
    throw new Error('PositiveReservoir.draw: unreachable: a counted candidate was not found');
  }

  /** Member `i`, 0 = oldest (i < count). */
  private at(i: number): Member {
    return this.ring[(this.start + i) % this.capacity] as Member;
  }

  private isCandidate(m: Member, index: ClusterIndex, cluster: number, excludeId: string | undefined): boolean {
    return m.sample.id !== excludeId && this.clusterIn(m, index) === cluster;
  }

  /** The snapshot's own assignment first: it is what the clustering was computed from. */
  private clusterIn(m: Member, index: ClusterIndex): number | undefined {
    return index.clusterOf(m.sample.id) ?? (m.placedIn === index ? m.cluster : undefined);
  }
}
