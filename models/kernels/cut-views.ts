/**
 * The one-pass view cut (core/cut-views-kernel.ts) on the wasm backend (kernels.c: `cut_views`).
 * The op graph it replaces (the resampling products, the per-view colour product, clamp, round,
 * solarize, normalisation) ran ten kernels a view index, most of them scalar loops, on the main
 * thread between steps: about 8 % of a MoCo v2 step on Fashion-MNIST, all of it data wait.
 */
import * as tf from '@tensorflow/tfjs';
import { CUT_VIEWS_KERNEL, CUT_VIEW_PARAMS } from '../../core/index.js';
import { active, offset, writeGeometry } from './kernel-registry.js';

const cutViewsKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const k = active(backend);
  const { sources, params, weights, layout } = inputs as {
    sources: tf.TensorInfo;
    params: tf.TensorInfo;
    weights: tf.TensorInfo;
    layout?: tf.TensorInfo;
  };
  const { size, band } = attrs as unknown as { size: number; band: number };
  // float32 [B, H, W, 3] of one size; or int32 words of bytes, images of any sizes, with
  // `layout` [B, 3]: each image's first word, height and width
  let batch: number, channels: number;
  // the tallest and the widest image: the scratch holds a view's row pass over the widest, and
  // with bytes the tallest × widest image as float32
  let [tallest, widest] = [0, 0];
  if (layout) {
    if (sources.dtype !== 'int32' || layout.dtype !== 'int32' || sources.shape.length !== 1 || layout.shape[1] !== 3) {
      throw new Error('wasm kernels: cut_views takes byte sources as int32 words with an int32 [B, 3] layout');
    }
    [batch, channels] = [layout.shape[0] as number, 3];
    const rows = new Int32Array(k.memory.buffer, offset(k, layout), batch * 3);
    const words = sources.shape[0] as number;
    for (let b = 0; b < batch; b++) {
      const [first, h, w] = [rows[b * 3] as number, rows[b * 3 + 1] as number, rows[b * 3 + 2] as number];
      if (!(first >= 0 && h >= 1 && w >= 1 && first + Math.ceil((h * w * 3) / 4) <= words)) {
        throw new Error(`wasm kernels: cut_views' image ${b} (word ${first}, ${h}×${w}) is not within its ${words} words`);
      }
      [tallest, widest] = [Math.max(tallest, h), Math.max(widest, w)];
    }
  } else {
    if (sources.dtype !== 'float32') throw new Error('wasm kernels: cut_views takes float32 sources, or bytes with a layout');
    [batch, tallest, widest, channels] = sources.shape as [number, number, number, number];
  }
  if (params.dtype !== 'float32' || weights.dtype !== 'float32') {
    throw new Error('wasm kernels: cut_views takes float32 params and weights');
  }
  if (channels !== 3 || !(size >= 1)) {
    throw new Error(`wasm kernels: cut_views needs RGB sources and a size (got ${channels}, ${size})`);
  }
  if (tf.util.sizeFromShape(params.shape) !== 6 + batch * CUT_VIEW_PARAMS) {
    throw new Error(`wasm kernels: cut_views has ${tf.util.sizeFromShape(params.shape)} params for ${batch} views`);
  }
  if (!(band >= 1) || tf.util.sizeFromShape(weights.shape) !== batch * 2 * size * (band + 2)) {
    throw new Error(`wasm kernels: cut_views needs [${batch}·2·${size}·(band + 2)] weights of a band of at least 1`);
  }
  const out = k.backend.makeOutput([batch, size, size, 3], 'float32');
  if (batch === 0) return out;
  const parallel = batch > 1;
  const parts = parallel ? k.pool.parts : 1;
  // + 4: the resampling's last vector read may reach a float past the last part's rows
  const converted = layout ? tallest * widest * 3 : 0;
  const scratch = k.backend.makeOutput([parts * (size * size * 3 + size * widest * 3 + converted) + 4], 'float32');
  try {
    writeGeometry(k, [batch, tallest, widest, size, 0, band]); // 0: the views' claim counter
    k.pool.run(
      'cut_views',
      [
        k.geometry,
        offset(k, sources),
        offset(k, params),
        offset(k, out),
        offset(k, scratch),
        offset(k, weights),
        layout ? offset(k, layout) : 0,
      ],
      parallel,
    );
  } finally {
    k.backend.disposeData(scratch.dataId);
  }
  return out;
};

/** Registers the kernel for wasm (installWasmKernels calls it once). */
export function registerCutViews(): void {
  tf.registerKernel({ kernelName: CUT_VIEWS_KERNEL, backendName: 'wasm', kernelFunc: cutViewsKernel });
}
