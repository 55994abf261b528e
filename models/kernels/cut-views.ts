/**
 * The one-pass view cut (core/cut-views-kernel.ts) on the wasm backend (kernels.c: `cut_views`).
 * The op graph it replaces (crop-and-resize, blur, the per-view colour product, clamp, round,
 * solarize, normalisation) ran ten kernels a view index, most of them scalar loops, on the main
 * thread between steps: about 8 % of a MoCo v2 step on Fashion-MNIST, all of it data wait.
 */
import * as tf from '@tensorflow/tfjs';
import { CUT_VIEWS_KERNEL, cutViewParams } from '../../core/index.js';
import { active, offset, writeGeometry } from './kernel-registry.js';

const cutViewsKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const k = active(backend);
  const { sources, params, weights } = inputs as { sources: tf.TensorInfo; params: tf.TensorInfo; weights?: tf.TensorInfo };
  const {
    size,
    taps,
    band = 0,
    framedHeight: fhAttr,
    framedWidth: fwAttr,
  } = attrs as unknown as {
    size: number;
    taps: number;
    band?: number;
    framedHeight?: number;
    framedWidth?: number;
  };
  // float32 [B, H+2, W+2, 3], or int32 [B, words]: each framed image's bytes, four to a word (the dims as attributes)
  const bytes = sources.dtype === 'int32';
  const [batch, framedHeight, framedWidth, channels] = (bytes ? [sources.shape[0], fhAttr, fwAttr, 3] : sources.shape) as [
    number,
    number,
    number,
    number,
  ];
  if (bytes && (sources.shape.length !== 2 || sources.shape[1] !== Math.ceil((framedHeight * framedWidth * 3) / 4))) {
    throw new Error(`wasm kernels: cut_views' byte sources must be [B, ⌈${framedHeight}·${framedWidth}·3 / 4⌉] words`);
  }
  if ((!bytes && sources.dtype !== 'float32') || params.dtype !== 'float32' || (weights !== undefined && weights.dtype !== 'float32')) {
    throw new Error('wasm kernels: cut_views takes float32 (or packed bytes for the sources)');
  }
  if (channels !== 3 || taps < 1 || taps % 2 !== 1 || !(size >= 1)) {
    throw new Error(`wasm kernels: cut_views needs RGB sources, an odd tap count and a size (got ${channels}, ${taps}, ${size})`);
  }
  if (tf.util.sizeFromShape(params.shape) !== 6 + batch * cutViewParams(taps)) {
    throw new Error(`wasm kernels: cut_views has ${tf.util.sizeFromShape(params.shape)} params for ${batch} views of ${taps} taps`);
  }
  if (
    weights !== undefined &&
    (taps !== 1 ||
      !(band >= 1 && band <= Math.min(framedHeight, framedWidth)) ||
      tf.util.sizeFromShape(weights.shape) !== batch * 2 * size * (band + 2))
  ) {
    throw new Error(
      `wasm kernels: cut_views needs [${batch}·2·${size}·(band + 2)] weights of a band within the image, and no separate blur`,
    );
  }
  const out = k.backend.makeOutput([batch, size, size, 3], 'float32');
  if (batch === 0) return out;
  const parallel = batch > 1;
  const parts = parallel ? k.pool.parts : 1;
  // + 4: the resampling's last vector read may reach a float past the last part's rows
  const scratch = k.backend.makeOutput([parts * (2 * size * size * 3 + size * framedWidth * 3) + 4], 'float32');
  try {
    writeGeometry(k, [batch, framedHeight, framedWidth, size, taps, 0, band, bytes ? 1 : 0]); // 0: the views' claim counter
    const weightsAt = weights === undefined ? 0 : offset(k, weights);
    k.pool.run('cut_views', [k.geometry, offset(k, sources), offset(k, params), offset(k, out), offset(k, scratch), weightsAt], parallel);
  } finally {
    k.backend.disposeData(scratch.dataId);
  }
  return out;
};

/** Registers the kernel for wasm (installWasmKernels calls it once). */
export function registerCutViews(): void {
  tf.registerKernel({ kernelName: CUT_VIEWS_KERNEL, backendName: 'wasm', kernelFunc: cutViewsKernel });
}
