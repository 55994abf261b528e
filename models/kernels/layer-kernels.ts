/**
 * densestream's wasm kernels for whole layers and their gradients (kernels.c): training batch
 * norm, the ReLU gradient, batched matrix products, and SIMD `Exp` and `Relu`. Registered by
 * `installWasmKernels`; the phased input gradient's are in `phase-kernels.ts`.
 */
import * as tf from '@tensorflow/tfjs';
import {
  active,
  floatBits,
  offset,
  override,
  overrideGradient,
  PARALLEL_MIN,
  writeGeometry,
  type Installed,
  type KernelArgs,
} from './kernel-registry.js';

/**
 * Training-mode batch norm over the leading axes: inputs `x [..., C]`, `gamma`, `beta` `[C]`,
 * attr `epsilon`; outputs `[y, mean, variance]` (`models/batch-norm.ts` calls it).
 */
export const BATCH_NORM_KERNEL = 'DensestreamBatchNorm';

/**
 * The same followed by an optional residual `residual` (x's shape) and ReLU: y = relu(normalised
 * + residual). Its own name because its gradient needs y saved, which plain batch norm's does not.
 */
export const BATCH_NORM_RELU_KERNEL = 'DensestreamBatchNormRelu';

/** The attributes of both. */
export interface BatchNormAttrs {
  epsilon: number;
}

/** Its gradient: inputs dy, x, mean, variance, gamma and optionally dmean, dvariance; outputs `[dx, dgamma, dbeta]`. */
const BATCH_NORM_GRAD_KERNEL = 'DensestreamBatchNormGrad';

/** The ReLU gradient in one pass: inputs dy, x; dx = dy where x > 0. */
const RELU_GRAD_KERNEL = 'DensestreamReluGrad';

/** Rows and columns of a `[..., C]` activation seen as `[rows, C]`. */
function rowsAndColumns(x: tf.TensorInfo): [number, number] {
  const cols = x.shape[x.shape.length - 1] ?? 1;
  return [cols === 0 ? 0 : tf.util.sizeFromShape(x.shape) / cols, cols];
}

/** A scratch tensor of the backend's, freed by the caller with `disposeData`. */
function scratch(k: Installed, size: number): tf.TensorInfo {
  return k.backend.makeOutput([size], 'float32');
}

const batchNormKernel: tf.KernelFunc = (args) => normalise(args, false);
const batchNormReluKernel: tf.KernelFunc = (args) => normalise(args, true);

function normalise({ inputs, backend, attrs }: KernelArgs, relu: boolean): tf.TensorInfo[] {
  const k = active(backend);
  const { x, gamma, beta, residual } = inputs as { x: tf.TensorInfo; gamma: tf.TensorInfo; beta: tf.TensorInfo; residual?: tf.TensorInfo };
  const { epsilon } = attrs as unknown as BatchNormAttrs;
  if (residual && !relu) throw new Error('wasm kernels: a residual goes to the fused batch norm with ReLU');
  if ([x, gamma, beta, residual ?? x].some((t) => t.dtype !== 'float32')) throw new Error('wasm kernels: batch norm takes float32');
  if (residual && !tf.util.arraysEqual(residual.shape, x.shape)) {
    throw new Error(`wasm kernels: batch norm's residual ${JSON.stringify(residual.shape)} is not x's ${JSON.stringify(x.shape)}`);
  }
  const [rows, cols] = rowsAndColumns(x);
  const y = k.backend.makeOutput([...x.shape], 'float32');
  const mean = k.backend.makeOutput([cols], 'float32');
  const variance = k.backend.makeOutput([cols], 'float32');
  const coef = scratch(k, 3 * cols);
  const o = (t: tf.TensorInfo) => offset(k, t);
  const parallel = rows * cols >= PARALLEL_MIN;
  try {
    k.pool.run('bn_moments', [o(x), o(gamma), o(beta), floatBits(epsilon), o(mean), o(variance), o(coef), rows, cols], parallel);
    k.pool.run('bn_apply', [o(x), o(coef), residual ? o(residual) : 0, o(y), rows, cols, relu ? 1 : 0], parallel);
  } finally {
    k.backend.disposeData(coef.dataId);
  }
  return [y, mean, variance];
}

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

/** x, γ, β's gradients from dy reaching y (or none) and the statistics' own gradients when they have any. */
function normaliseGradient(
  dy: tf.Tensor,
  dys: Array<tf.Tensor | null>,
  x: tf.Tensor,
  gamma: tf.Tensor,
  mean: tf.Tensor,
  variance: tf.Tensor,
  attrs: tf.NamedAttrMap,
) {
  const [, dmean, dvariance] = dys;
  const inputs: tf.NamedTensorMap = { dy, x, mean, variance, gamma };
  if (dmean) inputs['dmean'] = dmean;
  if (dvariance) inputs['dvariance'] = dvariance;
  const [dx, dgamma, dbeta] = tf.engine().runKernel(BATCH_NORM_GRAD_KERNEL, inputs, attrs) as tf.Tensor[];
  return { x: () => dx!, gamma: () => dgamma!, beta: () => dbeta! };
}

/** The gradient of {@link BATCH_NORM_KERNEL}. */
const batchNormGradient: tf.GradConfig['gradFunc'] = (dys, saved, attrs) => {
  const all = dys as Array<tf.Tensor | null>;
  const [x, gamma, mean, variance] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
  return normaliseGradient(all[0] ?? tf.zerosLike(x), all, x, gamma, mean, variance, attrs);
};

/**
 * The gradient of {@link BATCH_NORM_RELU_KERNEL}: dy through the ReLU gradient first (y > 0
 * exactly where the sum before it was), then batch norm's; the residual's gradient is that same
 * tensor, as an Add's would be.
 */
const batchNormReluGradient: tf.GradConfig['gradFunc'] = (dys, saved, attrs) => {
  const all = dys as Array<tf.Tensor | null>;
  const [x, gamma, y, mean, variance] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
  const g = tf.engine().runKernel(RELU_GRAD_KERNEL, { dy: all[0] ?? tf.zerosLike(x), x: y }) as tf.Tensor;
  return { ...normaliseGradient(g, all, x, gamma, mean, variance, attrs), residual: () => g };
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
  overrideGradient(tf.Relu, (dy, x) => ({ x: () => tf.engine().runKernel(RELU_GRAD_KERNEL, { dy, x }) as tf.Tensor }));
}

/** The widest B of a single unflagged product this kernel takes (wider rows alias in L1 across its k blocks). */
const PLAIN_MAX_N = 512;

/**
 * Whether single unflagged products up to PLAIN_MAX_N wide come here: yes unless the environment
 * sets DENSESTREAM_PLAIN_MATMUL=0, which leaves them to XNNPACK (what `bench matmul` and `bench
 * train` compare against). Read per call.
 */
function plainMatMulEnabled(): boolean {
  return process.env['DENSESTREAM_PLAIN_MATMUL'] !== '0';
}

/**
 * A BatchMatMul of 2-d or 3-d float32 operands with more than one matrix (either side may be one
 * matrix repeated), with a transpose flag, or with B at most PLAIN_MAX_N wide, as `batch_matmul`;
 * other single products stay with XNNPACK.
 */
function batchedMatMul({ inputs, attrs }: KernelArgs, k: Installed): tf.TensorInfo | undefined {
  const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = attrs as unknown as tf.BatchMatMulAttrs;
  const ranks = [2, 3];
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || !ranks.includes(a.shape.length) || !ranks.includes(b.shape.length))
    return undefined;
  const [batchA, a1, a2] = (a.shape.length === 2 ? [1, ...a.shape] : a.shape) as [number, number, number];
  const [batchB, b1, b2] = (b.shape.length === 2 ? [1, ...b.shape] : b.shape) as [number, number, number];
  const batch = Math.max(batchA, batchB);
  if (batchA !== batchB && batchA !== 1 && batchB !== 1) return undefined;
  const [m, inner] = transposeA ? [a2, a1] : [a1, a2];
  const [innerB, n] = transposeB ? [b2, b1] : [b1, b2];
  if (inner !== innerB) return undefined; // the engine's message names the mismatch
  // tfjs's wasm BatchMatMul multiplies flagged (transposed) operands element by element, ~20×
  // slower than this kernel (a [128,128]·[1024,128]ᵀ product: 25–43 ms against 1.9, measured).
  // A single unflagged product goes to XNNPACK only when its B is wider than PLAIN_MAX_N: it
  // packs B on every call, which a narrow B and few rows of A do not pay back (docs/performance.md,
  // "Measured: the plain matrix product").
  if (batch < 2 && !transposeA && !transposeB && (n > PLAIN_MAX_N || !plainMatMulEnabled())) return undefined;
  const out = k.backend.makeOutput(a.shape.length === 2 && b.shape.length === 2 ? [m, n] : [batch, m, n], 'float32');
  if (batch * m * n === 0) return out;
  const geometry = [batch, m, inner, n, transposeA ? 1 : 0, transposeB ? 1 : 0, batchA === 1 ? 0 : a1 * a2, batchB === 1 ? 0 : b1 * b2];
  writeGeometry(k, geometry);
  k.pool.run('batch_matmul', [k.geometry, offset(k, a), offset(k, b), offset(k, out)], batch * m * n * inner >= PARALLEL_MIN);
  return out;
}

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

/** Registers the kernels of this module and their gradients on wasm (once). */
export function registerLayerKernels(): void {
  override(tf.BatchMatMul, batchedMatMul);
  // eˣ on both cores with SIMD (kernels.c: within 2 ulp, results below 2⁻¹²⁶ flushed to 0).
  overrideUnary(tf.Exp, 'exp_values');
  overrideUnary(tf.Relu, 'relu_values');
  tf.registerKernel({ kernelName: BATCH_NORM_KERNEL, backendName: 'wasm', kernelFunc: batchNormKernel });
  tf.registerKernel({ kernelName: BATCH_NORM_RELU_KERNEL, backendName: 'wasm', kernelFunc: batchNormReluKernel });
  tf.registerKernel({ kernelName: BATCH_NORM_GRAD_KERNEL, backendName: 'wasm', kernelFunc: batchNormGradKernel });
  tf.registerGradient({
    kernelName: BATCH_NORM_KERNEL,
    inputsToSave: ['x', 'gamma'],
    outputsToSave: [false, true, true],
    gradFunc: batchNormGradient,
  });
  tf.registerGradient({
    kernelName: BATCH_NORM_RELU_KERNEL,
    inputsToSave: ['x', 'gamma'],
    outputsToSave: [true, true, true],
    gradFunc: batchNormReluGradient,
  });
  tf.registerKernel({ kernelName: RELU_GRAD_KERNEL, backendName: 'wasm', kernelFunc: reluGradKernel });
  reluGradient();
}
