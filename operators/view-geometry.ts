/**
 * Where a view sits in its source image, and how two views of one image line up.
 * Every box is `[x0, y0, x1, y1]` in source pixels, so two views' feature cells can be put in
 * pixel correspondence (DenseCL's geometric matching, PixPro, HAPiCL's mask cutting).
 */
import type { Box, Plane, Rng } from '../core/index.js';

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

/** Draws of {@link randomResizedCropBox} a foreground-aware crop tries before it centres one on the object. */
export const FOREGROUND_CROP_TRIES = 10;

/** Summed-area tables of foreground masks, built once per mask: a sample's views share its mask. */
const foregroundTables = new WeakMap<Plane, Float64Array>();

function foregroundTable(mask: Plane): Float64Array {
  let sat = foregroundTables.get(mask);
  if (sat) return sat;
  const { data, width: mw, height: mh } = mask;
  sat = new Float64Array((mw + 1) * (mh + 1));
  for (let y = 0; y < mh; y++) {
    let row = 0;
    for (let x = 0; x < mw; x++) {
      row += (data[y * mw + x] as number) > 0 ? 1 : 0;
      sat[(y + 1) * (mw + 1) + x + 1] = (sat[y * (mw + 1) + x + 1] as number) + row;
    }
  }
  foregroundTables.set(mask, sat);
  return sat;
}

/**
 * A mask's foreground pixels in all, and the foreground share of any box in O(1). The mask may
 * have its own resolution: box corners scale to it, rounded to whole mask pixels.
 */
function foregroundCounter(mask: Plane, width: number, height: number): { total: number; share: (box: Box) => number } {
  const sat = foregroundTable(mask);
  const { width: mw, height: mh } = mask;
  const [sx, sy] = [mw / width, mh / height];
  const at = (x: number, y: number) => sat[y * (mw + 1) + x] as number;
  return {
    total: at(mw, mh),
    share: ([x0, y0, x1, y1]) => {
      const [a, b] = [Math.round(x0 * sx), Math.round(y0 * sy)];
      const [c, d] = [Math.max(a, Math.round(x1 * sx)), Math.max(b, Math.round(y1 * sy))];
      return (at(c, d) - at(a, d) - at(c, b) + at(a, b)) / Math.max(1, (c - a) * (d - b));
    },
  };
}

/**
 * HARL's mask-aware crop (METHODS.md §2): a random resized crop that keeps at least
 * `minForeground` of its area on the mask's foreground. Up to {@link FOREGROUND_CROP_TRIES}
 * draws; if none qualifies, the last draw's box is moved to centre on a random foreground pixel
 * (clamped into the image), which keeps its size and so the preset's scale range. A mask with
 * no foreground gives the plain random crop, and `fallback` says so.
 */
export function foregroundCropBox(
  rng: Rng,
  mask: Plane,
  width: number,
  height: number,
  scale: readonly [number, number],
  ratio: readonly [number, number],
  minForeground: number,
): { box: Box; fallback?: string } {
  const count = foregroundCounter(mask, width, height);
  let box = randomResizedCropBox(rng, width, height, scale, ratio);
  if (count.total === 0) return { box, fallback: 'empty mask: a plain random crop' };
  for (let attempt = 1; attempt < FOREGROUND_CROP_TRIES && count.share(box) < minForeground; attempt++) {
    box = randomResizedCropBox(rng, width, height, scale, ratio);
  }
  if (count.share(box) >= minForeground) return { box };
  const [sx, sy] = [mask.width / width, mask.height / height];
  // The k-th foreground pixel in row-major order, k uniform.
  let k = rng.int(count.total);
  let px = 0;
  let py = 0;
  for (let i = 0; i < mask.data.length; i++) {
    if ((mask.data[i] as number) > 0 && k-- === 0) {
      px = ((i % mask.width) + 0.5) / sx;
      py = (Math.floor(i / mask.width) + 0.5) / sy;
      break;
    }
  }
  const [w, h] = [box[2] - box[0], box[3] - box[1]];
  const x0 = Math.min(width - w, Math.max(0, Math.round(px - w / 2)));
  const y0 = Math.min(height - h, Math.max(0, Math.round(py - h / 2)));
  return { box: [x0, y0, x0 + w, y0 + h] };
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
      if (d < bestDistance) {
        bestDistance = d;
        best = j;
      }
    });
    return best;
  });
}
