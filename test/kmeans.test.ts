import { describe, expect, it } from 'vitest';
import { sphereBlobs } from '../bench/kmeans.js';
import { clusterInWorker } from '../positives/kmeans-worker.js';
import { sphericalKMeans, type KMeansResult } from '../positives/kmeans.js';
import { adjustedRandIndex, clusterPurity } from '../positives/cluster-metrics.js';

/** Checks the result's invariants: unit centroids, each row at its most similar one, inertia its sum. */
function expectConsistent(rows: Float32Array, d: number, result: KMeansResult): void {
  const k = result.centroids.length / d;
  for (let c = 0; c < k; c++) {
    let sq = 0;
    for (let j = 0; j < d; j++) sq += (result.centroids[c * d + j] as number) ** 2;
    expect(Math.abs(Math.sqrt(sq) - 1)).toBeLessThan(1e-5);
  }
  let inertia = 0;
  let misassigned = 0;
  for (let i = 0; i < rows.length / d; i++) {
    let best = -Infinity;
    let arg = -1;
    for (let c = 0; c < k; c++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += (rows[i * d + j] as number) * (result.centroids[c * d + j] as number);
      if (s > best) [best, arg] = [s, c];
    }
    if (arg !== result.assignments[i]) misassigned++;
    inertia += Math.max(0, 1 - best);
  }
  expect(misassigned).toBe(0);
  expect(result.inertia).toBeCloseTo(inertia, 6);
}

describe('sphericalKMeans', () => {
  it('recovers 8 well-separated blobs on the sphere with Lloyd passes: adjusted Rand index ≥ 0.95', () => {
    const { rows, labels } = sphereBlobs(2000, 16, 8, 0.05, 1);
    const result = sphericalKMeans(rows, 16, { k: 8, seed: 0 });
    expect(result.batches).toBe(0);
    expect(result.iterations).toBeGreaterThan(1);
    expect(adjustedRandIndex(result.assignments, labels)).toBeGreaterThanOrEqual(0.95);
    expect(clusterPurity(result.assignments, labels)).toBeGreaterThanOrEqual(0.95);
    expectConsistent(rows, 16, result);
  });

  it('gives identical assignments and centroids for the same seed', () => {
    const { rows } = sphereBlobs(3000, 24, 12, 0.2, 2);
    const a = sphericalKMeans(rows, 24, { k: 12, seed: 5 });
    const b = sphericalKMeans(rows, 24, { k: 12, seed: 5 });
    expect(b.assignments).toEqual(a.assignments);
    expect(b.centroids).toEqual(a.centroids);
    expect(b.inertia).toBe(a.inertia);
  });

  it('runs from other seeds: a different start, the same blobs found', () => {
    const { rows, labels } = sphereBlobs(2000, 16, 8, 0.05, 3);
    const runs = [1, 2, 3].map((seed) => sphericalKMeans(rows, 16, { k: 8, seed, maxIterations: 1 }));
    // One pass from k-means++ alone: the seeds start from different centroids.
    expect(runs[1]!.centroids).not.toEqual(runs[0]!.centroids);
    for (const seed of [1, 2, 3]) {
      const { assignments } = sphericalKMeans(rows, 16, { k: 8, seed });
      expect(adjustedRandIndex(assignments, labels)).toBeGreaterThanOrEqual(0.95);
    }
  });

  it('repairs empty clusters when k exceeds the distinct rows', () => {
    // 3 distinct unit vectors, 10 copies each, 5 clusters: k-means++ must place duplicates.
    const d = 4;
    const distinct = [
      [1, 0, 0, 0],
      [0, 1, 0, 0],
      [0, 0, 0.6, 0.8],
    ];
    const rows = new Float32Array(30 * d);
    for (let i = 0; i < 30; i++) rows.set(distinct[i % 3]!, i * d);
    const result = sphericalKMeans(rows, d, { k: 5, seed: 0 });
    expect(result.emptyClustersRepaired).toBeGreaterThan(0);
    expect(result.centroids.every(Number.isFinite)).toBe(true);
    expect(result.inertia).toBeCloseTo(0, 6);
    expect(
      adjustedRandIndex(
        result.assignments,
        Array.from({ length: 30 }, (_, i) => i % 3),
      ),
    ).toBe(1);
  });

  it('repairs a centroid that starts where no row is: re-seeded at the farthest row, blobs still found', () => {
    const d = 8;
    const { rows, labels } = sphereBlobs(1200, d, 4, 0.05, 4);
    // Good starts for three blobs (a row of each), and the fourth centroid pointing away from all rows.
    const init = new Float32Array(4 * d);
    const seen = new Set<number>();
    for (let i = 0; seen.size < 3; i++) {
      const label = labels[i] as number;
      if (seen.has(label)) continue;
      init.set(rows.subarray(i * d, i * d + d), seen.size * d);
      seen.add(label);
    }
    const mean = new Float32Array(d);
    for (let i = 0; i < rows.length; i++) mean[i % d]! -= rows[i] as number;
    init.set(mean, 3 * d);
    const result = sphericalKMeans(rows, d, { k: 4, seed: 0, initialCentroids: init });
    expect(result.emptyClustersRepaired).toBeGreaterThanOrEqual(1);
    expect(adjustedRandIndex(result.assignments, labels)).toBeGreaterThanOrEqual(0.95);
    expect(new Set(result.assignments).size).toBe(4);
    expectConsistent(rows, d, result);
  });

  it('runs mini-batches above miniBatchAbove rows (60 000 × 32, k = 20): ARI ≥ 0.95', () => {
    const { rows, labels } = sphereBlobs(60_000, 32, 20, 0.05, 5);
    const result = sphericalKMeans(rows, 32, { k: 20, seed: 0 });
    expect(result.batches).toBeGreaterThan(0);
    expect(result.iterations).toBe(2);
    expect(adjustedRandIndex(result.assignments, labels)).toBeGreaterThanOrEqual(0.95);
    expectConsistent(rows, 32, result);
    const again = sphericalKMeans(rows, 32, { k: 20, seed: 0 });
    expect(again.assignments).toEqual(result.assignments);
  });

  it('repairs a starved centroid in mini-batch mode too', () => {
    const d = 8;
    const { rows, labels } = sphereBlobs(5000, d, 4, 0.05, 6);
    const init = new Float32Array(4 * d);
    const mean = new Float32Array(d);
    for (let i = 0; i < rows.length; i++) mean[i % d]! -= rows[i] as number;
    // All four start facing away from the data, on one point: ties go to the lowest index, so
    // centroids 2 and 3 can win no row until they are re-seeded.
    for (let c = 0; c < 4; c++) init.set(mean, c * d);
    const result = sphericalKMeans(rows, d, { k: 4, seed: 0, method: 'minibatch', batchSize: 256, initialCentroids: init });
    expect(result.emptyClustersRepaired).toBeGreaterThanOrEqual(2);
    expect(adjustedRandIndex(result.assignments, labels)).toBeGreaterThanOrEqual(0.95);
  });

  it('names the bad input', () => {
    const rows = new Float32Array([1, 0, 0, 1]);
    expect(() => sphericalKMeans(rows, 2, { k: 3 })).toThrow(/k: 3 clusters of 2 rows; expected k ≤ N/);
    expect(() => sphericalKMeans(rows, 3, { k: 1 })).toThrow(/expected a non-empty \[N, 3\] matrix, got 4 values/);
    expect(() => sphericalKMeans(new Float32Array([1, NaN]), 2, { k: 1 })).toThrow(/row 0 holds NaN/);
    expect(() => sphericalKMeans(rows, 2, { k: 1, batchSize: 0 })).toThrow(/batchSize: expected a positive integer, got "0"/);
    expect(() => sphericalKMeans(rows, 2, { k: 2, initialCentroids: new Float32Array(2) })).toThrow(
      /initialCentroids: expected k × dims = 4/,
    );
  });
});

describe('clusterInWorker', () => {
  it('gives the in-thread result, bit for bit, for the same seed', async () => {
    const { rows } = sphereBlobs(4000, 16, 10, 0.1, 7);
    const here = sphericalKMeans(rows, 16, { k: 10, seed: 3 });
    const there = await clusterInWorker(rows, 16, { k: 10, seed: 3 });
    expect(there.assignments).toEqual(here.assignments);
    expect(there.centroids).toEqual(here.centroids);
    expect(there.inertia).toBe(here.inertia);
    expect(rows.length).toBe(4000 * 16); // copied, not taken
  });

  it('takes the rows without a copy when told to, and passes mini-batch options through', async () => {
    const { rows } = sphereBlobs(3000, 8, 5, 0.1, 8);
    const options = { k: 5, seed: 1, method: 'minibatch' as const, batchSize: 200 };
    const here = sphericalKMeans(rows, 8, options);
    const there = await clusterInWorker(rows, 8, options, { transfer: true });
    expect(rows.length).toBe(0); // detached: it moved to the worker
    expect(there.assignments).toEqual(here.assignments);
    expect(there.batches).toBe(here.batches);
  });

  it("rejects with the worker's error, and on abort", async () => {
    await expect(clusterInWorker(new Float32Array([1, 0]), 2, { k: 2 })).rejects.toThrow(/k: 2 clusters of 1 rows/);
    const { rows } = sphereBlobs(200_000, 32, 50, 0.1, 9);
    const controller = new AbortController();
    const pending = clusterInWorker(rows, 32, { k: 50, method: 'lloyd' }, { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('epoch ended')), 50);
    await expect(pending).rejects.toThrow('epoch ended');
  });
});

describe('clustering metrics', () => {
  it('match scikit-learn on small cases', () => {
    expect(adjustedRandIndex([0, 0, 1, 1], [1, 1, 0, 0])).toBe(1);
    expect(adjustedRandIndex([0, 0, 1, 1], [0, 0, 1, 2])).toBeCloseTo(0.5714285714, 9);
    expect(adjustedRandIndex([0, 0, 1, 1], [0, 1, 0, 1])).toBeCloseTo(-0.5, 9);
    expect(adjustedRandIndex([0, 1, 2], [5, 6, 7])).toBe(1);
    expect(clusterPurity([0, 0, 1, 1, 1], [7, 7, 7, 9, 9])).toBeCloseTo(0.8, 12);
    expect(() => adjustedRandIndex([0], [0, 1])).toThrow(/labelings of 1 and 2 items/);
  });
});
