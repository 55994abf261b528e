/**
 * Unsupervised foreground masks (HAPiCL's heuristic masks): a saliency map thresholded by
 * Otsu's method, or colour+position k-means with k = 2, then cleaned — components smaller
 * than `minArea` dropped and holes filled. Masks cover the whole source at the map's
 * resolution; `multiView` cuts them with every view.
 */
import { map, type OperatorFunction } from 'rxjs';
import type { Pixels, Plane, Sample } from '../core/index.js';
import { keyedRng, type Rng } from '../core/index.js';
import { labMap } from './saliency.js';
import { saliencyKernels } from './saliency-kernels.js';

/** Otsu's threshold of values in [0, 1]: maximises the between-class variance over 256 bins. */
export function otsuThreshold(values: Float32Array): number {
  const bins = new Float64Array(256);
  for (const v of values) bins[Math.min(255, Math.max(0, Math.floor(v * 256)))]! += 1;
  const total = values.length;
  let sumAll = 0;
  for (let i = 0; i < 256; i++) sumAll += i * (bins[i] as number);
  let weightB = 0;
  let sumB = 0;
  let best = 0;
  let threshold = 0.5;
  for (let i = 0; i < 256; i++) {
    weightB += bins[i] as number;
    if (weightB === 0) continue;
    const weightF = total - weightB;
    if (weightF === 0) break;
    sumB += i * (bins[i] as number);
    const between = weightB * weightF * (sumB / weightB - (sumAll - sumB) / weightF) ** 2;
    if (between > best) {
      best = between;
      threshold = (i + 1) / 256;
    }
  }
  return threshold;
}

/** Labels 4-connected components of value `target`; returns labels (0 = other) and sizes. */
function components(mask: Uint8Array, w: number, h: number, target: number): { labels: Int32Array; sizes: number[] } {
  const labels = new Int32Array(w * h);
  const sizes = [0];
  const stack = new Int32Array(w * h);
  for (let start = 0; start < w * h; start++) {
    if (mask[start] !== target || labels[start] !== 0) continue;
    const id = sizes.length;
    let size = 0;
    let top = 0;
    labels[start] = id;
    stack[top++] = start;
    const visit = (q: number) => {
      if (mask[q] === target && labels[q] === 0) {
        labels[q] = id;
        stack[top++] = q;
      }
    };
    while (top > 0) {
      const p = stack[--top] as number;
      size++;
      const x = p % w;
      if (x > 0) visit(p - 1);
      if (x < w - 1) visit(p + 1);
      if (p >= w) visit(p - w);
      if (p < w * (h - 1)) visit(p + w);
    }
    sizes.push(size);
  }
  return { labels, sizes };
}

/**
 * Morphological clean-up: foreground components smaller than `minArea` (a fraction of the
 * image) are dropped, and background regions that do not touch the border are filled.
 */
export function cleanMask(mask: Plane, minArea = 0.01): Plane {
  const { width: w, height: h } = mask;
  const out = mask.data.slice();
  const fg = components(out, w, h, 1);
  for (let p = 0; p < w * h; p++) if (fg.labels[p]! > 0 && fg.sizes[fg.labels[p]!]! < minArea * w * h) out[p] = 0;
  const bg = components(out, w, h, 0);
  const touchesBorder = new Uint8Array(bg.sizes.length);
  for (let x = 0; x < w; x++) {
    touchesBorder[bg.labels[x]!] = 1;
    touchesBorder[bg.labels[(h - 1) * w + x]!] = 1;
  }
  for (let y = 0; y < h; y++) {
    touchesBorder[bg.labels[y * w]!] = 1;
    touchesBorder[bg.labels[y * w + w - 1]!] = 1;
  }
  for (let p = 0; p < w * h; p++) if (out[p] === 0 && !touchesBorder[bg.labels[p]!]) out[p] = 1;
  return { data: out, width: w, height: h };
}

/** Is this map usable: finite, non-negative somewhere, and not constant? */
export function isUsableMap(map: Plane<Float32Array>): boolean {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of map.data) {
    if (!Number.isFinite(v)) return false;
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  return hi > 0 && hi - lo > 1e-6;
}

/**
 * Foreground = attention above Otsu's threshold, cleaned (as `cleanMask`), computed in
 * WebAssembly (saliency.c) with the same result. An unusable map gives an all-foreground mask.
 */
export function maskFromAttention(attention: Plane<Float32Array>, minArea = 0.01): Plane {
  const { width, height, data } = attention;
  return { data: saliencyKernels().mask(data, width, height, minArea).data, width, height };
}

/**
 * k-means (k = 2, k-means++ start, 10 rounds) on blurred Lab colour plus position; the cluster
 * with more border pixels is background. Deterministic from `seed` and the sample id.
 */
export function kmeansMask(pixels: Pixels, id: string, seed = 0, size = 64, positionWeight = 30): Plane {
  const { lab, width: w, height: h } = labMap(pixels, size);
  const n = w * h;
  const dims = 5;
  const feats = new Float32Array(n * dims);
  for (let p = 0; p < n; p++) {
    feats.set(
      [
        lab[p * 3] as number,
        lab[p * 3 + 1] as number,
        lab[p * 3 + 2] as number,
        ((p % w) / w) * positionWeight,
        (Math.floor(p / w) / h) * positionWeight,
      ],
      p * dims,
    );
  }
  return twoMeansMask(feats, dims, w, h, keyedRng(seed, 'kmeans-mask', id));
}

/**
 * The same 2-means split on an encoder's feature map `[h·w, dims]` (row-major cells), each
 * cell L2-normalised first so the split follows direction, not activation strength: the
 * mask at the encoder's grid resolution.
 */
export function featureKmeansMask(features: Float32Array, dims: number, width: number, height: number, id: string, seed = 0): Plane {
  const feats = Float32Array.from(features);
  for (let p = 0; p < width * height; p++) {
    let norm = 0;
    for (let k = 0; k < dims; k++) norm += (feats[p * dims + k] as number) ** 2;
    const inv = norm > 0 ? 1 / Math.sqrt(norm) : 0;
    for (let k = 0; k < dims; k++) feats[p * dims + k]! *= inv;
  }
  return twoMeansMask(feats, dims, width, height, keyedRng(seed, 'feature-kmeans-mask', id), 0);
}

/** k = 2 on `feats` `[w·h, dims]`; the cluster holding more border cells is background. */
function twoMeansMask(feats: Float32Array, dims: number, w: number, h: number, rng: Rng, minArea = 0.01): Plane {
  const n = w * h;
  const dist = (p: number, c: Float32Array) => {
    let d = 0;
    for (let k = 0; k < dims; k++) d += ((feats[p * dims + k] as number) - (c[k] as number)) ** 2;
    return d;
  };
  const a = rng.int(n);
  const centres = [feats.slice(a * dims, a * dims + dims)];
  // k-means++: the second centre with probability ∝ squared distance to the first.
  const d2 = Float64Array.from({ length: n }, (_, p) => dist(p, centres[0] as Float32Array));
  const total = d2.reduce((s, v) => s + v, 0);
  let pick = rng.next() * total;
  let b = 0;
  while (b < n - 1 && (pick -= d2[b] as number) > 0) b++;
  centres.push(feats.slice(b * dims, b * dims + dims));
  const assign = new Uint8Array(n);
  for (let round = 0; round < 10; round++) {
    for (let p = 0; p < n; p++) assign[p] = dist(p, centres[0] as Float32Array) <= dist(p, centres[1] as Float32Array) ? 0 : 1;
    for (let c = 0; c < 2; c++) {
      const sum = new Float32Array(dims);
      let count = 0;
      for (let p = 0; p < n; p++)
        if (assign[p] === c) {
          for (let k = 0; k < dims; k++) sum[k]! += feats[p * dims + k] as number;
          count++;
        }
      if (count > 0) centres[c] = sum.map((v) => v / count);
    }
  }
  const border = [0, 0];
  for (let p = 0; p < n; p++) {
    const x = p % w;
    const y = Math.floor(p / w);
    if (x === 0 || y === 0 || x === w - 1 || y === h - 1) border[assign[p] as number]! += 1;
  }
  const background = (border[0] as number) >= (border[1] as number) ? 0 : 1;
  return cleanMask({ data: Uint8Array.from(assign, (c) => (c === background ? 0 : 1)), width: w, height: h }, minArea);
}

/** The note a sample gets when its attention map is unusable and its mask becomes the whole image. */
export const UNUSABLE_MAP_NOTE = 'attention map is empty, constant or not finite: mask is the whole image';

export const MASK_METHODS = ['saliency', 'kmeans'] as const;
export type MaskMethod = (typeof MASK_METHODS)[number];

export interface ForegroundMaskOptions {
  /** `saliency`: threshold the sample's attention map (default); `kmeans`: cluster colour + position. */
  method?: MaskMethod;
  /** Drop foreground components smaller than this fraction of the image (default 0.01). */
  minArea?: number;
  seed?: number;
  /** Called when a sample's attention map is unusable and its mask becomes the whole image. */
  onFallback?: (id: string, reason: string) => void;
}

/**
 * Attaches a binary foreground mask to each decoded sample, over the whole source.
 *
 * ```
 * input:   a(pixels, attention)
 * output:  a(pixels, attention, mask)
 * ```
 *
 * @example
 * source$.pipe(decode(), attentionMap(), foregroundMask({ method: 'saliency' }))
 * @see attentionMap
 */
export function foregroundMask(options: ForegroundMaskOptions = {}): OperatorFunction<Sample, Sample> {
  const method = options.method ?? 'saliency';
  if (!(MASK_METHODS as readonly string[]).includes(method)) {
    throw new Error(`--masks: expected one of ${MASK_METHODS.join('|')}, got "${method}"`);
  }
  return map((sample) => {
    if (!sample.pixels) throw new Error(`foregroundMask: sample ${sample.id} is not decoded (put decode() first)`);
    if (method === 'kmeans') return { ...sample, mask: kmeansMask(sample.pixels, sample.id, options.seed ?? 0) };
    if (!sample.attention) throw new Error(`foregroundMask: sample ${sample.id} has no attention map (put attentionMap() first)`);
    if (!isUsableMap(sample.attention)) options.onFallback?.(sample.id, UNUSABLE_MAP_NOTE);
    return { ...sample, mask: maskFromAttention(sample.attention, options.minArea) };
  });
}
