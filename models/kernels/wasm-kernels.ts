/**
 * densestream's own kernels for the tfjs wasm backend (kernels.c, built by build.mjs).
 *
 * XNNPACK has no convolution filter gradient; building it from a forward convolution with the
 * batch as channels leaves XNNPACK a [Ci·kh·kw × Co] output to split and a reduction of
 * B·Ho·Wo, which it runs at half its forward speed. A direct SIMD kernel blocked for L2, with
 * its work split over (tap, channel block) across the backend's threads, does better (README,
 * "Measured: the engine").
 *
 * The module imports the backend's own wasm memory, so a kernel reads its inputs and writes its
 * output where tfjs keeps them: nothing is copied.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { KERNELS_PLAIN_BASE64, KERNELS_SHARED_BASE64 } from './kernels-wasm.js';
import { KernelPool } from './pool.js';
import { webAssembly, type WasmMemory } from './webassembly.js';

/** Repeats a `[C]` tensor (attrs `rows`, `mean`) into `[rows·C]`: leading-axis Sum/Mean gradients. */
const BROADCAST_ROWS_KERNEL = 'DensestreamBroadcastRows';

/**
 * Training-mode batch norm over the leading axes: inputs `x [..., C]`, `gamma`, `beta` `[C]`,
 * attr `epsilon`; outputs `[y, mean, variance]` (`models/batch-norm.ts` calls it).
 */
export const BATCH_NORM_KERNEL = 'DensestreamBatchNorm';

/** Its gradient: inputs dy, x, mean, variance, gamma and optionally dmean, dvariance; outputs `[dx, dgamma, dbeta]`. */
const BATCH_NORM_GRAD_KERNEL = 'DensestreamBatchNormGrad';

/**
 * The phases of a strided convolution's input gradient, inputs `p0 … p(sh·sw−1)` `[B,Hp,Wp,C]`
 * (row phase major), attrs `sh`, `sw`: woven into `[B, Hp·sh, Wp·sw, C]` (`conv-gradients.ts`).
 */
export const INTERLEAVE_KERNEL = 'DensestreamInterleavePhases';

/** The ReLU gradient in one pass: inputs dy, x; dx = dy where x > 0. */
const RELU_GRAD_KERNEL = 'DensestreamReluGrad';

/** Kernel name for a filter gradient with dilation (tfjs's Conv2DBackpropFilter has none). */
export const FILTER_GRADIENT_KERNEL = 'DensestreamConv2DFilterGradient';

/** The convolution geometry a filter-gradient call needs, NHWC. */
export interface FilterGradientAttrs {
  strideHeight: number;
  strideWidth: number;
  dilationHeight: number;
  dilationWidth: number;
  padTop: number;
  padLeft: number;
  filterHeight: number;
  filterWidth: number;
}

interface EmscriptenModule {
  wasmMemory?: WasmMemory;
  asm?: { memory?: WasmMemory };
  _malloc(bytes: number): number;
}

interface Installed {
  backend: BackendWasm;
  pool: KernelPool;
  memory: WasmMemory;
  /** 16 int32 of the backend's heap that carry a call's geometry and its work-item counter. */
  geometry: number;
}

let installed: Installed | undefined;
let registered = false;

/** Threads the kernels run on for the active wasm backend; 0 when not installed there. */
export function wasmKernelThreads(): number {
  return installed !== undefined && tf.getBackend() === 'wasm' && tf.backend() === installed.backend ? installed.pool.parts : 0;
}

/**
 * Instantiates the kernels on the active wasm backend's memory with `threads` parts (1 for the
 * single-threaded build) and registers them. Call after `tf.setBackend('wasm')`; idempotent
 * for one backend instance and thread count.
 */
export async function installWasmKernels(threads: number): Promise<void> {
  const backend = tf.backend() as BackendWasm;
  const module = backend.wasm as unknown as EmscriptenModule;
  const memory = module.wasmMemory ?? module.asm?.memory;
  if (!(memory instanceof webAssembly.Memory)) throw new Error('wasm kernels: the wasm backend exposes no memory');
  const shared = memory.buffer instanceof SharedArrayBuffer;
  const parts = shared ? Math.max(1, threads) : 1;
  if (installed?.backend === backend && installed.pool.parts === parts) return;
  const compiled = await webAssembly.compile(Buffer.from(shared ? KERNELS_SHARED_BASE64 : KERNELS_PLAIN_BASE64, 'base64'));
  const pool = await KernelPool.create(
    compiled,
    memory,
    [
      'conv2d_filter_grad',
      'sum_leading',
      'binary_rows',
      'transpose_blocks',
      'broadcast_rows',
      'bn_moments',
      'bn_apply',
      'bn_grad_sums',
      'bn_grad_apply',
      'relu_grad',
      'batch_matmul',
      'interleave_phases',
      'exp_values',
      'relu_values',
    ],
    parts,
  );
  await installed?.pool.close();
  const geometry = installed?.backend === backend ? installed.geometry : module._malloc(64);
  installed = { backend, pool, memory, geometry };
  if (!registered) {
    tf.registerKernel({ kernelName: FILTER_GRADIENT_KERNEL, backendName: 'wasm', kernelFunc: filterGradientKernel });
    // tfjs's own name, so that the engine's Conv2D gradient (fused convolutions too) runs on wasm.
    tf.registerKernel({ kernelName: tf.Conv2DBackpropFilter, backendName: 'wasm', kernelFunc: backpropFilterKernel });
    overrideReduction(tf.Sum, false);
    overrideReduction(tf.Mean, true);
    tf.registerKernel({ kernelName: BROADCAST_ROWS_KERNEL, backendName: 'wasm', kernelFunc: broadcastRowsKernel });
    reductionGradient(tf.Sum, false);
    reductionGradient(tf.Mean, true);
    BINARY_OPS.forEach((kernelName, op) => overrideBinary(kernelName, op));
    override(tf.Transpose, blockTranspose);
    override(tf.BatchMatMul, batchedMatMul);
    // eˣ on both cores with SIMD (kernels.c: within 2 ulp, results below 2⁻¹²⁶ flushed to 0).
    overrideUnary(tf.Exp, 'exp_values');
    overrideUnary(tf.Relu, 'relu_values');
    tf.registerKernel({ kernelName: BATCH_NORM_KERNEL, backendName: 'wasm', kernelFunc: batchNormKernel });
    tf.registerKernel({ kernelName: BATCH_NORM_GRAD_KERNEL, backendName: 'wasm', kernelFunc: batchNormGradKernel });
    tf.registerGradient({
      kernelName: BATCH_NORM_KERNEL,
      inputsToSave: ['x', 'gamma'],
      outputsToSave: [false, true, true],
      gradFunc: batchNormGradient,
    });
    tf.registerKernel({ kernelName: RELU_GRAD_KERNEL, backendName: 'wasm', kernelFunc: reluGradKernel });
    tf.registerKernel({ kernelName: INTERLEAVE_KERNEL, backendName: 'wasm', kernelFunc: interleaveKernel });
    tf.registerGradient({ kernelName: INTERLEAVE_KERNEL, gradFunc: interleaveGradient });
    reluGradient();
    // A cast to the dtype a tensor already has shares its data (wasm's copies every byte: the
    // ReLU gradient's cast of a float Step cost 11 ms a MoCo v2 step).
    override(tf.Cast, ({ inputs, attrs }, k) => {
      const { x } = inputs as { x: tf.TensorInfo };
      if (x.dtype !== (attrs as unknown as tf.CastAttrs).dtype || x.dtype === 'string') return undefined;
      k.backend.incRef(x.dataId);
      return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
    });
    // Identity shares the data, as the cpu backend's does: tensors are immutable, and wasm's
    // own Identity copies every byte (a quarter of a millisecond per activation here).
    override(tf.Identity, ({ inputs }, k) => {
      const { x } = inputs as { x: tf.TensorInfo };
      if (x.dtype === 'string') return undefined;
      k.backend.incRef(x.dataId);
      return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
    });
    registered = true;
  }
}

/** The kernels when they are installed on `backend`, else undefined (the engine's kernels run). */
function installedOn(backend: unknown): Installed | undefined {
  return installed !== undefined && installed.backend === backend ? installed : undefined;
}

function active(backend: unknown): Installed {
  const k = installedOn(backend);
  if (k === undefined) throw new Error('wasm kernels: not installed on this wasm backend (selectBackend installs them)');
  return k;
}

function offset(k: Installed, t: tf.TensorInfo): number {
  return k.backend.dataIdMap.get(t.dataId)!.memoryOffset;
}

/** x [B,H,W,Ci], dy [B,Ho,Wo,Co] → dW [kh,kw,Ci,Co]. */
function filterGradient(k: Installed, x: tf.TensorInfo, dy: tf.TensorInfo, a: FilterGradientAttrs): tf.TensorInfo {
  const [batch, inH, inW, inC] = x.shape as number[];
  const [, outH, outW, outC] = dy.shape as number[];
  const out = k.backend.makeOutput([a.filterHeight, a.filterWidth, inC!, outC!], 'float32');
  if (x.dtype !== 'float32' || dy.dtype !== 'float32') throw new Error('wasm kernels: the filter gradient takes float32');
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
  new Int32Array(k.memory.buffer, k.geometry, geometry.length).set(geometry);
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

type KernelArgs = Parameters<tf.KernelFunc>[0];

/**
 * Replaces wasm's `kernelName` with `ours`, which returns undefined for the cases it leaves to
 * the kernel it replaced (and for every call while the kernels are not installed).
 */
function override(kernelName: string, ours: (args: KernelArgs, k: Installed) => tf.TensorInfo | undefined): void {
  const original = tf.getKernel(kernelName, 'wasm');
  if (original === undefined) throw new Error(`wasm kernels: the wasm backend has no ${kernelName} to take over`);
  tf.unregisterKernel(kernelName, 'wasm');
  tf.registerKernel({
    ...original,
    kernelFunc: (args) => {
      const k = installedOn(args.backend);
      return (k === undefined ? undefined : ours(args, k)) ?? original.kernelFunc(args);
    },
  });
}

/** Kernels of binary_rows, in its op order. */
const BINARY_OPS = [tf.Add, tf.Sub, tf.Multiply, tf.RealDiv] as const;

/** Below this many output values a call stays on one thread: waking the others costs more. */
const PARALLEL_MIN = 32 * 1024;

function overrideBinary(kernelName: string, op: number): void {
  override(kernelName, ({ inputs }, k) => {
    const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return undefined;
    const aFull = broadcastsAlongLeading(b.shape, a.shape);
    if (!aFull && !broadcastsAlongLeading(a.shape, b.shape)) return undefined;
    const [full, row] = aFull ? [a, b] : [b, a];
    const cols = tf.util.sizeFromShape(row.shape);
    const rows = tf.util.sizeFromShape(full.shape) / cols;
    const out = k.backend.makeOutput([...full.shape], 'float32');
    k.pool.run(
      'binary_rows',
      [offset(k, full), offset(k, row), offset(k, out), rows, cols, op, aFull ? 0 : 1],
      rows * cols >= PARALLEL_MIN,
    );
    return out;
  });
}

/**
 * Whether `small` broadcasts against `full` by repeating along `full`'s leading axes only
 * (`[C]` or `[1,1,1,C]` against `[N,H,W,C]`), and is strictly smaller.
 */
function broadcastsAlongLeading(small: readonly number[], full: readonly number[]): boolean {
  if (small.length > full.length) return false;
  let i = 0;
  while (i < small.length && small[i] === 1) i++;
  const core = small.slice(i);
  if (core.length === 0) return false;
  const tail = full.slice(full.length - core.length);
  if (core.some((d, k) => d !== tail[k])) return false;
  return tf.util.sizeFromShape([...full]) > tf.util.sizeFromShape(core);
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
  const original = tf.getGradient(kernelName);
  if (original === undefined) throw new Error(`wasm kernels: tfjs has no ${kernelName} gradient to wrap`);
  tf.registerGradient({
    ...original,
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as [tf.Tensor];
      const k = leadingAxes((attrs as unknown as tf.SumAttrs).axis, x.shape);
      const g = dy as tf.Tensor;
      if (wasmKernelThreads() === 0 || k === undefined || x.dtype !== 'float32' || g.dtype !== 'float32') {
        return original.gradFunc(dy, saved, attrs);
      }
      const rows = tf.util.sizeFromShape(x.shape.slice(0, k));
      return {
        x: () => {
          const row = tf.reshape(g, [g.size]);
          const flat = tf.engine().runKernel(BROADCAST_ROWS_KERNEL, { x: row }, { rows, mean } as unknown as tf.NamedAttrMap) as tf.Tensor;
          return tf.reshape(flat, x.shape);
        },
      };
    },
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
  if (x.dtype !== 'float32' && x.dtype !== 'int32') return undefined; // 4-byte elements only
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

/** A float32 as the int32 word with the same bits: the pool passes int32 arguments. */
function floatBits(value: number): number {
  return new Int32Array(new Float32Array([value]).buffer)[0]!;
}

/** Rows and columns of a `[..., C]` activation seen as `[rows, C]`. */
function rowsAndColumns(x: tf.TensorInfo): [number, number] {
  const cols = x.shape[x.shape.length - 1] ?? 1;
  return [cols === 0 ? 0 : tf.util.sizeFromShape(x.shape) / cols, cols];
}

/** A scratch tensor of the backend's, freed by the caller with `disposeData`. */
function scratch(k: Installed, size: number): tf.TensorInfo {
  return k.backend.makeOutput([size], 'float32');
}

const batchNormKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const k = active(backend);
  const { x, gamma, beta } = inputs as { x: tf.TensorInfo; gamma: tf.TensorInfo; beta: tf.TensorInfo };
  const { epsilon } = attrs as unknown as { epsilon: number };
  if ([x, gamma, beta].some((t) => t.dtype !== 'float32')) throw new Error('wasm kernels: batch norm takes float32');
  const [rows, cols] = rowsAndColumns(x);
  const y = k.backend.makeOutput([...x.shape], 'float32');
  const mean = k.backend.makeOutput([cols], 'float32');
  const variance = k.backend.makeOutput([cols], 'float32');
  const coef = scratch(k, 3 * cols);
  const o = (t: tf.TensorInfo) => offset(k, t);
  const parallel = rows * cols >= PARALLEL_MIN;
  try {
    k.pool.run('bn_moments', [o(x), o(gamma), o(beta), floatBits(epsilon), o(mean), o(variance), o(coef), rows, cols], parallel);
    k.pool.run('bn_apply', [o(x), o(coef), o(y), rows, cols], parallel);
  } finally {
    k.backend.disposeData(coef.dataId);
  }
  return [y, mean, variance];
};

const batchNormGradKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const k = active(backend);
  const { dy, x, mean, variance, gamma, dmean, dvariance } = inputs as Record<string, tf.TensorInfo | undefined>;
  const { epsilon } = attrs as unknown as { epsilon: number };
  const [rows, cols] = rowsAndColumns(x!);
  const dx = k.backend.makeOutput([...x!.shape], 'float32');
  const dgamma = k.backend.makeOutput([cols], 'float32');
  const dbeta = k.backend.makeOutput([cols], 'float32');
  const coef = scratch(k, 4 * cols);
  // 0 stands for "no gradient reaches this statistic": tfjs allocates nothing at address 0.
  const o = (t: tf.TensorInfo | undefined) => (t === undefined ? 0 : offset(k, t));
  const parallel = rows * cols >= PARALLEL_MIN;
  try {
    k.pool.run(
      'bn_grad_sums',
      [o(dy), o(x), o(mean), o(variance), o(gamma), o(dmean), o(dvariance), floatBits(epsilon), o(dgamma), o(dbeta), o(coef), rows, cols],
      parallel,
    );
    k.pool.run('bn_grad_apply', [o(dy), o(x), o(coef), o(dx), rows, cols], parallel);
  } finally {
    k.backend.disposeData(coef.dataId);
  }
  return [dx, dgamma, dbeta];
};

/** The gradient of {@link BATCH_NORM_KERNEL}; the statistics' own gradients when they have any. */
const batchNormGradient: tf.GradConfig['gradFunc'] = (dys, saved, attrs) => {
  const [dy, dmean, dvariance] = dys as Array<tf.Tensor | null>;
  const [x, gamma, mean, variance] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
  const inputs: tf.NamedTensorMap = { dy: dy ?? tf.zerosLike(x), x, mean, variance, gamma };
  if (dmean) inputs['dmean'] = dmean;
  if (dvariance) inputs['dvariance'] = dvariance;
  const [dx, dgamma, dbeta] = tf.engine().runKernel(BATCH_NORM_GRAD_KERNEL, inputs, attrs as tf.NamedAttrMap) as tf.Tensor[];
  return { x: () => dx!, gamma: () => dgamma!, beta: () => dbeta! };
};

const reluGradKernel: tf.KernelFunc = ({ inputs, backend }) => {
  const k = active(backend);
  const { dy, x } = inputs as { dy: tf.TensorInfo; x: tf.TensorInfo };
  const dx = k.backend.makeOutput([...x.shape], 'float32');
  const n = tf.util.sizeFromShape(x.shape);
  if (n > 0) k.pool.run('relu_grad', [offset(k, dy), offset(k, x), offset(k, dx), n], n >= PARALLEL_MIN);
  return dx;
};

/** ReLU's gradient on wasm as one kernel, where tfjs runs Step, Cast and Multiply. */
function reluGradient(): void {
  const original = tf.getGradient(tf.Relu);
  if (original === undefined) throw new Error('wasm kernels: tfjs has no Relu gradient to wrap');
  tf.registerGradient({
    ...original,
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as [tf.Tensor];
      const g = dy as tf.Tensor;
      if (wasmKernelThreads() === 0 || x.dtype !== 'float32' || g.dtype !== 'float32') return original.gradFunc(dy, saved, attrs);
      return { x: () => tf.engine().runKernel(RELU_GRAD_KERNEL, { dy: g, x }) as tf.Tensor };
    },
  });
}

/**
 * A BatchMatMul of 3-d float32 operands with more than one matrix (either side may be one
 * matrix repeated), as `batch_matmul`; single products stay with XNNPACK.
 */
function batchedMatMul({ inputs, attrs }: KernelArgs, k: Installed): tf.TensorInfo | undefined {
  const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = attrs as unknown as tf.BatchMatMulAttrs;
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length !== 3 || b.shape.length !== 3) return undefined;
  const [batchA, a1, a2] = a.shape as [number, number, number];
  const [batchB, b1, b2] = b.shape as [number, number, number];
  const batch = Math.max(batchA, batchB);
  if (batch < 2 || (batchA !== batchB && batchA !== 1 && batchB !== 1)) return undefined;
  const [m, inner] = transposeA ? [a2, a1] : [a1, a2];
  const [innerB, n] = transposeB ? [b2, b1] : [b1, b2];
  if (inner !== innerB) return undefined; // the engine's message names the mismatch
  const out = k.backend.makeOutput([batch, m, n], 'float32');
  if (batch * m * n === 0) return out;
  const geometry = [batch, m, inner, n, transposeA ? 1 : 0, transposeB ? 1 : 0, batchA === 1 ? 0 : a1 * a2, batchB === 1 ? 0 : b1 * b2];
  new Int32Array(k.memory.buffer, k.geometry, geometry.length).set(geometry);
  k.pool.run('batch_matmul', [k.geometry, offset(k, a), offset(k, b), offset(k, out)], batch * m * n * inner >= PARALLEL_MIN);
  return out;
}

const interleaveKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const k = active(backend);
  const { sh, sw } = attrs as unknown as { sh: number; sw: number };
  const phases = Array.from({ length: sh * sw }, (_, i) => (inputs as Record<string, tf.TensorInfo | undefined>)[`p${i}`]);
  const first = phases[0];
  if (first === undefined || phases.some((t) => t === undefined || t.dtype !== 'float32' || !tf.util.arraysEqual(t.shape, first.shape))) {
    throw new Error(`wasm kernels: interleave takes ${sh * sw} float32 phases of one shape`);
  }
  if (sh * sw > 10) throw new Error(`wasm kernels: interleave takes at most 10 phases, got ${sh * sw}`);
  const [batch, ph, pw, c] = first.shape as [number, number, number, number];
  const out = k.backend.makeOutput([batch, ph * sh, pw * sw, c], 'float32');
  if (batch * ph * pw * c === 0) return out;
  const geometry = [batch, ph, pw, c, sh, sw, ...phases.map((t) => offset(k, t!))];
  new Int32Array(k.memory.buffer, k.geometry, geometry.length).set(geometry);
  k.pool.run('interleave_phases', [k.geometry, offset(k, out)], batch * ph * pw * c * sh * sw >= PARALLEL_MIN);
  return out;
};

/** Takes over a float32 elementwise kernel with `kernel` (x, out, n), on both cores when large. */
function overrideUnary(kernelName: string, kernel: string): void {
  override(kernelName, ({ inputs }, k) => {
    const { x } = inputs as { x: tf.TensorInfo };
    if (x.dtype !== 'float32') return undefined;
    const out = k.backend.makeOutput([...x.shape], 'float32');
    const n = tf.util.sizeFromShape(x.shape);
    if (n > 0) k.pool.run(kernel, [offset(k, x), offset(k, out), n], n >= PARALLEL_MIN);
    return out;
  });
}

/** The interleave's gradient: phase (a, b) takes every sh-th row from a and every sw-th column from b of dy. */
const interleaveGradient: tf.GradConfig['gradFunc'] = (dy, _saved, attrs) => {
  const g = dy as tf.Tensor4D;
  const { sh, sw } = attrs as unknown as { sh: number; sw: number };
  const [batch, h, w, c] = g.shape;
  return Object.fromEntries(
    Array.from({ length: sh * sw }, (_, i) => {
      const [a, b] = [Math.floor(i / sw), i % sw];
      return [`p${i}`, () => tf.stridedSlice(g, [0, a, b, 0], [batch, h, w, c], [1, sh, sw, 1])];
    }),
  );
};
