/**
 * `npm run bench -- kmeans [--n 100000] [--d 128] [--k 100] [--seed 0] [--spread 0.1]`
 * (or `node dist/bench/kmeans.js …`): seconds of `sphericalKMeans` on one core for N unit
 * rows of d dims, k clusters — the target is ≤ 10 s for 100 000 × 128, k = 100.
 * The rows are k planted blobs on the sphere (random unit centres plus Gaussian noise of
 * `spread` per dimension, re-normalised), so the line also says how well the blobs came back:
 * adjusted Rand index and purity against the planted labels.
 */
import { parseArgs } from 'node:util';
import { sphericalKMeans } from '../positives/kmeans.js';
import { adjustedRandIndex, clusterPurity } from '../positives/cluster-metrics.js';
import { keyedRng } from '../core/index.js';
import { positiveInt } from '../pipelines/options.js';
import { printJson } from './report.js';

/** N unit rows around k random unit centres; returns the rows [N, d] and each row's blob. */
export function sphereBlobs(n: number, d: number, k: number, spread: number, seed: number): { rows: Float32Array; labels: Int32Array } {
  const rng = keyedRng(seed, 'sphere-blobs');
  const centres = new Float64Array(k * d);
  for (let c = 0; c < k; c++) {
    let sq = 0;
    for (let j = 0; j < d; j++) {
      const v = rng.normal();
      centres[c * d + j] = v;
      sq += v * v;
    }
    for (let j = 0; j < d; j++) centres[c * d + j] = (centres[c * d + j] as number) / Math.sqrt(sq);
  }
  const rows = new Float32Array(n * d);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = rng.int(k);
    labels[i] = c;
    let sq = 0;
    for (let j = 0; j < d; j++) {
      const v = (centres[c * d + j] as number) + spread * rng.normal();
      rows[i * d + j] = v;
      sq += v * v;
    }
    const inv = 1 / Math.sqrt(sq);
    for (let j = 0; j < d; j++) rows[i * d + j] = (rows[i * d + j] as number) * inv;
  }
  return { rows, labels };
}

export async function kmeansBench(argv: string[] = []): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      n: { type: 'string', default: '100000' },
      d: { type: 'string', default: '128' },
      k: { type: 'string', default: '100' },
      seed: { type: 'string', default: '0' },
      spread: { type: 'string', default: '0.1' },
    },
  });
  const n = positiveInt(values.n, '--n');
  const d = positiveInt(values.d, '--d');
  const k = positiveInt(values.k, '--k');
  const seed = Number(values.seed);
  if (!Number.isInteger(seed)) throw new Error(`--seed: expected an integer, got "${values.seed}"`);
  const spread = Number(values.spread);
  if (!(spread >= 0)) throw new Error(`--spread: expected a number ≥ 0, got "${values.spread}"`);
  const { rows, labels } = sphereBlobs(n, d, k, spread, seed);
  const t0 = performance.now();
  const result = sphericalKMeans(rows, d, { k, seed });
  const seconds = (performance.now() - t0) / 1000;
  printJson({
    bench: 'kmeans',
    n,
    d,
    k,
    seconds,
    iterations: result.iterations,
    batches: result.batches,
    inertia: result.inertia,
    ari: adjustedRandIndex(result.assignments, labels),
    purity: clusterPurity(result.assignments, labels),
  });
}
