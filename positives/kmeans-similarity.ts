/**
 * The products of spherical k-means (kmeans.ts): row–centroid similarities x·c, N·k·d
 * multiply-adds, nearly all of its time. Rows go in blocks of 256 against tiles of centroids
 * that fit in 32 KB of L1, with a 2 rows × 4 centroids kernel that loads each value once for 4
 * (or 2) products: about 1.2–1.5 G multiply-adds/s on one core, against 0.4 for the plain
 * triple loop. Each sum runs over d in order, so a tiling never changes a value.
 */

/** Rows per block of the assignment step: 256 × 128 dims × 4 B = 128 KB, stays in L2. */
const ROW_BLOCK = 256;
/** Bytes of centroids scored against a row block at once: an L1-sized tile. */
const TILE_BYTES = 32 * 1024;

/** a[aOffset …] · b[bOffset …] over d values, summed in order. */
export function dot(a: Float32Array, aOffset: number, b: Float32Array, bOffset: number, d: number): number {
  let s = 0;
  for (let j = 0; j < d; j++) s += (a[aOffset + j] as number) * (b[bOffset + j] as number);
  return s;
}

/**
 * sims[c · m + i] = x_i · C_c for all m rows and `count` ≤ 8 centroids, two rows × four
 * centroids at a time like `scoreTile`.
 */
export function similaritiesToRows(x: Float32Array, m: number, d: number, C: Float32Array, count: number, sims: Float64Array): void {
  let c = 0;
  for (; c + 3 < count; c += 4) {
    const o0 = c * d;
    const o1 = o0 + d;
    const o2 = o1 + d;
    const o3 = o2 + d;
    let i = 0;
    for (; i + 1 < m; i += 2) {
      const x0 = i * d;
      const x1 = x0 + d;
      let s00 = 0,
        s01 = 0,
        s02 = 0,
        s03 = 0,
        s10 = 0,
        s11 = 0,
        s12 = 0,
        s13 = 0;
      for (let j = 0; j < d; j++) {
        const u = x[x0 + j] as number;
        const v = x[x1 + j] as number;
        const w0 = C[o0 + j] as number;
        const w1 = C[o1 + j] as number;
        const w2 = C[o2 + j] as number;
        const w3 = C[o3 + j] as number;
        s00 += u * w0;
        s01 += u * w1;
        s02 += u * w2;
        s03 += u * w3;
        s10 += v * w0;
        s11 += v * w1;
        s12 += v * w2;
        s13 += v * w3;
      }
      sims[c * m + i] = s00;
      sims[(c + 1) * m + i] = s01;
      sims[(c + 2) * m + i] = s02;
      sims[(c + 3) * m + i] = s03;
      sims[c * m + i + 1] = s10;
      sims[(c + 1) * m + i + 1] = s11;
      sims[(c + 2) * m + i + 1] = s12;
      sims[(c + 3) * m + i + 1] = s13;
    }
    for (; i < m; i++) for (let t = c; t < c + 4; t++) sims[t * m + i] = dot(x, i * d, C, t * d, d);
  }
  for (; c < count; c++) for (let i = 0; i < m; i++) sims[c * m + i] = dot(x, i * d, C, c * d, d);
}

/**
 * For rows [r0, r1) of `x`, the most similar of all k centroids: index into `bestIdx[r]`,
 * similarity into `bestSim[r]`. Rows in blocks, centroids in L1-sized tiles.
 */
export function nearestCentroids(
  x: Float32Array,
  d: number,
  r0: number,
  r1: number,
  centroids: Float32Array,
  k: number,
  bestIdx: Int32Array,
  bestSim: Float64Array,
): void {
  bestSim.fill(-Infinity, r0, r1);
  bestIdx.fill(0, r0, r1);
  const tile = Math.max(4, Math.floor(TILE_BYTES / (4 * d)) & ~3);
  for (let b0 = r0; b0 < r1; b0 += ROW_BLOCK) {
    const b1 = Math.min(r1, b0 + ROW_BLOCK);
    for (let c0 = 0; c0 < k; c0 += tile) scoreTile(x, d, b0, b1, centroids, c0, Math.min(k, c0 + tile), bestIdx, bestSim);
  }
}

/**
 * Rows [r0, r1) against centroids [c0, c1), improving the running best of each row. Two rows ×
 * four centroids per inner loop: 6 loads for 8 products. Strict `>` in increasing c keeps the
 * lowest index on ties, whatever the tiling.
 */
function scoreTile(
  x: Float32Array,
  d: number,
  r0: number,
  r1: number,
  C: Float32Array,
  c0: number,
  c1: number,
  bestIdx: Int32Array,
  bestSim: Float64Array,
): void {
  let r = r0;
  for (; r + 1 < r1; r += 2) {
    let b0 = bestSim[r] as number;
    let a0 = bestIdx[r] as number;
    let b1 = bestSim[r + 1] as number;
    let a1 = bestIdx[r + 1] as number;
    const x0 = r * d;
    const x1 = x0 + d;
    let c = c0;
    for (; c + 3 < c1; c += 4) {
      const o0 = c * d;
      const o1 = o0 + d;
      const o2 = o1 + d;
      const o3 = o2 + d;
      let s00 = 0,
        s01 = 0,
        s02 = 0,
        s03 = 0,
        s10 = 0,
        s11 = 0,
        s12 = 0,
        s13 = 0;
      for (let j = 0; j < d; j++) {
        const u = x[x0 + j] as number;
        const v = x[x1 + j] as number;
        const w0 = C[o0 + j] as number;
        const w1 = C[o1 + j] as number;
        const w2 = C[o2 + j] as number;
        const w3 = C[o3 + j] as number;
        s00 += u * w0;
        s01 += u * w1;
        s02 += u * w2;
        s03 += u * w3;
        s10 += v * w0;
        s11 += v * w1;
        s12 += v * w2;
        s13 += v * w3;
      }
      if (s00 > b0) {
        b0 = s00;
        a0 = c;
      }
      if (s01 > b0) {
        b0 = s01;
        a0 = c + 1;
      }
      if (s02 > b0) {
        b0 = s02;
        a0 = c + 2;
      }
      if (s03 > b0) {
        b0 = s03;
        a0 = c + 3;
      }
      if (s10 > b1) {
        b1 = s10;
        a1 = c;
      }
      if (s11 > b1) {
        b1 = s11;
        a1 = c + 1;
      }
      if (s12 > b1) {
        b1 = s12;
        a1 = c + 2;
      }
      if (s13 > b1) {
        b1 = s13;
        a1 = c + 3;
      }
    }
    for (; c < c1; c++) {
      const o = c * d;
      let s0 = 0,
        s1 = 0;
      for (let j = 0; j < d; j++) {
        const w = C[o + j] as number;
        s0 += (x[x0 + j] as number) * w;
        s1 += (x[x1 + j] as number) * w;
      }
      if (s0 > b0) {
        b0 = s0;
        a0 = c;
      }
      if (s1 > b1) {
        b1 = s1;
        a1 = c;
      }
    }
    bestSim[r] = b0;
    bestIdx[r] = a0;
    bestSim[r + 1] = b1;
    bestIdx[r + 1] = a1;
  }
  if (r < r1) {
    // The odd row out of a block.
    let b0 = bestSim[r] as number;
    let a0 = bestIdx[r] as number;
    for (let c = c0; c < c1; c++) {
      const s = dot(x, r * d, C, c * d, d);
      if (s > b0) {
        b0 = s;
        a0 = c;
      }
    }
    bestSim[r] = b0;
    bestIdx[r] = a0;
  }
}
