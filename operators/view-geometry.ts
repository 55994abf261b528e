/**
 * Where a view sits in its source image, and how two views of one image line up.
 * Every box is `[x0, y0, x1, y1]` in source pixels, so two views' feature cells can be put in
 * pixel correspondence (DenseCL's geometric matching, PixPro, HAPiCL's mask cutting).
 */
import type { Box, Rng } from './types/index.js';

/** The geometry a view needs for correspondence. */
export interface ViewPlacement {
  box: Box;
  flipped: boolean;
}

/**
 * Samples a crop as torchvision's `RandomResizedCrop` does: area fraction uniform in `scale`,
 * log aspect ratio uniform in `log(ratio)`, ten tries, then a centre crop clamped to `ratio`.
 * Integer pixel boxes.
 */
export function randomResizedCropBox(
  rng: Rng,
  width: number,
  height: number,
  scale: readonly [number, number],
  ratio: readonly [number, number],
): Box {
  const area = width * height;
  const [logLo, logHi] = [Math.log(ratio[0]), Math.log(ratio[1])];
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logLo, logHi));
    const w = Math.round(Math.sqrt(target * aspect));
    const h = Math.round(Math.sqrt(target / aspect));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      const x0 = rng.int(width - w + 1);
      const y0 = rng.int(height - h + 1);
      return [x0, y0, x0 + w, y0 + h];
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < ratio[0]) h = Math.round(w / ratio[0]);
  else if (inRatio > ratio[1]) w = Math.round(h * ratio[1]);
  const x0 = Math.floor((width - w) / 2);
  const y0 = Math.floor((height - h) / 2);
  return [x0, y0, x0 + w, y0 + h];
}

/**
 * The source-coordinate box of every cell of a `rows × cols` grid laid over a view, in the
 * view's own row-major order (a flipped view's first column is the crop's last).
 */
export function cellBoxes(view: ViewPlacement, rows: number, cols: number): Box[] {
  const [x0, y0, x1, y1] = view.box;
  const cw = (x1 - x0) / cols;
  const ch = (y1 - y0) / rows;
  const cells: Box[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const sc = view.flipped ? cols - 1 - c : c;
      cells.push([x0 + sc * cw, y0 + r * ch, x0 + (sc + 1) * cw, y0 + (r + 1) * ch]);
    }
  }
  return cells;
}

function intersection(a: Box, b: Box): number {
  const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  return w > 0 && h > 0 ? w * h : 0;
}

/**
 * For two views of one image and a feature grid, the fraction of each cell of `a` covered by
 * each cell of `b`: a row-major `[rows·cols (cells of a), rows·cols (cells of b)]` matrix.
 * Row `i` sums to the part of a's cell `i` that lies inside view `b` (0 when they share
 * nothing).
 *
 * @example
 * const overlap = viewCorrespondence(v1, v2, 7, 7); // 49×49
 * const positives = overlap.map((f) => f > 0.5);
 */
export function viewCorrespondence(a: ViewPlacement, b: ViewPlacement, rows: number, cols = rows): Float32Array {
  const cellsA = cellBoxes(a, rows, cols);
  const cellsB = cellBoxes(b, rows, cols);
  const n = rows * cols;
  const out = new Float32Array(n * n);
  cellsA.forEach((ca, i) => {
    const area = (ca[2] - ca[0]) * (ca[3] - ca[1]);
    if (area <= 0) return;
    cellsB.forEach((cb, j) => {
      out[i * n + j] = intersection(ca, cb) / area;
    });
  });
  return out;
}

/**
 * DenseCL's geometric correspondence: for each cell of view `a`, the cell of view `b` whose
 * centre lies nearest in source coordinates — the cell covering the same spot when the views
 * overlap there, the closest one when they do not. Row-major cell indices, `[rows·cols]`.
 */
export function geometricMatch(a: ViewPlacement, b: ViewPlacement, rows: number, cols = rows): Int32Array {
  const centre = (c: Box) => [(c[0] + c[2]) / 2, (c[1] + c[3]) / 2] as const;
  const centresB = cellBoxes(b, rows, cols).map(centre);
  return Int32Array.from(cellBoxes(a, rows, cols), (cell) => {
    const [x, y] = centre(cell);
    let best = 0;
    let bestDistance = Infinity;
    centresB.forEach(([bx, by], j) => {
      const d = (bx - x) ** 2 + (by - y) ** 2;
      if (d < bestDistance) { bestDistance = d; best = j; }
    });
    return best;
  });
}
