/**
 * Conv2D gradients built from forward convolutions.
 *
 * The wasm backend runs forward convolutions fast (densestream's Winograd and direct kernels, else
 * XNNPACK) but has no
 * `Conv2DBackpropFilter` kernel (a CNN cannot train at all) and a slow
 * `Conv2DBackpropInput`. Both gradients are forward convolutions in disguise:
 *
 * - filter gradient: `dW[p,q,c,o] = Σ_{b,i,j} x[b, i·s+p·d−padT, j·s+q·d−padL, c] · dy[b,i,j,o]`,
 *   a forward convolution of `x` (batch and channel axes swapped, `[Ci,H,W,B]`) by `dy`
 *   (`[Ho,Wo,B,Co]`) with dilation = the stride `s` and stride = the dilation `d`;
 * - input gradient: the transposed convolution, split into its `s²` sub-pixel phases; each
 *   phase is a stride-1 forward convolution of `dy` by the flipped taps that reach it
 *   (in/out channel axes swapped). DESIGN.md describes the zero-stuffed form, which is the
 *   same sum but spends `s²−1` of every `s²` multiplies on stuffed zeros.
 *
 * Shapes by letter: `B` batch, `H×W` input, `Ho×Wo` output, `kh×kw` kernel,
 * `Ci`/`Co` channels in/out, NHWC throughout.
 */
import * as tf from '@tensorflow/tfjs';
import { nhwcConvInfo } from './kernels/conv-info.js';
import { flippedFilter, INTERLEAVE_KERNEL } from './kernels/phase-kernels.js';
import { FILTER_GRADIENT_KERNEL, wasmKernelThreads, type FilterGradientAttrs } from './kernels/wasm-kernels.js';

/** Geometry of one Conv2D, as the engine describes it (a superset of what the wasm filter-gradient kernel reads). */
export interface ConvGeometry extends FilterGradientAttrs {
  strideHeight: number;
  strideWidth: number;
  dilationHeight: number;
  dilationWidth: number;
  filterHeight: number;
  filterWidth: number;
  inHeight: number;
  inWidth: number;
  outHeight: number;
  outWidth: number;
  padTop: number;
  padLeft: number;
}

/** Attributes of the Conv2D kernel, as tfjs records them. */
export interface Conv2DAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dilations: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/** Resolves padding and output size for an NHWC Conv2D, exactly as the engine does. */
export function convGeometry(xShape: readonly number[], filterShape: readonly number[], attrs: Conv2DAttrs): ConvGeometry {
  if (attrs.dataFormat !== 'NHWC') {
    throw new Error(`conv gradients: dataFormat ${attrs.dataFormat} is not supported, use NHWC`);
  }
  const info = nhwcConvInfo(xShape, filterShape, attrs);
  return {
    strideHeight: info.strideHeight,
    strideWidth: info.strideWidth,
    dilationHeight: info.dilationHeight,
    dilationWidth: info.dilationWidth,
    filterHeight: info.filterHeight,
    filterWidth: info.filterWidth,
    inHeight: info.inHeight,
    inWidth: info.inWidth,
    outHeight: info.outHeight,
    outWidth: info.outWidth,
    padTop: info.padInfo.top,
    padLeft: info.padInfo.left,
  };
}

/**
 * Pads (positive amounts) or crops (negative amounts) the two spatial axes of an NHWC
 * tensor to `h + top + bottom` × `w + left + right`. Cropping happens when a 'valid'
 * convolution never reads the last rows; when padding alone is read (explicit padding wider
 * than a stride), nothing of `t` is kept and the result is zeros.
 */
function padOrCrop(t: tf.Tensor4D, top: number, bottom: number, left: number, right: number): tf.Tensor4D {
  const [batch, h, w, c] = t.shape;
  const cropTop = Math.max(0, -top);
  const cropLeft = Math.max(0, -left);
  const keepH = h - cropTop - Math.max(0, -bottom);
  const keepW = w - cropLeft - Math.max(0, -right);
  if (keepH <= 0 || keepW <= 0) return tf.zeros([batch, h + top + bottom, w + left + right, c]);
  let out = t;
  if (cropTop > 0 || cropLeft > 0 || keepH < h || keepW < w) {
    out = tf.slice(out, [0, cropTop, cropLeft, 0], [-1, keepH, keepW, -1]);
  }
  const pads: [number, number] = [Math.max(0, top), Math.max(0, bottom)];
  const padsW: [number, number] = [Math.max(0, left), Math.max(0, right)];
  if (pads[0] + pads[1] + padsW[0] + padsW[1] > 0) {
    out = tf.pad(out, [[0, 0], pads, padsW, [0, 0]]);
  }
  return out;
}

/**
 * Gradient of a Conv2D with respect to its filter, as one forward convolution.
 *
 * @param x input `[B,H,W,Ci]`
 * @param dy output gradient `[B,Ho,Wo,Co]`
 * @returns `[kh,kw,Ci,Co]`
 */
export function conv2dFilterGradient(x: tf.Tensor4D, dy: tf.Tensor4D, g: ConvGeometry): tf.Tensor4D {
  if (wasmKernelThreads() > 0) {
    return tf.engine().runKernel(FILTER_GRADIENT_KERNEL, { x, dy }, g as unknown as tf.NamedAttrMap) as tf.Tensor4D;
  }
  return tf.tidy(() => {
    // Rows of x the convolution reads: kh taps spaced d apart, plus Ho−1 steps of s.
    const spanH = (g.filterHeight - 1) * g.dilationHeight + (g.outHeight - 1) * g.strideHeight + 1;
    const spanW = (g.filterWidth - 1) * g.dilationWidth + (g.outWidth - 1) * g.strideWidth + 1;
    const xT = tf.transpose(x, [3, 1, 2, 0]) as tf.Tensor4D; // [Ci, H, W, B]
    const dyT = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D; // [Ho, Wo, B, Co]: the "filter"
    // Stride and dilation trade places: taps of dy are s apart in x, outputs d apart.
    const bottom = spanH - g.inHeight - g.padTop;
    const right = spanW - g.inWidth - g.padLeft;
    const dW =
      g.dilationHeight === 1 && g.dilationWidth === 1
        ? convPadded(xT, dyT, g.padTop, bottom, g.padLeft, right, [g.strideHeight, g.strideWidth])
        : tf.conv2d(padOrCrop(xT, g.padTop, bottom, g.padLeft, right), dyT, [g.dilationHeight, g.dilationWidth], 'valid', 'NHWC', [
            g.strideHeight,
            g.strideWidth,
          ]);
    // dW is [Ci, kh, kw, Co]
    return tf.transpose(dW, [1, 2, 0, 3]) as tf.Tensor4D;
  });
}

/**
 * One output phase of a strided convolution's input gradient, along one axis: input rows
 * `h ≡ phase (mod s)` receive `dy` only through the filter taps `p ≡ phase + pad (mod s)`.
 */
interface AxisPhase {
  /** Filter taps reaching this phase, in flipped order (the correlation's kernel). */
  taps: number[];
  /** Rows of `dy` to pad before the phase's valid correlation (negative: to crop). */
  before: number;
}

/**
 * Splits one axis of the input gradient into its `s` phases. With stride 1 there is one
 * phase holding every tap (spaced by the dilation); with stride `s > 1` (dilation is then
 * 1) each phase holds about `k/s` taps, so no multiply ever meets a stuffed zero.
 */
function axisPhases(stride: number, kernel: number, dilation: number, pad: number): AxisPhase[] {
  // tfjs forbids stride > 1 with dilation > 1; the offsets below are whole numbers only then.
  if (stride > 1 && dilation > 1) throw new Error(`conv gradients: stride ${stride} with dilation ${dilation} is not a valid convolution`);
  const phases: AxisPhase[] = [];
  for (let phase = 0; phase < stride; phase++) {
    const first = (((phase + pad) % stride) + stride) % stride;
    const taps: number[] = [];
    for (let p = first; p < kernel; p += stride) taps.unshift(p);
    // Output row m of this phase reads dy[m + offset − t] through tap first + s·t.
    const offset = (phase + pad - first * dilation) / stride;
    phases.push({ taps, before: (taps.length - 1) * dilation - offset });
  }
  return phases;
}

/**
 * The taps `rows × cols` of a `[kh,kw,A,B]` filter, in the given (flipped) order. With
 * `swapInOut` the result is `[th,tw,B,A]` (a Conv2D's input gradient); without, the tap
 * slices are copied as they are (a depthwise filter, read as `[th,tw,C·M,1]`).
 * Built on typed arrays: the filter is small, and wasm's Gather and Reverse kernels cost
 * more than this loop.
 */
function flippedSubFilter(
  weights: Float32Array | Int32Array | Uint8Array,
  [, kw, a, b]: [number, number, number, number],
  rows: readonly number[],
  cols: readonly number[],
  swapInOut: boolean,
): Float32Array {
  const tap = a * b;
  const out = new Float32Array(rows.length * cols.length * tap);
  let o = 0;
  for (const p of rows) {
    for (const q of cols) {
      const base = (p * kw + q) * tap;
      if (!swapInOut) {
        out.set(weights.subarray(base, base + tap), o);
        o += tap;
        continue;
      }
      for (let j = 0; j < b; j++) {
        for (let i = 0; i < a; i++) out[o++] = weights[base + i * b + j] as number;
      }
    }
  }
  return out;
}

/** A valid stride-1 convolution of `t` padded (or cropped, for negative amounts) as given. */
function convPadded(
  t: tf.Tensor4D,
  filter: tf.Tensor4D,
  top: number,
  bottom: number,
  left: number,
  right: number,
  dilations: [number, number],
): tf.Tensor4D {
  if (Math.min(top, bottom, left, right) >= 0) {
    // Explicit padding lets the convolution read the border implicitly instead of copying t.
    return tf.conv2d(
      t,
      filter,
      1,
      [
        [0, 0],
        [top, bottom],
        [left, right],
        [0, 0],
      ],
      'NHWC',
      dilations,
    );
  }
  return tf.conv2d(padOrCrop(t, top, bottom, left, right), filter, 1, 'valid', 'NHWC', dilations);
}

/** Rows / columns to pad (negative: to crop) before a valid convolution: top, bottom, left, right. */
type Pads = [number, number, number, number];

/**
 * The input gradient of a strided convolution, phase by phase: for each of the `sh·sw`
 * sub-pixel phases, `convolve` runs one stride-1 convolution of `dy`, padded by `pads`, by the
 * flipped taps that reach it; the phases are then interleaved. This does the
 * transposed convolution's work exactly once, where zero-stuffing `dy` would multiply by
 * zeros `s²−1` times out of `s²`.
 */
function phasedInputGradient(
  dy: tf.Tensor4D,
  filterShape: [number, number, number, number],
  g: ConvGeometry,
  inChannels: number,
  convolve: (dy: tf.Tensor4D, pads: Pads, rows: number[], cols: number[]) => tf.Tensor4D,
): tf.Tensor4D {
  return tf.tidy(() => {
    const [batch, outH, outW] = dy.shape;
    const [kh, kw] = filterShape;
    const rows = axisPhases(g.strideHeight, kh, g.dilationHeight, g.padTop);
    const cols = axisPhases(g.strideWidth, kw, g.dilationWidth, g.padLeft);
    const phaseH = Math.ceil(g.inHeight / g.strideHeight);
    const phaseW = Math.ceil(g.inWidth / g.strideWidth);
    const outputs: tf.Tensor4D[] = [];
    for (const r of rows) {
      for (const c of cols) {
        if (r.taps.length === 0 || c.taps.length === 0) {
          outputs.push(tf.zeros([batch, phaseH, phaseW, inChannels]));
          continue;
        }
        const spanH = phaseH + (r.taps.length - 1) * g.dilationHeight;
        const spanW = phaseW + (c.taps.length - 1) * g.dilationWidth;
        const pads: Pads = [r.before, spanH - outH - r.before, c.before, spanW - outW - c.before];
        outputs.push(convolve(dy, pads, r.taps, c.taps));
      }
    }
    return interleavePhases(outputs, g);
  });
}

/**
 * Gradient of a Conv2D with respect to its input (see {@link phasedInputGradient}).
 *
 * @param dy output gradient `[B,Ho,Wo,Co]`
 * @param filter `[kh,kw,Ci,Co]`
 * @returns `[B,H,W,Ci]`
 */
export function conv2dInputGradient(dy: tf.Tensor4D, filter: tf.Tensor4D, g: ConvGeometry): tf.Tensor4D {
  const [, , inC, outC] = filter.shape;
  // On wasm a kernel flips the taps where the filter lies; elsewhere they are read into JS and flipped there.
  const weights = wasmKernelThreads() > 0 && filter.dtype === 'float32' ? undefined : filter.dataSync();
  return phasedInputGradient(dy, filter.shape, g, inC, (d, pads, rows, cols) => {
    const sub = weights
      ? tf.tensor4d(flippedSubFilter(weights, filter.shape, rows, cols, true), [rows.length, cols.length, outC, inC])
      : flippedFilter(filter, rows, cols);
    return convPadded(d, sub, ...pads, [g.dilationHeight, g.dilationWidth]);
  });
}

/**
 * Weaves the `sh·sw` phase outputs `[B,Hp,Wp,C]` (row phase major) into `[B,H,W,C]`:
 * row `m` of phase `(a,b)` lands on input row `a + sh·m`, column likewise.
 */
function interleavePhases(outputs: tf.Tensor4D[], g: ConvGeometry): tf.Tensor4D {
  if (outputs.length === 1) return outputs[0] as tf.Tensor4D;
  const [batch, phaseH, phaseW, channels] = (outputs[0] as tf.Tensor4D).shape;
  const sh = g.strideHeight;
  const sw = g.strideWidth;
  // On wasm one kernel writes each phase where it lands; the ops copy everything twice (Pack, Transpose).
  const woven =
    wasmKernelThreads() > 0 && sh * sw <= 10 && outputs.every((t) => t.dtype === 'float32')
      ? (tf.engine().runKernel(INTERLEAVE_KERNEL, Object.fromEntries(outputs.map((t, i) => [`p${i}`, t])), {
          sh,
          sw,
        } as unknown as tf.NamedAttrMap) as tf.Tensor4D)
      : tf.reshape(tf.transpose(tf.reshape(tf.stack(outputs, 3), [batch, phaseH, phaseW, sh, sw, channels]), [0, 1, 3, 2, 4, 5]), [
          batch,
          phaseH * sh,
          phaseW * sw,
          channels,
        ]);
  // wasm's Slice copies even when it keeps everything; crop only when there is a remainder.
  if (phaseH * sh === g.inHeight && phaseW * sw === g.inWidth) return woven as tf.Tensor4D;
  return tf.slice(woven, [0, 0, 0, 0], [-1, g.inHeight, g.inWidth, -1]) as tf.Tensor4D;
}

/**
 * Gradient of a depthwise convolution with respect to its input, by the same phase split as
 * {@link conv2dInputGradient}: each phase is a depthwise convolution of `dy` by the flipped
 * taps, summed over the channel multiplier.
 *
 * @param dy output gradient `[B,Ho,Wo,C·M]`
 * @param filter `[kh,kw,C,M]`
 * @returns `[B,H,W,C]`
 */
export function depthwiseConv2dInputGradient(dy: tf.Tensor4D, filter: tf.Tensor4D, g: ConvGeometry): tf.Tensor4D {
  const [, , channels, multiplier] = filter.shape;
  const weights = filter.dataSync();
  return phasedInputGradient(dy, filter.shape, g, channels, (d, pads, rows, cols) => {
    const sub = tf.tensor4d(flippedSubFilter(weights, filter.shape, rows, cols, false), [
      rows.length,
      cols.length,
      channels * multiplier,
      1,
    ]);
    const perChannel = tf.depthwiseConv2d(padOrCrop(d, ...pads), sub, 1, 'valid', 'NHWC', [g.dilationHeight, g.dilationWidth]);
    if (multiplier === 1) return perChannel;
    const [batch, h, w] = perChannel.shape;
    return tf.sum(tf.reshape(perChannel, [batch, h, w, channels, multiplier]), 4) as tf.Tensor4D;
  });
}

/**
 * Gradient of a depthwise convolution with respect to its filter: for each tap, the
 * strided window of `x` it reads times `dy`, summed over batch and positions. Depthwise
 * work is memory-bound, so `kh·kw` fused passes over the data are the cost either way.
 *
 * @param x input `[B,H,W,C]`
 * @param dy output gradient `[B,Ho,Wo,C·M]`
 * @returns `[kh,kw,C,M]`
 */
export function depthwiseConv2dFilterGradient(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: [number, number, number, number],
  g: ConvGeometry,
): tf.Tensor4D {
  return tf.tidy(() => {
    const [kh, kw, channels, multiplier] = filterShape;
    const [batch, outH, outW] = dy.shape;
    const spanH = (kh - 1) * g.dilationHeight + (outH - 1) * g.strideHeight + 1;
    const spanW = (kw - 1) * g.dilationWidth + (outW - 1) * g.strideWidth + 1;
    const xp = padOrCrop(x, g.padTop, spanH - g.inHeight - g.padTop, g.padLeft, spanW - g.inWidth - g.padLeft);
    const dyCM = tf.reshape(dy, [batch * outH * outW, channels, multiplier]);
    const taps: tf.Tensor[] = [];
    for (let p = 0; p < kh; p++) {
      for (let q = 0; q < kw; q++) {
        const top = p * g.dilationHeight;
        const left = q * g.dilationWidth;
        const window = tf.stridedSlice(
          xp,
          [0, top, left, 0],
          [batch, top + (outH - 1) * g.strideHeight + 1, left + (outW - 1) * g.strideWidth + 1, channels],
          [1, g.strideHeight, g.strideWidth, 1],
        );
        taps.push(tf.sum(tf.mul(tf.reshape(window, [batch * outH * outW, channels, 1]), dyCM), 0));
      }
    }
    return tf.reshape(tf.stack(taps), filterShape) as tf.Tensor4D;
  });
}

let installed = false;

/**
 * Replaces the engine's Conv2D and DepthwiseConv2dNative gradients with the ones above while
 * the active backend is wasm (which has neither depthwise backprop kernel, nor
 * `Conv2DBackpropFilter`); on any other backend the engine's own gradients run. Idempotent.
 *
 * Training code must differentiate `tf.conv2d`, not `tf.fused.conv2d`: the fused op's
 * gradient calls the backprop kernels directly, and wasm has no `Conv2DBackpropFilter`.
 */
export function installFastConvGradients(): void {
  if (installed) return;
  wrapGradient(tf.Conv2D, (dy, x, filter, g) => ({
    x: () => conv2dInputGradient(dy, filter, g),
    filter: () => conv2dFilterGradient(x, dy, g),
  }));
  wrapGradient(tf.DepthwiseConv2dNative, (dy, x, filter, g) => ({
    x: () => depthwiseConv2dInputGradient(dy, filter, g),
    filter: () => depthwiseConv2dFilterGradient(x, dy, filter.shape, g),
  }));
  installed = true;
}

type ConvGradFunc = (
  dy: tf.Tensor4D,
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  g: ConvGeometry,
) => { x: () => tf.Tensor; filter: () => tf.Tensor };

/** Registers `gradients` for `kernelName` on wasm, keeping the engine's own elsewhere. */
function wrapGradient(kernelName: string, gradients: ConvGradFunc): void {
  const original = tf.getGradient(kernelName);
  if (!original) throw new Error(`conv gradients: tfjs has no ${kernelName} gradient to wrap`);
  tf.registerGradient({
    kernelName,
    inputsToSave: ['x', 'filter'],
    gradFunc: (dy, saved, attrs) => {
      if (tf.getBackend() !== 'wasm') return original.gradFunc(dy, saved, attrs);
      const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
      const g = convGeometry(x.shape, filter.shape, attrs as unknown as Conv2DAttrs);
      return gradients(dy as tf.Tensor4D, x, filter, g);
    },
  });
}
