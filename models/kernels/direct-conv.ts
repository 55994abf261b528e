/**
 * The convolutions Winograd does not take (strided or dilated ones, 1×1 and other filters than
 * 3×3, the phases of a strided convolution's input gradient, `conv-gradients.ts`), summed directly
 * by densestream's kernel (kernels.c: `conv2d_direct`) in place of tfjs's wasm Conv2D, XNNPACK's,
 * which ships prebuilt without fused multiply-adds (docs/performance.md, "Measured: the direct
 * convolution").
 */
import * as tf from '@tensorflow/tfjs';
import { convShapeWords, nhwcConvInfo } from './conv-info.js';
import { offset, override, PARALLEL_MIN, writeGeometry, type Installed, type KernelArgs } from './kernel-registry.js';

/**
 * Whether the direct kernel takes its convolutions: yes unless DENSESTREAM_DIRECT_CONV=0, which
 * leaves them to XNNPACK (what `bench conv --set direct` compares against, and a way to bisect). Read per call.
 */
export function directConvEnabled(): boolean {
  return process.env['DENSESTREAM_DIRECT_CONV'] !== '0';
}

/** x [B,H,W,Ci] ⊛ filter [kh,kw,Ci,Co], or undefined for a convolution XNNPACK keeps (Co not a multiple of 4, NCHW, not float32). */
function directConv({ inputs, attrs }: KernelArgs, k: Installed): tf.TensorInfo | undefined {
  const { x, filter } = inputs as { x: tf.TensorInfo; filter: tf.TensorInfo };
  const a = attrs as unknown as tf.Conv2DAttrs;
  if (x.dtype !== 'float32' || filter.dtype !== 'float32' || a.dataFormat !== 'NHWC' || !directConvEnabled()) return undefined;
  const [kh, kw, , outC] = filter.shape as [number, number, number, number];
  if (outC % 4 !== 0) return undefined;
  const info = nhwcConvInfo(x.shape, filter.shape, a);
  const out = k.backend.makeOutput([info.batchSize, info.outHeight, info.outWidth, outC], 'float32');
  if (tf.util.sizeFromShape(out.shape) === 0) return out;
  writeGeometry(k, [
    ...convShapeWords(info),
    kh,
    kw,
    info.strideHeight,
    info.strideWidth,
    info.dilationHeight,
    info.dilationWidth,
    info.padInfo.top,
    info.padInfo.left,
    0, // the work-item counter the threads claim from
  ]);
  k.pool.run(
    'conv2d_direct',
    [k.geometry, offset(k, x), offset(k, filter), offset(k, out)],
    tf.util.sizeFromShape(out.shape) >= PARALLEL_MIN,
  );
  return out;
}

/** Puts the direct convolution in front of wasm's Conv2D; `registerWinograd`, called after, goes in front of it. */
export function registerDirectConv(): void {
  override(tf.Conv2D, directConv);
}
