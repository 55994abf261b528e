/**
 * densestream's own kernels for the tfjs wasm backend (kernels.c, built by build.mjs): their
 * installation on a wasm backend, and the convolution filter gradient, leading-axis reductions
 * and block transposes (the layer kernels are in layer-kernels.ts, the Winograd convolutions in
 * winograd.ts, the other forward convolutions in direct-conv.ts, gathers and slices in copy-kernels.ts, Add, Sub, Multiply and RealDiv in
 * elementwise-kernels.ts, the view cut in cut-views.ts).
 *
 * XNNPACK has no convolution filter gradient; building it from a forward convolution with the
 * batch as channels leaves XNNPACK a [Ci·kh·kw × Co] output to split and a reduction of
 * B·Ho·Wo, which it runs at half its forward speed. A direct SIMD kernel blocked for L2, with
 * its work split over (tap, channel block) across the backend's threads, does better (docs/performance.md,
 * "Measured: densestream's own wasm kernels").
 *
 * The module imports the backend's own wasm memory, so a kernel reads its inputs and writes its
 * output where tfjs keeps them: nothing is copied.
 */
import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  active,
  currentInstall,
  fourByte,
  offset,
  override,
  overrideGradient,
  PARALLEL_MIN,
  setInstall,
  shareData,
  writeGeometry,
  type FilterGradientAttrs,
  type Installed,
  type KernelArgs,
  type WasmKernelBuild,
} from './kernel-registry.js';
import { registerCopyKernels } from './copy-kernels.js';
import { registerContrast } from './contrast.js';
import { registerCutViews } from './cut-views.js';
import { registerDirectConv } from './direct-conv.js';
import { registerElementwiseKernels } from './elementwise-kernels.js';
import { registerLayerKernels } from './layer-kernels.js';
import { registerPhaseKernels } from './phase-kernels.js';
import { registerUpdateKernels } from './update-kernels.js';
import { registerWinograd, winogradFilterGradient } from './winograd.js';
import {
  KERNELS_PLAIN_BASE64,
  KERNELS_PLAIN_RELAXED_BASE64,
  KERNELS_SHARED_BASE64,
  KERNELS_SHARED_RELAXED_BASE64,
} from './kernels-wasm.js';
import { KernelPool, poolSpinUs } from './pool.js';
import { webAssembly, type WasmMemory } from '../../core/webassembly.js';
import { relaxedSimdSupported } from '../relaxed-simd.js';

export {
  wasmKernelBuild,
  wasmKernelSpinUs,
  wasmKernelThreads,
  withKernelsAsleep,
  type FilterGradientAttrs,
  type WasmKernelBuild,
} from './kernel-registry.js';
export { relaxedSimdSupported } from '../relaxed-simd.js';

let registered = false;

/** The kernels' modules by build and by memory: shared for the threaded tfjs build, plain for the single-threaded one. */
const MODULES: Record<WasmKernelBuild, { shared: string; plain: string }> = {
  simd: { shared: KERNELS_SHARED_BASE64, plain: KERNELS_PLAIN_BASE64 },
  'relaxed-simd': { shared: KERNELS_SHARED_RELAXED_BASE64, plain: KERNELS_PLAIN_RELAXED_BASE64 },
};

/** Repeats a `[C]` tensor (attrs `rows`, `mean`) into `[rows·C]`: leading-axis Sum/Mean gradients. */
const BROADCAST_ROWS_KERNEL = 'DensestreamBroadcastRows';

/** Kernel name for a filter gradient with dilation (tfjs's Conv2DBackpropFilter has none). */
export const FILTER_GRADIENT_KERNEL = 'DensestreamConv2DFilterGradient';

interface EmscriptenModule {
  wasmMemory?: WasmMemory;
  asm?: { memory?: WasmMemory };
  _malloc(bytes: number): number;
}

/**
 * Instantiates the kernels on the active wasm backend's memory with `threads` parts (1 for the
 * single-threaded build) and registers them, in `build` (default: the one installed on this
 * backend, else `simd`); `relaxed-simd` needs a runtime that compiles it (`relaxedSimdSupported`).
 * Call after `tf.setBackend('wasm')`; idempotent for one backend instance, thread count and build.
 */
export async function installWasmKernels(threads: number, build?: WasmKernelBuild): Promise<WasmKernelBuild> {
  const backend = tf.backend() as BackendWasm;
  const installed = currentInstall();
  build ??= installed?.backend === backend ? installed.build : 'simd';
  if (build === 'relaxed-simd' && !relaxedSimdSupported())
    throw new Error(`wasm kernels: Node ${process.versions.node} does not compile the relaxed-SIMD build (Node 22 and later do)`);
  const module = backend.wasm as unknown as EmscriptenModule;
  const memory = module.wasmMemory ?? module.asm?.memory;
  if (!(memory instanceof webAssembly.Memory)) throw new Error('wasm kernels: the wasm backend exposes no memory');
  const shared = memory.buffer instanceof SharedArrayBuffer;
  const parts = shared ? Math.max(1, threads) : 1;
  if (installed?.backend === backend && installed.pool.parts === parts && installed.build === build) return build;
  // Threads beyond the cores would spin against the caller for a core: they sleep at once.
  const spinUs = parts <= availableParallelism() ? poolSpinUs() : 0;
  const compiled = await webAssembly.compile(Buffer.from(MODULES[build][shared ? 'shared' : 'plain'], 'base64'));
  const pool = await KernelPool.create(
    compiled,
    memory,
    [
      'conv2d_filter_grad',
      'conv2d_direct',
      'sum_leading',
      'binary_rows',
      'binary_middle',
      'transpose_blocks',
      'broadcast_rows',
      'bn_moments',
      'bn_apply',
      'bn_grad_sums',
      'bn_grad_apply',
      'relu_grad',
      'batch_matmul',
      'interleave_phases',
      'flip_filter',
      'exp_values',
      'relu_values',
      'winograd_filter',
      'winograd_conv',
      'winograd4_filter',
      'winograd4_conv',
      'winograd4_filter_grad',
      'winograd4_filter_grad_sum',
      'contrast_log_prob',
      'contrast_log_prob_grad',
      'winograd_filter_grad',
      'winograd_filter_grad_sum',
      'cut_views',
      'ema_values',
      'sgd_momentum',
    ],
    parts,
    spinUs,
  );
  await installed?.pool.close();
  const geometry = installed?.backend === backend ? installed.geometry : module._malloc(64);
  setInstall({ backend, pool, memory, geometry, build });
  if (!registered) {
    tf.registerKernel({ kernelName: FILTER_GRADIENT_KERNEL, backendName: 'wasm', kernelFunc: filterGradientKernel });
    // tfjs's own name, so that the engine's Conv2D gradient (fused convolutions too) runs on wasm.
    tf.registerKernel({ kernelName: tf.Conv2DBackpropFilter, backendName: 'wasm', kernelFunc: backpropFilterKernel });
    overrideReduction(tf.Sum, false);
    overrideReduction(tf.Mean, true);
    tf.registerKernel({ kernelName: BROADCAST_ROWS_KERNEL, backendName: 'wasm', kernelFunc: broadcastRowsKernel });
    reductionGradient(tf.Sum, false);
    reductionGradient(tf.Mean, true);
    registerElementwiseKernels();
    override(tf.Transpose, blockTranspose);
    registerCopyKernels();
    registerLayerKernels();
    registerPhaseKernels();
    registerDirectConv(); // before Winograd, which then tries its 3×3 stride-1 shapes first
    registerWinograd();
    registerCutViews();
    registerUpdateKernels();
    registerContrast();
    // A cast to the dtype a tensor already has shares its data (wasm's copies every byte: the
    // ReLU gradient's cast of a float Step cost 11 ms a MoCo v2 step).
    override(tf.Cast, ({ inputs, attrs }, k) => {
      const { x } = inputs as { x: tf.TensorInfo };
      return x.dtype === (attrs as unknown as tf.CastAttrs).dtype && x.dtype !== 'string' ? shareData(k, x) : undefined;
    });
    // Identity shares the data, as the cpu backend's does: tensors are immutable, and wasm's
    // own Identity copies every byte (a quarter of a millisecond per activation here).
    override(tf.Identity, ({ inputs }, k) => {
      const { x } = inputs as { x: tf.TensorInfo };
      return x.dtype === 'string' ? undefined : shareData(k, x);
    });
    registered = true;
  }
  return build;
}

/** x [B,H,W,Ci], dy [B,Ho,Wo,Co] → dW [kh,kw,Ci,Co]. */
function filterGradient(k: Installed, x: tf.TensorInfo, dy: tf.TensorInfo, a: FilterGradientAttrs): tf.TensorInfo {
  if (x.dtype !== 'float32' || dy.dtype !== 'float32') throw new Error('wasm kernels: the filter gradient takes float32');
  const winograd = winogradFilterGradient(k, x, dy, a);
  if (winograd !== undefined) return winograd;
  const [batch, inH, inW, inC] = x.shape as number[];
  const [, outH, outW, outC] = dy.shape as number[];
  const out = k.backend.makeOutput([a.filterHeight, a.filterWidth, inC!, outC!], 'float32');
  const geometry = [
    batch!,
    inH!,
    inW!,
    inC!,
    outH!,
    outW!,
    outC!,
    a.filterHeight,
    a.filterWidth,
    a.strideHeight,
    a.strideWidth,
    a.dilationHeight,
    a.dilationWidth,
    a.padTop,
    a.padLeft,
    0, // the work-item counter the threads claim from
  ];
  writeGeometry(k, geometry);
  k.pool.run('conv2d_filter_grad', [k.geometry, offset(k, x), offset(k, dy), offset(k, out)]);
  return out;
}

const filterGradientKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  return filterGradient(active(backend), x, dy, attrs as unknown as FilterGradientAttrs);
};

const backpropFilterKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  if (dataFormat !== 'NHWC') throw new Error(`wasm kernels: dataFormat ${dataFormat} is not supported, use NHWC`);
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    'channelsLast',
  );
  return filterGradient(active(backend), x, dy, {
    strideHeight: info.strideHeight,
    strideWidth: info.strideWidth,
    dilationHeight: 1,
    dilationWidth: 1,
    padTop: info.padInfo.top,
    padLeft: info.padInfo.left,
    filterHeight: info.filterHeight,
    filterWidth: info.filterWidth,
  });
};

/**
 * Takes over wasm's Sum or Mean for float32 reductions over leading axes (the batch-norm and
 * bias-gradient shapes); every other reduction goes to the kernel it replaces.
 */
function overrideReduction(kernelName: string, mean: boolean): void {
  override(kernelName, (args, k) => leadingReduction(args, k, mean));
}

/** `[0…k−1]` when `axis` names a proper prefix of `shape`'s axes, else undefined. */
function leadingAxes(axis: number | number[], shape: readonly number[]): number | undefined {
  if (shape.length < 2) return undefined;
  const axes = [...new Set(tf.util.parseAxisParam(axis, [...shape]))].sort((a, b) => a - b);
  const k = axes.length;
  if (k === 0 || k >= shape.length || axes.some((a, i) => a !== i)) return undefined;
  return k;
}

/**
 * The gradient of a leading-axis Sum or Mean on wasm: dy repeated over the reduced rows by one
 * kernel, instead of tfjs's product with a ones tensor built in JavaScript.
 */
function reductionGradient(kernelName: string, mean: boolean): void {
  overrideGradient(kernelName, (g, x, attrs) => {
    const k = leadingAxes((attrs as unknown as tf.SumAttrs).axis, x.shape);
    if (k === undefined) return undefined;
    const rows = tf.util.sizeFromShape(x.shape.slice(0, k));
    return {
      x: () => {
        const row = tf.reshape(g, [g.size]);
        const flat = tf.engine().runKernel(BROADCAST_ROWS_KERNEL, { x: row }, { rows, mean } as unknown as tf.NamedAttrMap) as tf.Tensor;
        return tf.reshape(flat, x.shape);
      },
    };
  });
}

const broadcastRowsKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const k = active(backend);
  const { x } = inputs as { x: tf.TensorInfo };
  const { rows, mean } = attrs as unknown as { rows: number; mean: boolean };
  const cols = tf.util.sizeFromShape(x.shape);
  const out = k.backend.makeOutput([rows * cols], 'float32');
  if (rows * cols > 0) k.pool.run('broadcast_rows', [offset(k, x), offset(k, out), rows, cols, mean ? 1 : 0], rows * cols >= PARALLEL_MIN);
  return out;
};

function leadingReduction({ inputs, attrs }: KernelArgs, installed: Installed, mean: boolean): tf.TensorInfo | undefined {
  const { x } = inputs as { x: tf.TensorInfo };
  const { axis, keepDims } = attrs as unknown as tf.SumAttrs;
  const shape = x.shape;
  const lead = leadingAxes(axis, shape);
  if (x.dtype !== 'float32' || lead === undefined) return undefined;
  const rows = tf.util.sizeFromShape(shape.slice(0, lead));
  const cols = tf.util.sizeFromShape(shape.slice(lead));
  if (rows === 0 || cols === 0) return undefined;
  const outShape = keepDims ? shape.map((d, i) => (i < lead ? 1 : d)) : shape.slice(lead);
  const out = installed.backend.makeOutput(outShape, 'float32');
  installed.pool.run('sum_leading', [offset(installed, x), offset(installed, out), rows, cols, mean ? 1 : 0]);
  return out;
}

/**
 * A Transpose that moves one block of adjacent axes before the next, `[outer, X, Y, inner]` →
 * `[outer, Y, X, inner]`, as `transpose_blocks`; other permutations go to the engine.
 */
function blockTranspose({ inputs, attrs }: KernelArgs, installed: Installed): tf.TensorInfo | undefined {
  const { x } = inputs as { x: tf.TensorInfo };
  const { perm } = attrs as unknown as tf.TransposeAttrs;
  if (!fourByte(x)) return undefined;
  const split = blockSwap(perm);
  if (split === undefined) return undefined;
  const [a, b, c] = split;
  const size = (from: number, to: number) => tf.util.sizeFromShape(x.shape.slice(from, to));
  const outer = size(0, a);
  const nx = size(a, b);
  const ny = size(b, c);
  const inner = size(c, x.shape.length);
  const out = installed.backend.makeOutput(
    perm.map((p) => x.shape[p]!),
    x.dtype,
  );
  if (outer * nx * ny * inner === 0) return out;
  installed.pool.run(
    'transpose_blocks',
    [offset(installed, x), offset(installed, out), outer, nx, ny, inner],
    outer * nx * ny * inner >= PARALLEL_MIN,
  );
  return out;
}

/**
 * For `perm = [0…a−1, b…c−1, a…b−1, c…]` returns [a, b, c]; undefined for any other
 * permutation (and for the identity).
 */
export function blockSwap(perm: readonly number[]): [number, number, number] | undefined {
  let a = 0;
  while (a < perm.length && perm[a] === a) a++;
  if (a === perm.length) return undefined;
  let c = perm.length;
  while (perm[c - 1] === c - 1) c--;
  const b = perm[a]!;
  if (b <= a || b >= c) return undefined;
  for (let k = 0; k < c - b; k++) if (perm[a + k] !== b + k) return undefined;
  for (let k = 0; k < b - a; k++) if (perm[a + (c - b) + k] !== a + k) return undefined;
  return [a, b, c];
}
