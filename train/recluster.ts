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
 * Not checkpointed: after `--resume` the bank starts empty and anchors are their own positives
 * until the first clustering after the resume step (so a resumed softrank run is not bit-exact
 * with an uninterrupted one).
 */
import type { TargetEmbeddings } from '../methods/softrank.js';
import { ClusterIndex, POSITIVE_NOTES } from '../operators/cluster-positives.js';
import { clusterInWorker, EmbeddingBank, type EmbeddingPrecision } from '../operators/clustering/index.js';

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
  /** Seed of the k-means runs (round r runs with `seed + r`). */
  seed?: number;
  /** Steps from a clustering's snapshot to the first batch it serves (default max(1, ⌊every/2⌋)). */
  lag?: number;
  /** Hears of a clustering that failed; the previous clustering stays in use. */
  onWarning?: (message: string) => void;
}

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
  /** The first step served by a clustering (1-based, as the metrics count), or null. */
  firstClusteredStep: number | null;
  /** Pairs trained from that step on, and their fraction of self-pairs (null before any). */
  pairsAfterClustering: number;
  selfPositiveFractionAfterClustering: number | null;
  /** Why anchors were their own positives, by note kind (`POSITIVE_NOTES`'s keys); counts anchors paired, which at the end runs ahead of those trained. */
  selfReasons: Record<string, number>;
  /** Wall seconds from each snapshot to its clustering in hand, all rounds: the worker's k-means plus the wait for the main thread (busy with a step) to take its answer. */
  clusteringSeconds: number;
  /** Seconds steps waited for the previous clustering before starting a new one. */
  waitedSeconds: number;
}

interface Round {
  promise: Promise<ClusterIndex | undefined>;
  resolve: (index: ClusterIndex | undefined) => void;
  settled: boolean;
}

/** The categories of `clusterPositives`' notes (a failed fetch carries the id and error after the prefix). */
function noteKind(reason: string): string {
  for (const [kind, text] of Object.entries(POSITIVE_NOTES)) if (reason.startsWith(text)) return kind;
  return 'other';
}

/**
 * The embedding bank and its periodic clustering, in step with the trainer and the data plane.
 *
 * @example
 * const reclustering = new Reclustering({ dims: 128, bankSize: 65536, clusters: 100, every: 50, anchorsPerStep: 16, steps: 1000 });
 * // data plane, once per anchor in stream order:
 * const index = await reclustering.clusteringForNextAnchor();
 * // trainer, after each step:
 * await reclustering.afterStep(done, method.targetEmbeddings(), batch.ids);
 * reclustering.close();
 */
export class Reclustering {
  readonly bank: EmbeddingBank;
  readonly clusters: number;
  readonly every: number;
  readonly lag: number;
  private readonly anchorsPerStep: number;
  private readonly steps: number;
  private readonly startStep: number;
  private readonly seed: number;
  private readonly onWarning: (message: string) => void;
  private readonly rounds = new Map<number, Round>();
  private readonly abort = new AbortController();
  private position: number;
  private latest: ClusterIndex | undefined;
  private centroids: Float32Array | undefined;
  private inFlight: Promise<void> | undefined;
  private closed = false;
  private firstServedBatch: number | undefined;
  private readonly counts = { reclusters: 0, pairs: 0, selfPairs: 0, pairsAfter: 0, selfPairsAfter: 0, clusteringMs: 0, waitedMs: 0 };
  private readonly selfReasons: Record<string, number> = {};

  constructor(o: ReclusteringOptions) {
    for (const [name, value, min] of [['clusters', o.clusters, 2], ['every', o.every, 1], ['anchorsPerStep', o.anchorsPerStep, 1], ['steps', o.steps, 1]] as const) {
      if (!Number.isInteger(value) || value < min) throw new Error(`Reclustering ${name}: expected an integer ≥ ${min}, got ${value}`);
    }
    if (4 * o.clusters > o.bankSize) throw new Error(`Reclustering: ${o.clusters} clusters need a bank of at least ${4 * o.clusters} embeddings, got ${o.bankSize}`);
    this.bank = new EmbeddingBank({ dims: o.dims, capacity: o.bankSize, precision: o.precision ?? 'float32' });
    this.clusters = o.clusters;
    this.every = o.every;
    this.lag = o.lag ?? Math.max(1, Math.floor(o.every / 2));
    this.anchorsPerStep = o.anchorsPerStep;
    this.steps = o.steps;
    this.startStep = o.startStep ?? 0;
    this.seed = o.seed ?? 0;
    this.onWarning = o.onWarning ?? (() => undefined);
    this.position = this.startStep * o.anchorsPerStep;
  }

  /**
   * The clustering the next anchor of the stream draws its positive from (undefined: none yet,
   * the anchor is its own positive). Call once per anchor, in stream order; resolves when the
   * clustering its batch calls for is ready.
   */
  clusteringForNextAnchor(): Promise<ClusterIndex | undefined> {
    const batchIndex = Math.floor(this.position++ / this.anchorsPerStep);
    // The latest round whose snapshot (after step r·every) serves this batch, and that happens in this run.
    const r = Math.min(Math.floor((batchIndex - this.lag) / this.every), Math.floor((this.steps - 1) / this.every));
    if (r < 1 || r * this.every <= this.startStep || this.closed) return Promise.resolve(this.closed ? this.latest : undefined);
    return this.round(r).promise;
  }

  /** Notes why an anchor was its own positive (`clusterPositives`' `onNote` reasons), for the summary. */
  noteSelf(reason: string): void {
    const kind = noteKind(reason);
    this.selfReasons[kind] = (this.selfReasons[kind] ?? 0) + 1;
  }

  /**
   * After step `done` (1-based): the batch's embeddings into the bank, its pairs counted, and on
   * a clustering step a k-means of the bank started in a worker (not awaited; waits only for the
   * previous one). Adds `selfPositives` (this batch's fraction of self-pairs), `reclusters` and
   * `bank` to `parts`.
   */
  async afterStep(done: number, embeddings: TargetEmbeddings | undefined, ids: readonly string[], parts?: Record<string, number>): Promise<void> {
    if (embeddings) this.bank.putBatch(embeddings.ids, embeddings.rows);
    let self = 0;
    for (let i = 0; i + 1 < ids.length; i += 2) if (ids[i] === ids[i + 1]) self++;
    const pairs = Math.floor(ids.length / 2);
    this.counts.pairs += pairs;
    this.counts.selfPairs += self;
    if (this.firstServedBatch !== undefined && done - 1 >= this.firstServedBatch) {
      this.counts.pairsAfter += pairs;
      this.counts.selfPairsAfter += self;
    }
    if (parts) {
      parts['selfPositives'] = pairs > 0 ? self / pairs : 0;
      parts['reclusters'] = this.counts.reclusters;
      parts['bank'] = this.bank.size;
    }
    if (done % this.every !== 0 || done <= this.startStep || done >= this.steps || this.closed) return;
    const r = done / this.every;
    if (this.inFlight) {
      const t0 = performance.now();
      await this.inFlight;
      this.counts.waitedMs += performance.now() - t0;
    }
    if (this.bank.size < 4 * this.clusters) {
      this.settle(r); // too few embeddings yet: the previous clustering (if any) stays
      return;
    }
    const { rows, ids: bankIds } = this.bank.snapshot();
    const t0 = performance.now();
    const options = { k: this.clusters, seed: this.seed + r, ...(this.centroids ? { initialCentroids: this.centroids } : {}) };
    this.inFlight = clusterInWorker(rows, this.bank.dims, options, { transfer: true, signal: this.abort.signal }).then(
      (result) => {
        this.latest = new ClusterIndex(bankIds, result.assignments);
        this.centroids = result.centroids;
        this.counts.reclusters++;
        this.counts.clusteringMs += performance.now() - t0;
        this.firstServedBatch ??= done + this.lag;
      },
      (err: unknown) => {
        if (!this.abort.signal.aborted) this.onWarning(`softrank: the clustering after step ${done} failed (${err instanceof Error ? err.message : String(err)}); positives keep the previous one`);
      },
    ).finally(() => {
      this.inFlight = undefined;
      this.settle(r);
    });
  }

  stats(): PositiveStats {
    const c = this.counts;
    return {
      reclusters: c.reclusters,
      clusters: this.clusters,
      bank: this.bank.size,
      pairs: c.pairs,
      selfPairs: c.selfPairs,
      selfPositiveFraction: c.pairs > 0 ? c.selfPairs / c.pairs : 0,
      firstClusteredStep: this.firstServedBatch === undefined ? null : this.firstServedBatch + 1,
      pairsAfterClustering: c.pairsAfter,
      selfPositiveFractionAfterClustering: c.pairsAfter > 0 ? c.selfPairsAfter / c.pairsAfter : null,
      selfReasons: { ...this.selfReasons },
      clusteringSeconds: c.clusteringMs / 1000,
      waitedSeconds: c.waitedMs / 1000,
    };
  }

  /** Stops a clustering in flight (its worker is terminated) and lets every waiting anchor go on with the latest clustering. */
  close(): void {
    this.closed = true;
    this.abort.abort(new Error('training ended'));
    for (const round of this.rounds.values()) if (!round.settled) { round.settled = true; round.resolve(this.latest); }
  }

  private round(r: number): Round {
    let round = this.rounds.get(r);
    if (!round) {
      let resolve!: (index: ClusterIndex | undefined) => void;
      const promise = new Promise<ClusterIndex | undefined>((done) => { resolve = done; });
      round = { promise, resolve, settled: false };
      this.rounds.set(r, round);
    }
    return round;
  }

  /** Round r is decided: the anchors waiting on it get the latest clustering (one small entry per round is kept). */
  private settle(r: number): void {
    const round = this.round(r);
    if (!round.settled) {
      round.settled = true;
      round.resolve(this.latest);
    }
  }
}
