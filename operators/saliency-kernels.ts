/**
 * The saliency maps' pixel loops (saliency.c, compiled into saliency-wasm.ts) on a private
 * WebAssembly memory, one instance per thread, made on first use. They are the per-image cost
 * of HAPiCL's masks: in JavaScript 1.7–2.3 ms a 64 × 64 scene, map and mask; here about 0.5
 * (docs/performance.md, "Measured: saliency in WebAssembly"). Their results are the JavaScript's, bit
 * for bit.
 *
 * Each call copies its pixels into the memory, a band of rows at a time (at most BAND_BYTES), and
 * its result out; the memory grows to the largest map a thread has made and stays that size.
 */
import type { Pixels } from '../core/index.js';
import { webAssembly, type WasmMemory } from '../core/webassembly.js';
import { SALIENCY_WASM_BASE64 } from './saliency-wasm.js';

/** sRGB byte → linear light, once for all 256 values. */
const LINEAR = Float32Array.from({ length: 256 }, (_, v) => {
  const c = v / 255;
  return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
});

interface Exports {
  cube_root(x: number): number;
  lab_band(geometry: number, band: number, linear: number, lab: number, counts: number, column: number): void;
  lab_finish(geometry: number, lab: number, counts: number): void;
  blur3(src: number, tmp: number, dst: number, w: number, h: number, kernel: number, taps: number): void;
  boundary_contrast(lab: number, w: number, h: number, k: number, border: number, nearest: number, colours: number, out: number): number;
  mask_from_map(
    data: number,
    w: number,
    h: number,
    minArea: number,
    out: number,
    norm: number,
    bins: number,
    labels: number,
    stack: number,
    sizes: number,
    touches: number,
  ): number;
}

/** A normalised Gaussian of σ, radius ⌈3σ⌉, as float32 taps. */
export function gaussianTaps(sigma: number): Float32Array {
  const r = Math.ceil(3 * sigma);
  const kernel = Float32Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const norm = kernel.reduce((a, b) => a + b, 0);
  kernel.forEach((v, i) => {
    kernel[i] = v / norm;
  });
  return kernel;
}

const PAGE = 65_536;
/** The most pixel bytes copied in at once: a 8192 × 8192 photo needs no 200 MB copy in the memory. */
const BAND_BYTES = 1 << 20;
const align8 = (n: number) => (n + 7) & ~7;

/** Byte offsets of one call's regions, laid out from 0. */
class Layout {
  size = 0;
  take(bytes: number): number {
    const at = this.size;
    this.size = align8(at + bytes);
    return at;
  }
}

class SaliencyKernels {
  private readonly memory: WasmMemory;
  private readonly k: Exports;

  constructor() {
    this.memory = new webAssembly.Memory({ initial: 1 });
    const module = new webAssembly.Module(Buffer.from(SALIENCY_WASM_BASE64, 'base64'));
    this.k = new webAssembly.Instance(module, { env: { memory: this.memory } }).exports as unknown as Exports;
  }

  cubeRoot(x: number): number {
    return this.k.cube_root(x);
  }

  /**
   * The image downscaled (area average in linear light) to `w × h`, in CIE Lab, then blurred
   * by a Gaussian of `sigma` map pixels (none for 0): `[w·h·3]`.
   */
  lab(pixels: Pixels, w: number, h: number, sigma: number): Float32Array {
    return this.floats(this.labIn(pixels, w, h, sigma, new Layout()).blurred, w * h * 3);
  }

  /** The Lab map of {@link lab} both before and after its blur, from one downscale. */
  labAndBlurred(pixels: Pixels, w: number, h: number, sigma: number): { lab: Float32Array; blurred: Float32Array } {
    const at = this.labIn(pixels, w, h, sigma, new Layout());
    const lab = this.floats(at.lab, w * h * 3);
    return { lab, blurred: at.blurred === at.lab ? lab : this.floats(at.blurred, w * h * 3) };
  }

  /**
   * Boundary contrast of the image's `w × h` Lab map (blurred by σ = 1): each pixel's distance to
   * the nearest of `k` border colours, min–max normalised: `[w·h]`.
   */
  boundaryContrast(pixels: Pixels, w: number, h: number, k: number): Float32Array {
    const layout = new Layout();
    const { blurred } = this.labIn(pixels, w, h, 1, layout);
    const border = layout.take(8 * (w + h) + 8);
    const nearest = layout.take(16 * (w + h) + 16);
    const colours = layout.take(24 * k);
    const out = layout.take(4 * w * h);
    this.reserve(layout.size);
    this.k.boundary_contrast(blurred, w, h, k, border, nearest, colours, out);
    return this.floats(out, w * h);
  }

  /**
   * The foreground mask of a `w × h` attention map: Otsu's threshold of the min–max normalised
   * map, components under `minArea` of the image dropped, enclosed background filled; all
   * foreground for an unusable map (`usable` false).
   */
  mask(map: Float32Array, w: number, h: number, minArea: number): { data: Uint8Array; usable: boolean } {
    const n = w * h;
    const layout = new Layout();
    const at = {
      map: layout.take(4 * n),
      out: layout.take(n),
      norm: layout.take(4 * n),
      bins: layout.take(8 * 256),
      labels: layout.take(4 * n),
      stack: layout.take(4 * n),
      sizes: layout.take(4 * (n + 1)),
      touches: layout.take(n + 1),
    };
    this.reserve(layout.size);
    new Float32Array(this.memory.buffer, at.map, n).set(map);
    const usable = this.k.mask_from_map(at.map, w, h, minArea, at.out, at.norm, at.bins, at.labels, at.stack, at.sizes, at.touches);
    return { data: new Uint8Array(this.memory.buffer, at.out, n).slice(), usable: usable === 1 };
  }

  /**
   * Lays out and runs `lab_band` over the image in bands, `lab_finish` and, for σ > 0, `blur3`:
   * the offsets of the Lab map and of its blurred copy (the same offset without a blur).
   */
  private labIn(pixels: Pixels, w: number, h: number, sigma: number, layout: Layout): { lab: number; blurred: number } {
    const taps = sigma > 0 ? gaussianTaps(sigma) : new Float32Array(0);
    const rowBytes = pixels.width * pixels.channels;
    const bandRows = Math.max(1, Math.min(pixels.height, Math.floor(BAND_BYTES / rowBytes)));
    const at = {
      geometry: layout.take(4 * 7),
      linear: layout.take(4 * 256),
      kernel: layout.take(4 * taps.length),
      band: layout.take(bandRows * rowBytes),
      lab: layout.take(4 * w * h * 3),
      tmp: layout.take(4 * w * h * 3),
      blurred: layout.take(4 * w * h * 3),
      counts: layout.take(4 * w * h),
      column: layout.take(4 * pixels.width),
    };
    this.reserve(layout.size);
    const buffer = this.memory.buffer;
    new Float32Array(buffer, at.linear, 256).set(LINEAR);
    new Float32Array(buffer, at.kernel, taps.length).set(taps);
    const geometry = new Int32Array(buffer, at.geometry, 7);
    for (let y0 = 0; y0 < pixels.height; y0 += bandRows) {
      const rows = Math.min(bandRows, pixels.height - y0);
      geometry.set([pixels.width, pixels.height, pixels.channels, w, h, y0, rows]);
      new Uint8Array(buffer, at.band, rows * rowBytes).set(pixels.data.subarray(y0 * rowBytes, (y0 + rows) * rowBytes));
      this.k.lab_band(at.geometry, at.band, at.linear, at.lab, at.counts, at.column);
    }
    this.k.lab_finish(at.geometry, at.lab, at.counts);
    if (taps.length > 0) this.k.blur3(at.lab, at.tmp, at.blurred, w, h, at.kernel, taps.length);
    return { lab: at.lab, blurred: taps.length > 0 ? at.blurred : at.lab };
  }

  private reserve(bytes: number): void {
    const have = this.memory.buffer.byteLength;
    if (bytes > have) this.memory.grow(Math.ceil((bytes - have) / PAGE));
  }

  private floats(offset: number, n: number): Float32Array {
    return new Float32Array(this.memory.buffer, offset, n).slice();
  }
}

let instance: SaliencyKernels | undefined;

/** This thread's saliency kernels. */
export function saliencyKernels(): SaliencyKernels {
  instance ??= new SaliencyKernels();
  return instance;
}
