/**
 * Agreement of a clustering with ground-truth labels, for tests and benchmarks of
 * `clusterPositives`. Both take two labelings of the same N items; label values are arbitrary
 * integers (only equality matters) and need not be contiguous.
 */

/** Relabels `labels` to 0 … m − 1 in order of first appearance; returns the codes and m. */
function denseCodes(labels: ArrayLike<number>): { codes: Int32Array; count: number } {
  const index = new Map<number, number>();
  const codes = new Int32Array(labels.length);
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i] as number;
    let code = index.get(label);
    if (code === undefined) {
      code = index.size;
      index.set(label, code);
    }
    codes[i] = code;
  }
  return { codes, count: index.size };
}

/**
 * The contingency table of two labelings: the non-zero cells n_ij (items in cluster i of `a`
 * and j of `b`) keyed by i · cols + j, sparse since N singletons against N would not fit
 * densely; and its row and column sums.
 */
function contingency(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  name: string,
): { cells: Map<number, number>; cols: number; rowSums: Float64Array; colSums: Float64Array } {
  if (a.length !== b.length) throw new Error(`${name}: labelings of ${a.length} and ${b.length} items; expected the same N`);
  if (a.length === 0) throw new Error(`${name}: expected at least one item`);
  const ca = denseCodes(a);
  const cb = denseCodes(b);
  const table = new Map<number, number>();
  const rowSums = new Float64Array(ca.count);
  const colSums = new Float64Array(cb.count);
  for (let i = 0; i < a.length; i++) {
    const r = ca.codes[i] as number;
    const c = cb.codes[i] as number;
    const cell = r * cb.count + c;
    table.set(cell, (table.get(cell) ?? 0) + 1);
    rowSums[r] = (rowSums[r] as number) + 1;
    colSums[c] = (colSums[c] as number) + 1;
  }
  return { cells: table, cols: cb.count, rowSums, colSums };
}

const pairs = (x: number): number => (x * (x - 1)) / 2;

/**
 * Adjusted Rand index (Hubert & Arabie 1985): the Rand index of `a` against `b`, corrected for
 * chance. 1 for the same partition (up to renaming), about 0 for independent ones, can be < 0.
 *
 *   ARI = (Σ_ij C(n_ij, 2) − E) / (½ [Σ_i C(a_i, 2) + Σ_j C(b_j, 2)] − E),
 *   E = Σ_i C(a_i, 2) · Σ_j C(b_j, 2) / C(N, 2)
 *
 * When both partitions are trivial (one cluster each, or all singletons) the ratio is 0 / 0;
 * as scikit-learn does, the answer is then 1.
 */
export function adjustedRandIndex(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const { cells, rowSums, colSums } = contingency(a, b, 'adjustedRandIndex');
  let sumCells = 0;
  for (const nij of cells.values()) sumCells += pairs(nij);
  let sumRows = 0;
  for (const x of rowSums) sumRows += pairs(x);
  let sumCols = 0;
  for (const x of colSums) sumCols += pairs(x);
  if (a.length < 2) return 1; // no pairs to agree on
  const expected = (sumRows * sumCols) / pairs(a.length);
  const max = (sumRows + sumCols) / 2;
  if (max === expected) return 1;
  return (sumCells - expected) / (max - expected);
}

/**
 * Cluster purity: each cluster of `clusters` votes for its most frequent label in `labels`;
 * the fraction of items that carry their cluster's label. In (0, 1]; 1 when every cluster is
 * pure (trivially so with one cluster per item, so read it with the number of clusters).
 */
export function clusterPurity(clusters: ArrayLike<number>, labels: ArrayLike<number>): number {
  const { cells, cols, rowSums } = contingency(clusters, labels, 'clusterPurity');
  const most = new Float64Array(rowSums.length);
  for (const [cell, count] of cells) {
    const c = Math.floor(cell / cols);
    if (count > (most[c] as number)) most[c] = count;
  }
  let agree = 0;
  for (const m of most) agree += m;
  return agree / clusters.length;
}
