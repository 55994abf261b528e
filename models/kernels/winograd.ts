/**
 * 3×3 stride-1 convolutions and their filter gradients on the wasm backend by Winograd's
 * F(4×4, 3×3) and F(2×2, 3×3) (kernels.c: `winograd4_*`, `winograd_*`). Our direct convolution
 * and filter gradient sum directly; these convolutions, forward, as the
 * input gradients `conv-gradients.ts` builds from them, and as filter gradients, are most of a
 * ResNet step. F(2×2) does their products with 2.25× fewer multiplies, F(4×4) with 4× fewer and
 * rounds a little worse (docs/performance.md, "Measured: Winograd convolutions"); each shape takes the one
 * that needs fewer products. Other convolutions, and channel counts that are not multiples of 4,
 * go to the direct convolution (`direct-conv.ts`; XNNPACK's where the output channels are not in
 * fours) and the direct filter gradient.
 */
import * as tf from '@tensorflow/tfjs';
import { convShapeWords, nhwcConvInfo } from './conv-info.js';
import {
  offset,
  override,
  PARALLEL_MIN,
  writeGeometry,
  type FilterGradientAttrs,
  type Installed,
  type KernelArgs,
} from './kernel-registry.js';

/**
 * Whether the Winograd kernels take their convolutions: yes unless the environment sets
 * DENSESTREAM_WINOGRAD=0, which leaves them to the direct convolution and filter gradient (the
 * baseline `bench train --kernels all` compares against, and a way to bisect). Read per call.
 */
export function winogradEnabled(): boolean {
  return process.env['DENSESTREAM_WINOGRAD'] !== '0';
}

/**
 * Whether convolutions and filter gradients may take F(4×4, 3×3): yes unless
 * DENSESTREAM_WINOGRAD=2, which keeps every one on F(2×2) (`bench conv` compares them). Read per call.
 */
function f4Enabled(): boolean {
  return process.env['DENSESTREAM_WINOGRAD'] !== '2';
}

/** Scratch per thread for one block of tiles (its input and product transforms), sized to sit in L2. */
const BLOCK_BYTES = 256 * 1024;

/**
 * Tiles per work item: as many as BLOCK_BYTES holds, a multiple of 4 in [4, 64], for F(2×2)'s
 * 16 transform points or F(4×4)'s 36. F(4×4) takes at least 16 tiles: each item reads all of
 * U [36, Ci, Co], 2.4 MB at 128 channels, and fewer tiles would not pay for that read.
 */
export function winogradBlock(inC: number, outC: number, points: 16 | 36 = 16): number {
  const fit = Math.floor(BLOCK_BYTES / (points * 4 * (inC + outC)));
  return Math.max(points === 36 ? 16 : 4, Math.min(64, fit - (fit % 4)));
}

/** F(4×4) where its 36 products per 4×4 tile are fewer than F(2×2)'s 16 per 2×2 tile: not for maps 1–2 pixels high or wide, nor ties such as 5×5 and 6×6. */
function takesF4(outH: number, outW: number): boolean {
  return f4Enabled() && 36 * Math.ceil(outH / 4) * Math.ceil(outW / 4) < 16 * Math.ceil(outH / 2) * Math.ceil(outW / 2);
}

/**
 * The engine's geometry of a Conv2D when the Winograd kernel takes it (float32, NHWC, a 3×3
 * filter, stride and dilation 1, Ci and Co multiples of 4), else undefined.
 */
export function winogradGeometry(
  xShape: readonly number[],
  filterShape: readonly number[],
  attrs: tf.Conv2DAttrs,
): tf.backend_util.Conv2DInfo | undefined {
  const [kh, kw, inC, outC] = filterShape as [number, number, number, number];
  if (attrs.dataFormat !== 'NHWC' || kh !== 3 || kw !== 3 || inC % 4 !== 0 || outC % 4 !== 0) return undefined;
  const info = nhwcConvInfo(xShape, filterShape, attrs);
  const unit = info.strideHeight === 1 && info.strideWidth === 1 && info.dilationHeight === 1 && info.dilationWidth === 1;
  return unit ? info : undefined;
}

/** x [B,H,W,Ci] ⊛ filter [3,3,Ci,Co], or undefined for a convolution the direct kernel (or XNNPACK) takes. */
function winogradConv({ inputs, attrs }: KernelArgs, k: Installed): tf.TensorInfo | undefined {
  const { x, filter } = inputs as { x: tf.TensorInfo; filter: tf.TensorInfo };
  if (x.dtype !== 'float32' || filter.dtype !== 'float32' || !winogradEnabled()) return undefined;
  const info = winogradGeometry(x.shape, filter.shape, attrs as unknown as tf.Conv2DAttrs);
  if (info === undefined) return undefined;
  const [, , inC, outC] = filter.shape as [number, number, number, number];
  const out = k.backend.makeOutput([info.batchSize, info.outHeight, info.outWidth, outC], 'float32');
  if (tf.util.sizeFromShape(out.shape) === 0) return out;
  const f4 = takesF4(info.outHeight, info.outWidth);
  const points = f4 ? 36 : 16;
  const block = winogradBlock(inC, outC, points);
  const u = k.backend.makeOutput([points * inC * outC], 'float32');
  const scratch = k.backend.makeOutput([k.pool.parts * points * block * (inC + outC)], 'float32');
  try {
    const geometry = [...convShapeWords(info), info.padInfo.top, info.padInfo.left, block, 0];
    writeGeometry(k, geometry);
    k.pool.run(f4 ? 'winograd4_filter' : 'winograd_filter', [k.geometry, offset(k, filter), offset(k, u)], 9 * inC * outC >= PARALLEL_MIN);
    k.pool.run(
      f4 ? 'winograd4_conv' : 'winograd_conv',
      [k.geometry, offset(k, x), offset(k, u), offset(k, out), offset(k, scratch)],
      tf.util.sizeFromShape(out.shape) >= PARALLEL_MIN,
    );
  } finally {
    k.backend.disposeData(u.dataId);
    k.backend.disposeData(scratch.dataId);
  }
  return out;
}

/** Tiles per work item of the filter gradient: its scratch adds a [points, Ci, Co] sum per thread, and longer blocks amortise its reads. */
function gradientBlock(inC: number, outC: number, points: 16 | 36): number {
  return Math.max(16, winogradBlock(inC, outC, points));
}

/**
 * The filter gradient dW [3,3,Ci,Co] of a 3×3 stride-1 convolution (x [B,H,W,Ci], dy
 * [B,Ho,Wo,Co], padding as given), or undefined where the direct kernel keeps it.
 */
export function winogradFilterGradient(
  k: Installed,
  x: tf.TensorInfo,
  dy: tf.TensorInfo,
  a: FilterGradientAttrs,
): tf.TensorInfo | undefined {
  const [batch, inH, inW, inC] = x.shape as [number, number, number, number];
  const [, outH, outW, outC] = dy.shape as [number, number, number, number];
  const unit = a.strideHeight === 1 && a.strideWidth === 1 && a.dilationHeight === 1 && a.dilationWidth === 1;
  if (
    !winogradEnabled() ||
    !unit ||
    a.filterHeight !== 3 ||
    a.filterWidth !== 3 ||
    inC % 4 !== 0 ||
    outC % 4 !== 0 ||
    batch * outH * outW === 0
  )
    return undefined;
  const f4 = takesF4(outH, outW);
  const points = f4 ? 36 : 16;
  const block = gradientBlock(inC, outC, points);
  const parallel = batch * outH * outW * outC >= PARALLEL_MIN;
  const used = parallel ? k.pool.parts : 1;
  const dw = k.backend.makeOutput([3, 3, inC, outC], 'float32');
  const scratch = k.backend.makeOutput([used * points * (block * (inC + outC) + inC * outC)], 'float32');
  const name = f4 ? 'winograd4_filter_grad' : 'winograd_filter_grad';
  try {
    const geometry = [batch, inH, inW, inC, outH, outW, outC, a.padTop, a.padLeft, block, 0];
    writeGeometry(k, geometry);
    k.pool.run(name, [k.geometry, offset(k, x), offset(k, dy), offset(k, scratch)], parallel);
    k.pool.run(`${name}_sum`, [k.geometry, offset(k, scratch), offset(k, dw), used], 9 * inC * outC >= PARALLEL_MIN);
  } finally {
    k.backend.disposeData(scratch.dataId);
  }
  return dw;
}

/** Puts the Winograd convolution in front of wasm's Conv2D (installWasmKernels calls it once). */
export function registerWinograd(): void {
  override(tf.Conv2D, winogradConv);
}
