/**
 * Principal components of feature vectors, and the usual picture of dense features: each
 * cell's projection on the top 3 components shown as RGB (as in DINO's and DenseCL's figures).
 * Plain JS in float64: a C×C covariance (C ≤ a few hundred channels) and power iteration with
 * deflation, which is exact enough for three components and needs no tensors.
 */

export interface PrincipalComponents {
  /** Mean of the rows, `[dims]`. */
  mean: Float64Array;
  /** Unit eigenvectors of the covariance, largest variance first, each `[dims]`. */
  components: Float64Array[];
  /** The variance along each component (its eigenvalue). */
  variances: number[];
}

/**
 * The top `k` principal components of `n = rows.length / dims` row vectors (row-major).
 * Each component's sign is fixed so its largest-magnitude entry is positive, so the same
 * features always give the same colours.
 */
export function principalComponents(rows: Float32Array, dims: number, k: number, iterations = 200): PrincipalComponents {
  const n = rows.length / dims;
  if (!Number.isInteger(n) || n < 1) throw new Error(`principalComponents: ${rows.length} values are not rows of ${dims}`);
  const mean = new Float64Array(dims);
  for (let i = 0; i < n; i++) for (let d = 0; d < dims; d++) mean[d]! += rows[i * dims + d]! / n;
  const cov = new Float64Array(dims * dims);
  const centred = new Float64Array(dims);
  for (let i = 0; i < n; i++) {
    for (let d = 0; d < dims; d++) centred[d] = rows[i * dims + d]! - mean[d]!;
    for (let a = 0; a < dims; a++) {
      const ca = centred[a]! / n;
      if (ca === 0) continue;
      for (let b = a; b < dims; b++) cov[a * dims + b]! += ca * centred[b]!;
    }
  }
  for (let a = 0; a < dims; a++) for (let b = 0; b < a; b++) cov[a * dims + b] = cov[b * dims + a]!;
  const components: Float64Array[] = [];
  const variances: number[] = [];
  const next = new Float64Array(dims);
  for (let c = 0; c < Math.min(k, dims); c++) {
    // A fixed start that is unlikely to be orthogonal to any eigenvector.
    let v = Float64Array.from({ length: dims }, (_, d) => 1 + Math.sin(1.7 * d + c));
    normalise(v);
    let lambda = 0;
    for (let it = 0; it < iterations; it++) {
      for (let a = 0; a < dims; a++) {
        let s = 0;
        for (let b = 0; b < dims; b++) s += cov[a * dims + b]! * v[b]!;
        next[a] = s;
      }
      lambda = dot(v, next);
      if (normalise(next) === 0) break; // the rest of the variance is zero
      const change = Math.abs(1 - Math.abs(dot(v, next)));
      v = Float64Array.from(next);
      if (change < 1e-12) break;
    }
    let largest = 0;
    for (let d = 0; d < dims; d++) if (Math.abs(v[d]!) > Math.abs(v[largest]!)) largest = d;
    if (v[largest]! < 0) for (let d = 0; d < dims; d++) v[d] = -v[d]!;
    components.push(v);
    variances.push(Math.max(0, lambda));
    // Deflate: remove this component's variance so the next iteration finds the next one.
    for (let a = 0; a < dims; a++) for (let b = 0; b < dims; b++) cov[a * dims + b]! -= lambda * v[a]! * v[b]!;
  }
  return { mean, components, variances };
}

/**
 * Each row's projection on the top 3 principal components of all rows, each component min-max
 * scaled to 0–255 over all rows: `[n × 3]` interleaved RGB. Fewer than 3 components (dims < 3,
 * or no variance along one) leave that channel at 0.
 */
export function pcaRgb(rows: Float32Array, dims: number): Uint8Array {
  const n = rows.length / dims;
  const { mean, components, variances } = principalComponents(rows, dims, 3);
  const out = new Uint8Array(n * 3);
  components.forEach((v, c) => {
    // After deflation a spent direction still holds float noise (~1e-10); stretched to 0–255 it
    // would paint structure a collapsed encoder does not have.
    if (!((variances[c] as number) > 1e-6 * (variances[0] as number))) return;
    const proj = new Float64Array(n);
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let d = 0; d < dims; d++) s += (rows[i * dims + d]! - mean[d]!) * v[d]!;
      proj[i] = s;
      lo = Math.min(lo, s);
      hi = Math.max(hi, s);
    }
    const scale = hi > lo ? 255 / (hi - lo) : 0;
    for (let i = 0; i < n; i++) out[i * 3 + c] = Math.round((proj[i]! - lo) * scale);
  });
  return out;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Scales `v` to unit length in place; returns its former length. */
function normalise(v: Float64Array): number {
  const len = Math.sqrt(dot(v, v));
  if (len > 0) for (let i = 0; i < v.length; i++) v[i] = v[i]! / len;
  return len;
}
