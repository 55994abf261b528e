/**
 * Spherical (cosine) k-means on unit vectors, the clustering behind `clusterPositives`.
 *
 * Shapes: rows X [N, d] and centroids C [k, d], row-major Float32, every row of unit L2 norm.
 * A row belongs to its most similar centroid, a(i) = argmax_c x_i·c_c (ties: the lowest c), and
 * the objective minimised is the inertia Σ_i (1 − x_i·c_a(i)), which is ½ Σ_i ‖x_i − c_a(i)‖²
 * on the sphere. The centroid maximising Σ x·c over its rows is their normalised mean
 * (Dhillon & Modha 2001), so every update below re-normalises.
 *
 * - Initialisation: greedy k-means++ (Arthur & Vassilvitskii 2007) on a seeded sample of at
 *   most `initSampleSize` rows; a row is drawn with probability ∝ its squared distance to the
 *   nearest centroid so far, ‖x − c‖² = 2 (1 − x·c). Or `initialCentroids` (last epoch's).
 * - Lloyd (N ≤ `miniBatchAbove`): assign all rows, move each centroid to its rows' normalised
 *   mean, until no assignment changes or the inertia falls by less than `tolerance` of itself.
 * - Mini-batch (Sculley 2010, "Web-scale k-means clustering"), for large N: each step draws
 *   `batchSize` rows with replacement, assigns them, and moves each centroid to the running
 *   mean of all rows it has won, c ← (v·c + Σx) / (v + m) (v rows so far, m in this batch),
 *   re-normalised. Stops after `maxBatches`, or when the smoothed batch inertia has not
 *   improved for 10 batches; then `refineIterations` full Lloyd passes give every row its
 *   assignment.
 * - Empty-cluster repair: a centroid that wins no row (in a Lloyd pass; in mini-batch, in 10
 *   batches) is re-seeded at the row farthest from its own centroid, taken from a cluster
 *   that can spare it; with several empty, farthest-first (each next one farthest from the
 *   seeds placed too). Clusters stay empty only when there are fewer distinct rows than k.
 *
 * The assignment step, N·k·d multiply-adds, is nearly all the time; its tiled products are
 * kmeans-similarity.ts.
 *
 * Deterministic: every random choice draws from `keyedRng(seed, 'kmeans', …)`, so a seed gives
 * the same result in any thread or process.
 */
import { keyedRng, type Rng } from '../core/index.js';
import { dot, nearestCentroids, similaritiesToRows } from './kmeans-similarity.js';

/** `'lloyd'`: full passes; `'minibatch'`: Sculley's mini-batches; `'auto'`: mini-batch above `miniBatchAbove` rows. */
export type KMeansMethod = 'auto' | 'lloyd' | 'minibatch';

export interface KMeansOptions {
  /** Clusters, 1 ≤ k ≤ N. */
  k: number;
  /** Seed of every random choice (init sample, k-means++ draws, mini-batches); default 0. */
  seed?: number;
  /** Default `'auto'`. */
  method?: KMeansMethod;
  /** `'auto'` runs mini-batch when N exceeds this many rows; default 50 000. */
  miniBatchAbove?: number;
  /** Lloyd: most full passes; default 100. */
  maxIterations?: number;
  /**
   * Lloyd: stop when a pass lowers the inertia by less than this fraction of it; default 1e-4.
   * Why not tighter: on softrank's bank (20 000 × 128, k = 100, warm-started) 1e-6 took 77
   * passes and 17 s of a core, 1e-4 took 21 passes and 4.7 s, for an inertia 0.3 % higher and
   * the same share of same-class positives (0.130 both; docs/experiments.md, "softrank").
   */
  tolerance?: number;
  /** Mini-batch: rows per batch; default 1024. */
  batchSize?: number;
  /** Mini-batch: most batches; default max(100, ⌈100 k / batchSize⌉), about 100 rows per centroid. */
  maxBatches?: number;
  /** Mini-batch: full Lloyd passes after the batches (≥ 1: the last one assigns every row); default 2. */
  refineIterations?: number;
  /** k-means++ runs on a seeded sample of at most this many rows; default max(3 batchSize, 10 k), as scikit-learn's mini-batch init. */
  initSampleSize?: number;
  /** Start from these centroids [k, d] (re-normalised) instead of k-means++, e.g. the last epoch's. */
  initialCentroids?: Float32Array;
}

export interface KMeansResult {
  /** [k, d], unit rows. */
  centroids: Float32Array;
  /** [N]: the cluster of each row, its most similar centroid. */
  assignments: Int32Array;
  /** Σ_i (1 − x_i·c_a(i)) over all rows. */
  inertia: number;
  /** Full assignment passes over all rows (Lloyd's, or the refinement after mini-batches). */
  iterations: number;
  /** Mini-batches run; 0 for Lloyd. */
  batches: number;
  /** Times an empty cluster was re-seeded. */
  emptyClustersRepaired: number;
}

/** Mini-batch: a centroid winning no row in this many batches is re-seeded. */
const REPAIR_WINDOW = 10;
/** Mini-batch: stop after this many batches without a new low of the smoothed inertia. */
const PATIENCE = 10;

interface Resolved {
  k: number;
  seed: number;
  miniBatch: boolean;
  maxIterations: number;
  tolerance: number;
  batchSize: number;
  maxBatches: number;
  refineIterations: number;
  initSampleSize: number;
  initialCentroids: Float32Array | undefined;
}

/**
 * Spherical k-means of `rows` ([N, dims], unit rows).
 *
 * @example
 * const { assignments, centroids } = sphericalKMeans(bank.copyRows(), 128, { k: 1000, seed: 7 });
 * @param rows [N, dims] row-major, every row L2-normalised (an `EmbeddingBank` guarantees it).
 * @param dims d, the length of a row.
 * @see clusterInWorker — the same, off the calling thread.
 */
export function sphericalKMeans(rows: Float32Array, dims: number, options: KMeansOptions): KMeansResult {
  const o = resolveOptions(rows, dims, options);
  const n = rows.length / dims;
  const repairs = { count: 0 };
  const centroids = o.initialCentroids
    ? normalisedCopy(o.initialCentroids, o.k, dims)
    : kmeansPlusPlus(rows, n, dims, o.k, o.initSampleSize, keyedRng(o.seed, 'kmeans', 'init'));
  let batches = 0;
  let passes = o.maxIterations;
  if (o.miniBatch) {
    batches = miniBatchKMeans(rows, n, dims, centroids, o, keyedRng(o.seed, 'kmeans', 'batches'), repairs);
    passes = o.refineIterations;
  }
  const lloyd = lloydKMeans(rows, n, dims, centroids, o.k, passes, o.tolerance, repairs);
  return { centroids, ...lloyd, batches, emptyClustersRepaired: repairs.count };
}

function positiveInteger(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 1) throw new Error(`sphericalKMeans ${field}: expected a positive integer, got "${value}"`);
  return value;
}

function resolveOptions(rows: Float32Array, dims: number, options: KMeansOptions): Resolved {
  positiveInteger(dims, 'dims');
  if (rows.length === 0 || rows.length % dims !== 0) {
    throw new Error(`sphericalKMeans rows: expected a non-empty [N, ${dims}] matrix, got ${rows.length} values`);
  }
  const n = rows.length / dims;
  for (let i = 0; i < rows.length; i++) {
    if (!Number.isFinite(rows[i] as number)) {
      throw new Error(`sphericalKMeans rows: row ${Math.floor(i / dims)} holds ${rows[i]}; expected finite unit vectors`);
    }
  }
  const k = positiveInteger(options.k, 'k');
  if (k > n) throw new Error(`sphericalKMeans k: ${k} clusters of ${n} rows; expected k ≤ N`);
  const seed = options.seed ?? 0;
  if (!Number.isFinite(seed)) throw new Error(`sphericalKMeans seed: expected a finite number, got "${seed}"`);
  const method = options.method ?? 'auto';
  if (method !== 'auto' && method !== 'lloyd' && method !== 'minibatch') {
    throw new Error(`sphericalKMeans method: expected "auto", "lloyd" or "minibatch", got "${String(method)}"`);
  }
  const miniBatchAbove = positiveInteger(options.miniBatchAbove ?? 50_000, 'miniBatchAbove');
  const tolerance = options.tolerance ?? 1e-4;
  if (!(tolerance >= 0) || !Number.isFinite(tolerance)) {
    throw new Error(`sphericalKMeans tolerance: expected a finite number ≥ 0, got "${tolerance}"`);
  }
  const batchSize = positiveInteger(options.batchSize ?? 1024, 'batchSize');
  const initialCentroids = options.initialCentroids;
  if (initialCentroids && initialCentroids.length !== k * dims) {
    throw new Error(`sphericalKMeans initialCentroids: expected k × dims = ${k * dims} values, got ${initialCentroids.length}`);
  }
  return {
    k,
    seed,
    miniBatch: method === 'minibatch' || (method === 'auto' && n > miniBatchAbove),
    maxIterations: positiveInteger(options.maxIterations ?? 100, 'maxIterations'),
    tolerance,
    batchSize,
    maxBatches: positiveInteger(options.maxBatches ?? Math.max(100, Math.ceil((100 * k) / batchSize)), 'maxBatches'),
    refineIterations: positiveInteger(options.refineIterations ?? 2, 'refineIterations'),
    initSampleSize: positiveInteger(options.initSampleSize ?? Math.max(3 * batchSize, 10 * k), 'initSampleSize'),
    initialCentroids,
  };
}

function normalisedCopy(source: Float32Array, k: number, d: number): Float32Array {
  const out = new Float32Array(k * d);
  for (let c = 0; c < k; c++) {
    let sq = 0;
    for (let j = 0; j < d; j++) sq += (source[c * d + j] as number) ** 2;
    const norm = Math.sqrt(sq);
    if (!(norm > 0) || !Number.isFinite(norm)) {
      throw new Error(`sphericalKMeans initialCentroids: centroid ${c} has norm ${norm}; expected finite, non-zero rows`);
    }
    for (let j = 0; j < d; j++) out[c * d + j] = (source[c * d + j] as number) / norm;
  }
  return out;
}

/**
 * Greedy k-means++ seeding on a sample of at most `sampleSize` rows; returns C [k, d]. Each
 * step draws 2 + ⌊ln k⌋ candidates by D² sampling and keeps the one that lowers the
 * sample's potential Σ min D² the most (scikit-learn's default; plain k-means++ leaves more
 * blobs split in two while others merge, which Lloyd passes do not undo).
 */
function kmeansPlusPlus(rows: Float32Array, n: number, d: number, k: number, sampleSize: number, rng: Rng): Float32Array {
  const m = Math.min(n, Math.max(sampleSize, k));
  let sample = rows;
  if (m < n) {
    // A partial Fisher–Yates shuffle draws m distinct rows.
    const order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    sample = new Float32Array(m * d);
    for (let i = 0; i < m; i++) {
      const j = i + rng.int(n - i);
      const r = order[j] as number;
      order[j] = order[i] as number;
      order[i] = r;
      sample.set(rows.subarray(r * d, r * d + d), i * d);
    }
  }
  const trials = 2 + Math.floor(Math.log(k));
  const centroids = new Float32Array(k * d);
  const candidates = new Float32Array(trials * d);
  const sims = new Float64Array(trials * m);
  const cumulative = new Float64Array(m);
  // 1 − x·c to the nearest centroid so far: half the squared distance, the D² weight.
  const dist = new Float64Array(m);
  const first = rng.int(m);
  centroids.set(sample.subarray(first * d, first * d + d), 0);
  for (let i = 0; i < m; i++) dist[i] = Math.max(0, 1 - dot(sample, i * d, centroids, 0, d));
  for (let c = 1; c < k; c++) {
    let total = 0;
    for (let i = 0; i < m; i++) {
      total += dist[i] as number;
      cumulative[i] = total;
    }
    let chosen = 0;
    if (total > 0) {
      for (let t = 0; t < trials; t++) {
        const pick = drawByWeight(cumulative, m, rng.next() * total);
        candidates.set(sample.subarray(pick * d, pick * d + d), t * d);
      }
      similaritiesToRows(sample, m, d, candidates, trials, sims);
      let bestPotential = Infinity;
      for (let t = 0; t < trials; t++) {
        let potential = 0;
        for (let i = 0; i < m; i++) potential += Math.min(dist[i] as number, Math.max(0, 1 - (sims[t * m + i] as number)));
        if (potential < bestPotential) {
          bestPotential = potential;
          chosen = t;
        }
      }
    } else {
      // Every sampled row is a centroid already: fewer distinct rows than k. Any row will do.
      const pick = rng.int(m);
      candidates.set(sample.subarray(pick * d, pick * d + d), 0);
      similaritiesToRows(sample, m, d, candidates, 1, sims);
    }
    centroids.set(candidates.subarray(chosen * d, chosen * d + d), c * d);
    for (let i = 0; i < m; i++) dist[i] = Math.min(dist[i] as number, Math.max(0, 1 - (sims[chosen * m + i] as number)));
  }
  return centroids;
}

/** The first i with cumulative[i] > target (binary search; the last row if rounding ran past the end). */
function drawByWeight(cumulative: Float64Array, m: number, target: number): number {
  let lo = 0;
  let hi = m - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((cumulative[mid] as number) > target) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Full Lloyd passes from `centroids` (updated in place); the last pass's assignments and inertia. */
function lloydKMeans(
  rows: Float32Array,
  n: number,
  d: number,
  centroids: Float32Array,
  k: number,
  maxPasses: number,
  tolerance: number,
  repairs: { count: number },
): { assignments: Int32Array; inertia: number; iterations: number } {
  let assignments = new Int32Array(n).fill(-1);
  let next = new Int32Array(n);
  const sim = new Float64Array(n);
  const sums = new Float64Array(k * d);
  const counts = new Int32Array(k);
  let previous = Infinity;
  let inertia = Infinity;
  let iterations = 0;
  for (;;) {
    nearestCentroids(rows, d, 0, n, centroids, k, next, sim);
    inertia = 0;
    let changed = 0;
    for (let i = 0; i < n; i++) {
      inertia += Math.max(0, 1 - (sim[i] as number)); // float32 rounding can put x·c a hair above 1
      if (next[i] !== assignments[i]) changed++;
    }
    [assignments, next] = [next, assignments];
    iterations++;
    const converged = changed === 0 || (Number.isFinite(previous) && previous - inertia <= tolerance * previous);
    if (converged || iterations >= maxPasses) break;
    repairs.count += updateCentroids(rows, n, d, assignments, sim, centroids, k, sums, counts);
    previous = inertia;
  }
  return { assignments, inertia, iterations };
}

/**
 * Moves each centroid to the normalised mean of its rows; an empty cluster first takes the row
 * farthest from its own centroid (lowest `sim`) out of a cluster of two or more. Such a row
 * exists whenever a cluster is empty, as N ≥ k. Returns the clusters repaired.
 */
function updateCentroids(
  rows: Float32Array,
  n: number,
  d: number,
  assignments: Int32Array,
  sim: Float64Array,
  centroids: Float32Array,
  k: number,
  sums: Float64Array,
  counts: Int32Array,
): number {
  sums.fill(0);
  counts.fill(0);
  for (let i = 0; i < n; i++) {
    const c = assignments[i] as number;
    counts[c] = (counts[c] as number) + 1;
    const base = c * d;
    const xo = i * d;
    for (let j = 0; j < d; j++) sums[base + j] = (sums[base + j] as number) + (rows[xo + j] as number);
  }
  let repaired = 0;
  for (let c = 0; c < k; c++) {
    if (counts[c] !== 0) continue;
    let farthest = -1;
    let lowest = Infinity;
    for (let i = 0; i < n; i++) {
      const s = sim[i] as number;
      if (s < lowest && (counts[assignments[i] as number] as number) > 1) {
        lowest = s;
        farthest = i;
      }
    }
    if (farthest < 0) break; // unreachable while N ≥ k
    const old = assignments[farthest] as number;
    const xo = farthest * d;
    for (let j = 0; j < d; j++) {
      const v = rows[xo + j] as number;
      sums[old * d + j] = (sums[old * d + j] as number) - v;
      sums[c * d + j] = v;
    }
    counts[old] = (counts[old] as number) - 1;
    counts[c] = 1;
    assignments[farthest] = c;
    repaired++;
    // Rows near the new seed are no longer far: the next empty cluster goes elsewhere
    // (farthest-first), not to the same stray blob.
    for (let i = 0; i < n; i++) {
      const s = dot(rows, i * d, rows, xo, d);
      if (s > (sim[i] as number)) sim[i] = s;
    }
    sim[farthest] = Infinity;
  }
  for (let c = 0; c < k; c++) {
    if (counts[c] === 0) continue;
    let sq = 0;
    for (let j = 0; j < d; j++) sq += (sums[c * d + j] as number) ** 2;
    if (!(sq > 0)) continue; // rows that cancel exactly: keep the old direction
    const inv = 1 / Math.sqrt(sq);
    for (let j = 0; j < d; j++) centroids[c * d + j] = (sums[c * d + j] as number) * inv;
  }
  return repaired;
}

/** Sculley's mini-batch k-means on `centroids` (in place); returns the batches run. */
function miniBatchKMeans(
  rows: Float32Array,
  n: number,
  d: number,
  centroids: Float32Array,
  o: Resolved,
  rng: Rng,
  repairs: { count: number },
): number {
  const { k } = o;
  const b = Math.min(o.batchSize, n);
  const batch = new Float32Array(b * d);
  const batchIdx = new Int32Array(b);
  const batchSim = new Float64Array(b);
  const won = new Float64Array(k); // v: rows each centroid has absorbed so far
  const windowWins = new Int32Array(k);
  const sums = new Float64Array(k * d);
  const counts = new Int32Array(k);
  const mixed = new Float64Array(d);
  // The smoothing of scikit-learn's MiniBatchKMeans: about two passes' worth of batches.
  const alpha = Math.min(1, (2 * b) / (n + 1));
  let smoothed = NaN;
  let best = Infinity;
  let stale = 0;
  let t = 0;
  while (t < o.maxBatches) {
    t++;
    for (let i = 0; i < b; i++) {
      const r = rng.int(n);
      batch.set(rows.subarray(r * d, r * d + d), i * d);
    }
    nearestCentroids(batch, d, 0, b, centroids, k, batchIdx, batchSim);
    sums.fill(0);
    counts.fill(0);
    let inertia = 0;
    for (let i = 0; i < b; i++) {
      const c = batchIdx[i] as number;
      counts[c] = (counts[c] as number) + 1;
      inertia += Math.max(0, 1 - (batchSim[i] as number));
      const base = c * d;
      const xo = i * d;
      for (let j = 0; j < d; j++) sums[base + j] = (sums[base + j] as number) + (batch[xo + j] as number);
    }
    for (let c = 0; c < k; c++) {
      const m = counts[c] as number;
      if (m === 0) continue;
      // c ← (v·c + Σx) / (v + m): the running mean, as if updated one row at a time with η = 1/v.
      const v = won[c] as number;
      const base = c * d;
      let sq = 0;
      for (let j = 0; j < d; j++) {
        const value = (v * (centroids[base + j] as number) + (sums[base + j] as number)) / (v + m);
        mixed[j] = value;
        sq += value * value;
      }
      won[c] = v + m;
      windowWins[c] = (windowWins[c] as number) + m;
      if (!(sq > 0)) continue;
      const inv = 1 / Math.sqrt(sq);
      for (let j = 0; j < d; j++) centroids[base + j] = (mixed[j] as number) * inv;
    }
    if (t % REPAIR_WINDOW === 0) {
      for (let c = 0; c < k; c++) {
        if (windowWins[c] !== 0) continue;
        // Re-seed at the batch row farthest from its centroid; it then counts as one row won.
        let farthest = -1;
        let lowest = Infinity;
        for (let i = 0; i < b; i++) {
          const s = batchSim[i] as number;
          if (s < lowest) {
            lowest = s;
            farthest = i;
          }
        }
        if (farthest < 0) break; // every batch row re-seeded something already
        const xo = farthest * d;
        centroids.set(batch.subarray(xo, xo + d), c * d);
        won[c] = 1;
        repairs.count++;
        for (let i = 0; i < b; i++) {
          const s = dot(batch, i * d, batch, xo, d); // farthest-first, as in updateCentroids
          if (s > (batchSim[i] as number)) batchSim[i] = s;
        }
        batchSim[farthest] = Infinity;
      }
      windowWins.fill(0);
    }
    const mean = inertia / b;
    smoothed = Number.isNaN(smoothed) ? mean : smoothed + alpha * (mean - smoothed);
    if (smoothed < best) {
      best = smoothed;
      stale = 0;
    } else if (++stale >= PATIENCE) {
      break;
    }
  }
  return t;
}
