/**
 * Clustering positives during training (METHODS.md §4, A1–A2; the memory-bank k-means of
 * DeepCluster v2 and PCL, refreshed every K steps): after each step the trainer writes the
 * target branch's embeddings of the batch into an `EmbeddingBank`; every `every` steps the bank
 * is snapshot and clustered by spherical k-means in a worker thread while training goes on.
 *
 * Which clustering an anchor draws its positive from depends only on its place in the stream,
 * never on how fast the worker was: the clustering of the bank as it stood after step `s`
 * serves the batches from step `s + lag` on (`lag` = ⌊every/2⌋, at least 1: half a period for
 * the worker to finish in the shadow of training). An anchor of such a batch that reaches the
 * pairing stage before that clustering is ready waits for it; the batches before it are already
 * in the pipeline, so the trainer goes on meanwhile and waits only when a clustering takes longer
 * than `lag` steps. At most one clustering runs at a time: a new round waits (in the step) for
 * the previous one to finish. So the same configuration and seed give the same pairs, as DESIGN.md
 * asks of every random choice.
 *
 * New anchors: an anchor the serving clustering does not hold (first visit, or first seen after
 * its snapshot) is embedded by a copy of the target branch frozen at that snapshot (`anchors`)
 * and placed in its nearest centroid's cluster, so it gets a cluster positive from its first
 * visit. The copy, not the live target: the centroids were computed in the space of the target
 * as it stood at the snapshot, and a copy taken at a fixed step embeds the same way however far
 * ahead of the trainer the data plane runs. Two copies suffice (slots 0 and 1): a new
 * clustering takes the slot the serving one does not use, and when the one after it starts
 * (≥ `every` steps later, `lag ≤ every`) every batch the older one served has been trained.
 *
 * Negatives (`negatives` = K): at each step, K bank vectors per pair from the clusters other
 * than the pair's, in the clustering that paired the batch (`NegativeSampler`).
 *
 * The schedule's arithmetic is `ReclusterSchedule`'s, the counts `PairCounts`'. Checkpointed
 * (`checkpointState`, taken up by `restore`): the bank, the clusterings
 * still serving, the rounds decided, and a clustering started at the checkpoint's step (re-run
 * at resume from the restored bank, which is its snapshot); a clustering started earlier and
 * still running is waited for. The frozen target copies are method weights, in the weights
 * file. A resumed run pairs, draws and trains exactly as the uninterrupted one.
 */
import type { TargetEmbeddings } from '../methods/softrank.js';
import type { Sample } from '../core/index.js';
import type { ClusteringState, PositivesState, Slot } from './checkpoint-codec.js';
import { ClusterIndex } from './cluster-index.js';
import { EmbeddingBank, type EmbeddingPrecision } from './embedding-bank.js';
import { clusterInWorker } from './kmeans-worker.js';
import { NegativeSampler } from './negative-sampler.js';
import { PairCounts, type PositiveStats } from './pair-counts.js';
import { ReclusterSchedule } from './recluster-schedule.js';

/** Embeds new anchors by frozen copies of the target branch (softrank's `freezeTarget` / `embedFrozen`, on the data plane's pixels). */
export interface AnchorEmbedder {
  /** Copies the target branch as it is now into `slot`: called when a clustering snapshots the bank. */
  freeze(slot: Slot): void;
  /** The unit embeddings of decoded anchors by the copy in `slot` (the clustering's dims), row i for `anchors[i]`, in one pass. */
  embed(anchors: readonly Sample[], slot: Slot): Promise<ReadonlyArray<Float32Array | undefined>>;
}

export interface ReclusteringOptions {
  /** Dimensions of the embeddings (the method's projection size). */
  dims: number;
  /** Embeddings held at most (the oldest are overwritten first). */
  bankSize: number;
  /** Storage of the bank (default float32). */
  precision?: EmbeddingPrecision;
  /** Clusters k of every clustering; a clustering runs once the bank holds 4k embeddings. */
  clusters: number;
  /** Steps between clusterings, K. */
  every: number;
  /** Anchors (pairs) per batch, B/2. */
  anchorsPerStep: number;
  /** Steps the run ends after: no clustering at or after it. */
  steps: number;
  /** Steps already done (resume): clusterings start after it, anchors count from `startStep × anchorsPerStep`. */
  startStep?: number;
  /** Seed of the k-means runs (round r runs with `seed + r`) and of the negatives' draws. */
  seed?: number;
  /** Steps from a clustering's snapshot to the first batch it serves, 1 … every (default max(1, ⌊every/2⌋)). */
  lag?: number;
  /** Places anchors the serving clustering does not hold by their nearest centroid; without it they are their own positives. */
  anchors?: AnchorEmbedder;
  /** Negatives K per pair from other clusters (default 0: none); fewer than the bank size. */
  negatives?: number;
  /** Hears of a clustering that failed (the previous clustering stays in use), or of a step without negatives. */
  onWarning?: (message: string) => void;
}

/** A clustering of the bank, and the frozen target copy that embeds its new anchors. */
interface Clustering {
  index: ClusterIndex;
  slot: Slot;
}

interface Round {
  promise: Promise<ClusterIndex | undefined>;
  resolve: (index: ClusterIndex | undefined) => void;
  settled: boolean;
  /** What it serves, once settled. */
  value?: Clustering | undefined;
}

/**
 * The embedding bank and its periodic clustering, in step with the trainer and the data plane.
 *
 * @example
 * const reclustering = new Reclustering({ dims: 128, bankSize: 65536, clusters: 100, every: 50, anchorsPerStep: 16, steps: 1000 });
 * // data plane, once per anchor in stream order:
 * const { batch, clustering } = reclustering.nextAnchor();
 * const index = await clustering;
 * // … and once the anchor is placed in a cluster of `index` (for the batch's negatives):
 * reclustering.notePairCluster(batch, anchor.id, cluster);
 * // trainer, after each step:
 * await reclustering.afterStep(done, method.targetEmbeddings(), batch.ids);
 * reclustering.close();
 */
export class Reclustering {
  readonly bank: EmbeddingBank;
  readonly clusters: number;
  /** Negatives K per pair (0: none). */
  readonly negativeCount: number;
  private readonly schedule: ReclusterSchedule;
  private readonly seed: number;
  private readonly anchors: AnchorEmbedder | undefined;
  private readonly onWarning: (message: string) => void;
  private readonly sampler: NegativeSampler;
  private readonly tally = new PairCounts();
  private readonly rounds = new Map<number, Round>();
  private readonly slotOf = new WeakMap<ClusterIndex, Slot>();
  private readonly abort = new AbortController();
  private position: number;
  /** Steps trained: the loss being computed is of batch `stepsDone` (0-based). */
  private stepsDone: number;
  private latest: Clustering | undefined;
  private inFlight: { promise: Promise<void>; round: number; startedAt: number; slot: Slot } | undefined;
  private closed = false;
  private firstServedBatch: number | undefined;
  private clusteringMs = 0;
  private waitedMs = 0;

  /** Steps between clusterings, and from a snapshot to the first batch it serves (`ReclusterSchedule`). */
  get every(): number {
    return this.schedule.every;
  }

  get lag(): number {
    return this.schedule.lag;
  }

  constructor(o: ReclusteringOptions) {
    if (!Number.isInteger(o.clusters) || o.clusters < 2)
      throw new Error(`Reclustering clusters: expected an integer ≥ 2, got ${o.clusters}`);
    this.schedule = new ReclusterSchedule(o);
    if (4 * o.clusters > o.bankSize)
      throw new Error(`Reclustering: ${o.clusters} clusters need a bank of at least ${4 * o.clusters} embeddings, got ${o.bankSize}`);
    const negatives = o.negatives ?? 0;
    if (!Number.isInteger(negatives) || negatives < 0 || negatives >= o.bankSize) {
      throw new Error(`Reclustering negatives: expected an integer in [0, bank size ${o.bankSize}), got ${negatives}`);
    }
    this.bank = new EmbeddingBank({ dims: o.dims, capacity: o.bankSize, precision: o.precision ?? 'float32' });
    this.clusters = o.clusters;
    this.negativeCount = negatives;
    this.seed = o.seed ?? 0;
    this.anchors = o.anchors;
    this.onWarning = o.onWarning ?? (() => undefined);
    this.sampler = new NegativeSampler(negatives, this.seed, this.onWarning);
    this.position = this.schedule.startStep * o.anchorsPerStep;
    this.stepsDone = this.schedule.startStep;
  }

  /**
   * The batch (0-based) the next anchor of the stream will be trained in, and the clustering it
   * draws its positive from (undefined: none yet, the anchor is its own positive). Call once per
   * anchor, in stream order; the promise resolves when the clustering its batch calls for is ready.
   */
  nextAnchor(): { batch: number; clustering: Promise<ClusterIndex | undefined> } {
    const batch = this.schedule.batchOf(this.position++);
    const r = this.schedule.roundOf(batch);
    if (this.closed) return { batch, clustering: Promise.resolve(this.latest?.index) };
    // A round before the start of this run serves only if a checkpoint brought it.
    if (r < 1 || (this.schedule.beforeStart(r) && !this.rounds.has(r))) return { batch, clustering: Promise.resolve(undefined) };
    return { batch, clustering: this.round(r).promise };
  }

  /**
   * The unit embeddings of anchors that `index` does not hold, by the target copy frozen with
   * `index`'s snapshot, in one pass (`positivePairs`' `embed`); undefined rows without an embedder.
   */
  embedNew(anchors: readonly Sample[], index: ClusterIndex): Promise<ReadonlyArray<Float32Array | undefined>> {
    const slot = this.slotOf.get(index);
    if (!this.anchors || slot === undefined) return Promise.resolve(anchors.map(() => undefined));
    return this.anchors.embed(anchors, slot);
  }

  /** Notes why an anchor was its own positive (`clusterPositives`' `onNote` reasons), for the summary. */
  noteSelf(reason: string): void {
    this.tally.noteSelf(reason);
  }

  /**
   * Records that the pairing stage placed `anchorId`, an anchor of batch `batch` (0-based, as
   * {@link nextAnchor} gave it), in `cluster` of the clustering that pairs the batch: its
   * positive, if another image, was drawn from that cluster, and {@link negatives} draws from
   * the others. Kept only with negatives, and only until the batch is trained (`afterStep`).
   */
  notePairCluster(batch: number, anchorId: string, cluster: number): void {
    if (this.closed || batch < this.stepsDone) return;
    this.sampler.note(batch, anchorId, cluster);
  }

  /**
   * The negatives of the batch being trained (`createSoftRank`'s `negatives`): K bank vectors
   * `[B/2, K, dims]` per pair, none in the pair's cluster, or undefined (K = 0, or no
   * clustering serves this batch yet). The pair's cluster: the one its anchor was placed in at
   * pairing ({@link notePairCluster}). A pair the pairing stage did not place (no frozen copy,
   * or its embedding failed: its own positive) falls back to its positive's or anchor's cluster
   * in the clustering, else its nearest centroid to `z`, its target embedding of this step.
   */
  negatives(ids: readonly string[], z: Float32Array, dims: number): Float32Array | undefined {
    if (this.negativeCount === 0) return undefined;
    const index = this.clusteringOfBatch(this.stepsDone);
    return index ? this.sampler.draw(index, this.bank, this.stepsDone, ids, z, dims) : undefined;
  }

  /**
   * After step `done` (1-based): the batch's embeddings into the bank, its pairs counted, and on
   * a clustering step a k-means of the bank started in a worker (not awaited; waits only for the
   * previous one). Adds `selfPositives` (this batch's fraction of self-pairs), `reclusters` and
   * `bank` to `parts`.
   */
  async afterStep(
    done: number,
    embeddings: TargetEmbeddings | undefined,
    ids: readonly string[],
    parts?: Record<string, number>,
  ): Promise<void> {
    const index = this.clusteringOfBatch(done - 1);
    this.stepsDone = done;
    this.sampler.trained(done);
    if (embeddings) this.bank.putBatch(embeddings.ids, embeddings.rows);
    const clustered = this.firstServedBatch !== undefined && done - 1 >= this.firstServedBatch;
    const { pairs, self } = this.tally.countBatch(ids, index, clustered);
    if (parts) {
      parts['selfPositives'] = pairs > 0 ? self / pairs : 0;
      parts['reclusters'] = this.tally.counts.reclusters;
      parts['bank'] = this.bank.size;
    }
    const r = this.closed ? undefined : this.schedule.roundStartingAfter(done);
    if (r === undefined) return;
    if (this.inFlight) {
      const t0 = performance.now();
      await this.inFlight.promise;
      this.waitedMs += performance.now() - t0;
    }
    // Batches from here on are served by round r − 1 or later: older rounds (and their clusterings) can go.
    for (const [old, round] of this.rounds) if (old < r - 1 && round.settled) this.rounds.delete(old);
    if (this.bank.size < 4 * this.clusters) {
      this.settle(r); // too few embeddings yet: the previous clustering (if any) stays
      return;
    }
    const slot: Slot = this.latest?.slot === 0 ? 1 : 0;
    this.anchors?.freeze(slot);
    this.start(r, done, slot);
  }

  /**
   * Everything a resumed run needs to go on exactly, after step `done` (call it from the
   * checkpoint, after `afterStep(done)`): a clustering started at `done` is recorded to re-run,
   * one started earlier is waited for.
   */
  async checkpointState(done: number): Promise<PositivesState> {
    if (this.inFlight && this.inFlight.startedAt !== done) await this.inFlight.promise;
    const list: Clustering[] = [];
    const ref = (c: Clustering | undefined): number | null => {
      if (!c) return null;
      if (!list.includes(c)) list.push(c);
      return list.indexOf(c);
    };
    const rounds: PositivesState['rounds'] = [];
    for (const [round, entry] of [...this.rounds].sort(([a], [b]) => a - b))
      if (entry.settled) rounds.push({ round, clustering: ref(entry.value) });
    const latest = ref(this.latest);
    const clusterings: ClusteringState[] = list.map(({ index, slot }) => ({
      ids: [...index.ids],
      assignments: index.assignments.slice(),
      centroids: (index.centroids as Float32Array).slice(),
      dims: index.dims,
      slot,
    }));
    return {
      step: done,
      every: this.every,
      lag: this.lag,
      clusters: this.clusters,
      bank: this.bank.exportState(),
      clusterings,
      rounds,
      latest,
      ...(this.inFlight ? { pending: { round: this.inFlight.round, slot: this.inFlight.slot } } : {}),
      firstServedBatch: this.firstServedBatch ?? null,
      counts: { ...this.tally.counts },
    };
  }

  stats(): PositiveStats {
    const c = this.tally.counts;
    return {
      reclusters: c.reclusters,
      clusters: this.clusters,
      bank: this.bank.size,
      pairs: c.pairs,
      selfPairs: c.selfPairs,
      selfPositiveFraction: c.pairs > 0 ? c.selfPairs / c.pairs : 0,
      clusterPairs: c.pairs - c.selfPairs,
      centroidPairs: c.centroidAnchors,
      firstClusteredStep: this.firstServedBatch === undefined ? null : this.firstServedBatch + 1,
      pairsAfterClustering: c.pairsAfter,
      selfPositiveFractionAfterClustering: c.pairsAfter > 0 ? c.selfPairsAfter / c.pairsAfter : null,
      selfReasons: { ...this.tally.selfReasons },
      clusteringSeconds: this.clusteringMs / 1000,
      waitedSeconds: this.waitedMs / 1000,
    };
  }

  /** Stops a clustering in flight (its worker is terminated) and lets every waiting anchor go on with the latest clustering. */
  close(): void {
    this.closed = true;
    this.sampler.clear();
    this.abort.abort(new Error('training ended'));
    for (const round of this.rounds.values())
      if (!round.settled) {
        round.settled = true;
        round.value = this.latest;
        round.resolve(this.latest?.index);
      }
  }

  /** The clustering that paired batch `batchIndex` (settled before the batch could be formed), or undefined. */
  private clusteringOfBatch(batchIndex: number): ClusterIndex | undefined {
    const r = this.schedule.roundOf(batchIndex);
    if (r < 1) return undefined;
    const round = this.rounds.get(r);
    return round?.settled ? round.value?.index : undefined;
  }

  /** Snapshots the bank and clusters it in a worker, as round `r` started after step `done`, its new anchors embedded by `slot`. */
  private start(r: number, done: number, slot: Slot): void {
    this.round(r); // known from now on (a resumed run asks for it as a round before its start)
    const { rows, ids } = this.bank.snapshot();
    const t0 = performance.now();
    const initial = this.latest?.index.centroids;
    const options = { k: this.clusters, seed: this.seed + r, ...(initial ? { initialCentroids: initial } : {}) };
    const promise = clusterInWorker(rows, this.bank.dims, options, { transfer: true, signal: this.abort.signal })
      .then(
        (result) => {
          const index = new ClusterIndex(ids, result.assignments, { rows: result.centroids, dims: this.bank.dims });
          this.slotOf.set(index, slot);
          this.latest = { index, slot };
          this.tally.counts.reclusters++;
          this.clusteringMs += performance.now() - t0;
          this.firstServedBatch ??= this.schedule.firstServed(done);
        },
        (err: unknown) => {
          if (!this.abort.signal.aborted)
            this.onWarning(
              `softrank: the clustering after step ${done} failed (${err instanceof Error ? err.message : String(err)}); positives keep the previous one`,
            );
        },
      )
      .finally(() => {
        this.inFlight = undefined;
        this.settle(r);
      });
    this.inFlight = { promise, round: r, startedAt: done, slot };
  }

  /**
   * Takes up a checkpoint's state (`checkpointState`), refusing one taken under
   * another schedule. Before the first anchor is asked for, and after the weights are restored
   * (a clustering that was in flight is started again from the restored target copy).
   */
  restore(state: PositivesState): void {
    const differ: string[] = [];
    const { startStep } = this.schedule;
    if (state.step !== startStep) differ.push(`it was taken after step ${state.step}, the run resumes after ${startStep}`);
    if (state.every !== this.every) differ.push(`reclustering every ${state.every} steps, not ${this.every}`);
    if (state.lag !== this.lag) differ.push(`a lag of ${state.lag} steps, not ${this.lag}`);
    if (state.clusters !== this.clusters) differ.push(`${state.clusters} clusters, not ${this.clusters}`);
    if (differ.length > 0) throw new Error(`Reclustering: the saved positives do not fit this run: ${differ.join('; ')}`);
    this.bank.restore(state.bank);
    const clusterings = state.clusterings.map((c): Clustering => {
      const index = new ClusterIndex(c.ids, c.assignments, { rows: c.centroids, dims: c.dims });
      this.slotOf.set(index, c.slot);
      return { index, slot: c.slot };
    });
    const at = (i: number | null): Clustering | undefined => {
      if (i === null) return undefined;
      const c = clusterings[i];
      if (!c) throw new Error(`Reclustering: the saved positives refer to clustering ${i} of ${clusterings.length}`);
      return c;
    };
    for (const { round, clustering } of state.rounds) {
      const value = at(clustering);
      this.rounds.set(round, { promise: Promise.resolve(value?.index), resolve: () => undefined, settled: true, value });
    }
    this.latest = at(state.latest);
    this.firstServedBatch = state.firstServedBatch ?? undefined;
    Object.assign(this.tally.counts, state.counts);
    if (state.pending) {
      const slot: Slot = this.latest?.slot === 0 ? 1 : 0;
      if (state.pending.slot !== slot)
        throw new Error(`Reclustering: the saved clustering in flight uses slot ${state.pending.slot}; expected ${slot}`);
      // Its snapshot was the bank as restored; its target copy came back with the weights.
      this.start(state.pending.round, state.step, slot);
    }
  }

  private round(r: number): Round {
    let round = this.rounds.get(r);
    if (!round) {
      let resolve!: (index: ClusterIndex | undefined) => void;
      const promise = new Promise<ClusterIndex | undefined>((done) => {
        resolve = done;
      });
      round = { promise, resolve, settled: false };
      this.rounds.set(r, round);
    }
    return round;
  }

  /** Round r is decided: the anchors waiting on it get the latest clustering. */
  private settle(r: number): void {
    const round = this.round(r);
    if (!round.settled) {
      round.settled = true;
      round.value = this.latest;
      round.resolve(this.latest?.index);
    }
  }
}
