/**
 * The saliency maps and masks as they were written in JavaScript before their loops moved to
 * WebAssembly (operators/saliency.c): the oracle test/saliency-wasm.test.ts holds the compiled
 * loops to, bit for bit. Not used by the library. The pieces still in the library's JavaScript
 * (Otsu's threshold, the clean-up, the usability check, the min–max normalisation) are imported.
 */
import type { Pixels, Plane } from '../../core/index.js';
import { cleanMask, isUsableMap, otsuThreshold } from '../../operators/foreground-mask.js';
import { mapSize, normalise } from '../../operators/saliency.js';

/** sRGB byte → linear light, once for all 256 values. */
const LINEAR = Float32Array.from({ length: 256 }, (_, v) => {
  const c = v / 255;
  return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
});

/** Area-averaged downscale to a `w × h` map of linear-light RGB (averaging in linear light). */
function downscale(p: Pixels, w: number, h: number): Float32Array {
  const out = new Float32Array(w * h * 3);
  const c = p.channels;
  if (w === p.width && h === p.height) {
    // One pixel per cell (a map at the image's own size): its linear values, as the average gives.
    for (let m = 0, i = 0; m < w * h; m++, i += c) {
      out[m * 3] = LINEAR[p.data[i] as number] as number;
      out[m * 3 + 1] = LINEAR[p.data[c === 3 ? i + 1 : i] as number] as number;
      out[m * 3 + 2] = LINEAR[p.data[c === 3 ? i + 2 : i] as number] as number;
    }
    return out;
  }
  const counts = new Float32Array(w * h);
  const column = Int32Array.from({ length: p.width }, (_, x) => Math.min(w - 1, Math.floor((x * w) / p.width)));
  for (let y = 0; y < p.height; y++) {
    const row = Math.min(h - 1, Math.floor((y * h) / p.height)) * w;
    for (let x = 0, i = y * p.width * c; x < p.width; x++, i += c) {
      const m = row + (column[x] as number);
      out[m * 3]! += LINEAR[p.data[i] as number] as number;
      out[m * 3 + 1]! += LINEAR[p.data[c === 3 ? i + 1 : i] as number] as number;
      out[m * 3 + 2]! += LINEAR[p.data[c === 3 ? i + 2 : i] as number] as number;
      counts[m]! += 1;
    }
  }
  for (let m = 0; m < w * h; m++) {
    const k = 1 / Math.max(1, counts[m] as number);
    out[m * 3]! *= k;
    out[m * 3 + 1]! *= k;
    out[m * 3 + 2]! *= k;
  }
  return out;
}

/** Linear RGB to CIE Lab (D65), in place. */
function toLab(rgb: Float32Array): void {
  const f = (t: number) => (t > 0.008856 ? Math.cbrt(t) : 7.787 * t + 16 / 116);
  for (let i = 0; i < rgb.length; i += 3) {
    const r = rgb[i] as number;
    const g = rgb[i + 1] as number;
    const b = rgb[i + 2] as number;
    const fx = f((0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047);
    const fy = f(0.2126 * r + 0.7152 * g + 0.0722 * b);
    const fz = f((0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883);
    rgb[i] = 116 * fy - 16;
    rgb[i + 1] = 500 * (fx - fy);
    rgb[i + 2] = 200 * (fy - fz);
  }
}

/** One pass of a 1-D kernel along rows (`stride` 3) or columns (`stride` 3w), edges clamped. */
function blurPass(src: Float32Array, dst: Float32Array, w: number, h: number, kernel: Float32Array, vertical: boolean): void {
  const r = (kernel.length - 1) / 2;
  const n = vertical ? h : w;
  const outers = vertical ? w : h;
  // Element k of line `outer` sits at (k·step + outer·across)·3; taps past an edge read the edge.
  const step = (vertical ? w : 1) * 3;
  const across = (vertical ? 1 : w) * 3;
  const taps = kernel.length;
  for (let outer = 0; outer < outers; outer++) {
    const base = outer * across;
    for (let k = 0; k < n; k++) {
      let a = 0;
      let b = 0;
      let c = 0;
      if (k >= r && k < n - r) {
        for (let t = 0, j = base + (k - r) * step; t < taps; t++, j += step) {
          const wt = kernel[t] as number;
          a += wt * (src[j] as number);
          b += wt * (src[j + 1] as number);
          c += wt * (src[j + 2] as number);
        }
      } else {
        for (let t = 0; t < taps; t++) {
          const j = base + Math.min(n - 1, Math.max(0, k - r + t)) * step;
          const wt = kernel[t] as number;
          a += wt * (src[j] as number);
          b += wt * (src[j + 1] as number);
          c += wt * (src[j + 2] as number);
        }
      }
      const o = base + k * step;
      dst[o] = a;
      dst[o + 1] = b;
      dst[o + 2] = c;
    }
  }
}

/** Separable Gaussian blur of a `w × h × 3` float image (edges clamped). */
function gaussianBlur3(img: Float32Array, w: number, h: number, sigma: number): Float32Array {
  if (sigma <= 0) return img;
  const r = Math.ceil(3 * sigma);
  const kernel = Float32Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const norm = kernel.reduce((a, b) => a + b, 0);
  kernel.forEach((v, i) => {
    kernel[i] = v / norm;
  });
  const tmp = new Float32Array(img.length);
  const out = new Float32Array(img.length);
  blurPass(img, tmp, w, h, kernel, false);
  blurPass(tmp, out, w, h, kernel, true);
  return out;
}

export function referenceBoundary(pixels: Pixels, options: { size?: number; borderColours?: number } = {}): Plane<Float32Array> {
  const { lab, width: w, height: h } = referenceLabMap(pixels, options.size ?? 64);
  const border: number[] = [];
  for (let x = 0; x < w; x++) border.push(x, (h - 1) * w + x);
  for (let y = 1; y < h - 1; y++) border.push(y * w, y * w + w - 1);
  const d2 = (p: number, q: number) =>
    ((lab[p * 3] as number) - (lab[q * 3] as number)) ** 2 +
    ((lab[p * 3 + 1] as number) - (lab[q * 3 + 1] as number)) ** 2 +
    ((lab[p * 3 + 2] as number) - (lab[q * 3 + 2] as number)) ** 2;
  // Farthest-point sampling spreads the k colours over every kind of border there is.
  const k = Math.min(options.borderColours ?? 16, border.length);
  const centres = [border[0] as number];
  const nearest = Float64Array.from(border, (b) => d2(b, centres[0] as number));
  while (centres.length < k) {
    let best = 0;
    for (let i = 1; i < border.length; i++) if ((nearest[i] as number) > (nearest[best] as number)) best = i;
    const c = border[best] as number;
    centres.push(c);
    border.forEach((b, i) => {
      nearest[i] = Math.min(nearest[i] as number, d2(b, c));
    });
  }
  // Every pixel against every centre: the hot loop of HAPiCL's data plane, so written flat, with
  // the centres' colours in one array (the same sums in the same order as d2, so the same map).
  const colours = new Float64Array(k * 3);
  centres.forEach((c, j) => colours.set([lab[c * 3] as number, lab[c * 3 + 1] as number, lab[c * 3 + 2] as number], j * 3));
  const data = new Float32Array(w * h);
  for (let p = 0; p < w * h; p++) {
    const l = lab[p * 3] as number;
    const a = lab[p * 3 + 1] as number;
    const b = lab[p * 3 + 2] as number;
    let d = Infinity;
    for (let j = 0; j < k * 3; j += 3) {
      const dl = l - (colours[j] as number);
      const da = a - (colours[j + 1] as number);
      const db = b - (colours[j + 2] as number);
      const e = dl * dl + da * da + db * db;
      if (e < d) d = e;
    }
    data[p] = Math.sqrt(d);
  }
  normalise(data);
  return { data, width: w, height: h };
}

/** The Lab colour of every map pixel, lightly blurred (σ = 1 map pixel). */
export function referenceLabMap(pixels: Pixels, size = 64): { lab: Float32Array; width: number; height: number } {
  const [w, h] = mapSize(pixels.width, pixels.height, size);
  const lab = gaussianBlur3(
    (() => {
      const d = downscale(pixels, w, h);
      toLab(d);
      return d;
    })(),
    w,
    h,
    1,
  );
  return { lab, width: w, height: h };
}

/** Foreground = attention above Otsu's threshold, cleaned. An unusable map gives an all-foreground mask. */
export function referenceMask(attention: Plane<Float32Array>, minArea = 0.01): Plane {
  const { width, height, data } = attention;
  if (!isUsableMap(attention)) return { data: new Uint8Array(width * height).fill(1), width, height };
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < data.length; i++) {
    lo = Math.min(lo, data[i] as number);
    hi = Math.max(hi, data[i] as number);
  }
  const norm = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) norm[i] = ((data[i] as number) - lo) / (hi - lo);
  const t = otsuThreshold(norm);
  const mask = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) mask[i] = (norm[i] as number) >= t ? 1 : 0;
  return cleanMask({ data: mask, width, height }, minArea);
}

/** The Lab map of `saliencyKernels().lab`: downscaled to `w × h`, in Lab, blurred by σ (none for 0). */
export function referenceLab(pixels: Pixels, w: number, h: number, sigma: number): Float32Array {
  const lab = downscale(pixels, w, h);
  toLab(lab);
  return gaussianBlur3(lab, w, h, sigma);
}
