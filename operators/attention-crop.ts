/**
 * Attention-driven views (METHODS.md §3): a crop that keeps the main object, found from an
 * attention map — the smallest box holding `mass` of the attention (greedy: peel off the
 * border row or column with the least mass while the rest holds enough), mapped to source
 * pixels, then jittered so attention views still vary.
 */
import type { Box, Plane, Rng } from '../core/index.js';
import { isUsableMap } from './foreground-mask.js';

export interface AttentionCropOptions {
  /** Fraction of attention mass the box keeps (default 0.85). */
  mass?: number;
  /** Scale and offset jitter, as a fraction of the box size (default 0.1). */
  jitter?: number;
  /** Probability of a random crop (half to all of the area) inside the box (default 0). */
  innerCrop?: number;
}

/** The smallest box (greedy) of the map holding `mass` of its total, in map cells. */
export function attentionBox(map: Plane<Float32Array>, mass = 0.85): Box {
  const { width: w, height: h, data } = map;
  const rows = new Float64Array(h);
  const cols = new Float64Array(w);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const v = Math.max(0, data[y * w + x] as number);
      rows[y]! += v;
      cols[x]! += v;
    }
  let total = rows.reduce((a, b) => a + b, 0);
  const need = mass * total;
  let [x0, y0, x1, y1] = [0, 0, w, h];
  // Mass of one border line of the current box.
  const rowMass = (y: number) => {
    let s = 0;
    for (let x = x0; x < x1; x++) s += Math.max(0, data[y * w + x] as number);
    return s;
  };
  const colMass = (x: number) => {
    let s = 0;
    for (let y = y0; y < y1; y++) s += Math.max(0, data[y * w + x] as number);
    return s;
  };
  for (;;) {
    const options: Array<[number, () => void]> = [];
    if (y1 - y0 > 1) {
      options.push(
        [
          rowMass(y0),
          () => {
            y0++;
          },
        ],
        [
          rowMass(y1 - 1),
          () => {
            y1--;
          },
        ],
      );
    }
    if (x1 - x0 > 1) {
      options.push(
        [
          colMass(x0),
          () => {
            x0++;
          },
        ],
        [
          colMass(x1 - 1),
          () => {
            x1--;
          },
        ],
      );
    }
    if (options.length === 0) break;
    options.sort((a, b) => a[0] - b[0]);
    const [lightest, peel] = options[0] as [number, () => void];
    if (total - lightest < need) break;
    total -= lightest;
    peel();
  }
  return [x0, y0, x1, y1];
}

/**
 * An attention view's crop in source pixels, or the whole image when the map is unusable
 * (all zeros, constant, NaN) — then `fallback` is true, for the job's report.
 */
export function attentionCropBox(
  rng: Rng,
  attention: Plane<Float32Array> | undefined,
  width: number,
  height: number,
  options: AttentionCropOptions = {},
): { box: Box; fallback: boolean } {
  if (!attention || !isUsableMap(attention)) return { box: [0, 0, width, height], fallback: true };
  const [mx0, my0, mx1, my1] = attentionBox(attention, options.mass ?? 0.85);
  const sx = width / attention.width;
  const sy = height / attention.height;
  const jitter = options.jitter ?? 0.1;
  let bw = (mx1 - mx0) * sx * rng.uniform(1 - jitter, 1 + jitter);
  let bh = (my1 - my0) * sy * rng.uniform(1 - jitter, 1 + jitter);
  let cx = ((mx0 + mx1) / 2) * sx + rng.uniform(-jitter, jitter) * bw;
  let cy = ((my0 + my1) / 2) * sy + rng.uniform(-jitter, jitter) * bh;
  if (rng.chance(options.innerCrop ?? 0)) {
    const area = rng.uniform(0.5, 1);
    const [iw, ih] = [bw * Math.sqrt(area), bh * Math.sqrt(area)];
    cx += rng.uniform(-(bw - iw) / 2, (bw - iw) / 2);
    cy += rng.uniform(-(bh - ih) / 2, (bh - ih) / 2);
    [bw, bh] = [iw, ih];
  }
  const w = Math.max(1, Math.min(width, Math.round(bw)));
  const h = Math.max(1, Math.min(height, Math.round(bh)));
  const x0 = Math.min(width - w, Math.max(0, Math.round(cx - w / 2)));
  const y0 = Math.min(height - h, Math.max(0, Math.round(cy - h / 2)));
  return { box: [x0, y0, x0 + w, y0 + h], fallback: false };
}
