/**
 * InfoNCE's log-probabilities as one wasm kernel and its gradient (kernels.c:
 * `contrast_log_prob`): for queries' positive similarities `pos [N, 1]` and negative ones
 * `neg [N, K]`, `log softmax([pos, neg] / τ)[:, 0]` per row, the `[N, 1 + K]` logits never
 * built. tfjs's form (Concat, RealDiv, logSoftmax, Slice and their gradients) passed over the
 * logits about a dozen times: 45 of DenseCL's 370 ms a step at its `[1024, 1025]` (tf.profile).
 * The logits are similarities times 1/τ, one rounding away from tfjs's division by τ.
 */
import * as tf from '@tensorflow/tfjs';
import { active, floatBits, offset, PARALLEL_MIN, wasmKernelThreads } from './kernel-registry.js';

/** Inputs `pos [N, 1]`, `neg [N, K]` (float32), attr `tau`; outputs `[logProb [N], stats [N, 2]]` (each row's max and sum of exponentials, for the gradient). */
export const CONTRAST_LOG_PROB_KERNEL = 'DensestreamContrastLogProb';
const CONTRAST_GRAD_KERNEL = 'DensestreamContrastLogProbGrad';

function rowsOf(pos: tf.TensorInfo, neg: tf.TensorInfo): [number, number] {
  const [n, k] = neg.shape as [number, number];
  if (
    neg.shape.length !== 2 ||
    pos.shape.length !== 2 ||
    pos.shape[0] !== n ||
    pos.shape[1] !== 1 ||
    pos.dtype !== 'float32' ||
    neg.dtype !== 'float32'
  ) {
    throw new Error(
      `wasm kernels: contrast_log_prob takes float32 pos [N, 1] and neg [N, K], got ${JSON.stringify([pos.shape, neg.shape])}`,
    );
  }
  return [n, k];
}

const contrastKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const k = active(backend);
  const { pos, neg } = inputs as { pos: tf.TensorInfo; neg: tf.TensorInfo };
  const { tau } = attrs as unknown as { tau: number };
  const [n, cols] = rowsOf(pos, neg);
  const out = k.backend.makeOutput([n], 'float32');
  const stats = k.backend.makeOutput([n, 2], 'float32');
  if (n > 0) {
    k.pool.run(
      'contrast_log_prob',
      [offset(k, pos), offset(k, neg), offset(k, out), offset(k, stats), n, cols, floatBits(tau)],
      n * cols >= PARALLEL_MIN,
    );
  }
  return [out, stats];
};

const contrastGradKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const k = active(backend);
  const { pos, neg, stats, dy } = inputs as Record<string, tf.TensorInfo>;
  const { tau } = attrs as unknown as { tau: number };
  const [n, cols] = rowsOf(pos!, neg!);
  const dpos = k.backend.makeOutput([n, 1], 'float32');
  const dneg = k.backend.makeOutput([n, cols], 'float32');
  if (n > 0) {
    k.pool.run(
      'contrast_log_prob_grad',
      [offset(k, pos!), offset(k, neg!), offset(k, stats!), offset(k, dy!), offset(k, dpos), offset(k, dneg), n, cols, floatBits(tau)],
      n * cols >= PARALLEL_MIN,
    );
  }
  return [dpos, dneg];
};

/** Registers the kernel pair and the gradient on wasm (installWasmKernels calls it once). */
export function registerContrast(): void {
  tf.registerKernel({ kernelName: CONTRAST_LOG_PROB_KERNEL, backendName: 'wasm', kernelFunc: contrastKernel });
  tf.registerKernel({ kernelName: CONTRAST_GRAD_KERNEL, backendName: 'wasm', kernelFunc: contrastGradKernel });
  tf.registerGradient({
    kernelName: CONTRAST_LOG_PROB_KERNEL,
    inputsToSave: ['pos', 'neg'],
    outputsToSave: [false, true],
    gradFunc: (dys, saved, attrs) => {
      const [dy] = dys as tf.Tensor[];
      const [pos, neg, stats] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
      const [dpos, dneg] = tf
        .engine()
        .runKernel(CONTRAST_GRAD_KERNEL, { pos, neg, stats, dy: dy ?? tf.zeros([pos.shape[0]!]) }, attrs as tf.NamedAttrMap) as tf.Tensor[];
      return { pos: () => dpos!, neg: () => dneg! };
    },
  });
}

/**
 * `log softmax([pos, neg] / τ)[:, 0]` `[N]` by the kernel where densestream's wasm kernels are
 * active, else undefined (the caller builds the logits with tfjs ops).
 */
export function contrastLogProb(pos: tf.Tensor2D, neg: tf.Tensor2D, tau: number): tf.Tensor1D | undefined {
  if (wasmKernelThreads() === 0 || pos.dtype !== 'float32' || neg.dtype !== 'float32') return undefined;
  const [logProb, stats] = tf.engine().runKernel(CONTRAST_LOG_PROB_KERNEL, { pos, neg }, { tau } as unknown as tf.NamedAttrMap) as [
    tf.Tensor1D,
    tf.Tensor2D,
  ];
  stats.dispose();
  return logProb;
}
