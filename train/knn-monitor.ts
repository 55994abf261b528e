/**
 * Online kNN monitor (solo-learn's habit; issue #5): every few steps, how well do the method's
 * embeddings of a small labelled set separate its classes? A weighted k-nearest-neighbour vote
 * (Wu et al. 2018, "Unsupervised feature learning via non-parametric instance discrimination")
 * over a reference split classifies a query split; the accuracy is one number per evaluation.
 *
 * Formula, for a query q (embedding `[D]`) against references r_j with labels y_j:
 *
 *   s_j = cos(q, r_j);   N_k(q) = the k references of largest s_j (ties: the earlier reference)
 *   vote(c) = Σ_{j ∈ N_k(q), y_j = c} exp(s_j / τ);   ŷ(q) = argmax_c vote(c) (ties: the lower class)
 *
 * with k = 20 (solo-learn's kNN) and τ = 0.07 (InstDisc's weighting): the nearest neighbours
 * count most, a far one barely (at τ = 0.07 a similarity 0.1 lower weighs 4× less).
 * METHODS.md's other protocol, k = 200 with τ = 0.1, needs a reference set far larger than the
 * few hundred images a monitor can embed every K steps.
 *
 * The set is plain data between evaluations (uint8 pixels, labels): no tensors live across
 * steps. Each evaluation embeds it in chunks (`method.embed`: the L2-normalised online
 * projection, batch norm in inference mode), each chunk in `tf.tidy`, and frees everything.
 */
import type { Method } from '../methods/method.js';
import type { TrainerHook } from '../core/trainer-hook.js';
import type { Sample, SkipRecord } from '../core/index.js';
import { forEachChunk, readWholeImages } from './whole-images.js';

/** Neighbours that vote (solo-learn's kNN monitor). */
export const KNN_K = 20;
/** Temperature of the vote's weights exp(s/τ) (InstDisc). */
export const KNN_TAU = 0.07;
/** Every `QUERY_EVERY`-th sample of the set (by position) is a query, the others references: 80% / 20%. */
export const QUERY_EVERY = 5;

/**
 * A labelled monitor set: whole images resized to `size × size`, references first.
 * Rows `0 … references−1` are references, rows `references … count−1` queries.
 */
export interface KnnSet {
  /** RGB, 8 bits, `count × size × size × 3`, row-major (the normalisation happens per chunk). */
  pixels: Uint8Array;
  labels: Int32Array;
  size: number;
  count: number;
  references: number;
  queries: number;
  /** Samples of the source that could not be read or decoded (dropped). */
  skipped: number;
}

export interface KnnSetOptions {
  /** Side of the whole-image view, in pixels: the training `--size`. */
  size: number;
  /** Seed of the view pipeline (a whole-image view draws nothing, but multiView takes one). */
  seed?: number;
  /** Samples decoded at once (default 4). */
  concurrency?: number;
  /** Called with each unreadable sample; it is left out of the set. */
  onSkip?: (record: SkipRecord) => void;
}

/**
 * Reads a labelled monitor set from `samples` (read them in index order, e.g.
 * `readSamples(source, { shuffle: false, limit: n })`): each image decoded and resized whole
 * to `size × size` exactly as feature export sees it (`decode` → `multiView([centreSquareView])`),
 * every {@link QUERY_EVERY}-th a query (`readWholeImages`).
 * Throws when a sample has no label, or when fewer than {@link QUERY_EVERY} samples remain.
 */
export async function loadKnnSet(samples: AsyncIterable<Sample> | Iterable<Sample>, options: KnnSetOptions): Promise<KnnSet> {
  const images = await readWholeImages(samples, options.size, {
    ...options,
    purpose: 'the kNN monitor needs a labelled set (scenes, fashion-mnist-test, or dir:PATH with one sub-folder per class)',
  });
  const { size, count } = images;
  // every QUERY_EVERY-th image (by position) is a query; references first
  const order = Array.from({ length: count }, (_, i) => i);
  const isQuery = (i: number) => i % QUERY_EVERY === QUERY_EVERY - 1;
  const rows = [...order.filter((i) => !isQuery(i)), ...order.filter(isQuery)];
  const queries = Math.floor(count / QUERY_EVERY);
  const references = count - queries;
  if (queries === 0 || references === 0) {
    throw new Error(
      `${count} readable samples: the kNN monitor needs at least ${QUERY_EVERY} (${QUERY_EVERY - 1} references for each query)`,
    );
  }
  const plane = size * size * 3;
  const pixels = new Uint8Array(count * plane);
  const labels = new Int32Array(count);
  rows.forEach((from, to) => {
    pixels.set(images.pixels.subarray(from * plane, (from + 1) * plane), to * plane);
    labels[to] = images.labels[from] as number;
  });
  return { pixels, labels, size, count, references, queries, skipped: images.skipped };
}

/**
 * Accuracy of the weighted kNN vote (see the module's formula): the fraction of `query` rows
 * whose vote among their `k` most cosine-similar `reference` rows, each weighted by
 * exp(s/τ), is their own label. Rows need not be normalised. Pure, no tensors.
 *
 * @param reference `[R, dims]` row-major
 * @param refLabels `[R]` class indices ≥ 0
 * @param query `[Q, dims]` row-major
 * @param queryLabels `[Q]`
 * @param k neighbours that vote (min(k, R) when there are fewer references)
 * @param tau temperature of the weights; smaller trusts the nearest neighbours more
 */
export function knnAccuracy(
  reference: Float32Array,
  refLabels: ArrayLike<number>,
  query: Float32Array,
  queryLabels: ArrayLike<number>,
  dims: number,
  k = KNN_K,
  tau = KNN_TAU,
): number {
  const r = refLabels.length;
  const q = queryLabels.length;
  if (!Number.isInteger(dims) || dims < 1) throw new Error(`knn dims: expected a positive integer, got "${dims}"`);
  if (reference.length !== r * dims) throw new Error(`knn: ${reference.length} reference values for ${r} labels of ${dims} dims`);
  if (query.length !== q * dims) throw new Error(`knn: ${query.length} query values for ${q} labels of ${dims} dims`);
  if (!Number.isInteger(k) || k < 1) throw new Error(`knn k: expected a positive integer, got "${k}"`);
  if (!(tau > 0)) throw new Error(`knn tau: expected a temperature > 0, got "${tau}"`);
  if (r === 0 || q === 0) throw new Error(`knn: needs at least one reference and one query (got ${r} and ${q})`);
  let classes = 0;
  for (let i = 0; i < r; i++) classes = Math.max(classes, (refLabels[i] as number) + 1);
  const inverseNorm = (rows: Float32Array, n: number): Float64Array => {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (let d = 0, o = i * dims; d < dims; d++, o++) sum += (rows[o] as number) * (rows[o] as number);
      out[i] = sum > 0 ? 1 / Math.sqrt(sum) : 0; // a zero row is similar to nothing (cosine 0)
    }
    return out;
  };
  const refInv = inverseNorm(reference, r);
  const queryInv = inverseNorm(query, q);
  const kk = Math.min(k, r);
  const topSim = new Float64Array(kk);
  const topIdx = new Int32Array(kk);
  const votes = new Float64Array(classes);
  let correct = 0;
  for (let i = 0; i < q; i++) {
    let filled = 0;
    for (let j = 0; j < r; j++) {
      let dot = 0;
      for (let d = 0, a = i * dims, b = j * dims; d < dims; d++, a++, b++) dot += (query[a] as number) * (reference[b] as number);
      const s = dot * (queryInv[i] as number) * (refInv[j] as number);
      if (filled === kk && s <= (topSim[kk - 1] as number)) continue; // strict: an equal later reference does not displace an earlier one
      let p = filled < kk ? filled++ : kk - 1;
      while (p > 0 && (topSim[p - 1] as number) < s) {
        topSim[p] = topSim[p - 1] as number;
        topIdx[p] = topIdx[p - 1] as number;
        p--;
      }
      topSim[p] = s;
      topIdx[p] = j;
    }
    votes.fill(0);
    const best = topSim[0] as number; // weights relative to the nearest: exp((s − s₀)/τ) ∝ exp(s/τ), no overflow
    for (let n = 0; n < kk; n++) votes[refLabels[topIdx[n] as number] as number]! += Math.exp(((topSim[n] as number) - best) / tau);
    let predicted = 0;
    for (let c = 1; c < classes; c++) if ((votes[c] as number) > (votes[predicted] as number)) predicted = c;
    if (predicted === queryLabels[i]) correct++;
  }
  return correct / q;
}

/**
 * The standard error of a kNN gain `final − init`, two accuracies on the same `queries`:
 * `√(p₀(1 − p₀)/n + p₁(1 − p₁)/n)`. It treats the two as independent, which overstates the error
 * of a paired comparison (same queries, same references), so a gain it calls clear is.
 */
export function knnGainStdErr(init: number, final: number, queries: number): number {
  if (!(queries > 0)) throw new Error(`knn: a standard error needs at least one query, got ${queries}`);
  return Math.sqrt((init * (1 - init) + final * (1 - final)) / queries);
}

export interface KnnMonitorOptions {
  method: Method;
  set: KnnSet;
  /** Neighbours that vote (default {@link KNN_K}). */
  k?: number;
  /** Temperature of the vote (default {@link KNN_TAU}). */
  tau?: number;
  /** Images embedded at once (default 64). */
  chunk?: number;
}

export interface KnnMonitor {
  readonly set: KnnSet;
  /** Embeds the whole set with the method's current weights and returns the query accuracy in [0, 1]. */
  evaluate(): Promise<number>;
}

/**
 * A kNN monitor of `method` on `set`. Holds no tensors between evaluations; an evaluation
 * leaves `tf.memory().numTensors` as it found it.
 *
 * @example
 * const set = await loadKnnSet(readSamples(scenesSource(), { shuffle: false, limit: 1000 }), { size: 64 });
 * const monitor = createKnnMonitor({ method, set });
 * parts['knn'] = await monitor.evaluate();
 */
export function createKnnMonitor(options: KnnMonitorOptions): KnnMonitor {
  const { method, set } = options;
  const k = options.k ?? KNN_K;
  const tau = options.tau ?? KNN_TAU;
  const chunk = options.chunk ?? 64;
  if (!Number.isInteger(k) || k < 1) throw new Error(`knn k: expected a positive integer, got "${k}"`);
  if (!(tau > 0)) throw new Error(`knn tau: expected a temperature > 0, got "${tau}"`);
  if (!Number.isInteger(chunk) || chunk < 1) throw new Error(`knn chunk: expected a positive integer, got "${chunk}"`);
  return {
    set,
    async evaluate() {
      let embeddings = new Float32Array(0);
      let dims = 0;
      await forEachChunk(
        set.pixels,
        set.size,
        set.count,
        chunk,
        (x) => [method.embed(x)],
        (start, n, [values]) => {
          if (start === 0) {
            dims = (values as Float32Array).length / n;
            embeddings = new Float32Array(set.count * dims);
          }
          embeddings.set(values as Float32Array, start * dims);
        },
      );
      const e = embeddings;
      const r = set.references;
      return knnAccuracy(e.subarray(0, r * dims), set.labels.subarray(0, r), e.subarray(r * dims), set.labels.subarray(r), dims, k, tau);
    },
  };
}

/** What a run's kNN monitor measured: at random init (not on a resumed run) and at its last evaluation. */
export interface KnnReadings {
  init?: number;
  final?: number;
  queries: number;
}

/**
 * The monitor as a trainer hook: evaluates at random init (a fresh run only; `onInit` hears the
 * accuracy and the seconds it took), on the first logged step at least `every` steps after the
 * last evaluation, and at the last step; each evaluation is logged as the step's `knn` part.
 */
export function knnMonitorHook(
  monitor: KnnMonitor,
  every: number,
  onInit?: (accuracy: number, seconds: number) => void,
): TrainerHook & { readonly readings: KnnReadings } {
  const readings: KnnReadings = { queries: monitor.set.queries };
  let last = 0;
  return {
    readings,
    async onStart({ startStep }) {
      last = startStep;
      if (startStep > 0) return;
      const t0 = performance.now();
      readings.init = await monitor.evaluate();
      onInit?.(readings.init, (performance.now() - t0) / 1000);
    },
    async onStep({ step, steps, parts, logged }) {
      if ((logged && step - last >= every) || step === steps) {
        parts['knn'] = readings.final = await monitor.evaluate();
        last = step;
      }
    },
  };
}
